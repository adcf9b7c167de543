"""Time to 90% test accuracy on Fashion-MNIST: cnnkit fit vs the Keras/TF peer, same run.

Both train the Keras-book convnet (basic_convnet) at batch 128 and validate on the 10,000
test images after every epoch, stopping at the target. cnnkit uses its defaults for a
folder-less named dataset (Adam, one-cycle over a 6-epoch budget, precision auto); the
Keras peer is ../shared/peers/tta_keras.py (Adam 1e-3, its own defaults). Wall time counts
everything inside fit (validation included), minus the quiet-machine waits.

Run:  .venv/bin/python bench/tta.py [--seeds 0 1 2] [--no-keras]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _common import machine, machine_line, peers_python, run_peer, wait_quiet, write_result  # noqa: E402

TARGET = 0.90


def cnnkit_tta(seed: int, epochs: int, lr: float) -> dict:
    from cnnkit.data import load_dataset
    from cnnkit.models import create_model
    from cnnkit.train import Callback, TrainConfig, fit

    tr, te = (
        load_dataset("fashion-mnist", split="train"),
        load_dataset("fashion-mnist", split="test"),
    )
    torch.manual_seed(seed)
    model = create_model("basic_convnet")
    cfg = TrainConfig(
        data="fashion-mnist",
        epochs=epochs,
        batch_size=128,
        lr=lr,
        schedule="onecycle",
        seed=seed,
        precision="auto",
    )
    log = {"waited": 0.0, "hist": []}

    class StopAtTarget(Callback):
        def on_epoch_start(self, state):
            log["waited"] += wait_quiet()

        def on_epoch_end(self, state):
            acc = state.history[-1]["val_accuracy"]
            log["hist"].append(acc)
            print(f"  seed {seed} epoch {state.epoch}: test acc {acc:.4f}", flush=True)
            state.stop = acc >= TARGET

    t = time.perf_counter()
    fit(model, tr, te, cfg, callbacks=[StopAtTarget()])
    wall = time.perf_counter() - t - log["waited"]
    return {
        "seed": seed,
        "wall_s": wall,
        "epochs": len(log["hist"]),
        "reached": log["hist"][-1] >= TARGET,
        "final_acc": log["hist"][-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=6, help="cnnkit's one-cycle budget")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--name", default="tta", help="results file bench/results/NAME.md")
    args = ap.parse_args()
    m = machine()
    print(machine_line(m), flush=True)
    runs = [cnnkit_tta(s, args.epochs, args.lr) for s in args.seeds]
    ck = statistics.median(r["wall_s"] for r in runs)
    lines = [
        "# Time to 90% test accuracy, Fashion-MNIST, basic_convnet, batch 128",
        "",
        f"Machine: {machine_line(m)}. Date: {m['date']}.",
        "",
        f"Command: `.venv/bin/python bench/tta.py --seeds {' '.join(map(str, args.seeds))}"
        f" --epochs {args.epochs} --lr {args.lr}{' --no-keras' if args.no_keras else ''}"
        f"{'' if args.name == 'tta' else ' --name ' + args.name}`",
        "",
        "| trainer | median wall s | runs (s, epochs, reached) |",
        "|---|---:|---|",
        f"| cnnkit fit (one-cycle, {args.epochs}-epoch budget, lr {args.lr}) | {ck:.1f} | "
        + "; ".join(f"{r['wall_s']:.1f}s/{r['epochs']}ep/{r['reached']}" for r in runs)
        + " |",
    ]
    keras = None
    if not args.no_keras and peers_python():
        out = run_peer("tta_keras.py", *map(str, args.seeds))
        mm = re.search(r"median ([\d.]+)s, epochs (\[.*?\])", out)
        if mm:
            keras = float(mm.group(1))
            lines.append(
                f"| Keras/TF model.fit (peers/tta_keras.py) | {keras:.1f} | epochs {mm.group(2)} |"
            )
    if keras:
        lines += ["", f"cnnkit / Keras time ratio: {ck / keras:.2f} (goal <= 0.6)"]
    text = "\n".join(lines) + "\n"
    print(text)
    write_result(args.name, text, {"machine": m, "cnnkit": runs, "keras_median_s": keras})


if __name__ == "__main__":
    main()
