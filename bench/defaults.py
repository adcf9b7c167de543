"""Do the defaults learn a small folder as well as a tuned run?

For each task (a folder of class sub-folders, plus a held-out test folder of the same classes):

- ``default``: ``cnnkit train TRAIN --out RUN`` with no tuning flag (the learning rate from a
  range test, the length sized from the data, early stopping);
- ``grid``: the same command with ``--lr LR --epochs N`` over 4 rates x 3 lengths (no early
  stopping: ``--epochs`` is exact);
- ``keras``: Keras' usual recipe (Adam 1e-3, a fixed number of epochs, the book's convnet,
  ``validation_split=0.2``) where the peers' TensorFlow venv exists.

Every run is its own process; accuracy is measured on the test folder (``cnnkit evaluate RUN
TEST``), never on the images that chose the rate, the length or the stopping epoch.

Tasks (made here, seeded): ``shapes2`` circle vs square on clutter (64x64 RGB, 750 images),
``shapes4`` four other kinds (48x48 RGB, 600), ``position`` which quadrant holds a blob
(32x32 grey, 4 classes, 400), ``texture`` stripes/checks/dots (32x32 RGB, 3 classes, 450),
``digits`` (8x8 grey upscaled to 16x16 by the data, 10 classes, 1,000 of sklearn's digits),
``mnist1k`` (1,000 of mnist-5k), ``fashion2k`` (2,000 Fashion-MNIST training images).

Usage:
    .venv/bin/python bench/defaults.py [--tasks shapes2 position ...] [--lengths 10 30 60]
        [--lrs 3e-4 1e-3 3e-3 1e-2] [--keras-epochs 10] [--name defaults]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, machine, machine_line, peers_python, write_result  # noqa: E402

TEST_SHARE = 0.3


def _save(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        arr = img.transpose(1, 2, 0) if img.ndim == 3 else img
        Image.fromarray(arr.squeeze()).save(folder / f"{i:05d}.png")


def _split_save(work: Path, images, labels, names, seed: int = 0) -> tuple[Path, Path]:
    """Stratified 70/30 split into ``work/train`` and ``work/test``."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test[idx[: round(len(idx) * TEST_SHARE)]] = True
    _save(work / "train", images[~test], labels[~test], names)
    _save(work / "test", images[test], labels[test], names)
    return work / "train", work / "test"


def _shapes(n, size, classes, seed):
    from cnnkit.data.shapes import make_shapes

    a = make_shapes(n, (size, size), seed=seed, classes=classes)
    return a.images, a.labels, list(a.class_names)


def _position(n: int, seed: int = 0):
    """A bright blob in one of four quadrants of a noisy 32x32 grey image."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, (n, 32, 32), dtype=np.uint8)
    labels = np.arange(n) % 4
    for img, q in zip(images, labels, strict=True):
        y0, x0 = (q // 2) * 16 + rng.integers(1, 9), (q % 2) * 16 + rng.integers(1, 9)
        img[y0 : y0 + 6, x0 : x0 + 6] = rng.integers(150, 255)
    return images, labels, ["top-left", "top-right", "bottom-left", "bottom-right"]


def _texture(n: int, seed: int = 0):
    """Stripes, checks or dots at a random frequency, phase and colour, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32].astype(float)
    images = np.empty((n, 3, 32, 32), np.uint8)
    labels = np.arange(n) % 3
    for i, c in enumerate(labels):
        f, p, a = rng.uniform(0.5, 1.2), rng.uniform(0, 6.3), rng.uniform(0, np.pi)
        u = xx * np.cos(a) + yy * np.sin(a)
        v = -xx * np.sin(a) + yy * np.cos(a)
        if c == 0:
            pattern = np.sin(f * u + p)
        elif c == 1:
            pattern = np.sign(np.sin(f * u + p) * np.sin(f * v + p))
        else:
            pattern = (np.sin(f * u + p) * np.sin(f * v + p) > 0.6) * 2.0 - 1
        colour = rng.uniform(60, 200, 3)
        img = colour[:, None, None] + 50 * pattern[None] + rng.normal(0, 25, (3, 32, 32))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels, ["stripes", "checks", "dots"]


