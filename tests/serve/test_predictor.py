"""Predictor extensions used by the server: in-memory bytes and the ONNX backend's checks."""

from __future__ import annotations

import shutil

import pytest

from cnnkit.errors import CnnkitError
from cnnkit.serve.predictor import Predictor, predict


def test_predict_bytes_keeps_order_and_names_failures(run_dir, images):
    p = Predictor(run_dir)
    out = p.predict_bytes(
        [("t.png", images["top"]), ("e.png", b""), ("x.png", b"text"), ("b.png", images["bottom"])],
        top_k=2,
    )
    assert [r["file"] for r in out] == ["t.png", "e.png", "x.png", "b.png"]
    assert out[0]["label"] == "top" and out[3]["label"] == "bottom"
    assert "e.png" in out[1]["error"] and "empty" in out[1]["error"]
    assert "x.png" in out[2]["error"] and "not-an-image" in out[2]["error"]
    assert len(out[0]["top_k"]) == 2


def test_predict_bytes_equals_predict_files(run_dir, serve_data, images):
    from_files = predict(run_dir, [serve_data / "middle" / "00.png"])
    from_bytes = Predictor(run_dir).predict_bytes([("x", images["middle"])])
    assert from_files[0]["top_k"] == from_bytes[0]["top_k"]


def test_max_pixels_rejects_large_images(run_dir, images):
    out = Predictor(run_dir).predict_bytes([("a.png", images["top"])], max_pixels=100)
    assert "too-large" in out[0]["error"]


def test_onnx_backend_without_export_is_a_clear_error(run_dir):
    with pytest.raises(FileNotFoundError, match="cnnkit export"):
        Predictor(run_dir, backend="onnx")


def test_stale_onnx_is_refused(onnx_run, run_dir, tmp_path):
    stale = tmp_path / "run"
    shutil.copytree(onnx_run, stale)
    weights = (stale / "model.safetensors").read_bytes()
    (stale / "model.safetensors").write_bytes(weights)  # same weights: fine
    Predictor(stale, backend="onnx")
    from safetensors.torch import load_file, save_file

    state = load_file(stale / "model.safetensors")
    key = next(iter(state))
    state[key] = state[key] + 1.0
    save_file(state, stale / "model.safetensors")
    with pytest.raises(CnnkitError, match="other weights"):
        Predictor(stale, backend="onnx")


def test_public_names_of_the_serve_package():
    import cnnkit.serve as serve

    assert serve.Predictor is Predictor and serve.predict is predict
    assert callable(serve.export_onnx)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        serve.nope  # noqa: B018


def test_predictions_csv_pads_top_k_and_keeps_errors():
    import csv
    import io

    from cnnkit.serve.predictor import predictions_csv

    top = [{"label": "cat", "probability": 0.75}, {"label": "dog", "probability": 0.25}]
    ok = {"file": "a,b.png", "label": "cat", "probability": 0.75, "top_k": top}
    bad = {"file": "x.png", "error": "x.png: truncated"}
    rows = list(csv.reader(io.StringIO(predictions_csv([ok, bad], top_k=3))))
    assert rows[0] == ["file", "label", "probability", "label_2", "probability_2",
                       "label_3", "probability_3", "error"]  # fmt: skip
    assert rows[1] == ["a,b.png", "cat", "0.75", "dog", "0.25", "", "", ""]  # 2 classes < top-k
    assert rows[2] == ["x.png", "", "", "", "", "", "", "x.png: truncated"]
