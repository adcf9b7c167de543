"""`cnnkit train | evaluate | predict` end to end through the real entry point, on tiny folders."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main

CNNKIT = [sys.executable, "-m", "cnnkit"]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def make_folder(root: Path, per_class: int = 12, size: int = 28, seed: int = 0) -> Path:
    """Three classes a convnet separates easily: bright band on top, middle or bottom."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(["top", "middle", "bottom"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size), dtype=np.uint8)
            band = slice(c * size // 3, (c + 1) * size // 3)
            img[band, :] = rng.integers(180, 255, (size // 3, size) if c < 2 else img[band].shape)
            Image.fromarray(img).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = make_folder(root / "data", per_class=15)  # 45 images: 9 for validation, 3 per class
    run = root / "run"
    rc = main(
        [
            "train",
            str(data),
            "--out",
            str(run),
            "--epochs",
            "4",
            "--batch-size",
            "8",
            "--lr",
            "0.005",
            "--rotation-range",
            "5",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    return data, run


def test_run_folder_has_everything(trained):
    _, run = trained
    for name in (
        "config.json",
        "split.csv",
        "model.safetensors",
        "history.csv",
        "metrics.json",
        "predictions.csv",
        "summary.txt",
        "augment.png",
        "report.html",
        "checkpoint/last.pt",
    ):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["class_names"] == ["bottom", "middle", "top"]
    assert cfg["image_size"] == [28, 28] and cfg["in_chans"] == 1  # basic_convnet card defaults
    assert cfg["precision"]["reason"]
    rows = _rows(run / "split.csv")
    assert {r["subset"] for r in rows} == {"train", "validation"}
    val = [r for r in rows if r["subset"] == "validation"]
    assert (
        len(val) == 9
        and sorted(r["label"] for r in val) == ["bottom"] * 3 + ["middle"] * 3 + ["top"] * 3
    )
    hist = _rows(run / "history.csv")
    assert [int(h["epoch"]) for h in hist] == [1, 2, 3, 4]


def test_evaluate_json_matches_metrics_file(trained, capsys):
    _, run = trained
    assert main(["evaluate", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    assert out["accuracy"] == pytest.approx(saved["accuracy"])
    assert out["n"] == 9 and len(out["confusion_matrix"]) == 3
    assert out["accuracy"] >= 2 / 3  # learnable bands; chance is 1/3
    lo, hi = out["accuracy_ci"]
    assert 0 <= lo <= out["accuracy"] <= hi <= 1


def test_evaluate_with_tta(trained, capsys, monkeypatch):
    from cnnkit.runs import LoadedRun

    _, run = trained
    seen = []
    original = LoadedRun.predict_proba

    def spy(self, images, *a, **k):
        seen.append(np.asarray(images).copy())
        return original(self, images, *a, **k)

    monkeypatch.setattr(LoadedRun, "predict_proba", spy)
    assert main(["evaluate", str(run), "--tta", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tta"] == 2 and out["n"] == 9
    assert len(seen) == 3  # the images and two augmented copies
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])


def test_evaluate_other_folder(trained, tmp_path, capsys):
    _, run = trained
    other = make_folder(tmp_path / "other", per_class=4, seed=7)
    assert main(["evaluate", str(run), str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 12


def test_predict_png_jpeg_and_corrupt(trained, tmp_path, capsys):
    data, run = trained
    png = data / "top" / "00.png"
    jpg = tmp_path / "x.jpg"
    Image.open(png).convert("RGB").save(jpg)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    rc = main(
        [
            "predict",
            str(run),
            str(png),
            str(jpg),
            str(bad),
            str(tmp_path / "nope.png"),
            "--top-k",
            "2",
            "--json",
        ]
    )
    assert rc == 1  # a file failed
    res = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in res] == ["00.png", "x.jpg", "bad.png", "nope.png"]
    assert res[0]["label"] in ("top", "middle", "bottom") and len(res[0]["top_k"]) == 2
    assert res[0]["top_k"][0]["probability"] >= res[0]["top_k"][1]["probability"]
    assert "error" in res[2] and "bad.png" in res[2]["error"]
    assert "error" in res[3]
    assert main(["predict", str(run), str(bad)]) == 1  # as text: the file named once
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{bad}: ERROR ") and line.count("bad.png") == 1, line


def test_predict_folders_recursively_to_a_csv_r_can_read(trained, tmp_path, capsys):
    data, run = trained
    nested = tmp_path / "new" / "batch 2"
    nested.mkdir(parents=True)
    (nested / "a.png").write_bytes((data / "top" / "00.png").read_bytes())
    (tmp_path / "new" / "b.png").write_bytes((data / "bottom" / "00.png").read_bytes())
    (tmp_path / "new" / "broken.png").write_bytes(b"not an image")
    (tmp_path / "new" / "notes.txt").write_text("not an image file: not predicted")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "predictions.csv"
    args = [str(run), str(tmp_path / "new"), str(data / "middle"), str(tmp_path / "empty")]
    rc = main(["predict", *args, "--out", str(out), "--top-k", "2"])
    assert rc == 1  # broken.png and the empty folder failed; the rest is in the CSV
    text = capsys.readouterr().out
    assert text.startswith(f"wrote {out} (19 files, 2 failed)") and "broken.png" in text
    rows = _rows(out)
    assert list(rows[0]) == ["file", "label", "probability", "label_2", "probability_2", "error"]
    files = [r["file"] for r in rows]
    found = [str(tmp_path / "new" / n) for n in ("b.png", "broken.png", "batch 2/a.png")]
    assert files[:3] == found  # the folder's own files, then its sub-folders
    assert files[3:18] == [str(data / "middle" / f"{i:02d}.png") for i in range(15)]
    assert files[18] == str(tmp_path / "empty") and "no image files" in rows[18]["error"]
    good = [r for r in rows if not r["error"]]
    assert len(good) == 17 and all(r["label"] in ("top", "middle", "bottom") for r in good)
    assert all(float(r["probability"]) >= float(r["probability_2"]) for r in good)
    assert rows[1]["label"] == "" and "broken.png" in rows[1]["error"]
    assert main(["predict", *args[:2], "--json"]) == 1
    assert [r["file"] for r in json.loads(capsys.readouterr().out)] == files[:3]


def test_python_predict_matches_cli(trained):
    import cnnkit

    data, run = trained
    res = cnnkit.predict(run, [data / "middle" / "01.png"], top_k=1)
    assert res[0]["top_k"][0]["label"] == res[0]["label"]


def test_existing_run_refused_without_overwrite(trained, capsys):
    data, run = trained
    rc = main(["train", str(data), "--out", str(run), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "already holds a run" in err and "--overwrite" in err
    assert "overwrite=True" not in err and f"cnnkit train --resume {run}" in err
    assert len(err.strip().splitlines()) == 1


def test_overwrite_refuses_non_run_folder(tmp_path, trained, capsys):
    data, _ = trained
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    rc = main(["train", str(data), "--out", str(precious), "--overwrite"])
    assert rc == 2 and (precious / "thesis.txt").exists()
    assert "not a cnnkit run folder" in capsys.readouterr().err


def test_resume_with_changed_config_lists_keys(trained, capsys):
    _, run = trained
    rc = main(["train", "--resume", str(run), "--model", "lenet5", "--image-size", "32", "32"])
    err = capsys.readouterr().err
    assert rc == 2 and "changed config" in err and "model" in err and "image_size" in err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--epochs", "0"], "epochs must be a positive int"),
        (["--optimizer", "lbfgs"], "optimizer must be one of"),
        (["--model", "resnet1"], "resnet1"),
        (["--model", "alexnet", "--image-size", "16", "16"], "too small for alexnet"),
    ],
)
def test_bad_arguments_give_one_line(trained, tmp_path, capsys, args, needle):
    data, _ = trained
    rc = main(["train", str(data), "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err


def test_missing_data_is_clear(tmp_path, capsys):
    rc = main(["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])
    assert rc == 2 and "nowhere" in capsys.readouterr().err


def test_kfold(tmp_path, capsys):
    data = make_folder(tmp_path / "data", per_class=6)
    rc = main(
        [
            "train",
            str(data),
            "--out",
            str(tmp_path / "cv"),
            "--folds",
            "3",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--no-report",
            "--json",
        ]
    )
    assert rc == 0
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert cv["folds"] == 3 and len(cv["per_fold"]) == 3
    assert (tmp_path / "cv" / "fold-3" / "model.safetensors").is_file()
    pooled = _rows(tmp_path / "cv" / "predictions.csv")
    assert sorted(r["path"] for r in pooled) == sorted(str(p) for p in data.rglob("*.png"))


def _train_cmd(data, run, epochs=6):
    return [
        *CNNKIT,
        "train",
        str(data),
        "--out",
        str(run),
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--precision",
        "fp32",
        "--seed",
        "3",
        "--no-report",
        "--rotation-range",
        "10",
    ]


def _history(run):
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_second")}
        for r in csv.DictReader(open(run / "history.csv"))
    ]


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path):
    from safetensors.torch import load_file

    data = make_folder(tmp_path / "data", per_class=20)
    env = dict(os.environ, OMP_NUM_THREADS="1", CNNKIT_THREADS="1")
    full = tmp_path / "full"
    subprocess.run(_train_cmd(data, full), check=True, env=env, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(data, run), env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (run / "checkpoint" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(
        [*CNNKIT, "train", "--resume", str(run), "--no-report"],
        check=True,
        env=env,
        capture_output=True,
    )
    a, b = load_file(full / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert _history(full) == _history(run)


def test_ctrl_c_says_how_to_continue_and_resume_says_where(tmp_path, ctrl_c_reaches):
    """A real SIGINT to a real `cnnkit train`: one line naming the epoch and the command."""
    data = make_folder(tmp_path / "data", per_class=20)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(data, run, epochs=200), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        text=True, preexec_fn=ctrl_c_reaches,
    )  # fmt: skip
    deadline = time.time() + 120
    while not (run / "checkpoint" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert last.startswith("interrupted at epoch ")
    assert last.endswith(f" of 200; continue with: cnnkit train --resume {run}")
    epoch = int(last.split()[3])
    resume = subprocess.Popen(
        [*CNNKIT, "train", "--resume", str(run), "--no-report"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    first = resume.stderr.readline()
    while first and not first.startswith("resuming"):
        first = resume.stderr.readline()
    resume.kill()
    resume.communicate()
    assert first.strip() == f"resuming {run} at epoch {epoch} of 200"


def test_evaluate_on_the_training_folder_leaves_the_training_images_out(trained, capsys):
    data, run = trained
    rc = main(["evaluate", str(run), str(data), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["n"] == 9 and out["excluded_train"] == 36  # 45 images, 36 trained
    assert main(["evaluate", str(run), str(data)]) == 0
    assert "left out 36 images the run trained on" in capsys.readouterr().out
    assert main(["evaluate", str(run), str(data), "--include-train", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 45 and out["excluded_train"] == 0


def test_training_images_are_recognised_from_another_folder_and_name(tmp_path, monkeypatch):
    """A run trained on the relative folder `d` is evaluated from elsewhere by an absolute
    path: the same files, left out. A copy of the folder (same names) is not the same files."""
    import shutil

    from cnnkit.train.evaluate import evaluate_run

    make_folder(tmp_path / "d", per_class=10)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "d", "--out", "run", "--epochs", "1", "--no-report"]) == 0
    monkeypatch.chdir(tmp_path.parent)
    assert evaluate_run(tmp_path / "run", str(tmp_path / "d"))["excluded_train"] == 24
    shutil.copytree(tmp_path / "d", tmp_path / "copy")
    m = evaluate_run(tmp_path / "run", str(tmp_path / "copy"))
    assert m["excluded_train"] == 0 and m["n"] == 30


def test_missing_pretrained_weights_fail_before_any_image_is_decoded(tmp_path, capsys, monkeypatch):
    from cnnkit.data.cache import cache_info

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    data = make_folder(tmp_path / "data", per_class=3)
    argv = ["train", str(data), "--out", str(tmp_path / "run"), "--model", "resnet18"]
    assert main([*argv, "--pretrained", "imagenet", "--strategy", "features"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: pretrained weights 'imagenet' for resnet18 are not on this")
    assert "decoding" not in err
    assert not any(str(data) in e["root"] for e in cache_info()["entries"])  # nothing decoded
    assert not (tmp_path / "run").exists()


def test_lr_find_draws_the_range_test_and_names_the_rate(tmp_path, capsys):
    data = make_folder(tmp_path / "data", per_class=10)
    out = tmp_path / "lr.png"
    rc = main(["lr-find", str(data), "--out", str(out), "--model", "lenet5", "--json"])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    saved = json.loads(out.with_suffix(".json").read_text())
    assert out.read_bytes().startswith(b"\x89PNG") and payload["plot"] == str(out.resolve())
    assert payload["suggestion"] == saved["suggestion"] > 0 and saved["steps"] == len(saved["lrs"])


def test_a_default_run_reports_its_found_rate_and_stopping(tmp_path):
    data = make_folder(tmp_path / "data", per_class=8)
    run = tmp_path / "run"
    rc = main(["train", str(data), "--out", str(run), "--model", "lenet5",
               "--max-steps-per-epoch", "1"])  # fmt: skip
    assert rc == 0 and (run / "lr_find.json").is_file() and (run / "lr_find.png").is_file()
    html = (run / "report.html").read_text()
    assert "found by a range test" in html and "sized from 19 training images" in html
    assert "Early stopping ended training" in html or "All 60 epochs ran" in html


@pytest.mark.parametrize(("value", "ok"), [("auto", True), ("3e-3", True), ("0", False),
                                           ("fast", False)])  # fmt: skip
def test_lr_takes_a_number_or_auto(value, ok, capsys):
    from cnnkit.train.config import parse_lr

    if ok:
        assert parse_lr(value) in ("auto", 3e-3)
    else:
        with pytest.raises(ValueError, match="lr must be a positive number or 'auto'"):
            parse_lr(value)
