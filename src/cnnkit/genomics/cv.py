"""Cross-validation of genomic prediction methods on identical folds.

For every repeat and fold, one :class:`SnpPreprocessor` is fitted on the training rows
(SNP filtering, imputation, centring) and every method is fitted on those rows only
(penalties, early stopping, standardisation included), then scored on the test rows.
Results: Pearson r, MSE and calibration slope per method as mean +/- SE over the folds,
and the paired difference in r to GBLUP with its SE.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import KFold

from cnnkit.genomics.methods import make_method
from cnnkit.genomics.preprocess import SnpPreprocessor
from cnnkit.genomics.trainer import SnpTrainConfig


@dataclass(frozen=True, kw_only=True)
class CVConfig:
    """Settings of :func:`cross_validate` (CLI flags ``--folds --repeats --seed ...``)."""

    methods: tuple[str, ...] = ("cnn", "mlp", "gblup", "ridge", "lasso", "elasticnet")
    folds: int = 5
    repeats: int = 2
    seed: int = 0
    h2: float | None = None
    device: str = "cpu"
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise ValueError(f"n_jobs must be an int >= 1. Received: n_jobs={self.n_jobs!r}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"folds must be an int >= 2. Received: folds={self.folds!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be an int >= 1. Received: repeats={self.repeats!r}")


def fold_indices(
    n: int, folds: int, repeats: int, seed: int
) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(repeat, fold, train_idx, test_idx)`` for every fold; the same for every method.

    Raises:
        ValueError: fewer samples than folds.
    """
    if n < folds:
        raise ValueError(f"folds must be <= the number of samples ({n}). Received: folds={folds}")
    out = []
    for r in range(repeats):
        kf = KFold(folds, shuffle=True, random_state=seed + r)
        for k, (tr, te) in enumerate(kf.split(np.arange(n))):
            out.append((r, k, tr, te))
    return out


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pearson ``r``, ``mse`` and calibration ``slope`` (regression of y on the prediction)."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    var_p = float(np.var(pred))
    cov = float(np.mean((y - y.mean()) * (pred - pred.mean())))
    r = cov / math.sqrt(var_p * float(np.var(y))) if var_p > 0 and np.var(y) > 0 else 0.0
    return {
        "r": r,
        "mse": float(np.mean((y - pred) ** 2)),
        "slope": cov / var_p if var_p > 0 else 0.0,
    }


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(np.mean(v)), se


def daetwyler(n_train: int, h2: float, ne: float, genome_morgans: float) -> float:
    """Daetwyler et al. (2008) accuracy ``sqrt(N h2 / (N h2 + Me))``, ``Me = 2 Ne L / ln(4 Ne L)``.

    This is the expected correlation with the true genetic value; the expected correlation
    with the phenotype (what cross-validation measures) is ``sqrt(h2)`` times it.
    """
    me = 2 * ne * genome_morgans / math.log(4 * ne * genome_morgans)
    return math.sqrt(n_train * h2 / (n_train * h2 + me))


def _run_task(x, y, tr, te, method, cfg, seed, nets: dict) -> dict:
    """Fit one method on one fold's training rows; score it on the fold's test rows.

    ``nets``: ``train`` and ``model_kwargs`` of the networks (ignored by the baselines).
    """
    if cfg.n_jobs > 1:
        torch.set_num_threads(1)  # the workers share the cores
    t0 = time.perf_counter()
    pre = SnpPreprocessor().fit(x[tr])
    est = make_method(method, seed=seed, means=pre.means, h2=cfg.h2, device=cfg.device, **nets)
    pred = est.fit(pre.transform(x[tr]), y[tr]).predict(pre.transform(x[te]))
    return {
        "method": method,
        **scores(y[te], pred),
        "seconds": time.perf_counter() - t0,
        "snps_dropped": pre.n_dropped,
        "pred": pred,
    }


def _run_all(x, y, config, nets, log) -> list[tuple[int, int, np.ndarray, dict]]:
    """Every (fold, method) task, in order; in parallel worker processes when n_jobs > 1."""
    tasks = []
    for r, k, tr, te in fold_indices(len(y), config.folds, config.repeats, config.seed):
        seed = config.seed * 10_000 + r * 100 + k
        tasks += [(r, k, tr, te, m, seed) for m in config.methods]
    if config.n_jobs > 1:
        from joblib import Parallel, delayed

        rows = Parallel(n_jobs=config.n_jobs)(
            delayed(_run_task)(x, y, tr, te, m, config, seed, nets)
            for _, _, tr, te, m, seed in tasks
        )
    else:
        rows = []
        for r, k, tr, te, m, seed in tasks:
            rows.append(_run_task(x, y, tr, te, m, config, seed, nets))
            log(
                f"repeat {r + 1} fold {k + 1} {m}: r={rows[-1]['r']:.3f} "
                f"({rows[-1]['seconds']:.1f}s)"
            )
    return [(t[0], t[1], t[3], row) for t, row in zip(tasks, rows, strict=True)]


