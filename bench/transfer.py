"""Transfer learning without internet: pretrain, save like real weights, transfer with few labels.

Tasks (``--task``): ``fashion-split`` (below), ``fashion-to-mnist`` (clothes -> digits) and
``shapes-split``: pretrain on generated shapes of five kinds (circle, square, triangle, cross,
ellipse; RGB) and transfer to four other kinds (ring, diamond, star, hexagon) drawn the same
way: the same domain, new classes, as an ImageNet backbone reused on a new image task.

1. Pretrain a resnet18 (1x64x64 by default) on five Fashion-MNIST classes (T-shirt/top,
   Trouser, Pullover, Sandal, Bag): all 30,000 training images, with augmentation, for a
   few epochs (broad and long, as an ImageNet backbone is trained; a weak source model
   makes transfer look useless). The weights are cached in ``--work`` under a key of the
   pretraining settings, so reruns reuse them.
2. Save it as a torchvision-style state dict (``.pth``) and as ``.safetensors``; both are
   loaded back through ``create_model(pretrained=FILE)``, the code path of real weights.
3. Transfer to the other five (Dress, Coat, Shirt, Sneaker, Ankle boot): related to the
   source classes (garments, footwear) but never seen in pretraining; taken from the
   Fashion-MNIST *test* split and exported as a PNG folder, with ``--per-class``
   labelled images per class (drawn per seed) and ``--val-per-class`` held out.
4. For each seed: scratch (resnet18, random init, augmentation) vs ``features`` vs
   ``frozen`` + augmentation vs ``finetune``, each a real run folder through
   ``train_run``; mean accuracy with a 95% t interval over seeds
   and the paired difference to scratch.

    .venv/bin/python bench/transfer.py            # 5 seeds, results in bench/results/transfer.md
    .venv/bin/python bench/transfer.py --quick    # 1 seed, few epochs (a smoke run)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, write_result  # noqa: E402

SOURCE, TARGET = (0, 1, 2, 5, 8), (3, 4, 6, 7, 9)
SHAPES_SOURCE = ("circle", "square", "triangle", "cross", "ellipse")
SHAPES_TARGET = ("ring", "diamond", "star", "hexagon")


@dataclass(frozen=True)
class Task:
    """A source task to pretrain on and a related target task with other classes.

    ``source(per_class, val_per_class, size)`` -> (train, val) arrays labelled 0..K-1;
    ``target(per_class, size)`` -> a pool with ``per_class`` images of each target class.
    """

    source_words: str
    target_words: str
    channels: int
    flip: bool  # a horizontal flip keeps the label
    source_classes: tuple
    source: Callable[..., tuple[Any, Any]]
    target: Callable[..., Any]


def _subset(arrays, classes, per_class: int, rng: np.random.Generator, size: int, channels: int):
    """``per_class`` images of each of ``classes``, relabelled 0..K-1, conformed to ``size``."""
    from cnnkit.data import ImageArrays, conform_images

    rows = _class_rows(arrays, classes, per_class, rng)
    remap = np.full(int(arrays.labels.max()) + 1, -1, dtype=np.int64)
    remap[list(classes)] = np.arange(len(classes))
    names = [arrays.class_names[c] for c in classes]
    mode = {1: "grayscale", 3: "rgb"}[channels]
    images = conform_images(arrays.images[rows], (size, size), mode)
    return ImageArrays(images, remap[arrays.labels[rows]], names, [], [])


def _fashion_source(classes):
    def source(per_class: int, val_per_class: int, size: int):
        from cnnkit.data import load_dataset

        rng = np.random.default_rng(0)
        train, test = load_dataset("fashion-mnist"), load_dataset("fashion-mnist", split="test")
        return (_subset(train, classes, per_class, rng, size, 1),
                _subset(test, classes, val_per_class, rng, size, 1))  # fmt: skip

    return source


def _named_target(spec: str, classes):
    def target(per_class: int, size: int):
        from cnnkit.data import load_dataset

        name, _, split = spec.partition(":")
        return _subset(load_dataset(name, split=split), classes, per_class,
                       np.random.default_rng(1), size, 1)  # fmt: skip

    return target


def _shapes_source(per_class: int, val_per_class: int, size: int):
    from cnnkit.data.shapes import make_shapes

    k = len(SHAPES_SOURCE)
    make = lambda n, seed: make_shapes(n, (size, size), seed, classes=list(SHAPES_SOURCE))  # noqa: E731
    return make(per_class * k, 100), make(val_per_class * k, 101)


def _shapes_target(per_class: int, size: int):
    from cnnkit.data.shapes import make_shapes

    n = per_class * len(SHAPES_TARGET)
    return make_shapes(n, (size, size), 200, split="target", classes=list(SHAPES_TARGET))


TASKS = {
    "fashion-split": Task(
        "Fashion-MNIST classes [0, 1, 2, 5, 8] (train split)",
        "`fashion-mnist:test` classes [3, 4, 6, 7, 9]",
        1, True, SOURCE, _fashion_source(SOURCE), _named_target("fashion-mnist:test", TARGET),
    ),
    "fashion-to-mnist": Task(
        "Fashion-MNIST, all 10 classes (train split)", "`mnist-5k:test` digits 0-9",
        1, False, tuple(range(10)), _fashion_source(tuple(range(10))),
        _named_target("mnist-5k:test", tuple(range(10))),
    ),
    "shapes-split": Task(
        f"generated `shapes` of kinds {list(SHAPES_SOURCE)} (cnnkit.data.shapes, seed 100)",
        f"generated `shapes` of the other kinds {list(SHAPES_TARGET)} (seed 200), "
        "same rendering, never seen in pretraining",
        3, True, SHAPES_SOURCE, _shapes_source, _shapes_target,
    ),
}  # fmt: skip
AUGMENT = {"rotation_range": 10.0, "width_shift_range": 0.1, "height_shift_range": 0.1,
           "zoom_range": 0.1}  # fmt: skip


def augment(flip: bool) -> dict:
    """The benchmark's augmentation; a horizontal flip only where it keeps the label (no digits)."""
    return {**AUGMENT, "horizontal_flip": flip}


