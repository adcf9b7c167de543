"""Genomic prediction benchmark: the default SNP CNN against GBLUP and the linear baselines.

Two steps, so the heavy part can run on a machine without msprime:

    python bench/genomics.py prepare --data build/genomics-data      # simulate + read real data
    python bench/genomics.py run --data build/genomics-data --jobs 15 --device cuda \\
        --md bench/results/genomics.md

``prepare`` writes ``NAME.npz`` (``x`` dosages, ``y`` trait) and, for simulations,
``NAME.json`` (the simulator's truth) for: four msprime simulations (2,000 x 2,000, h2 0.5,
seed 1: additive, local-epistasis, mixed, null), the cropgbm maize hybrids (DTT; located
with ``--maize DIR`` or ``$CNNKIT_CROPGBM_TESTDATA``, the ``testdata/`` folder of the
``cropgbm`` sdist) and the four wheat environments (``--wheat DIR``, default
``../shared/data/wheat``). ``run`` cross-validates every method on the same folds
(5-fold x 2 repeats, seed 0) and writes the results table with SE and the goals of issue 8.
``--ensemble N --dropout D --weight-decay W`` benchmark a candidate network setting instead
of the defaults (one thread, one process on a shared CPU box:
``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ... run --jobs 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SIMS = ("additive", "local-epistasis", "mixed", "null")
WHEAT = tuple(f"wheat{k}" for k in range(1, 5))
METHODS = ("cnn", "mlp", "gblup", "ridge", "lasso", "elasticnet")


def prepare(data: Path, maize: Path | None, wheat: Path) -> None:
    """Simulate the four traits and convert the real data sets to ``.npz``."""
    from cnnkit.genomics.io import align, read_genotypes, read_phenotypes
    from cnnkit.genomics.simulate import SimConfig, simulate

    data.mkdir(parents=True, exist_ok=True)
    for trait in SIMS:
        sim = simulate(SimConfig(n=2000, snps=2000, h2=0.5, trait=trait, seed=1))
        np.savez_compressed(data / f"{trait}.npz", x=sim.genotypes.astype(np.int8), y=sim.phenotype)
        (data / f"{trait}.json").write_text(json.dumps(sim.truth), encoding="utf-8")
        print(f"simulated {trait}", flush=True)
    if maize is not None and (maize / "genofile.bed").exists():
        g, y, _ = align(
            read_genotypes(maize / "genofile.bed"), read_phenotypes(maize / "phefile.txt", "DTT")
        )
        np.savez_compressed(data / "maize.npz", x=g.matrix, y=y)
    else:
        print(f"maize data not found (--maize / $CNNKIT_CROPGBM_TESTDATA): {maize}", flush=True)
    for k, name in enumerate(WHEAT, start=1):
        g, y, _ = align(read_genotypes(wheat / "wheat.X"), read_phenotypes(wheat / "wheat.Y", k))
        np.savez_compressed(data / f"{name}.npz", x=g.matrix, y=y)


def run(
    data: Path,
    names: list[str],
    jobs: int,
    device: str,
    methods=METHODS,
    dump=None,
    nets: dict | None = None,
) -> dict:
    """Cross-validate every method on each data set; returns ``{name: result}``.

    ``nets``: ``train`` (a ``SnpTrainConfig``) and ``model_kwargs`` of the networks.
    """
    from cnnkit.genomics.cv import CVConfig, cross_validate

    results = {}
    for name in names:
        f = data / f"{name}.npz"
        if not f.exists():
            print(f"skip {name}: {f} missing", flush=True)
            continue
        z = np.load(f)
        truth_file = data / f"{name}.json"
        truth = json.loads(truth_file.read_text()) if truth_file.exists() else None
        cfg = CVConfig(
            methods=tuple(methods), folds=5, repeats=2, seed=0, n_jobs=jobs, device=device
        )
        t0 = time.perf_counter()
        res = cross_validate(
            z["x"].astype(np.float32), z["y"], cfg, simulation=truth, log=_log, **(nets or {})
        )
        res["wall_seconds"] = time.perf_counter() - t0
        results[name] = res
        print(_table(name, res), flush=True)
        if dump is not None:
            dump.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def _log(line: str) -> None:
    print(line, flush=True)


def _r(res: dict, method: str) -> tuple[float, float]:
    m = next(m for m in res["methods"] if m["method"] == method)
    return m["r_mean"], m["r_se"]


def _table(name: str, res: dict) -> str:
    paired = {p["method"]: p for p in res["paired"]}
    lines = [
        f"### {name} (n={res['n']}, p={res['p']}, {res['wall_seconds']:.0f} s wall)",
        "",
        "| method | r (mean +/- SE) | MSE | slope | r - GBLUP (paired SE) | fit s (sum) |",
        "|---|---|---|---|---|---|",
    ]
    for m in res["methods"]:
        d = paired.get(m["method"])
        diff = f"{d['r_diff_mean']:+.3f} +/- {d['r_diff_se']:.3f}" if d else ""
        lines.append(
            f"| {m['method']} | {m['r_mean']:.3f} +/- {m['r_se']:.3f} | {m['mse_mean']:.3f} | "
            f"{m['slope_mean']:.2f} | {diff} | {m['seconds']:.0f} |"
        )
    if res.get("ceiling") is not None:
        dae = f"{res['daetwyler']:.3f}" if res.get("daetwyler") is not None else "n/a"
        lines.append(
            f"\nceiling sqrt(h2) = {res['ceiling']:.3f}; Daetwyler (additive part) = {dae}"
        )
    return "\n".join(lines) + "\n"


def goals(results: dict) -> list[str]:
    """One line per goal of issue 8: the figures and whether the default CNN met it."""
    out = []

    def line(text: str, ok: bool) -> None:
        out.append(f"- {'MET' if ok else 'MISSED'}: {text}")

    for name, margin, rel in (
        ("additive", -0.02, ">="),
        ("local-epistasis", 0.10, ">="),
        ("mixed", 0.0, ">"),
    ):
        if name in results:
            (c, cse), (g, _) = _r(results[name], "cnn"), _r(results[name], "gblup")
            ok = c >= g + margin if rel == ">=" else c > g
            line(
                f"{name}: CNN {c:.3f} +/- {cse:.3f} vs GBLUP {g:.3f} (goal CNN {rel} GBLUP "
                f"{margin:+.2f})",
                ok,
            )
    if "maize" in results:
        c, cse = _r(results["maize"], "cnn")
        line(
            f"maize DTT: CNN {c:.3f} +/- {cse:.3f} (goal >= 0.45; GBLUP "
            f"{_r(results['maize'], 'gblup')[0]:.3f})",
            c >= 0.45,
        )
    if all(w in results for w in WHEAT):
        c = float(np.mean([_r(results[w], "cnn")[0] for w in WHEAT]))
        g = float(np.mean([_r(results[w], "gblup")[0] for w in WHEAT]))
        line(
            f"wheat mean of 4 envs: CNN {c:.3f} vs GBLUP {g:.3f} (goal >= GBLUP - 0.02)",
            c >= g - 0.02,
        )
    if "null" in results:
        worst = max(abs(m["r_mean"]) - 2 * m["r_se"] for m in results["null"]["methods"])
        rs = ", ".join(f"{m['method']} {m['r_mean']:+.3f}" for m in results["null"]["methods"])
        line(f"null (negative control) near 0 for every method: {rs}", worst < 0.05)
    return out


def write_markdown(results: dict, path: Path, command: str, machine: str) -> None:
    """Append the goals and tables of this run to ``path``."""
    text = [
        f"## Run of {time.strftime('%Y-%m-%d %H:%M')} on {machine}",
        "",
        f"Command: `{command}`",
        "",
        "Goals (issue 8):",
        "",
        *goals(results),
        "",
    ]
    text += [_table(n, r) for n, r in results.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(text) + "\n")


def _nets(args: argparse.Namespace) -> dict:
    """``train`` / ``model_kwargs`` overrides from ``--ensemble --dropout --weight-decay``."""
    train = {
        k: v
        for k, v in (("ensemble", args.ensemble), ("weight_decay", args.weight_decay))
        if v is not None
    }
    model = {} if args.dropout is None else {"dropout": args.dropout}
    return {"train": train or None, "model_kwargs": model or None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data", type=Path, default=Path("build/genomics-data"))
    p.add_argument("--maize", type=Path, default=os.environ.get("CNNKIT_CROPGBM_TESTDATA"))
    p.add_argument("--wheat", type=Path, default=Path("../shared/data/wheat"))
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, default=Path("build/genomics-data"))
    r.add_argument("--only", default=",".join((*SIMS, "maize", *WHEAT)))
    r.add_argument("--methods", default=",".join(METHODS))
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--device", default="cpu")
    r.add_argument("--md", type=Path, default=None, help="Append results to this Markdown file.")
    r.add_argument("--json", type=Path, default=None, help="Write all results as JSON.")
    r.add_argument("--machine", default="")
    r.add_argument("--ensemble", type=int, default=None, help="Networks averaged per fit.")
    r.add_argument("--dropout", type=float, default=None, help="Override the networks' dropout.")
    r.add_argument("--weight-decay", type=float, default=None, help="Override the L2 penalty.")
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args.data, Path(args.maize) if args.maize else None, args.wheat)
        return 0
    results = run(
        args.data,
        args.only.split(","),
        args.jobs,
        args.device,
        args.methods.split(","),
        args.json,
        _nets(args),
    )
    for line in goals(results):
        print(line)
    if args.md:
        cmd = "python bench/genomics.py " + " ".join(sys.argv[1:] if argv is None else argv)
        write_markdown(results, args.md, cmd, args.machine or "unnamed machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
