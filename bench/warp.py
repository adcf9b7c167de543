"""The bilinear warp alone: cnnkit's compiled kernel vs ``affine_grid`` + ``grid_sample``.

Batches of float32 images: 32 RGB at 180x180 (the pipeline bench's size), 32 grayscale at
180x180 and 128 grayscale at 28x28 (MNIST), with the pipeline bench's augmentation (rotation
up to 36 degrees, zoom 0.2, horizontal flip, ``fill_mode="reflect"``), on 1 thread and on
every thread. Both warps run interleaved in one process, ``--rounds``
rounds of ``--calls`` calls each; the table gives each one's fastest round (this VM's speed
drifts between rounds, so only side-by-side minima compare). Also the largest difference of
each from ``scipy.ndimage.affine_transform(order=1)`` on two images.
Run: ``.venv/bin/python bench/warp.py [--rounds 8] [--calls 10]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, machine, machine_line, write_result  # noqa: E402

from cnnkit.data import Augment, native  # noqa: E402
from cnnkit.data.augment import affine_matrices, warp  # noqa: E402

SHAPES = [(32, 3, 180, 180), (32, 1, 180, 180), (128, 1, 28, 28)]  # (B, C, H, W)


def _grid_sample(x, a):
    real = native.usable
    native.usable = lambda x: False  # the fallback path of augment.warp
    try:
        return warp(x, a, "reflect")
    finally:
        native.usable = real


def _scipy_error(fn, x, a) -> float:
    import scipy.ndimage as ndi

    y = fn(x, a).double().numpy()
    err = 0.0
    for i in range(2):
        for ch in range(x.shape[1]):
            img, mat = x[i, ch].double().numpy(), a[i].numpy()
            ref = ndi.affine_transform(img, mat[:2, :2], mat[:2, 2], order=1, mode="reflect")
            err = max(err, float(np.abs(ref - y[i, ch]).max()))
    return err


def _batch(shape: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    b, c, h, w = shape
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(0)) * 255
    aug = Augment(rotation_range=36, zoom_range=0.2, horizontal_flip=True, fill_mode="reflect")
    return x, affine_matrices(aug.sample_params(b, h, w, torch.Generator().manual_seed(1)), h, w)


def _fastest(warps: dict, x, a, rounds: int, calls: int, threads: tuple) -> dict:
    """ms per call: each warp's fastest round, the warps and thread counts interleaved."""
    best = {(k, t): float("inf") for k in warps for t in threads}
    for _ in range(rounds):
        for name, fn in warps.items():
            for t in threads:
                torch.set_num_threads(t)
                start = time.perf_counter()
                for _ in range(calls):
                    fn(x, a)
                ms = (time.perf_counter() - start) / calls * 1e3
                best[name, t] = min(best[name, t], ms)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--name", default="warp", help="results file bench/results/NAME.md")
    args = parser.parse_args()
    if native.kernel() is None:
        sys.exit(f"the native warp is not available here: {native.describe()}")
    m = machine()
    warps = {"cnnkit native": lambda x, a: native.warp(x, a, "reflect", 0.0),
             "grid_sample": _grid_sample}  # fmt: skip
    all_threads = torch.get_num_threads()
    threads = (1, all_threads)
    rows, best_ms = [], {}
    for shape in SHAPES:
        x, a = _batch(shape)
        best = _fastest(warps, x, a, args.rounds, args.calls, threads)
        label = f"{shape[0]} x {'RGB' if shape[1] == 3 else 'grey'} {shape[2]}x{shape[3]}"
        for t in threads:
            n, g = best["cnnkit native", t], best["grid_sample", t]
            rows.append(f"| {label} | {t} | {n:.2f} | {g:.2f} | {g / n:.2f}x |")
            best_ms |= {f"{label}|{k}|{t}": best[k, t] for k in warps}
    torch.set_num_threads(all_threads)
    x, a = _batch(SHAPES[0])
    errors = {k: _scipy_error(fn, x, a) for k, fn in warps.items()}
    md = f"""# Bilinear warp alone (bench/warp.py)

Command: `{command_line()}`
Batches of float32 images; rotation up to 36 degrees, zoom 0.2, horizontal flip,
`fill_mode="reflect"`. Fastest of {args.rounds} interleaved rounds, ms per batch.
Machine: {machine_line(m)}
Native build: {native.describe()}
Date: {m["date"]}

| batch | threads | cnnkit native (ms) | grid_sample (ms) | native speed-up |
|---|---:|---:|---:|---:|
{chr(10).join(rows)}

Largest difference from `scipy.ndimage.affine_transform(order=1, mode="reflect")` on two RGB
images (values 0..255): native {errors["cnnkit native"]:.1e}, grid_sample
{errors["grid_sample"]:.1e}.
"""
    path = write_result(args.name, md, {"machine": m, "best_ms": best_ms, "scipy_error": errors})
    print(md)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
