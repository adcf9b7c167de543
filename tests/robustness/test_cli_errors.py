"""Hostile and broken inputs to the CLI: one line naming the file, never a traceback, never
torch's advice to unpickle with ``weights_only=False``; per-file problems stay per-file."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rb_helpers import band_folder, record, run_cnnkit


class _Marker:
    """Unpickling this writes a file: proof that the pickle's code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Done:
    """What a CLI call left: ``returncode``, ``stdout`` and ``stderr``."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(capsys, *args: str) -> _Done:
    """``cnnkit ARGS`` through the real entry point, in this process (no interpreter start)."""
    from cnnkit.cli.main import main

    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return _Done(rc, out, err)


def _one_error_line(proc, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()  # progress bars may come first
    line = lines[-1]
    assert line.startswith("error: "), proc.stderr[-3000:]
    assert sum(x.startswith("error") for x in lines) == 1, proc.stderr[-3000:]
    for w in words:
        assert w in line, line
    assert "weights_only" not in proc.stderr and "Traceback" not in proc.stderr
    return line


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return band_folder(tmp_path_factory.mktemp("bands") / "data", per_class=4)


def test_a_pickled_pretrained_file_is_one_line_and_never_runs(tmp_path, data, capsys):
    import torch

    marker = tmp_path / "pickle-ran"
    evil = tmp_path / "weights.pth"
    torch.save({"conv.weight": _Marker(marker)}, evil)
    train = _cli(capsys, "train", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--model", "basic_convnet", "--pretrained", str(evil))  # fmt: skip
    _one_error_line(train, str(evil), "not only tensors")
    image = next(data.rglob("*.png"))
    acts = _cli(capsys, "activations", "basic_convnet", str(image), "--out",
                str(tmp_path / "a.png"), "--pretrained", str(evil))  # fmt: skip
    _one_error_line(acts, str(evil))
    assert not marker.exists()


def test_a_pickled_checkpoint_is_refused_without_torchs_advice(tmp_path):
    import torch

    from cnnkit.errors import RunFolderError
    from cnnkit.train.checkpoint import load_checkpoint

    path = tmp_path / "last.pt"
    torch.save({"model": _Marker(tmp_path / "ran")}, path)
    with pytest.raises(RunFolderError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "weights_only" not in message and "\n" not in message
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    "text",
    ["epochs: !!python/object/apply:os.system ['touch ran']\n", "epochs: !custom 3\n",
     "model: !!binary aGVsbG8=\nepochs: [1, 2\n", "a: b: c\n"],
)  # fmt: skip
def test_yaml_errors_are_one_line_naming_the_file(tmp_path, data, text, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    proc = _cli(capsys, "train", str(data), "--out", str(tmp_path / "run"), "--config", str(config))
    _one_error_line(proc, str(config), "line ")
    assert not (tmp_path / "ran").exists()


def _cifar(folder: Path, payload: bytes) -> Path:
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (batches / name).write_bytes(payload)
    return batches


BIG_BYTEARRAY = b"\x80\x02cbuiltins\nbytearray\n\x8a\x06\x00\xa0\x72\x4e\x18\x09\x85R."  # 1e13
HUGE_INT = b"I" + b"9" * 5000 + b"\n."
HUGE_ARRAY = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
              b"\x8a\x06\x00\xa0\x72\x4e\x18\x09\x85C\x01b\x87R.")  # fmt: skip


@pytest.mark.parametrize("kind", ["code", "bytearray(10**13)", "5000 digits", "huge array"])
def test_a_malicious_cifar_pickle_is_one_line(tmp_path, kind, capsys):
    marker = tmp_path / "pickle-ran"
    payload = {
        "code": pickle.dumps({b"data": _Marker(marker), b"labels": [0]}),
        "bytearray(10**13)": BIG_BYTEARRAY,
        "5000 digits": HUGE_INT,
        "huge array": HUGE_ARRAY,
    }[kind]
    batches = _cifar(tmp_path / "c10", payload)
    proc = _cli(capsys, "datasets", "export", "cifar10", str(tmp_path / "out"), "--path",
                str(batches), "--split", "test")  # fmt: skip
    line = _one_error_line(proc, str(batches / "test_batch"), "not a CIFAR-10 batch file")
    assert "MemoryError" not in line and not marker.exists()
    record("cli_errors", malicious_cifar_pickles=4)


def test_an_unreadable_file_to_predict_is_a_per_file_error(tiny_run, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(good)
    locked = tmp_path / "locked.png"
    shutil.copyfile(good, locked)
    locked.chmod(0o000)
    proc = run_cnnkit("predict", str(tiny_run), str(locked), str(good), "--json",
                      unprivileged=True)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    bad, fine = json.loads(proc.stdout)
    assert bad == {"file": str(locked), "error": f"{locked}: unreadable (cannot read the file "
                                                 "(Permission denied))"}  # fmt: skip
    assert fine["file"] == str(good) and "label" in fine


def test_predict_with_a_non_utf8_file_name(tiny_run, tmp_path):
    raw = os.fsencode(tmp_path) + b"/photo-\xe9\xff.png"
    Image.fromarray(np.full((28, 28), 90, np.uint8)).save(os.fsdecode(raw))
    strict = {"PYTHONIOENCODING": "utf-8"}  # a UTF-8 terminal: surrogates cannot be printed
    proc = run_cnnkit("predict", str(tiny_run), os.fsdecode(raw), "--json", **strict)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (entry,) = json.loads(proc.stdout.encode("utf-8", "surrogateescape").decode("utf-8"))
    assert os.fsencode(entry["file"]) == raw and "label" in entry
    text = run_cnnkit("predict", str(tiny_run), os.fsdecode(raw), **strict)
    assert text.returncode == 0 and "photo-\\xe9\\xff.png" in text.stdout, text.stderr[-2000:]


def test_explain_with_a_non_utf8_file_name(tiny_run, tmp_path, capsys):
    raw = os.fsencode(tmp_path) + b"/photo-\xe9\xff.png"
    Image.fromarray(np.full((28, 28), 90, np.uint8)).save(os.fsdecode(raw))
    out = tmp_path / "cam.png"
    proc = _cli(capsys, "explain", str(tiny_run), os.fsdecode(raw), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.fsencode(json.loads(proc.stdout)["file"]) == raw and out.stat().st_size > 0


def test_a_split_csv_that_is_not_utf8_never_fails_without_its_name(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with open(run / "split.csv", "ab") as f:
        f.write(b"\xff\xfe\x00garbage,\xe9,validation\n")
    proc = _cli(capsys, "export", str(run))
    if proc.returncode != 0:  # refusing is fine when it names the file, in one line
        _one_error_line(proc, str(run / "split.csv"))
