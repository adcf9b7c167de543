"""Training throughput of basic_convnet on Fashion-MNIST 28x28, batch 128, in one run.

Compares, on the same tensors and the same machine:
  cnnkit fit (precision auto)       the product
  plain PyTorch fp32 eager loop     the typical hand-written baseline
  plain PyTorch + channels_last     the obvious layout tweak
  DataLoader(TensorDataset) loop    the tutorial pipeline
  Keras/TensorFlow model.fit        ../shared/peers/train_keras.py (when TF is installed)

Each pipeline runs in its own process (cnnkit's fit raises glibc's malloc thresholds for
the whole process, which must not reach the baselines; one extra row shows a plain loop
with the same setting), the windows interleaved round by round. Each figure is the median
img/s over >= 3 clean windows (other processes < 0.15 cores), measured with the peers' own
noise-aware helpers. Writes bench/results/train.md.

Run:  .venv/bin/python bench/train.py [--window-images 20480] [--no-keras]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _common import (  # noqa: E402
    command_line,
    machine,
    machine_line,
    peers_python,
    run_peer,
    timed_windows,
    write_result,
)

BATCH = 128


def load_fmnist() -> tuple[torch.Tensor, torch.Tensor]:
    from cnnkit.data import load_dataset

    a = load_dataset("fashion-mnist", split="train")
    return torch.from_numpy(a.images.copy()), torch.from_numpy(a.labels.copy())


def keras_book_convnet() -> nn.Module:
    """The same network, written by hand as a plain-PyTorch user would."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(1152, 10),
    )


def plain_window(x: torch.Tensor, y: torch.Tensor, n: int, channels_last: bool):
    torch.manual_seed(0)
    model = keras_book_convnet()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    xf = x.float() / 255

    def window() -> int:
        perm = torch.randperm(len(xf))[:n]
        for i in range(0, n, BATCH):
            idx = perm[i : i + BATCH]
            xb = xf[idx]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return n

    window()  # warm-up
    return window


def dataloader_window(x: torch.Tensor, y: torch.Tensor, n: int):
    from torch.utils.data import DataLoader, Subset, TensorDataset

    torch.manual_seed(0)
    model = keras_book_convnet()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    ds = TensorDataset(x.float() / 255, y)

    def window() -> int:
        idx = torch.randperm(len(ds))[:n].tolist()
        for xb, yb in DataLoader(Subset(ds, idx), batch_size=BATCH, shuffle=False):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return n

    window()
    return window


def cnnkit_window(x: torch.Tensor, y: torch.Tensor, n: int, precision: str = "auto"):
    """cnnkit's own fit(): each window is one fit epoch over n images (after a warm-up epoch)."""
    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, fit

    torch.manual_seed(0)
    model = create_model("basic_convnet")
    perm = torch.randperm(len(x))[:n]
    data = (x[perm], y[perm])
    cfg = TrainConfig(
        data="fashion-mnist", epochs=1, batch_size=BATCH, schedule="none", precision=precision
    )
    res = fit(model, data, None, cfg)  # warm-up epoch
    cl = " + channels_last" if res.precision.channels_last else ""
    info = {"precision": f"{res.precision.value}{cl}"}

    def window() -> int:
        fit(model, data, None, cfg)
        return n

    return window, info


PIPELINES = {  # key: (row label, how to build its window function)
    "cnnkit_auto": ("cnnkit fit (auto: {precision})", lambda x, y, n: cnnkit_window(x, y, n)),
    "cnnkit_fp32": (
        "cnnkit fit (forced {precision})",
        lambda x, y, n: cnnkit_window(x, y, n, "fp32"),
    ),
    "cnnkit_bf16": (
        "cnnkit fit (forced {precision})",
        lambda x, y, n: cnnkit_window(x, y, n, "bf16"),
    ),
    "plain": ("plain PyTorch fp32 eager", lambda x, y, n: (plain_window(x, y, n, False), {})),
    "plain_cl": (
        "plain PyTorch fp32 + channels_last",
        lambda x, y, n: (plain_window(x, y, n, True), {}),
    ),
    "plain_cl_malloc": (
        "plain PyTorch fp32 + channels_last + cnnkit's malloc thresholds",
        lambda x, y, n: (plain_malloc_window(x, y, n), {}),
    ),
    "dataloader": (
        "DataLoader(TensorDataset) loop",
        lambda x, y, n: (dataloader_window(x, y, n), {}),
    ),
}


def plain_malloc_window(x: torch.Tensor, y: torch.Tensor, n: int):
    """The channels_last plain loop after the malloc setting cnnkit's fit makes."""
    from cnnkit.allocator import keep_freed_memory

    if keep_freed_memory() is None:
        raise RuntimeError("malloc tuning not available here (not glibc?)")
    return plain_window(x, y, n, True)


