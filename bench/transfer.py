"""Transfer learning without internet: pretrain, save like real weights, transfer with few labels.

1. Pretrain a resnet18 (1x32x32) on five Fashion-MNIST classes (T-shirt/top, Trouser,
   Pullover, Sandal, Bag; ``--pretrain-per-class`` training images each).
2. Save it as a torchvision-style state dict (``.pth``) and as ``.safetensors``; both are
   loaded back through ``create_model(pretrained=FILE)``, the code path of real weights.
3. Transfer to the other five (Dress, Coat, Shirt, Sneaker, Ankle boot): related to the
   source classes (garments, footwear) but never seen in pretraining; taken from the
   Fashion-MNIST *test* split and exported as a PNG folder, with ``--per-class``
   labelled images per class (drawn per seed) and ``--val-per-class`` held out.
4. For each seed: scratch (resnet18, random init, augmentation) vs ``features`` vs
   ``frozen`` + augmentation vs ``finetune``, each a real run folder through
   ``train_run`` / ``train_transfer_run``; mean accuracy with a 95% t interval over seeds
   and the paired difference to scratch.

    .venv/bin/python bench/transfer.py            # 5 seeds, results in bench/results/transfer.md
    .venv/bin/python bench/transfer.py --quick    # 1 seed, few epochs (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, write_result  # noqa: E402

SOURCE, TARGET = (0, 1, 2, 5, 8), (3, 4, 6, 7, 9)
TASKS = {  # name: (source classes of Fashion-MNIST, target dataset:split, target classes)
    "fashion-split": (SOURCE, "fashion-mnist:test", TARGET),
    "fashion-to-mnist": (tuple(range(10)), "mnist-5k:test", tuple(range(10))),
}
AUGMENT = {"rotation_range": 10.0, "width_shift_range": 0.1, "height_shift_range": 0.1,
           "zoom_range": 0.1, "horizontal_flip": True}  # fmt: skip
METHODS = ("scratch", "features", "frozen", "finetune")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="fashion-split")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--val-per-class", type=int, default=4, help="in-run validation (per epoch)")
    p.add_argument("--test-per-class", type=int, default=100, help="held-out test set")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--pretrain-per-class", type=int, default=1000)
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--features-epochs", type=int, default=60, help="head epochs on cached features")
    p.add_argument("--unfreeze", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--work", type=Path, default=Path("/tmp/cnnkit-bench-transfer"))
    p.add_argument("--name", default="transfer", help="results file bench/results/NAME.md")
    p.add_argument("--quick", action="store_true", help="1 seed, 4 epochs, small pretraining")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs, a.pretrain_per_class, a.pretrain_epochs = 1, 4, 100, 1
        a.features_epochs = 8
        a.test_per_class = 20
        a.name = a.name if a.name != "transfer" else "transfer-quick"
    return a


def _class_rows(arrays, classes, per_class: int, rng: np.random.Generator) -> np.ndarray:
    rows = [rng.permutation(np.flatnonzero(arrays.labels == c))[:per_class] for c in classes]
    return np.concatenate(rows)


def pretrain(a: argparse.Namespace) -> tuple[Path, Path, dict]:
    """Train the source model; save it as .pth and .safetensors. Returns paths + stats."""
    from safetensors.torch import save_file

    from cnnkit.data import load_dataset
    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, fit
    from cnnkit.train.data_source import conform_images

    train, test = load_dataset("fashion-mnist"), load_dataset("fashion-mnist", split="test")
    rng = np.random.default_rng(0)
    source = TASKS[a.task][0]
    rows = _class_rows(train, source, a.pretrain_per_class, rng)
    val = _class_rows(test, source, 40, rng)
    size = (a.size, a.size)
    remap = np.full(10, -1, dtype=np.int64)
    remap[list(source)] = np.arange(len(source))  # source classes -> 0..K-1
    tr = (conform_images(train.images[rows], 1, size), remap[train.labels[rows]])
    va = (conform_images(test.images[val], 1, size), remap[test.labels[val]])
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=len(source), input_size=(1, *size))
    cfg = TrainConfig(
        data="fashion-mnist",
        model="resnet18",
        epochs=a.pretrain_epochs,
        batch_size=128,
        precision="fp32",
        augment=AUGMENT,
    )
    t0 = time.perf_counter()
    res = fit(model, tr, va, cfg, device=a.device)
    stats = {
        "source_val_accuracy": res.history[-1]["val_accuracy"],
        "pretrain_seconds": time.perf_counter() - t0,
        "pretrain_images": len(rows),
    }
    a.work.mkdir(parents=True, exist_ok=True)
    pth, st = a.work / "resnet18-fmnist-source.pth", a.work / "resnet18-fmnist-source.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, pth)  # torchvision-style: a plain state dict, torchvision key names
    save_file(state, str(st))
    return pth, st, stats


def check_same_weights(pth: Path, st: Path, size: int) -> bool:
    """Both files load through create_model(pretrained=...) to the same base."""
    from cnnkit.models import create_model

    a = create_model("resnet18", num_classes=5, input_size=(1, size, size), pretrained=str(pth))
    b = create_model("resnet18", num_classes=5, input_size=(1, size, size), pretrained=str(st))
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith("fc."))


def export_target(a: argparse.Namespace) -> tuple[list[Path], Path]:
    """PNG folders from the test split: one labelled set per seed and one shared test set.

    Each seed's folder holds ``per_class + val_per_class`` images per class (its own draw);
    the test folder holds ``test_per_class`` other images per class.
    """
    from PIL import Image

    from cnnkit.data import load_dataset

    _, spec, classes = TASKS[a.task]
    name, _, split = spec.partition(":")
    test = load_dataset(name, split=split)
    rng = np.random.default_rng(1)
    pools = {c: rng.permutation(np.flatnonzero(test.labels == c)) for c in classes}
    n = a.per_class + a.val_per_class

    def write(root: Path, rows_by_class: dict) -> Path:
        for c, rows in rows_by_class.items():
            d = root / f"{c}-{test.class_names[c]}".replace("/", "-").replace(" ", "_")
            d.mkdir(parents=True, exist_ok=True)
            for r in rows:
                Image.fromarray(test.images[r, 0]).save(d / f"{r:05d}.png")
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

    return load_folder(test_dir, image_size=(a.size, a.size), color_mode="grayscale",
                       progress=False)  # fmt: skip


def run_one(a, method: str, seed: int, data: Path, weights: Path, test) -> dict:
    from cnnkit.train import TrainConfig, load_run, train_run
    from cnnkit.train.transfer import train_transfer_run

    n = a.per_class + a.val_per_class
    cfg = TrainConfig(
        data=str(data), model="resnet18", image_size=(a.size, a.size), color_mode="grayscale",
        epochs=a.features_epochs if method == "features" else a.epochs, batch_size=32,
        validation_split=a.val_per_class / n, seed=seed,
        precision="fp32", checkpoint_every=a.epochs,
        augment={} if method == "features" else AUGMENT,
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


def report(a, rows: list[dict], pre: dict, same: bool, command: str, m: dict) -> str:
    by = {meth: [r for r in rows if r["method"] == meth] for meth in METHODS}
    scratch = {r["seed"]: r["accuracy"] for r in by["scratch"]}
    lines = [
        "# Transfer learning with few labels (no internet)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line(m)}; device {a.device}; {m['date']}.",
        "",
        f"Task `{a.task}`. Source: resnet18 (1x{a.size}x{a.size}) pretrained on Fashion-MNIST "
        f"classes {list(TASKS[a.task][0])} (train split), "
        f"{pre['pretrain_images']} images, {a.pretrain_epochs} epochs (Adam 1e-3, batch 64, "
        f"no augmentation), "
        f"{pre['pretrain_seconds']:.0f} s; source validation accuracy "
        f"{pre['source_val_accuracy']:.3f}. Saved as `.pth` (torchvision-style state dict) and "
        f"`.safetensors`; both load identically through `create_model(pretrained=FILE)`: {same}.",
        "",
        f"Target: `{TASKS[a.task][1]}` classes {list(TASKS[a.task][2])}, "
        f"**{a.per_class} labelled images per class** (drawn per seed) plus "
        f"{a.val_per_class} per class for the in-run validation; accuracy on a fixed held-out "
        f"test set of {a.test_per_class} per class, read back with `load_run` (the run folder "
        f"as predict uses it); {a.epochs} epochs ({a.features_epochs} for the head on cached "
        f"features, seconds in all), batch 32, "
        "Adam one-cycle (scratch 1e-3; a new head 1e-2, cnnkit's transfer default; finetune's "
        f"second phase base 1e-4, head 1e-3); augmentation {AUGMENT} for scratch, frozen and "
        "finetune; "
        f"finetune = {a.epochs // 2} head epochs + {a.epochs - a.epochs // 2} epochs with the "
        f"top {a.unfreeze} block groups unfrozen, BatchNorm frozen.",
        "",
        "| method | test accuracy (mean, 95% CI over seeds) | vs scratch (paired, 95% CI) | "
        "per seed | seconds/run | frozen tensors changed |",
        "|---|---|---|---|---|---|",
    ]
    for meth, rs in by.items():
        if not rs:
            continue
        acc = [r["accuracy"] for r in rs]
        mean, lo, hi = t_interval(acc)
        diff = [r["accuracy"] - scratch[r["seed"]] for r in rs if r["seed"] in scratch]
        dm, dlo, dhi = t_interval(diff) if diff else (0, 0, 0)
        vs = (
            "" if meth == "scratch" else f"{100 * dm:+.1f} pts [{100 * dlo:+.1f}, {100 * dhi:+.1f}]"
        )
        changed = "" if meth == "scratch" else str(sum(r["frozen_changed"] for r in rs))
        lines.append(
            f"| {meth} | {mean:.3f} [{lo:.3f}, {hi:.3f}] | {vs} | "
            f"{', '.join(f'{x:.3f}' for x in acc)} | {np.median([r['seconds'] for r in rs]):.1f} "
            f"| {changed} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    torch.set_num_threads(a.threads)
    command = "python bench/transfer.py " + " ".join(map(shlex.quote, argv or sys.argv[1:]))
    m = machine()
    pth, st, pre = pretrain(a)
    print(f"pretrained: {pre}", flush=True)
    same = check_same_weights(pth, st, a.size)
    seed_dirs, test_dir = export_target(a)
    test = load_test(a, test_dir)
    rows = []
    for seed in range(a.seeds):
        for meth in METHODS:
            weights = st if meth == "finetune" else pth  # both formats go through the same path
            rows.append(run_one(a, meth, seed, seed_dirs[seed], weights, test))
            print(json.dumps(rows[-1]), flush=True)
    md = report(a, rows, pre, same, command, m)
    path = write_result(a.name, md, {"machine": m, "args": vars(a), "pretrain": pre, "rows": rows})
    print(md)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