METHODS = ("scratch", "features", "frozen", "finetune")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="fashion-split")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--val-per-class", type=int, default=4, help="in-run validation (per epoch)")
    p.add_argument("--test-per-class", type=int, default=200, help="held-out test set")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--pretrain-per-class", type=int, default=6000, help="all of them: 6000")
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--pretrain-precision", default="auto", help="bf16 where the CPU has it")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--features-epochs", type=int, default=60, help="head epochs on cached features")
    p.add_argument("--unfreeze", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/cnnkit-bench-transfer"),
        help="run folders and the cached source weights (reused when they match)",
    )
    p.add_argument("--name", default="transfer", help="results file bench/results/NAME.md")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    p.add_argument("--quick", action="store_true", help="1 seed, 4 epochs, small pretraining")
    a = p.parse_args(argv)
    a.methods = tuple(m for m in METHODS if m in a.methods.split(","))
    if a.quick:
        a.seeds, a.epochs, a.pretrain_per_class, a.pretrain_epochs = 1, 4, 100, 1
        a.features_epochs, a.size = 8, 32
        a.test_per_class = 20
        a.name = a.name if a.name != "transfer" else "transfer-quick"
    return a


def _class_rows(arrays, classes, per_class: int, rng: np.random.Generator) -> np.ndarray:
    rows = [rng.permutation(np.flatnonzero(arrays.labels == c))[:per_class] for c in classes]
    return np.concatenate(rows)


def _pretrain_settings(a: argparse.Namespace) -> dict:
    """Everything the source model depends on; the cache is reused only when it matches."""
    return {"task": a.task, "source": list(TASKS[a.task].source_classes), "size": a.size,
            "per_class": a.pretrain_per_class, "epochs": a.pretrain_epochs, "batch_size": 128,
            "precision": a.pretrain_precision, "augment": augment(True), "optimizer": "adam",
            "schedule": "onecycle", "seed": 0, "val_per_class": 200}  # fmt: skip


