"""Compare variants of the default SNP CNN on the repeat-1 folds of ``bench/genomics.py``.

Same folds (5-fold KFold, seed 0), preprocessing and per-fold seeds as
``cross_validate``; each variant overrides ``CNN_DEFAULTS`` (``model``) and/or
``SnpTrainConfig`` (``train``), may shift the seed (``seed_offset``) and may average the
predictions of ``ensemble`` networks with seeds ``seed + 1000 * e`` (each with its own inner
split, unlike ``--ensemble`` of the package, whose members share one). The starting point
is ``CNN_DEFAULTS`` (dropout 0.5 since the default became the mean of 3 networks) with
``SnpTrainConfig``'s generic settings (weight decay 1e-3, one network): the variant ``{}``
is therefore one network, not the package's default ``cnn``. One thread, one process:
meant for the shared CPU box.

    python bench/genomics_variants.py build/genomics-data/local-epistasis.npz \\
        --variants '{"default": {}, "k6": {"model": {"kernel_size": 6}}}' --out le.jsonl
    python bench/genomics_variants.py --summarise le.jsonl

Each fitted (fold, variant) appends one JSON line: ``fold``, ``variant``, ``r``, ``mse``,
``slope``, ``s``; GBLUP is always fitted as the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch


def _fit_predict(name: str, v: dict | None, xtr, ytr, xte, seed: int, means) -> np.ndarray:
    from cnnkit.genomics.methods import make_method
    from cnnkit.genomics.trainer import SnpTrainConfig

    if v is None:
        return make_method("gblup", seed=seed, means=means).fit(xtr, ytr).predict(xte)
    preds = []
    for e in range(v.get("ensemble", 1)):
        est = make_method(
            "cnn",
            seed=seed + v.get("seed_offset", 0) + 1000 * e,
            means=means,
            model_kwargs=v.get("model"),
            train=SnpTrainConfig(**v.get("train", {})),
        )
        preds.append(est.fit(xtr, ytr).predict(xte))
    return np.mean(preds, axis=0)


def run(data: Path, variants: dict, out: Path, folds: list[int]) -> None:
    """Fit GBLUP and every variant on the chosen repeat-1 folds; append JSON lines."""
    from cnnkit.genomics.cv import fold_indices, scores
    from cnnkit.genomics.preprocess import SnpPreprocessor

    torch.set_num_threads(1)
    z = np.load(data)
    x, y = z["x"].astype(np.float32), z["y"]
    for _, k, tr, te in fold_indices(len(y), 5, 1, 0):
        if k not in folds:
            continue
        pre = SnpPreprocessor().fit(x[tr])
        xtr, xte = pre.transform(x[tr]), pre.transform(x[te])
        for name, v in {"gblup": None, **variants}.items():
            t0 = time.perf_counter()
            pred = _fit_predict(name, v, xtr, y[tr], xte, k, pre.means)  # seed as in cv: k
            row = {"fold": k, "variant": name, **scores(y[te], pred)}
            row["s"] = time.perf_counter() - t0
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"fold {k} {name}: r={row['r']:.3f} ({row['s']:.0f}s)", flush=True)


def summarise(path: Path) -> list[str]:
    """One line per variant: mean r, mean paired difference to GBLUP +/- SE, per fold."""
    by: dict[str, dict[int, float]] = defaultdict(dict)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by[row["variant"]][row["fold"]] = row["r"]
    ref, lines = by["gblup"], []
    for name, rs in by.items():
        ks = sorted(rs)
        d = np.array([rs[k] - ref[k] for k in ks])
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        folds = " ".join(f"{v:+.3f}" for v in d)
        lines.append(
            f"{name}: r {np.mean([rs[k] for k in ks]):.3f}, - GBLUP {d.mean():+.3f} +/- "
            f"{se:.3f} (folds {folds})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", help="NAME.npz written by genomics.py prepare")
    ap.add_argument("--variants", default='{"default": {}}', help="JSON {name: settings}")
    ap.add_argument("--out", type=Path, default=Path("variants.jsonl"))
    ap.add_argument("--folds", default="0,1,2,3,4", help="repeat-1 folds to run (0-4)")
    ap.add_argument("--summarise", type=Path, default=None, help="Print a JSON-lines summary.")
    args = ap.parse_args(argv)
    if args.summarise:
        print("\n".join(summarise(args.summarise)))
        return 0
    if args.data is None:
        ap.error("DATA (an .npz from bench/genomics.py prepare) is required")
    folds = [int(f) for f in args.folds.split(",")]
    run(args.data, json.loads(args.variants), args.out, folds)
    print("\n".join(summarise(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