def _named(name: str, n: int, seed: int = 0):
    from cnnkit.data import load_dataset

    a = load_dataset(name, split="train")
    idx = np.random.default_rng(seed).permutation(len(a.labels))[:n]
    return a.images[idx], a.labels[idx], list(a.class_names)


TASKS = {
    "shapes2": lambda: _shapes(750, 64, ["circle", "square"], 1),
    "shapes4": lambda: _shapes(600, 48, ["cross", "ring", "star", "hexagon"], 2),
    "position": lambda: _position(400),
    "texture": lambda: _texture(450),
    "digits": lambda: _named("digits", 1000),
    "mnist1k": lambda: _named("mnist-5k", 1000),
    "fashion2k": lambda: _named("fashion-mnist", 2000),
}


def _cnnkit(*args: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "cnnkit", *args, "--json"], capture_output=True,
                         text=True)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"cnnkit {' '.join(args)} failed: {out.stderr[-1500:]}")
    return json.loads(out.stdout), time.perf_counter() - t0


def run_cnnkit(train: Path, test: Path, run: Path, flags: list[str]) -> dict:
    """Train with ``flags``, then test accuracy on the held-out folder."""
    trained, seconds = _cnnkit("train", str(train), "--out", str(run), "--overwrite",
                               "--no-report", *flags)  # fmt: skip
    tested, _ = _cnnkit("evaluate", str(run), str(test))
    cfg = json.loads((run / "config.json").read_text())
    return {
        "flags": " ".join(flags) or "(defaults)",
        "test_accuracy": tested["metrics"]["accuracy"]
        if "metrics" in tested
        else tested["accuracy"],
        "val_accuracy": trained["metrics"].get("accuracy"),
        "seconds": seconds,
        "lr": cfg.get("lr"),
        "epochs_run": cfg.get("training", {}).get("stopping", {}).get("epochs_run"),
    }


KERAS = Path(__file__).resolve().parent / "peers" / "keras_folder.py"


