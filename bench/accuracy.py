"""Accuracy references, trained through the product path (train_run -> evaluate_run).

  fashion-mnist  basic_convnet_bn + augmentation + one-cycle  -> test accuracy (goal >= 92%)
  mnist-5k       keras_mnist_convnet                           -> held-out accuracy (Keras publishes
                                                                  99.2% for the full 60k MNIST)
  mnist-5k       lenet5 (28x28, padding 2)
  digits         lenet5 at 32x32 (sklearn 8x8 digits upscaled)
  cifar10        resnet18 when the CIFAR-10 files are present (else reported as missing)

Run:  .venv/bin/python bench/accuracy.py [--only fashion] [--epochs-scale 1.0]
Writes bench/results/accuracy.md with the accuracy, its Wilson 95% CI and the time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, machine_line, write_result  # noqa: E402

JOBS = {
    "fashion": dict(
        data="fashion-mnist",
        test="fashion-mnist:test",
        model="basic_convnet_bn",
        epochs=15,
        batch_size=128,
        lr=3e-3,
        validation_split=0.1,
        augment={
            "width_shift_range": 0.08,
            "height_shift_range": 0.08,
            "horizontal_flip": True,
            "zoom_range": 0.05,
        },
    ),
    "mnist5k-keras": dict(
        data="mnist-5k",
        test="mnist-5k:test",
        model="keras_mnist_convnet",
        epochs=15,
        batch_size=64,
        lr=2e-3,
        validation_split=0.1,
    ),
    "mnist5k-lenet": dict(
        data="mnist-5k",
        test="mnist-5k:test",
        model="lenet5",
        epochs=15,
        batch_size=64,
        lr=2e-3,
        validation_split=0.1,
    ),
    "digits-lenet": dict(
        data="digits",
        test=None,
        model="lenet5",
        epochs=30,
        batch_size=32,
        lr=2e-3,
        validation_split=0.2,
        image_size=[32, 32],
    ),
    "cifar10-resnet18": dict(
        data="cifar10",
        test="cifar10:test",
        model="resnet18",
        epochs=20,
        batch_size=128,
        lr=2e-3,
        validation_split=0.1,
        image_size=[32, 32],
        augment={"width_shift_range": 0.1, "height_shift_range": 0.1, "horizontal_flip": True},
    ),
}

# Lighter augmentation, a longer schedule and label smoothing (the second Fashion-MNIST try).
JOBS["fashion-light-aug"] = dict(
    JOBS["fashion"],
    epochs=20,
    label_smoothing=0.05,
    augment={"width_shift_range": 0.05, "height_shift_range": 0.05, "horizontal_flip": True},
)


def run_job(name: str, spec: dict, scale: float, root: Path) -> dict:
    from cnnkit.data import list_datasets
    from cnnkit.train import TrainConfig, train_run
    from cnnkit.train.evaluate import evaluate_run

    spec = dict(spec)
    test = spec.pop("test")
    avail = {d["name"]: d for d in list_datasets()} if callable(list_datasets) else {}
    ds = avail.get(spec["data"].split(":")[0], {})
    if ds and not ds.get("available", True):
        return {"job": name, "missing": ds.get("how_to_get") or ds.get("detail") or "not available"}
    spec["epochs"] = max(1, round(spec["epochs"] * scale))
    cfg = TrainConfig(**spec)
    t = time.perf_counter()
    res = train_run(cfg, root / name, progress=False)
    seconds = time.perf_counter() - t
    m = evaluate_run(root / name, test) if test else res.metrics
    first90 = next((h["epoch"] for h in res.history if h["val_accuracy"] >= 0.90), None)
    return {
        "job": name,
        "model": cfg.model,
        "data": cfg.data,
        "eval": test or "validation split",
        "epochs": cfg.epochs,
        "accuracy": m["accuracy"],
        "ci": m["accuracy_ci"],
        "n": m["n"],
        "seconds": seconds,
        "val_90_epoch": first90,
        "train_img_s": sum(h["images_per_second"] for h in res.history) / len(res.history),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=list(JOBS))
    ap.add_argument("--epochs-scale", type=float, default=1.0)
    args = ap.parse_args()
    m = machine()
    print(machine_line(m), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            r = run_job(name, JOBS[name], args.epochs_scale, Path(tmp))
            print(r, flush=True)
            rows.append(r)
    lines = [
        "# Accuracy references",
        "",
        f"Machine: {machine_line(m)}. Date: {m['date']}.",
        "",
        f"Command: `.venv/bin/python bench/accuracy.py --only {' '.join(args.only)} "
        f"--epochs-scale {args.epochs_scale}`",
        "",
        "| job | model | evaluated on | epochs | accuracy (95% CI) | n | train time |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for r in rows:
        if "missing" in r:
            lines.append(f"| {r['job']} | | | | not run: {r['missing']} | | |")
            continue
        lo, hi = r["ci"]
        lines.append(
            f"| {r['job']} | {r['model']} | {r['eval']} | {r['epochs']} | "
            f"{r['accuracy']:.4f} ({lo:.4f}-{hi:.4f}) | {r['n']} | {r['seconds']:.0f} s |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    write_result("accuracy", text, {"machine": m, "rows": rows})


if __name__ == "__main__":
    main()