def pretrain(a: argparse.Namespace) -> tuple[Path, Path, dict]:
    """Train the source model; save it as .pth and .safetensors. Returns paths + stats.

    The files and their stats are cached in ``--work`` under a name derived from the
    settings: a rerun with the same settings loads them instead of training again.
    """
    settings = _pretrain_settings(a)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    stem = a.work / f"resnet18-source-{a.size}px-{key}"
    pth, st, meta = (stem.with_suffix(s) for s in (".pth", ".safetensors", ".json"))
    if pth.is_file() and st.is_file() and meta.is_file():
        stats = json.loads(meta.read_text())
        if stats.get("settings") == settings:
            return pth, st, {**stats, "cached": True}
    model, stats = _train_source(a, settings)
    a.work.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, pth)  # torchvision-style: a plain state dict, torchvision key names
    save_file(state, str(st))
    stats["settings"] = settings
    meta.write_text(json.dumps(stats, indent=1))
    return pth, st, {**stats, "cached": False}


def _train_source(a: argparse.Namespace, settings: dict) -> tuple[torch.nn.Module, dict]:
    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, fit
    from cnnkit.train.data_source import build_augment

    task = TASKS[a.task]
    tr, va = task.source(settings["per_class"], settings["val_per_class"], a.size)
    torch.manual_seed(settings["seed"])
    model = create_model("resnet18", num_classes=len(settings["source"]),
                         input_size=(task.channels, a.size, a.size))  # fmt: skip
    cfg = TrainConfig(
        data=a.task, model="resnet18", epochs=settings["epochs"],
        batch_size=settings["batch_size"], precision=settings["precision"],
        augment=settings["augment"], seed=settings["seed"],
    )  # fmt: skip
    t0 = time.perf_counter()
    res = fit(model, tr, va, cfg, augment=build_augment(cfg), device=a.device)
    return model, {
        "source_val_accuracy": res.history[-1]["val_accuracy"],
        "source_val_images": len(va.labels),
        "pretrain_seconds": time.perf_counter() - t0,
        "pretrain_images": len(tr.labels),
    }


def check_same_weights(pth: Path, st: Path, size: int, channels: int) -> bool:
    """Both files load through create_model(pretrained=...) to the same base."""
    from cnnkit.models import create_model

    shape = (channels, size, size)
    a = create_model("resnet18", num_classes=5, input_size=shape, pretrained=str(pth))
    b = create_model("resnet18", num_classes=5, input_size=shape, pretrained=str(st))
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith("fc."))


def export_target(a: argparse.Namespace) -> tuple[list[Path], Path]:
    """PNG folders from the target pool: one labelled set per seed and one shared test set.

    Each seed's folder holds ``per_class + val_per_class`` images per class (its own draw);
    the test folder holds ``test_per_class`` other images per class.
    """
    from PIL import Image

    n = a.per_class + a.val_per_class
    pool = TASKS[a.task].target(a.test_per_class + 10 * n, a.size)
    rng = np.random.default_rng(1)
    classes = range(len(pool.class_names))
    pools = {c: rng.permutation(np.flatnonzero(pool.labels == c)) for c in classes}

    def write(root: Path, rows_by_class: dict) -> Path:
        shutil.rmtree(root, ignore_errors=True)  # no images left from other settings
        for c, rows in rows_by_class.items():
            d = root / f"{c}-{pool.class_names[c]}".replace("/", "-").replace(" ", "_")
            d.mkdir(parents=True, exist_ok=True)
            for r in rows:
                img = pool.images[r]  # (C, H, W) uint8
                Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(
                    d / f"{r:05d}.png"
                )
        return root

    test_dir = write(a.work / "target-test", {c: p[: a.test_per_class] for c, p in pools.items()})
    seeds = []
    for seed in range(a.seeds):
        pick = np.random.default_rng(100 + seed)
        rows = {c: pick.choice(p[a.test_per_class :], n, replace=False) for c, p in pools.items()}
        seeds.append(write(a.work / f"target-seed{seed}", rows))
    return seeds, test_dir


def load_test(a: argparse.Namespace, test_dir: Path):
    """The test folder decoded exactly as a run decodes its data (cnnkit.data.load_folder)."""
    from cnnkit.data import load_folder

    return load_folder(test_dir, image_size=(a.size, a.size), color_mode=_color_mode(a),
                       progress=False)  # fmt: skip


