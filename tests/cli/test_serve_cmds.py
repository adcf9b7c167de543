"""``cnnkit export`` and ``cnnkit serve`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["left", "right"]):
        (root / name).mkdir(parents=True)
        for i in range(8):
            img = rng.integers(0, 50, (20, 20), dtype=np.uint8)
            img[:, c * 10 : (c + 1) * 10] = 220
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve-cmds")
    data = _folder(root / "data")
    out = root / "run"
    assert (
        main(
            [
                "train",
                str(data),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--batch-size",
                "4",
                "--image-size",
                "20",
                "20",
                "--no-report",
            ]
        )
        == 0
    )
    return out


def test_export_json_then_predict_with_onnx(run, capsys):
    assert main(["export", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["path"]) == run / "model.onnx" and (run / "model.onnx").is_file()
    assert out["max_abs_diff"] <= 1e-4 and out["images_from"] == "validation split"
    assert out["opset"] >= 18
    image = str(run.parent / "data" / "right" / "0.png")
    assert main(["predict", str(run), image, "--backend", "onnx", "--json"]) == 0
    by_onnx = json.loads(capsys.readouterr().out)
    assert main(["predict", str(run), image, "--json"]) == 0
    by_torch = json.loads(capsys.readouterr().out)
    assert by_onnx[0]["label"] == by_torch[0]["label"]
    assert by_onnx[0]["probability"] == pytest.approx(by_torch[0]["probability"], abs=1e-4)


@pytest.mark.slow
def test_export_human_text_and_out(run, tmp_path, capsys):
    target = tmp_path / "sub" / "m.onnx"
    assert main(["export", str(run), "--out", str(target)]) == 0
    text = capsys.readouterr().out
    assert "max abs difference" in text and str(target) in text and target.is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["export", "RUN", "--format", "tflite"], "--format must be onnx"),
        (["export", "/no/such/run"], "run folder not found"),
        (["export", "RUN", "--tolerance", "0"], "tolerance"),
        (["serve", "RUN", "--backend", "tf"], "backend must be auto, torch or onnx"),
        (["serve", "RUN", "--max-upload-mb", "0"], "max_upload_mb"),
        (["serve", "RUN", "--port", "70000"], "--port"),
        (["serve", "/no/such/run"], "run folder not found"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(run, capsys, args, words):
    args = [str(run) if a == "RUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