def worker(key: str, n: int) -> None:
    """One pipeline in its own process: the malloc setting cnnkit's fit makes (process-wide)
    must not reach the baselines. Protocol on stdout: lines starting with ``@@``."""
    x, y = load_fmnist()
    window, info = PIPELINES[key][1](x, y, n)
    label = PIPELINES[key][0].format(**info) if info else PIPELINES[key][0]
    print("@@ready " + json.dumps({"label": label}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        wins = timed_windows(window, n_clean=1, max_windows=3, label=label)[1]
        print("@@windows " + json.dumps(wins), flush=True)


class _Worker:
    def __init__(self, key: str, n: int) -> None:
        cmd = [sys.executable, __file__, "--worker", key, "--window-images", str(n)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.label = self._read("@@ready ")["label"]

    def _read(self, prefix: str):
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith(prefix):
                return json.loads(line[len(prefix) :])
            print(line, end="", flush=True)  # the worker's window lines
        raise RuntimeError(f"benchmark worker exited (code {self.proc.wait()})")

    def windows(self) -> list[dict]:
        self.proc.stdin.write("go\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self._read("@@windows ")

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait()


def interleaved(keys: list[str], n: int, rounds: int) -> dict:
    """Round-robin windows over the pipelines (one clean window each per round), so a slow
    drift of the machine (frequency, memory) cannot favour whichever pipeline ran first.
    Each pipeline lives in its own process, started (and warmed up) one at a time."""
    workers = [_Worker(k, n) for k in keys]
    wins: dict = {w.label: [] for w in workers}
    try:
        for _ in range(rounds):
            for w in workers:
                wins[w.label] += w.windows()
    finally:
        for w in workers:
            w.close()
    out = {}
    for name, ws in wins.items():
        clean = [w["rate"] for w in ws if w["clean"]] or [w["rate"] for w in ws]
        out[name] = (statistics.median(clean), ws)
    return out


def keras_rate(repeats: int) -> tuple[float | None, list[float], str]:
    """Median img/s of ``repeats`` runs of the Keras peer (TensorFlow is bimodal here)."""
    if peers_python() is None:
        return None, [], "TensorFlow not installed (create .peers-venv: see bench/README.md)"
    rates, head = [], ""
    for _ in range(repeats):
        out = run_peer("train_keras.py", "auto")
        m = re.search(r"FINAL keras \S+ .*?: ([\d.]+) img/s", out)
        head = out.splitlines()[0] if out else head
        if m:
            rates.append(float(m.group(1)))
    return (statistics.median(rates) if rates else None), rates, head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window-images", type=int, default=20480)
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keras-repeats", type=int, default=3, help="Keras runs (median reported)")
    ap.add_argument("--name", default="train", help="results file bench/results/NAME.md")
    ap.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated subset")
    ap.add_argument("--worker", choices=sorted(PIPELINES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.window_images)
        return
    m = machine()
    print(machine_line(m), flush=True)
    keys = [k for k in PIPELINES if k in args.pipelines.split(",")]
    rows = interleaved(keys, args.window_images, args.rounds)
    keras_note = "skipped (--no-keras)"
    if not args.no_keras:
        rate, runs, keras_note = keras_rate(args.keras_repeats)
        if rate is not None:
            rows["Keras/TF model.fit (peers/train_keras.py)"] = (rate, runs)
            keras_note += "; runs (img/s): " + ", ".join(f"{r:,.0f}" for r in runs)
    base = rows.get("plain PyTorch fp32 eager", next(iter(rows.values())))[0]
    lines = [
        "# Training throughput: basic_convnet, Fashion-MNIST 28x28, batch 128",
        "",
        f"Machine: {machine_line(m)}. Date: {m['date']}.",
        "",
        f"Command: `{command_line()}`",
        "",
        "| pipeline | img/s (median of clean windows; Keras: median of runs) | vs plain PyTorch |",
        "|---|---:|---:|",
    ]
    for name, (rate, _) in rows.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")
    lines += ["", f"Keras: {keras_note}", ""]
    ck = next(v[0] for k, v in rows.items() if k.startswith("cnnkit"))
    kr = rows.get("Keras/TF model.fit (peers/train_keras.py)")
    if kr:
        lines.append(f"cnnkit / Keras-TF: {ck / kr[0]:.2f}x")
    text = "\n".join(lines) + "\n"
    print(text)
    write_result(
        args.name,
        text,
        {"machine": m, "rows": {k: {"rate": v[0], "windows": v[1]} for k, v in rows.items()}},
    )


if __name__ == "__main__":
    main()
