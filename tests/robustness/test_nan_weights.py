"""A run whose weights give NaN: never ``NaN`` in JSON, never a result that looks real.

``predict --json`` stays valid JSON (each file an error naming it, exit 1), ``explain`` is
one error line (no ``nan%`` heatmap), and the server answers ``{"error": ...}`` with its
security headers (an exception no route handles is a JSON 500 with them too).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rb_helpers import child_env, record

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from cnnkit.serve.app import ServeOptions, create_app  # noqa: E402
from cnnkit.serve.middleware import SECURITY_HEADERS  # noqa: E402


def _strict_json(text: str):
    """``json.loads`` that refuses NaN/Infinity, as every JSON parser but Python's does."""

    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def nan_run(tiny_run, tmp_path_factory) -> Path:
    """``tiny_run`` with every floating-point weight set to NaN."""
    from safetensors.torch import load_file, save_file

    run = tmp_path_factory.mktemp("nan-run") / "run"
    shutil.copytree(tiny_run, run)
    state = load_file(str(run / "model.safetensors"))
    state = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(run / "model.safetensors"))
    return run


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "digit.png"
    Image.fromarray(np.full((28, 28), 180, np.uint8)).save(path)
    return path


def _cnnkit(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cnnkit", *args]
    return subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)


def test_predict_json_names_each_file_and_stays_valid_json(nan_run, image):
    proc = _cnnkit("predict", str(nan_run), str(image), str(image), "--json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    results = _strict_json(proc.stdout)
    assert [r["file"] for r in results] == [str(image)] * 2
    for r in results:
        assert set(r) == {"file", "error"}
        assert str(image) in r["error"] and "not a number" in r["error"]
    assert "Traceback" not in proc.stderr
    record("nan_weights", predict_files=len(results))


def test_explain_is_one_error_line_and_no_heatmap(nan_run, image, tmp_path):
    out = tmp_path / "cam.png"
    proc = _cnnkit("explain", str(nan_run), str(image), "--out", str(out))
    assert proc.returncode != 0
    assert "nan%" not in proc.stdout + proc.stderr and not out.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(image) in lines[0], lines


def _upload(image: Path, field: str) -> dict:
    return {field: ("digit.png", image.read_bytes(), "image/png")}


def _has_security_headers(resp) -> bool:
    return all(resp.headers.get(k.decode()) == v.decode() for k, v in SECURITY_HEADERS)


def test_the_server_answers_json_errors_with_its_headers(nan_run, image):
    client = TestClient(create_app(nan_run, ServeOptions(backend="torch")))
    resp = client.post("/predict", files=_upload(image, "files"))
    assert 400 <= resp.status_code < 600 and _has_security_headers(resp), resp.text
    body = _strict_json(resp.text)
    assert "not a number" in body["error"] and body["results"][0]["file"] == "digit.png"
    resp = client.post("/explain", files=_upload(image, "file"))
    assert 400 <= resp.status_code < 600 and _has_security_headers(resp), resp.text
    assert "not a number" in _strict_json(resp.text)["error"]
    assert client.get("/health").status_code == 200


def test_an_unhandled_exception_is_a_json_500_with_the_headers(tiny_run, image, monkeypatch):
    app = create_app(tiny_run, ServeOptions(backend="torch"))
    predictor = app.state.cnnkit.predictor

    def broken(*_a, **_k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(predictor, "predict_bytes", broken)
    client = TestClient(app, raise_server_exceptions=False)
    resp = client.post("/predict", files=_upload(image, "files"))
    assert resp.status_code == 500 and _has_security_headers(resp), dict(resp.headers)
    assert _strict_json(resp.text) == {"error": "internal server error"}


def test_evaluate_names_the_weights_not_sklearns_input_contains_nan(nan_run):
    proc = _cnnkit("evaluate", str(nan_run))
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(nan_run / "model.safetensors") in line, line
    assert "not a number" in line and "Input contains NaN" not in proc.stderr
