"""ONNX export: dynamic batch, metadata, parity with PyTorch, atomic and refusing writes."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch

from cnnkit.runs import load_run
from cnnkit.serve.export import ExportMismatchError, export_onnx, reference_images
from cnnkit.serve.onnx_backend import OnnxSession


def test_export_predictions_match_torch_on_real_images(onnx_run, serve_data):
    from cnnkit.serve.predictor import Predictor

    files = sorted(serve_data.glob("*/*.png"))
    torch_pred = Predictor(onnx_run, backend="torch")
    onnx_pred = Predictor(onnx_run, backend="onnx")
    images = np.stack([torch_pred.load(f) for f in files])
    p_torch, p_onnx = torch_pred.predict_proba(images), onnx_pred.predict_proba(images)
    assert p_torch.shape == (len(files), 3)
    assert np.abs(p_torch - p_onnx).max() <= 1e-4
    assert (p_torch.argmax(1) == p_onnx.argmax(1)).all()


def test_batch_dimension_is_dynamic(onnx_run):
    session = OnnxSession(onnx_run / "model.onnx")
    run = load_run(onnx_run)
    for n in (1, 3, 17):
        x = torch.randn(n, 1, 28, 28)
        with torch.inference_mode():
            want = run.model(x).numpy()
        got = session(x.numpy())
        assert got.shape == (n, 3)
        assert np.abs(got - want).max() < 1e-4


def test_metadata_records_preprocessing(onnx_run):
    meta = OnnxSession(onnx_run / "model.onnx").metadata
    assert meta["class_names"] == ["bottom", "middle", "top"]
    assert meta["image_size"] == [28, 28] and meta["color_mode"] == "grayscale"
    assert meta["mean"] == [0.0] and meta["std"] == [1.0] and meta["model"] == "basic_convnet"
    assert len(meta["weights_sha256"]) == 64
    proto = onnx.load(str(onnx_run / "model.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch


def test_reference_images_come_from_the_validation_split(run_dir):
    images, where = reference_images(load_run(run_dir), 4)
    assert where == "validation split"
    assert images.shape == (4, 1, 28, 28) and images.dtype == np.uint8


def test_random_pixels_when_the_data_is_gone(run_dir, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved)
    for name in ("split.csv", "predictions.csv"):
        (moved / name).write_text("path,label,subset\n/nowhere/a.png,top,validation\n")
    images, where = reference_images(load_run(moved), 5)
    assert where == "random pixels" and images.shape == (5, 1, 28, 28)


def test_mismatch_fails_and_writes_nothing(run_dir, tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportMismatchError, match="was not written"):
        export_onnx(run_dir, out, tolerance=1e-30)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_bad_tolerance_is_a_clear_error(run_dir, tmp_path):
    with pytest.raises(ValueError, match="tolerance"):
        export_onnx(run_dir, tmp_path / "m.onnx", tolerance=0)


def test_named_dataset_pseudo_paths_are_read(run_dir, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved)
    rows = "".join(f"digits:train/{i},0,validation\n" for i in range(3))
    (moved / "split.csv").write_text("path,label,subset\n" + rows)
    images, where = reference_images(load_run(moved), 8)
    assert where == "validation split" and images.shape == (3, 1, 28, 28)
    assert images.std() > 0  # real digits, resized to the run's size
