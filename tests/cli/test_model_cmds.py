"""``cnnkit summary`` and ``cnnkit models`` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import cnnkit
from cnnkit.cli.main import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _check_vgg16(doc: dict) -> None:
    assert doc["total_params"] == 138_357_544
    assert doc["trainable_params"] == 138_357_544 and doc["non_trainable_params"] == 0
    assert doc["mult_adds"] == 15_470_264_320
    assert doc["layers"][0] == {
        "name": "features.0",
        "type": "Conv2d",
        "output_shape": [64, 224, 224],
        "params": 1792,
        "trainable": True,
        "mult_adds": 86_704_128,
    }
    assert doc["layers"][-1]["output_shape"] == [1000]


def test_summary_vgg16_json(capsys):
    rc, out, _ = _run(capsys, "summary", "vgg16", "--json")
    assert rc == 0
    _check_vgg16(json.loads(out))


@pytest.mark.slow
def test_summary_vgg16_json_in_a_fresh_process():
    env = dict(os.environ, PYTHONPATH=str(Path(cnnkit.__file__).parents[1]))
    proc = subprocess.run(
        [sys.executable, "-m", "cnnkit", "summary", "vgg16", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    _check_vgg16(json.loads(proc.stdout))


def test_summary_options(capsys):
    rc, out, _ = _run(
        capsys,
        "summary",
        "basic-convnet",
        "--input-shape",
        "3",
        "64",
        "64",
        "--num-classes",
        "5",
        "--json",
    )
    doc = json.loads(out)
    assert (
        rc == 0 and doc["input_shape"] == [3, 64, 64] and doc["layers"][-1]["output_shape"] == [5]
    )
    rc, out, _ = _run(capsys, "summary", "densenet121", "--param-mode", "keras")
    assert rc == 0 and "Total params: 8,062,504" in out and "Non-trainable params: 83,648" in out


def test_summary_errors_are_one_line(capsys):
    rc, out, err = _run(capsys, "summary", "alexnet", "--input-shape", "3", "16", "16")
    assert rc == 2 and out == ""
    assert err.strip() == (
        "error: input 16x16 is too small for alexnet (minimum 63x63). "
        "Received: input_shape=(3, 16, 16)"
    )
    rc, _, err = _run(capsys, "summary", "vgg-61")
    assert rc == 2 and "Did you mean: vgg19, vgg16, vgg11?" in err
    rc, _, err = _run(capsys, "summary", "lenet5", "--param-mode", "tf")
    assert rc == 2 and "param_mode" in err


def test_summary_of_a_run_folder(capsys, monkeypatch, tmp_path):
    from cnnkit.models import create_model

    model = create_model("lenet5", num_classes=3)
    monkeypatch.setattr("cnnkit.cli.model_cmds.load_run", lambda p: SimpleNamespace(model=model))
    rc, out, _ = _run(capsys, "summary", str(tmp_path), "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["layers"][-1]["output_shape"] == [3]
    assert doc["total_params"] == 61_706 - 7 * 85


def test_models_lists_the_zoo(capsys):
    rc, out, _ = _run(capsys, "models", "--json")
    names = [c["name"] for c in json.loads(out)]
    assert rc == 0 and {"basic_convnet", "vgg16", "xception", "mobilenet"} <= set(names)
    rc, out, _ = _run(capsys, "models", "--markdown")
    assert "| `mobilenet_v2` |" in out


def test_summary_input_shape_takes_c_l_for_snp_models_and_c_h_w_for_images(capsys):
    for name in ("snp_cnn1d", "snp-mlp"):
        rc, out, _ = _run(capsys, "summary", name, "--input-shape", "1", "300", "--json")
        doc = json.loads(out)
        assert rc == 0 and doc["input_shape"] == [1, 300], doc
    rc, out, _ = _run(capsys, "summary", "snp_cnn1d", "--input-shape=1,400", "--json")
    assert rc == 0 and json.loads(out)["input_shape"] == [1, 400]
    rc, out, _ = _run(capsys, "summary", "--input-shape", "1", "28", "28", "basic_convnet")
    assert rc == 0 and "Total params" in out
    cases = [
        ("snp_cnn1d", ["3", "16", "16"], "2 positive ints (C L) for snp_cnn1d"),
        ("basic_convnet", ["1", "28"], "3 positive ints (C H W) for basic_convnet"),
        ("snp_mlp", ["1", "0"], "2 positive ints (C L) for snp_mlp"),
        ("snp_mlp", ["1", "2", "3", "4"], "2 positive ints (C L) for snp_mlp"),
    ]
    for name, shape, expected in cases:
        rc, out, err = _run(capsys, "summary", name, "--input-shape", *shape)
        assert rc == 2 and out == "" and err.count("\n") == 1
        assert expected in err and f"Received: --input-shape {' '.join(shape)}" in err
