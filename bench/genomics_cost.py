"""What one fit of each genomic method costs, and where a network's time goes.

Fits each method on the first 90% of the wheat lines (one environment), ``--repeats`` times,
and reports the median seconds per fit and its ratio to GBLUP's (the goal of issue 20: the CNN
within 5x of GBLUP); ``--profile`` adds the top of a cProfile of one CNN fit. Run it alone.

    python bench/genomics_cost.py --env 1 --repeats 3 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import command_line, machine, machine_line, write_result

from cnnkit.genomics.methods import make_method

# name -> (method, training overrides): the default CNN, and one network trained a fixed 30
# epochs without early stopping (the variant that gains over its linear part on wheat).
CANDIDATES = {
    "gblup": ("gblup", None),
    "rkhs": ("rkhs", None),
    "cnn (default)": ("cnn", None),
    "cnn, 1 network, 30 epochs": ("cnn", {"ensemble": 1, "early_stopping": False, "epochs": 30}),
    "mlp (default)": ("mlp", None),
}


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wheat", type=Path, default=Path("../shared/data/wheat"))
    p.add_argument("--env", type=int, default=1, choices=[1, 2, 3, 4])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="profile one default CNN fit")
    p.add_argument("--name", default="genomics-cost")
    return p.parse_args(argv)


def _data(folder: Path, env: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.loadtxt(folder / "wheat.X", dtype=np.float32)
    y = np.loadtxt(folder / "wheat.Y")[:, env - 1]
    n = int(0.9 * len(x))
    return x[:n] - x[:n].mean(0), y[:n]


def _fit(name: str, train, x, y, seed: int) -> tuple[float, list[int]]:
    est = make_method(name, seed=seed, train=train)
    t0 = time.perf_counter()
    est.fit(x, y)
    seconds = time.perf_counter() - t0
    return seconds, [len(h) for h in getattr(est, "histories", [])]


def _profile(x, y) -> str:
    prof = cProfile.Profile()
    prof.enable()
    _fit("cnn", None, x, y, 0)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main(argv=None) -> int:
    a = _args(argv)
    m = machine()
    x, y = _data(a.wheat, a.env)
    rows = {}
    for label, (name, train) in CANDIDATES.items():
        runs = [_fit(name, train, x, y, seed) for seed in range(a.repeats)]
        rows[label] = {"seconds": [s for s, _ in runs], "epochs": [e for _, e in runs]}
        print(f"{label}: {rows[label]}", file=sys.stderr, flush=True)
    base = statistics.median(rows["gblup"]["seconds"])
    lines = [
        "# Cost of one genomic fit (bench/genomics_cost.py)",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_line(m)}  ",
        f"Data: wheat environment {a.env}, the first {len(x)} of 599 lines x {x.shape[1]} "
        "markers. Goal (issue 20): the CNN's fit within 5x of GBLUP's.",
        "",
        "| method | seconds per fit (median) | runs | x GBLUP | epochs per network |",
        "|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        med = statistics.median(r["seconds"])
        runs = " / ".join(f"{s:.2f}" for s in r["seconds"])
        lines.append(f"| {label} | {med:.2f} | {runs} | {med / base:.0f}x | "
                     f"{'; '.join(map(str, r['epochs'])) or '-'} |")  # fmt: skip
    data = {"machine": m, "env": a.env, "rows": rows}
    if a.profile:
        text = _profile(x, y)
        data["profile"] = text
        lines += ["", "One default CNN fit, cProfile by own time:", "", "```", text.strip(), "```"]
    path = write_result(a.name, "\n".join(lines) + "\n", data)
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