def _color_mode(a: argparse.Namespace) -> str:
    return "grayscale" if TASKS[a.task].channels == 1 else "rgb"


def run_one(a, method: str, seed: int, data: Path, weights: Path, test) -> dict:
    from cnnkit.runs import load_run
    from cnnkit.train import TrainConfig, train_run
    from cnnkit.train import train_run as train_transfer_run

    n = a.per_class + a.val_per_class
    cfg = TrainConfig(
        data=str(data), model="resnet18", image_size=(a.size, a.size), color_mode=_color_mode(a),
        epochs=a.features_epochs if method == "features" else a.epochs, batch_size=32,
        validation_split=a.val_per_class / n, seed=seed,
        precision="fp32", checkpoint_every=a.epochs,
        augment={} if method == "features" else augment(TASKS[a.task].flip),
        pretrained=None if method == "scratch" else str(weights),
        strategy=None if method == "scratch" else method, unfreeze=a.unfreeze,
    )  # fmt: skip
    out = a.work / "runs" / f"{method}-{seed}"
    t0 = time.perf_counter()
    if method == "scratch":
        res = train_run(cfg, out, overwrite=True, progress=False, device=a.device)
    else:
        res = train_transfer_run(cfg, out, overwrite=True, progress=False, device=a.device)
    seconds = time.perf_counter() - t0
    info = json.loads((out / "config.json").read_text()).get("transfer", {})
    run = load_run(out)  # the saved run folder, as predict/serve would read it
    if list(run.class_names) != list(test.class_names):
        raise RuntimeError(f"class order differs: {run.class_names} vs {test.class_names}")
    probs = run.predict_proba(test.images)
    acc = float((probs.argmax(1).numpy() == test.labels).mean())
    return {"method": method, "seed": seed, "accuracy": acc, "n_test": len(test.labels),
            "val_accuracy": res.metrics.get("accuracy"), "seconds": seconds,
            "frozen_changed": len(info.get("frozen_changed", [])),
            "cache_hit": info.get("feature_cache", {}).get("hit")}  # fmt: skip


