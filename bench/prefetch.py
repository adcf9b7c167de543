"""What ``Dataset.prefetch`` costs and gains on a CPU: page faults and a training loop.

1. Page faults per prefetched batch (12 MB float32 batches of 32 RGB 180x180 images, from
   ``from_arrays(...).map(...).prefetch(2)``), each setting in a fresh process: cnnkit's malloc
   setting (one glibc arena, raised thresholds) vs ``CNNKIT_MALLOC_TUNING=0``.
2. A hand-written training loop (basic_convnet, 96x96 RGB, batch 32, fp32) over the folder of
   real JPEGs, augmented, with and without ``.prefetch(2)``: ``--rounds`` epochs of 40 batches
   each, the two interleaved; medians.
Run: ``.venv/bin/python bench/prefetch.py [--jpegs DIR] [--rounds 6]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, machine, machine_line, write_result  # noqa: E402

FAULTS = """
import resource, numpy as np
import cnnkit.allocator
cnnkit.allocator.keep_freed_memory()  # what the CLI does first, as docs/data.md advises
from cnnkit.data.pipeline import from_arrays
images = np.random.default_rng(0).integers(0, 255, (1024, 3, 180, 180), dtype=np.uint8)
ds = from_arrays(images, batch_size=32).map(lambda x: x * 1.0).prefetch(2)
def epoch():
    for x in ds: pass
epoch()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4): epoch()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / (4 * len(ds)))
"""


def faults_per_batch(tuning: str) -> float:
    env = dict(os.environ, CNNKIT_MALLOC_TUNING=tuning)
    out = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.split()[0])


def training_loop(jpegs: str, rounds: int) -> dict[str, list[float]]:
    import torch
    import torch.nn.functional as F

    from cnnkit.data import Augment, image_dataset_from_directory
    from cnnkit.models import create_model

    os.environ["CNNKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnkit-bench-cache-")
    ds = image_dataset_from_directory(jpegs, image_size=(96, 96), batch_size=32, seed=0,
                                      verbose=False).take(40)  # fmt: skip
    aug = Augment(rotation_range=36, zoom_range=0.2, horizontal_flip=True, fill_mode="reflect")
    gen = torch.Generator().manual_seed(0)
    model = create_model("basic_convnet", num_classes=2, in_chans=3, input_size=(96, 96))
    opt = torch.optim.Adam(model.parameters())
    augmented = ds.map(lambda x, y: (aug(x, generator=gen), y))
    pipes = {"with .prefetch(2)": augmented.prefetch(2), "without": augmented}

    def epoch(pipe) -> float:
        n, t = 0, time.perf_counter()
        for x, y in pipe:
            loss = F.cross_entropy(model(x / 255), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(y)
        return n / (time.perf_counter() - t)

    epoch(augmented)  # decode and warm up
    rates: dict[str, list[float]] = {k: [] for k in pipes}
    for r in range(rounds):
        for name in list(pipes)[:: 1 if r % 2 else -1]:
            rates[name].append(epoch(pipes[name]))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jpegs", default=os.environ.get("JPEGS_DIR", os.path.join(tempfile.gettempdir(), "jpegs"))
    )
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if not Path(args.jpegs).is_dir():
        sys.exit(
            f"{args.jpegs} missing: apt-get install -y mate-backgrounds && "
            "python ../shared/peers/make_jpegs.py"
        )
    m = machine()
    faults = {"cnnkit's malloc setting": faults_per_batch("1"),
              "CNNKIT_MALLOC_TUNING=0": faults_per_batch("0")}  # fmt: skip
    rates = training_loop(args.jpegs, args.rounds)
    fault_rows = "\n".join(f"| {k} | {v:,.1f} |" for k, v in faults.items())
    rate_rows = "\n".join(
        f"| {k} | {statistics.median(v):,.0f} | {', '.join(f'{x:.0f}' for x in v)} |"
        for k, v in rates.items()
    )
    md = f"""# Prefetch on a CPU (bench/prefetch.py)

Command: `{command_line()}`
Machine: {machine_line(m)}
Date: {m["date"]}

Minor page faults per prefetched 12 MB batch (each setting in a fresh process):

| malloc | faults per batch |
|---|---:|
{fault_rows}

A training loop (basic_convnet, 96x96 RGB JPEGs, batch 32, augmented), img/s, {args.rounds}
interleaved epochs of 40 batches each:

| pipeline | median img/s | epochs |
|---|---:|---|
{rate_rows}
"""
    path = write_result("prefetch", md, {"machine": m, "faults": faults, "rates": rates})
    print(md)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