def summarise(fold_rows: list[dict], methods: list[str]) -> tuple[list[dict], list[dict]]:
    """Per-method means +/- SE and paired r differences to GBLUP (when GBLUP ran)."""
    summary, paired = [], []
    by = {m: [r for r in fold_rows if r["method"] == m] for m in methods}
    for m in methods:
        r_mean, r_se = _mean_se([r["r"] for r in by[m]])
        mse_mean, mse_se = _mean_se([r["mse"] for r in by[m]])
        summary.append(
            {
                "method": m,
                "r_mean": r_mean,
                "r_se": r_se,
                "mse_mean": mse_mean,
                "mse_se": mse_se,
                "slope_mean": float(np.mean([r["slope"] for r in by[m]])),
                "seconds": float(np.sum([r["seconds"] for r in by[m]])),
            }
        )
    if "gblup" in by:
        base = np.array([r["r"] for r in by["gblup"]])
        for m in methods:
            if m != "gblup":
                d_mean, d_se = _mean_se(np.array([r["r"] for r in by[m]]) - base)
                paired.append({"method": m, "r_diff_mean": d_mean, "r_diff_se": d_se})
    return summary, paired


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    config: CVConfig,
    *,
    train: SnpTrainConfig | dict | None = None,
    model_kwargs: dict | None = None,
    simulation: dict | None = None,
    log: Callable[[str], None] = lambda s: None,
    keep_predictions: bool = False,
) -> dict:
    """Cross-validate every method on the same folds.

    Args:
        x: genotypes, dosages with ``NaN`` missing, shape ``(N, P)``.
        y: the trait, shape ``(N,)``.
        config: folds, repeats, seed, methods.
        train: settings of the networks (``cnn``, ``mlp``; ``ensemble`` included), or a
            dict of overrides of each network's defaults.
        model_kwargs: builder options of the networks over their defaults (``dropout``, ...).
        simulation: the simulator's ``truth.json``: adds ``ceiling`` (``sqrt(h2)``, 0 for the
            null trait) and ``daetwyler`` (expected r with the phenotype of the additive part,
            ``sqrt(h2_add) * daetwyler(...)``, None without an additive part).
        log: progress lines.
        keep_predictions: add ``predictions``: per repeat, fold and method the test rows
            and their predictions.

    Returns:
        The results dict (``n``, ``p``, ``folds``, ``repeats``, ``methods``, ``paired``,
        ``ceiling``, ``daetwyler``, ``snps_dropped_max`` (monomorphic SNPs dropped in the
        worst training fold), ``fold_results``, ``seed``).
    """
    methods = list(config.methods)
    fold_rows, predictions = [], []
    nets = {"train": train, "model_kwargs": model_kwargs}
    for r, k, te, row in _run_all(x, y, config, nets, log):
        pred = row.pop("pred")
        fold_rows.append({"repeat": r, "fold": k, **row})
        predictions.append(
            {
                "repeat": r,
                "fold": k,
                "method": row["method"],
                "rows": te.tolist(),
                "pred": pred.tolist(),
            }
        )
    summary, paired = summarise(fold_rows, methods)
    result = {
        "n": int(len(y)),
        "p": int(x.shape[1]),
        "folds": config.folds,
        "repeats": config.repeats,
        "seed": config.seed,
        "methods": summary,
        "paired": paired,
        "ceiling": None,
        "daetwyler": None,
        "snps_dropped_max": max(int(f["snps_dropped"]) for f in fold_rows),
        "fold_results": fold_rows,
    }
    if keep_predictions:
        result["predictions"] = predictions
    if simulation:
        h2 = float(simulation["h2"])
        n_train = int(len(y) * (config.folds - 1) / config.folds)
        h2_add = simulation.get("h2_additive", h2)
        result["ceiling"] = 0.0 if simulation.get("trait") == "null" else math.sqrt(h2)
        if h2_add:  # the Daetwyler formula is for the additive part only
            ne, morgans = float(simulation["ne"]), float(simulation["genome_morgans"])
            # accuracy for the breeding value x sqrt(h2): expected r with the phenotype
            acc = daetwyler(n_train, float(h2_add), ne, morgans)
            result["daetwyler"] = math.sqrt(float(h2_add)) * acc
    return result
