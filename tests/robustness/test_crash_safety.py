"""SIGKILL during training and during checkpoint writes: nothing partial, resume is exact.

* A writer process saving checkpoints in a loop is killed at random moments (mostly inside a
  write): the final file always loads and holds one whole checkpoint, the last one completed.
* A training run is killed at 5 points after its first checkpoint and resumed each time: the
  final weights, the optimiser state in ``checkpoint/last.pt`` and ``history.csv`` (timing
  columns aside) are bit-identical to an uninterrupted fp32 run with the same seed.
"""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rb_helpers import band_folder, child_env, record
from safetensors.torch import load_file

from cnnkit.train.checkpoint import load_checkpoint, save_checkpoint

HERE = Path(__file__).parent
TIMING = ("seconds", "images_per_second")


def _kill_writes(folder: Path, kills: int, seed: int) -> list[bool]:
    """Kill a checkpoint writer ``kills`` times; returns, per kill, whether it was mid-write."""
    path = folder / "last.pt"
    save_checkpoint(path, {"i": 0, "w": torch.zeros(250_000), "tail": 0})
    rng, last, mid = random.Random(seed), 0, []
    for _ in range(kills):
        cmd = [sys.executable, str(HERE / "harness_ckpt_writer.py"), str(path), str(last)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=child_env(), text=True)
        first = proc.stdout.readline()  # the child has completed one checkpoint
        assert first.strip(), "writer died before its first checkpoint"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        completed = [int(x) for x in (first + proc.stdout.read()).split()]
        assert proc.returncode == -signal.SIGKILL
        leftovers = list(folder.glob(".last.pt.*.tmp"))
        state = load_checkpoint(path)  # a partial final file would not load
        i = int(state["i"])
        # the last completed one, or the next if the kill fell between rename and print
        assert i in (completed[-1], completed[-1] + 1), (i, completed[-3:])
        assert int(state["tail"]) == i and bool((state["w"] == float(i)).all())
        assert {f.name for f in folder.iterdir()} - {f.name for f in leftovers} == {"last.pt"}
        mid.append(bool(leftovers))
        if leftovers:  # a hidden temp file; the next save_checkpoint removes it
            save_checkpoint(path, state)
            assert not any(f.exists() for f in leftovers)
        last = i
    return mid


def test_kill_during_checkpoint_writes_fast(tmp_path):
    mid = _kill_writes(tmp_path, kills=2, seed=0)
    assert len(mid) == 2


@pytest.mark.slow
def test_kill_during_checkpoint_writes_many(tmp_path):
    mid = _kill_writes(tmp_path, kills=24, seed=1)
    assert len(mid) == 24 and sum(mid) >= 5, f"only {sum(mid)} kills landed inside a write"
    record("crash", checkpoint_write_kills=len(mid), kills_inside_a_write=sum(mid),
           partial_final_files=0)  # fmt: skip


def _train_cmd(data: Path, run: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "cnnkit", "train", str(data), "--out", str(run), "--epochs",
            str(epochs), "--batch-size", "4", "--precision", "fp32", "--seed", "5", "--no-report",
            "--rotation-range", "10", "--lr", "0.003"]  # fmt: skip


def _checkpointed(run: Path) -> int:
    """Epochs whose checkpoint is on disk (history.csv is written just before the checkpoint)."""
    try:
        rows = len((run / "history.csv").read_text().splitlines()) - 1
        ckpt = (run / "checkpoint" / "last.pt").stat().st_mtime_ns
        hist = (run / "history.csv").stat().st_mtime_ns
    except OSError:
        return 0
    return rows if ckpt >= hist else rows - 1


def _kill_after(cmd: list[str], run: Path, epoch: int, delay: float) -> bool:
    """Start ``cmd``; once ``epoch`` epochs are checkpointed wait ``delay`` s and SIGKILL it."""
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while _checkpointed(run) < epoch and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


def _history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.slow
def test_sigkill_at_five_points_and_resume_is_bit_identical(tmp_path):
    data = band_folder(tmp_path / "data", per_class=16, seed=3)
    epochs = 8
    full = tmp_path / "full"
    subprocess.run(_train_cmd(data, full, epochs), env=child_env(), check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    run = tmp_path / "killed"
    resume = [sys.executable, "-m", "cnnkit", "train", "--resume", str(run), "--no-report"]
    kills = 0
    points = [(1, 0.0), (2, 0.05), (3, 0.15), (4, 0.0), (5, 0.3)]  # (epochs done, delay s)
    for i, (epoch, delay) in enumerate(points):
        kills += _kill_after(_train_cmd(data, run, epochs) if i == 0 else resume, run, epoch, delay)
        assert load_checkpoint(run / "checkpoint" / "last.pt")["epoch"] >= 1
    assert kills == len(points), "the run finished before it could be killed"
    subprocess.run(resume, env=child_env(), check=True, capture_output=True, timeout=600)
    a, b = load_file(full / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ca = load_checkpoint(full / "checkpoint" / "last.pt")
    cb = load_checkpoint(run / "checkpoint" / "last.pt")
    for key in ("model", "optimizer", "scheduler", "epoch", "step"):
        assert _same(ca[key], cb[key]), key
    strip = [
        [{k: v for k, v in r.items() if k not in TIMING} for r in c["history"]] for c in (ca, cb)
    ]
    assert strip[0] == strip[1]
    assert _history(full) == _history(run) and len(_history(run)) == epochs
    record("crash", training_kill_points=kills, resumed_bit_identical=1)