def t_interval(x: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t interval (the mean alone for one value)."""
    from scipy import stats

    v = np.asarray(x, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    h = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - h, m + h


def _pretrain_line(a, pre: dict, same: bool) -> str:
    st = pre["settings"]
    when = "loaded from the cache in --work, trained earlier in" if pre["cached"] else "trained in"
    return (
        f"Source: resnet18 ({TASKS[a.task].channels}x{a.size}x{a.size}, random init) pretrained "
        f"on {TASKS[a.task].source_words}, {pre['pretrain_images']} images "
        f"({st['per_class']} per class at most), {st['epochs']} epochs, "
        f"batch {st['batch_size']}, Adam 1e-3 one-cycle, precision `{st['precision']}`, "
        f"augmentation {st['augment']}; {when} {pre['pretrain_seconds']:.0f} s; source "
        f"validation accuracy {pre['source_val_accuracy']:.3f} ({pre['source_val_images']} "
        "held-out images of the source classes). Saved as `.pth` (torchvision-style state "
        "dict) and `.safetensors`; both load identically through "
        f"`create_model(pretrained=FILE)`: {same}."
    )


def _target_line(a) -> str:
    return (
        f"Target: {TASKS[a.task].target_words}, "
        f"**{a.per_class} labelled images per class** (drawn per seed) plus "
        f"{a.val_per_class} per class for the in-run validation; accuracy on a fixed held-out "
        f"test set of {a.test_per_class} per class, read back with `load_run` (the run folder "
        f"as predict uses it). All four methods use cnnkit's defaults except epochs: "
        f"{a.epochs} epochs ({a.features_epochs} for the head on cached features), batch 32, "
        "Adam one-cycle (scratch 1e-3; a new head 1e-2, cnnkit's transfer default; finetune's "
        "second phase base 1e-4, head 1e-3), fp32; augmentation "
        f"{augment(TASKS[a.task].flip)} for scratch, frozen and finetune (none for features); "
        f"finetune = {max(1, a.epochs // 2)} head epochs + {a.epochs - max(1, a.epochs // 2)} "
        f"epochs with the top {a.unfreeze} block groups unfrozen, BatchNorm frozen."
    )


def _summaries(rows: list[dict]) -> dict[str, dict]:
    """Per method: accuracies, mean and CI, and the paired difference to scratch."""
    scratch = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "scratch"}
    out = {}
    for meth in METHODS:
        rs = [r for r in rows if r["method"] == meth]
        if not rs:
            continue
        acc = [r["accuracy"] for r in rs]
        diff = [r["accuracy"] - scratch[r["seed"]] for r in rs if r["seed"] in scratch]
        out[meth] = {
            "rows": rs,
            "acc": t_interval(acc),
            "diff": t_interval(diff) if diff and meth != "scratch" else None,
        }
    return out


def goal_verdict(summ: dict[str, dict], points: float = 10.0) -> str:
    """Goal: features and finetune >= ``points`` accuracy points above scratch (paired)."""
    parts, met = [], []
    for meth in ("features", "finetune"):
        d = summ.get(meth, {}).get("diff")
        if d is None or len(summ[meth]["rows"]) < 2:
            return "Goal not evaluated (needs scratch, features and finetune over 2+ seeds)."
        m, lo, hi = (100 * x for x in d)
        word = "whole CI above" if lo >= points else ("mean above" if m >= points else "below")
        met.append(word)
        parts.append(f"{meth} {m:+.1f} pts [{lo:+.1f}, {hi:+.1f}] ({word} +{points:g})")
    if all(w == "whole CI above" for w in met):
        head = "**Goal met**"
    elif all(w != "below" for w in met):
        head = "**Goal met on the mean, not by the whole 95% CI**"
    else:
        head = "**Goal not met**"
    return (
        f"{head} (features and finetune >= +{points:g} pts vs scratch): " + "; ".join(parts) + "."
    )


def report(a, rows: list[dict], pre: dict, same: bool, command: str, m: dict) -> str:
    summ = _summaries(rows)
    lines = [
        "# Transfer learning with few labels (no internet)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line(m)}; device {a.device}; {m['date']}.",
        "",
        f"Task `{a.task}`. " + _pretrain_line(a, pre, same),
        "",
        _target_line(a),
        "",
        "| method | test accuracy (mean, 95% CI over seeds) | vs scratch (paired, 95% CI) | "
        "per seed | seconds/run | frozen tensors changed |",
        "|---|---|---|---|---|---|",
    ]
    for meth, sm in summ.items():
        rs = sm["rows"]
        mean, lo, hi = sm["acc"]
        vs = (
            ""
            if sm["diff"] is None
            else "{:+.1f} pts [{:+.1f}, {:+.1f}]".format(*(100 * x for x in sm["diff"]))
        )
        changed = "" if meth == "scratch" else str(sum(r["frozen_changed"] for r in rs))
        acc = ", ".join(f"{r['accuracy']:.3f}" for r in rs)
        secs = np.median([r["seconds"] for r in rs])
        lines.append(
            f"| {meth} | {mean:.3f} [{lo:.3f}, {hi:.3f}] | {vs} | {acc} | {secs:.1f} | {changed} |"
        )
    lines += ["", goal_verdict(summ)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    torch.set_num_threads(a.threads)
    command = "python bench/transfer.py " + " ".join(map(shlex.quote, argv or sys.argv[1:]))
    m = machine()
    t0 = time.perf_counter()
    pth, st, pre = pretrain(a)
    print(f"pretrained: {pre}", flush=True)
    same = check_same_weights(pth, st, a.size, TASKS[a.task].channels)
    seed_dirs, test_dir = export_target(a)
    test = load_test(a, test_dir)
    rows = []
    for seed in range(a.seeds):
        for meth in a.methods:
            weights = st if meth == "finetune" else pth  # both formats go through the same path
            rows.append(run_one(a, meth, seed, seed_dirs[seed], weights, test))
            print(json.dumps(rows[-1]), flush=True)
    wall = time.perf_counter() - t0
    md = report(a, rows, pre, same, command, m) + f"\nWhole benchmark: {wall / 60:.1f} min.\n"
    data = {"machine": m, "args": vars(a), "pretrain": pre, "rows": rows, "wall_seconds": wall}
    path = write_result(a.name, md, data)
    print(md)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
