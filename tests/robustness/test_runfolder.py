"""Damaged run folders are refused before tensors are built; pickled checkpoints never run code."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import pytest
import torch
from rb_helpers import child_env, record
from safetensors.torch import load_file, save_file

from cnnkit.errors import RunFolderError
from cnnkit.runs import load_run
from cnnkit.train.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the tiny run."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def _no_tensors(monkeypatch):
    """Make building tensors from the weights file fail the test: refusals must come first."""

    def forbidden(*a, **k):
        raise AssertionError("tensors were built before the weights were refused")

    monkeypatch.setattr("cnnkit.runs.loaded.load_weights", forbidden)


def _weights(run):
    return run / "model.safetensors"


@pytest.mark.parametrize("cut", [0, 7, 8, 20, 100, -200, -1])
def test_truncated_weights(run, monkeypatch, cut):
    data = _weights(run).read_bytes()
    _weights(run).write_bytes(data[:cut])
    _no_tensors(monkeypatch)
    with pytest.raises(RunFolderError, match="model.safetensors"):
        load_run(run)


@pytest.mark.parametrize("tail", [b"\x00", b"\x00" * 4096, b"PK\x03\x04 zip appended"])
def test_trailing_bytes(run, monkeypatch, tail):
    _weights(run).write_bytes(_weights(run).read_bytes() + tail)
    _no_tensors(monkeypatch)
    with pytest.raises(RunFolderError, match="model.safetensors"):
        load_run(run)


@pytest.mark.parametrize("length", [2**63 - 1, 2**40, 10**8, 2**32 + 5])
def test_absurd_header_length(run, monkeypatch, length):
    data = _weights(run).read_bytes()
    _weights(run).write_bytes(struct.pack("<Q", length) + data[8:])
    _no_tensors(monkeypatch)
    with pytest.raises(RunFolderError, match="model.safetensors"):
        load_run(run)


def _rewrite(run, change):
    state = load_file(str(_weights(run)))
    change(state)
    save_file(state, str(_weights(run)))


KEY_CASES = {
    "missing": (lambda s: s.pop("fc.bias"), "missing keys \\['fc.bias'\\]"),
    "missing-many": (lambda s: s.clear() or s.update(x=torch.zeros(1)), "missing keys \\["),
    "extra": (lambda s: s.update({"evil.weight": torch.zeros(2)}), "unexpected keys.*evil"),
    "mis-shaped": (lambda s: s.update({"fc.bias": torch.zeros(7)}), "mis-shaped fc.bias"),
    "mis-typed": (lambda s: s.update({"fc.bias": s["fc.bias"].long()}), "fc.bias"),
}


@pytest.mark.parametrize("case", sorted(KEY_CASES))
def test_bad_keys_listed_before_loading(run, monkeypatch, case):
    change, pattern = KEY_CASES[case]
    _rewrite(run, change)
    _no_tensors(monkeypatch)
    with pytest.raises(RunFolderError, match=pattern):
        load_run(run)


CONFIG_CASES = ["5", "null", "[]", "{", "\xff", '{"model": "basic_convnet"}']


@pytest.mark.parametrize("text", CONFIG_CASES)
def test_bad_config_json(run, text):
    (run / "config.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(RunFolderError, match="config.json"):
        load_run(run)


@pytest.mark.parametrize(
    "key, value",
    [
        ("image_size", [0, 28]),
        ("image_size", [28, 1e9]),
        ("image_size", "28x28"),
        ("in_chans", -1),
        ("class_names", 3),
        ("class_names", []),
        ("model", None),
        ("mean", []),
        ("std", [0.0]),
        ("std", [float("nan")]),
    ],  # fmt: skip
)
def test_bad_config_values(run, key, value):
    cfg = json.loads((run / "config.json").read_text())
    cfg[key] = value
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunFolderError, match=f"config.json.*{key}"):
        load_run(run)


class _Command:
    """Unpickling this runs ``os.system(cmd)``: what a malicious checkpoint carries."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _evil_checkpoint(path, sentinel):
    state = {"format": "cnnkit-checkpoint-1", "epoch": 1, "payload": _Command(f"touch {sentinel}")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)  # a plain pickle, as an attacker would write it


def test_pickled_command_is_refused_by_load_checkpoint(tmp_path):
    sentinel = tmp_path / "pwned"
    ckpt = tmp_path / "last.pt"
    _evil_checkpoint(ckpt, sentinel)
    with pytest.raises(RunFolderError, match="last.pt"):
        load_checkpoint(ckpt)
    assert not sentinel.exists()
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"epoch": 3, "w": torch.ones(2)})
    assert load_checkpoint(good)["epoch"] == 3


def test_pickled_command_is_refused_by_train_resume(run, tmp_path):
    sentinel = tmp_path / "pwned"
    _evil_checkpoint(run / "checkpoint" / "last.pt", sentinel)
    cmd = [sys.executable, "-m", "cnnkit", "train", "--resume", str(run), "--no-report"]
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "last.pt" in lines[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not sentinel.exists()
    record("runfolder", pickled_command_runs=int(sentinel.exists()))


RESUME_CASES = {
    "config-not-json": ("config.json", b"{oops"),
    "config-a-list": ("config.json", b"[1, 2]"),
    "config-binary": ("config.json", b"\xff\xfe\x00"),
    "split-binary": ("split.csv", b"a;b\n\x00\xff"),
    "split-wrong-header": ("split.csv", b"x,y\n1,2\n"),
    "checkpoint-truncated": ("checkpoint/last.pt", None),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_of_a_damaged_run_is_one_error_line(run, case, capsys):
    from cnnkit.cli.main import main

    name, data = RESUME_CASES[case]
    target = run / name
    target.write_bytes(data if data is not None else target.read_bytes()[:1000])
    rc = main(["train", "--resume", str(run), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and target.name in err[-1], err[-3:]
