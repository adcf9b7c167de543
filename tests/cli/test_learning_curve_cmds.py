"""`cnnkit learning-curve` (and `cnnkit report` on its folder) through the real entry point."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main


def _folder(root, per_class=10, size=12):
    rng = np.random.default_rng(0)
    for c, value in (("dark", 50), ("light", 200)):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(value + rng.normal(0, 30, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:02d}.png")
    return root


TINY = ["--model", "lenet5", "--epochs", "1", "--batch-size", "4", "--max-steps-per-epoch", "1",
        "--fractions", "0.25,0.5,1", "--repeats", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    root = tmp_path_factory.mktemp("lccli")
    return _folder(root / "data"), root / "curve"


def test_learning_curve_writes_everything_and_answers_in_one_line(curve, capsys):
    data, out = curve
    assert main(["learning-curve", str(data), "--out", str(out), *TINY, "--json"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    for name in ("learning_curve.json", "learning_curve.csv", "learning_curve.png",
                 "report.html", "split.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert len(payload["points"]) == 6 and payload["report"].endswith("report.html")
    assert payload["answer"].startswith("with 2x / 4x the training images (32 / 64)")
    lines = [line for line in captured.err.splitlines() if line.startswith("point ")]
    assert len(lines) == 6 and "left" in lines[0] and "point 6/6" in lines[-1]
    assert "epoch 1/1" not in captured.err  # one line per point, not per epoch
    html = (out / "report.html").read_text()
    assert payload["answer"] in html and "data:image/png;base64," in html
    assert "cnnkit learning-curve" in html and "--fractions 0.25,0.5,1" in html


def test_an_existing_curve_is_refused_and_resume_keeps_it(curve, capsys):
    data, out = curve
    before = (out / "learning_curve.csv").read_text()
    assert main(["learning-curve", str(data), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"cnnkit learning-curve --resume {out}" in err and "--overwrite" in err
    assert main(["learning-curve", "--resume", str(out)]) == 0
    captured = capsys.readouterr()
    assert "6 finished points kept" in captured.err and "point " not in captured.err
    assert "expected accuracy" in captured.out
    assert (out / "learning_curve.csv").read_text() == before
    assert main(["learning-curve", "--resume", str(out), "--epochs", "3"]) == 2
    assert "drop the other options" in capsys.readouterr().err


def test_report_renders_a_learning_curve_folder(curve, capsys):
    _, out = curve
    (out / "report.html").unlink()
    assert main(["report", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["report"] == str((out / "report.html").resolve())
    assert str((out / "learning_curve.png").resolve()) in payload["plots"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fractions", "0.1,0.5,1"], "class 'dark' has 8 training images"),
        (["--fractions", "0.5,1"], "three or more distinct numbers in (0, 1]"),
        (["--fractions", "a,b,c"], "--fractions must be numbers"),
        (["--folds", "3"], "k-fold is not supported"),
    ],
)
def test_bad_requests_are_one_line_errors(tmp_path, capsys, args, message):
    data = _folder(tmp_path / "data")
    assert main(["learning-curve", str(data), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "o").exists()
