"""Genomic prediction benchmark: GBLUP, RKHS, the multi-environment models and the SNP networks
on the same folds, with the goals of issues 8, 20 and 23.

Two steps, so the heavy part can run on a machine without msprime:

    python bench/genomics.py prepare --data build/genomics-data        # simulate + read data
    python bench/genomics.py run --data build/genomics-data --only wheat1,wheat2,wheat3,wheat4 \\
        --methods gblup,rkhs,cnn --folds 10 --repeats 5
    python bench/genomics.py run --data build/genomics-data --only wheat --scheme cv2 \\
        --methods gblup,gblup_me --folds 10 --repeats 5                  # several environments
    python bench/genomics.py run --data build/genomics-data --only maize,maize+tester \\
        --methods gblup,rkhs --folds 10 --repeats 5

``prepare`` writes ``NAME.npz`` (``x`` dosages, ``y`` trait(s), ``tester`` for maize) and, for
simulations, ``NAME.json`` (the simulator's truth): four msprime simulations (2,000 x 2,000,
h2 0.5, seed 1: additive, local-epistasis, mixed, null; skip with ``--no-sims``), the cropgbm
maize hybrids (DTT and the tester of each hybrid; ``--maize DIR`` or
``$CNNKIT_CROPGBM_TESTDATA``, the ``testdata/`` folder of the ``cropgbm`` sdist) and the four
wheat environments (``--wheat DIR``, default ``../shared/data/wheat``: CIMMYT lines of Crossa et
al. 2010, distributed with the R package BGLR; keep that attribution).

``run`` cross-validates every method on the same folds and writes one results file per run,
``bench/results/genomics-<data>-<date>.md`` (and ``.json``), the exact command at its top, the
CPU and its load average (timings taken under load are labelled as such). ``wheat`` is the
four environments at once (``y`` of shape ``(599, 4)``) for the multi-environment methods and
schemes; ``wheat1..4`` one environment each; ``maize+tester`` the maize data with the tester
as a fixed effect.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

SIMS = ("additive", "local-epistasis", "mixed", "null")
WHEAT = tuple(f"wheat{k}" for k in range(1, 5))
METHODS = ("cnn", "mlp", "gblup", "rkhs", "ridge", "lasso", "elasticnet")
# Crossa et al. 2010 (Genetics 186:713), Table 3, 10-fold CV, RKHS: the published figures.
CROSSA_RKHS = {"wheat1": 0.601, "wheat2": 0.494, "wheat3": 0.445, "wheat4": 0.524}


def prepare(data: Path, maize: Path | None, wheat: Path, sims: bool = True) -> None:
    """Simulate the four traits and convert the real data sets to ``.npz``."""
    from cnnkit.genomics.dataset import load_dataset
    from cnnkit.genomics.io import read_genotypes

    data.mkdir(parents=True, exist_ok=True)
    if sims:
        from cnnkit.genomics.simulate import SimConfig, simulate

        for trait in SIMS:
            sim = simulate(SimConfig(n=2000, snps=2000, h2=0.5, trait=trait, seed=1))
            x = sim.genotypes.astype(np.int8)
            np.savez_compressed(data / f"{trait}.npz", x=x, y=sim.phenotype)
            (data / f"{trait}.json").write_text(json.dumps(sim.truth), encoding="utf-8")
            print(f"simulated {trait}", flush=True)
    if maize is not None and (maize / "genofile.bed").exists():
        d = load_dataset(maize / "genofile.bed", maize / "phefile.txt", pheno_col="DTT",
                         fixed="paternal_line")  # fmt: skip
        tester = d.fixed.factors["paternal_line"].astype(str)
        np.savez_compressed(data / "maize.npz", x=d.geno.matrix, y=d.y[:, 0], tester=tester)
    else:
        print(f"maize data not found (--maize / $CNNKIT_CROPGBM_TESTDATA): {maize}", flush=True)
    g = read_genotypes(wheat / "wheat.X")
    d = load_dataset(g, wheat / "wheat.Y", pheno_col="1,2,3,4")
    np.savez_compressed(data / "wheat.npz", x=d.geno.matrix, y=d.y)
    for k, name in enumerate(WHEAT):
        np.savez_compressed(data / f"{name}.npz", x=d.geno.matrix, y=d.y[:, k])


def _load(data: Path, name: str):
    """``(x, y, fixed, truth, envs)`` of data set ``name`` (``maize+tester``: with the tester)."""
    from cnnkit.genomics.dataset import Covariates

    base = name.split("+")[0]
    z = np.load(data / f"{base}.npz", allow_pickle=False)
    fixed = None
    if name.endswith("+tester"):
        fixed = Covariates({"tester": z["tester"].astype(object)})
    truth_file = data / f"{base}.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else None
    y = z["y"]
    envs = [f"env{k + 1}" for k in range(y.shape[1])] if y.ndim == 2 else None
    return z["x"].astype(np.float32), y, fixed, truth, envs


def run(data: Path, names: list[str], args: argparse.Namespace, log=print) -> dict:
    """Cross-validate ``args.methods`` on each data set; returns ``{name: result}``."""
    from cnnkit.genomics.cv import CVConfig, cross_validate

    results = {}
    for name in names:
        if not (data / f"{name.split('+')[0]}.npz").exists():
            log(f"skip {name}: {data / name.split('+')[0]}.npz missing")
            continue
        x, y, fixed, truth, envs = _load(data, name)
        cfg = CVConfig(
            methods=tuple(args.methods.split(",")), folds=args.folds, repeats=args.repeats,
            seed=args.seed, n_jobs=args.jobs, device=args.device, scheme=args.scheme,
        )  # fmt: skip
        t0 = time.perf_counter()
        res = cross_validate(x, y, cfg, simulation=truth, log=log, fixed=fixed, envs=envs,
                             **_nets(args))  # fmt: skip
        res["wall_seconds"] = time.perf_counter() - t0
        results[name] = res
        log(table(name, res))
    return results


def _by(res: dict, method: str, env=None) -> dict | None:
    return next((m for m in res["methods"] if m["method"] == method and m.get("env") == env),
                None)  # fmt: skip


def table(name: str, res: dict) -> str:
    """A Markdown table of one data set's results."""
    paired = {(p["method"], p.get("env"), p["against"]): p for p in res["paired"]}
    lines = [
        f"### {name} (n={res['n']}, p={res['p']}, scheme {res['scheme']}, {res['folds']} folds "
        f"x {res['repeats']} repeats, {res['wall_seconds']:.0f} s wall)",
        "",
        "| method | env | r (mean +/- SE) | MSE | slope | r - GBLUP (paired SE) | "
        "r - own linear part | fit s per fold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in res["methods"]:
        env = m.get("env")
        d = paired.get((m["method"], env, "gblup"))
        own = paired.get((m["method"], env, f"{m['method']}_linear"))
        diff = f"{d['r_diff_mean']:+.3f} +/- {d['r_diff_se']:.3f}" if d else ""
        lin = f"{own['r_diff_mean']:+.3f} +/- {own['r_diff_se']:.3f}" if own else ""
        mse = "n/a" if m["mse_mean"] is None else f"{m['mse_mean']:.3f}"
        lines.append(
            f"| {m['method']} | {env or ''} | {m['r_mean']:.3f} +/- {m['r_se']:.3f} | {mse} | "
            f"{m['slope_mean']:.2f} | {diff} | {lin} | {m['seconds'] / m['folds']:.2f} |"
        )
    if res.get("ceiling") is not None:
        dae = f"{res['daetwyler']:.3f}" if res.get("daetwyler") is not None else "n/a"
        lines.append(
            f"\nceiling sqrt(h2) = {res['ceiling']:.3f}; Daetwyler (additive part) = {dae}"
        )
    return "\n".join(lines) + "\n"


def _single_env(results: dict) -> dict[str, dict[str, float]]:
    """``{wheatK: {method: r}}`` from single-environment runs or the 4-environment run."""
    out: dict[str, dict[str, float]] = {}
    for w in WHEAT:
        if w in results and results[w]["scheme"] == "cv1":
            out[w] = {m["method"]: m["r_mean"] for m in results[w]["methods"]}
    if "wheat" in results and results["wheat"]["scheme"] == "cv1":  # Crossa's scheme
        for m in results["wheat"]["methods"]:
            if m.get("env"):
                out.setdefault(f"wheat{m['env'][3:]}", {})[m["method"]] = m["r_mean"]
    return out


def goals(results: dict) -> list[str]:
    """One line per goal: the figures and whether it was met."""
    out = []

    def line(text: str, ok: bool) -> None:
        out.append(f"- {'MET' if ok else 'MISSED'}: {text}")

    per_env = _single_env(results)
    single = ("gblup", "rkhs", "cnn", "mlp", "ridge", "lasso", "elasticnet", "kblup")
    for w, rs in per_env.items():
        best = max((m for m in rs if m in single), key=lambda m: rs[m], default=None)
        if best is None:
            continue
        goal = CROSSA_RKHS[w] - 0.02
        line(f"{w}: best single-environment method {best} {rs[best]:.3f} >= Crossa 2010 RKHS "
             f"{CROSSA_RKHS[w]:.3f} - 0.02 = {goal:.3f}", rs[best] >= goal)  # fmt: skip
        if "rkhs" in rs:
            line(f"{w}: best method {rs[best]:.3f} >= RKHS {rs['rkhs']:.3f} - 0.01",
                 rs[best] >= rs["rkhs"] - 0.01)  # fmt: skip
    _network_goal(results, line)
    _multi_env_goal(results, line)
    return out


def _network_goal(results: dict, line) -> None:
    """Issue 20: the full CNN >= its linear part + 0.02 in at least two environments."""
    gains = []
    for name, res in results.items():
        for p in res["paired"]:
            if p["method"] == "cnn" and p["against"] == "cnn_linear":
                gains.append((p.get("env") or name, p["r_diff_mean"], p["r_diff_se"]))
    if gains:
        shown = ", ".join(f"{e} {d:+.3f} +/- {s:.3f}" for e, d, s in gains)
        line(f"CNN - its linear part >= +0.02 in >= 2 environments: {shown}",
             sum(d >= 0.02 for _, d, _ in gains) >= 2)  # fmt: skip


def _multi_env_goal(results: dict, line) -> None:
    """Issue 23: the multi-environment model above single-environment GBLUP in CV2."""
    res = results.get("wheat")
    if not res or res["scheme"] != "cv2":
        return
    for me in ("gblup_me", "rkhs_me", "gblup_mt", "rkhs_mt", "cnn_me", "mlp_me"):
        for env in res.get("envs", []):
            a, b = _by(res, me, env), _by(res, "gblup", env)
            if a and b:
                line(f"CV2 {env}: {me} {a['r_mean']:.3f} > GBLUP {b['r_mean']:.3f}",
                     a["r_mean"] > b["r_mean"])  # fmt: skip


def _nets(args: argparse.Namespace) -> dict:
    """``train`` / ``model_kwargs`` overrides from ``--ensemble --dropout --weight-decay
    --epochs --no-early-stopping``."""
    given = (("ensemble", args.ensemble), ("weight_decay", args.weight_decay),
             ("epochs", args.epochs))  # fmt: skip
    train = {k: v for k, v in given if v is not None}
    if args.no_early_stopping:
        train["early_stopping"] = False
    model = {} if args.dropout is None else {"dropout": args.dropout}
    return {"train": train or None, "model_kwargs": model or None}


def machine() -> str:
    """CPU model, cores and the load average now (timings under load are not results)."""
    cpu = platform.processor() or "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load average {load:.1f}"


def write_results(results: dict, out: Path, command: str, started: str) -> None:
    """The results file: command, machine and load, goals, tables; plus ``.json`` beside it."""
    text = [
        f"# Genomics benchmark run of {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine at the start: {started}; at the end: {machine()}. Seconds are fit times per "
        "fold of one method; with a load average above the core count they were measured "
        "under load and are not timing results.",
        "",
        "Wheat: CIMMYT lines of Crossa et al. (2010), distributed with the R package BGLR.",
        "",
        "Goals:",
        "",
        *goals(results),
        "",
        *[table(n, r) for n, r in results.items()],
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    slim = {n: {k: v for k, v in r.items() if k != "predictions"} for n, r in results.items()}
    from cnnkit.fileio import finite

    out.with_suffix(".json").write_text(json.dumps(finite(slim), indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data", type=Path, default=Path("build/genomics-data"))
    p.add_argument("--maize", type=Path, default=os.environ.get("CNNKIT_CROPGBM_TESTDATA"))
    p.add_argument("--wheat", type=Path, default=Path("../shared/data/wheat"))
    p.add_argument("--no-sims", action="store_true", help="Skip the msprime simulations.")
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, default=Path("build/genomics-data"))
    r.add_argument("--only", default=",".join((*SIMS, "maize", *WHEAT)))
    r.add_argument("--methods", default=",".join(METHODS))
    r.add_argument("--folds", type=int, default=10)
    r.add_argument("--repeats", type=int, default=5)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--scheme", default="cv1", help="cv1, cv2 or leave-env-out (wheat)")
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--device", default="cpu")
    r.add_argument("--out", type=Path, default=None, help="Results file (default: dated name).")
    r.add_argument("--ensemble", type=int, default=None, help="Networks averaged per fit.")
    r.add_argument("--dropout", type=float, default=None, help="Override the networks' dropout.")
    r.add_argument("--weight-decay", type=float, default=None, help="Override the L2 penalty.")
    r.add_argument("--epochs", type=int, default=None, help="Override the networks' epochs.")
    r.add_argument(
        "--no-early-stopping",
        action="store_true",
        help="Train the networks exactly --epochs epochs on every training row.",
    )
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        maize = Path(args.maize) if args.maize else None
        prepare(args.data, maize, args.wheat, sims=not args.no_sims)
        return 0
    started = machine()
    names = args.only.split(",")
    results = run(args.data, names, args)
    for ln in goals(results):
        print(ln)
    stamp = time.strftime("%Y%m%d-%H%M")
    out = args.out or Path("bench/results") / f"genomics-{'-'.join(names)[:40]}-{stamp}.md"
    cmd = "python bench/genomics.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_results(results, out, cmd, started)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
