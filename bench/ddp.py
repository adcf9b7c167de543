"""One process vs two data-parallel processes (--devices 2) on this machine.

Trains basic_convnet on the real mnist-5k digits exported to a PNG folder, same seed,
same global batch and epochs, and reports steady-epoch images/second and the validation
accuracy of each.

Run:  .venv/bin/python bench/ddp.py [--epochs 4]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, machine_line, wait_quiet, write_result  # noqa: E402


def train(data: Path, out: Path, devices: int, epochs: int) -> dict:
    wait_quiet()
    cmd = [
        sys.executable,
        "-m",
        "cnnkit",
        "train",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "128",
        "--devices",
        str(devices),
        "--no-report",
        "--seed",
        "0",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    with open(out / "history.csv", newline="") as f:
        hist = list(csv.DictReader(f))
    metrics = json.loads((out / "metrics.json").read_text())
    rates = [float(h["images_per_second"]) for h in hist[1:]] or [
        float(hist[0]["images_per_second"])
    ]
    return {
        "devices": devices,
        "img_s": statistics.median(rates),
        "accuracy": metrics["accuracy"],
        "ci": metrics["accuracy_ci"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    from cnnkit.data import export_dataset

    m = machine()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "digits"
        export_dataset("mnist-5k", data, split="train")
        rows = [train(data, Path(tmp) / f"run{d}", d, args.epochs) for d in (1, 2)]
    lines = [
        "# Data-parallel: 1 vs 2 processes",
        "",
        f"Machine: {machine_line(m)}. Date: {m['date']}.",
        "",
        f"Command: `.venv/bin/python bench/ddp.py --epochs {args.epochs}` (basic_convnet, "
        "mnist-5k PNG folder, global batch 128)",
        "",
        "| processes | img/s (median epoch) | validation accuracy (95% CI) |",
        "|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['devices']} | {r['img_s']:,.0f} | {r['accuracy']:.4f} "
            f"({r['ci'][0]:.4f}-{r['ci'][1]:.4f}) |"
        )
    lines += ["", f"2 processes / 1 process throughput: {rows[1]['img_s'] / rows[0]['img_s']:.2f}x"]
    text = "\n".join(lines) + "\n"
    print(text)
    write_result("ddp", text, {"machine": m, "rows": rows})


if __name__ == "__main__":
    main()