def run_keras(train: Path, test: Path, epochs: int) -> dict | None:
    py = peers_python()
    if py is None:
        return None
    t0 = time.perf_counter()
    out = subprocess.run([py, str(KERAS), str(train), str(test), str(epochs)],
                         capture_output=True, text=True,
                         env=dict(os.environ, KERAS_BACKEND="tensorflow"))  # fmt: skip
    if out.returncode != 0:
        return {"error": out.stderr[-800:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {**res, "seconds": time.perf_counter() - t0, "flags": f"Adam 1e-3, {epochs} epochs"}


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--lrs", nargs="+", default=["3e-4", "1e-3", "3e-3", "1e-2"])
    p.add_argument("--lengths", nargs="+", type=int, default=[10, 30, 60])
    p.add_argument("--keras-epochs", type=int, default=10)
    p.add_argument(
        "--repeats", type=int, default=1, help="times each cnnkit training runs (time: median)"
    )
    p.add_argument("--name", default="defaults")
    p.add_argument("--work", default=None, help="folder for the data and runs (default: temp)")
    p.add_argument(
        "--grid-from", nargs="+", default=None, metavar="JSON",
        help="reuse the grid and Keras rows of the same tasks from an earlier result (the grid "
        "fixes --lr and --epochs, so the defaults' rules do not touch it); only the default reruns",
    )  # fmt: skip
    return p.parse_args(argv)


def _earlier(paths: list[str] | None) -> dict[str, dict]:
    """The tasks of earlier result files, by name (a later file wins; empty without
    ``--grid-from``); each remembers the file its grid came from."""
    tasks: dict[str, dict] = {}
    for path in paths or []:
        for t in json.loads(Path(path).read_text())["tasks"]:
            tasks[t["task"]] = {**t, "grid_from": t.get("grid_from") or Path(path).name}
    return tasks


def timed(train: Path, test: Path, run: Path, flags: list[str], repeats: int) -> dict:
    """:func:`run_cnnkit` ``repeats`` times: the first run's row with the median of the runs'
    seconds (every run is seeded, so their accuracies agree; checked)."""
    rows = [run_cnnkit(train, test, run, flags) for _ in range(repeats)]
    if len({r["test_accuracy"] for r in rows}) > 1:
        print(f"warning: repeats of {rows[0]['flags']} disagree on accuracy", file=sys.stderr)
    seconds = [r["seconds"] for r in rows]
    return {**rows[0], "seconds": statistics.median(seconds), "seconds_all": seconds}


def bench_task(name: str, a, work: Path, earlier: dict | None = None) -> dict:
    images, labels, names = TASKS[name]()
    train, test = _split_save(work / name, images, labels, names)
    rows = {"default": timed(train, test, work / name / "run-default", [], a.repeats)}
    print(f"{name} default: {rows['default']}", file=sys.stderr, flush=True)
    if earlier is not None:
        return {**earlier, "default": rows["default"]}
    grid = []
    for lr in a.lrs:
        for n in a.lengths:
            flags = ["--lr", lr, "--epochs", str(n)]
            r = timed(train, test, work / name / f"run-{lr}-{n}", flags, a.repeats)
            grid.append(r)
            print(f"{name} {r['flags']}: {r['test_accuracy']:.4f}", file=sys.stderr, flush=True)
    rows["grid"] = grid
    rows["keras"] = run_keras(train, test, a.keras_epochs)
    n_train = sum(1 for _ in train.rglob("*.png"))
    return {"task": name, "n_train": n_train, "n_test": len(labels) - n_train,
            "classes": len(names), "shape": list(images.shape[1:]), **rows}  # fmt: skip


def _line(t: dict) -> str:
    best = max(t["grid"], key=lambda r: r["test_accuracy"])
    med = statistics.median(r["seconds"] for r in t["grid"])
    d = t["default"]
    gap = 100 * (best["test_accuracy"] - d["test_accuracy"])
    k = t.get("keras") or {}
    keras = f"{k['test_accuracy']:.3f}" if "test_accuracy" in k else "-"
    return (f"| {t['task']} | {t['n_train']} / {t['n_test']} | {t['classes']} | "
            f"{'x'.join(map(str, t['shape']))} | {d['test_accuracy']:.3f} (lr {d['lr']:.2g}, "
            f"{d['epochs_run']} ep) | {best['test_accuracy']:.3f} ({best['flags']}) | "
            f"{gap:+.1f} | {'yes' if gap <= 2 else 'NO'} | {d['seconds'] / med:.2f}x | "
            f"{keras} |")  # fmt: skip


def report(a, tasks: list[dict], m: dict) -> str:
    lines = [
        "# Defaults vs a tuned grid (bench/defaults.py)",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_line(m)}  ",
        "Goal: default within 2 points of the grid's best test accuracy on every task, in at "
        "most 1.5x the grid's median single-run time.",
        "",
        "| task | train / test | classes | C x H x W | default | grid best | best - default "
        "(points) | within 2 | time vs grid median | Keras (Adam 1e-3) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_line(t) for t in tasks),
        "",
        f"Grid: --lr {' / '.join(a.lrs)} x --epochs {' / '.join(map(str, a.lengths))}; seed 0; "
        "test images never seen in training, range test, or early stopping. Times: wall seconds "
        f"of the `cnnkit train` process, median of {a.repeats} run(s) each.",
        *(
            f"{t['task']}: grid and Keras rows from `{t['grid_from']}` (same task data and seed)."
            for t in tasks
            if t.get("grid_from")
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    a = _args(argv)
    m = machine()
    work = Path(a.work or tempfile.mkdtemp(prefix="cnnkit-defaults-"))
    tasks, earlier = [], _earlier(a.grid_from)
    for name in a.tasks:
        tasks.append(bench_task(name, a, work, earlier.get(name)))
        md = report(a, tasks, m)  # written after every task: a long run keeps what it has
        path = write_result(a.name, md, {"machine": m, "tasks": tasks})
    print(md)
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
