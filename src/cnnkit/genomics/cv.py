"""Cross-validation of genomic prediction methods on identical folds.

The unit is a record: a line's value in one trait or environment (``y`` of shape ``(N, E)``,
NaN = no record). A split marks test records; the schemes are

- ``cv1``: K folds of lines, all of a test line's records held out (new lines);
- ``cv2``: K folds of records: a line is held out in some environments and seen in others;
- ``leave-env-out``: each environment held out in turn (multi-environment methods only);
- user folds: a fold per line (``fold_of``, from a fold file) or leave-one-group-out
  (``groups``, e.g. families): each a ``cv1`` split.

For every split and method, one :class:`SnpPreprocessor` is fitted on the training lines
(SNP filtering, imputation, centring) and the method on the training records only
(penalties, REML, early stopping, fixed effects included), then scored on the test records
of each environment. Results: Pearson r, MSE and calibration slope per method (and
environment) as mean +/- SE over the folds, and the paired difference in r to GBLUP.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold

from cnnkit.fileio import finite
from cnnkit.genomics.methods import LINEAR_PART, MULTI_ENV, make_method
from cnnkit.genomics.mixed import KernelBLUP
from cnnkit.genomics.preprocess import SnpPreprocessor
from cnnkit.genomics.trainer import SnpTrainConfig

SCHEMES = ("cv1", "cv2", "leave-env-out")


@dataclass(frozen=True, kw_only=True)
class CVConfig:
    """Settings of :func:`cross_validate` (CLI flags ``--folds --repeats --seed --scheme ...``)."""

    methods: tuple[str, ...] = ("cnn", "mlp", "gblup", "ridge", "lasso", "elasticnet")
    folds: int = 5
    repeats: int = 2
    seed: int = 0
    h2: float | None = None
    device: str = "cpu"
    n_jobs: int = 1
    scheme: str = "cv1"
    select: str = "reml"

    def __post_init__(self) -> None:
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise ValueError(f"n_jobs must be an int >= 1. Received: n_jobs={self.n_jobs!r}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"folds must be an int >= 2. Received: folds={self.folds!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be an int >= 1. Received: repeats={self.repeats!r}")
        if self.scheme not in SCHEMES:
            raise ValueError(
                f"scheme must be one of {', '.join(SCHEMES)}. Received: {self.scheme!r}"
            )
        if self.select not in ("reml", "loo"):
            raise ValueError(f'select must be "reml" or "loo". Received: {self.select!r}')


@dataclass(frozen=True)
class Split:
    """One fold: ``test`` marks the held-out records, shape ``(N, E)``."""

    repeat: int
    fold: int
    test: np.ndarray


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


def _line_splits(observed: np.ndarray, folds, repeats, seed) -> list[Split]:
    out = []
    for r, k, _, te in fold_indices(len(observed), folds, repeats, seed):
        test = np.zeros_like(observed)
        test[te] = True
        out.append(Split(r, k, test & observed))
    return out


def _record_splits(observed: np.ndarray, folds, repeats, seed) -> list[Split]:
    cells = np.argwhere(observed)  # (R, 2): line, env of every record
    out = []
    for r, k, _, te in fold_indices(len(cells), folds, repeats, seed):
        test = np.zeros_like(observed)
        test[cells[te, 0], cells[te, 1]] = True
        out.append(Split(r, k, test))
    return out


def _labelled_splits(observed: np.ndarray, labels: np.ndarray) -> list[Split]:
    """One split per label value (in order of first appearance): its lines are the test set."""
    out = []
    for k, value in enumerate(dict.fromkeys(labels.tolist())):
        test = np.zeros_like(observed)
        test[labels == value] = True
        out.append(Split(0, k, test & observed))
    return out


def make_splits(
    observed: np.ndarray,
    config: CVConfig,
    *,
    fold_of: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> list[Split]:
    """The test records of every fold for ``observed`` ``(N, E)`` (True = a record).

    Args:
        observed: which (line, environment) cells hold a phenotype.
        config: scheme, folds, repeats, seed.
        fold_of: a fold label per line (a user fold file); overrides ``folds``/``repeats``.
        groups: a group label per line: leave-one-group-out.

    Raises:
        ValueError: a fold without test records, or too few lines or records for the folds.
    """
    if fold_of is not None:
        splits = _labelled_splits(observed, np.asarray(fold_of))
    elif groups is not None:
        splits = _labelled_splits(observed, np.asarray(groups))
    elif config.scheme == "cv2":
        splits = _record_splits(observed, config.folds, config.repeats, config.seed)
    elif config.scheme == "leave-env-out":
        if observed.shape[1] < 2:
            raise ValueError("scheme leave-env-out needs several environments (pheno columns)")
        env = np.broadcast_to(np.arange(observed.shape[1]), observed.shape)
        splits = [Split(0, j, observed & (env == j)) for j in range(observed.shape[1])]
    else:
        splits = _line_splits(observed, config.folds, config.repeats, config.seed)
    if len(splits) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds. Received: {len(splits)}")
    return splits


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pearson ``r``, ``mse`` and calibration ``slope`` (regression of y on the prediction).

    Computed on values divided by ``max |y|`` (r and the slope do not change), so a trait of
    any size gives finite r and slope; an MSE beyond float range is infinity.
    """
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    unit = float(np.max(np.abs(y))) or 1.0
    y, pred = y / unit, pred / unit
    var_p = float(np.var(pred))
    cov = float(np.mean((y - y.mean()) * (pred - pred.mean())))
    r = cov / math.sqrt(var_p * float(np.var(y))) if var_p > 0 and np.var(y) > 0 else 0.0
    with np.errstate(over="ignore"):
        mse = float(np.mean((y - pred) ** 2)) * unit * unit
    return {"r": r, "mse": mse, "slope": cov / var_p if var_p > 0 else 0.0}


def _mean_se(values) -> tuple[float, float]:
    """Mean and standard error; beyond float range (a huge trait's MSE) they are infinity."""
    v = np.asarray(values, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        return float(np.mean(v)), se


def daetwyler(n_train: int, h2: float, ne: float, genome_morgans: float) -> float:
    """Daetwyler et al. (2008) accuracy ``sqrt(N h2 / (N h2 + Me))``, ``Me = 2 Ne L / ln(4 Ne L)``.

    This is the expected correlation with the true genetic value; the expected correlation
    with the phenotype (what cross-validation measures) is ``sqrt(h2)`` times it.
    """
    me = 2 * ne * genome_morgans / math.log(4 * ne * genome_morgans)
    return math.sqrt(n_train * h2 / (n_train * h2 + me))


@dataclass
class CVData:
    """What every task needs: genotypes ``x`` ``(N, P)``, traits ``y`` ``(N, E)``, and the
    optional fixed effects (:class:`cnnkit.genomics.dataset.Covariates`) and relationship
    matrix ``kinship`` ``(N, N)``."""

    x: np.ndarray
    y: np.ndarray
    fixed: Any = None
    kinship: np.ndarray | None = None


def _design(data: CVData, tr: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
    return None if data.fixed is None else data.fixed.design(tr, rows)


def _fit_single(data: CVData, y, tr, te, method, cfg, seed, nets) -> dict[str, np.ndarray]:
    """One single-environment method fitted on lines ``tr`` and predicting lines ``te``.

    Returns:
        ``{method: predictions}``, plus ``{method}_linear`` for a network's linear part.
    """
    fixed_tr, fixed_te = _design(data, tr, tr), _design(data, tr, te)
    if method == "kblup":
        k = data.kinship
        if k is None:
            raise ValueError("method kblup needs a relationship matrix (--kinship FILE)")
        est = KernelBLUP(cfg.h2, select=cfg.select).fit(k[np.ix_(tr, tr)], y[tr], fixed_tr)
        return {method: est.predict(k[np.ix_(te, tr)], fixed_te)}
    pre = SnpPreprocessor().fit(data.x[tr])
    est = make_method(
        method, seed=seed, means=pre.means, h2=cfg.h2, device=cfg.device,
        fixed=fixed_tr is not None, select=cfg.select, **nets,
    )  # fmt: skip
    z_tr, z_te = pre.transform(data.x[tr]), pre.transform(data.x[te])
    if fixed_tr is None:
        est.fit(z_tr, y[tr])
        out = {method: est.predict(z_te)}
    else:
        est.fit(z_tr, y[tr], fixed_tr)
        out = {method: est.predict(z_te, fixed_te)}
    if method in LINEAR_PART:
        linear = (
            est.predict_linear(z_te) if fixed_te is None else est.predict_linear(z_te, fixed_te)
        )
        out[f"{method}_linear"] = linear
    return out


def _fit_multi(data: CVData, train, test, method, cfg, seed, nets) -> dict[str, np.ndarray]:
    """One multi-environment method on all training records; predictions ``(N, E)``."""
    lines = np.flatnonzero(train.any(axis=1))
    pre = SnpPreprocessor().fit(data.x[lines])
    est = make_method(
        method, seed=seed, means=pre.means, h2=cfg.h2, device=cfg.device, select=cfg.select,
        **nets,
    )  # fmt: skip
    y_train = np.where(train, data.y, np.nan)[lines]
    est.fit(pre.transform(data.x[lines]), y_train)
    rows = np.flatnonzero(test.any(axis=1))
    z_rows = pre.transform(data.x[rows])
    out = {method: np.full(data.y.shape, np.nan)}
    out[method][rows] = est.predict(z_rows)
    if method in LINEAR_PART:
        out[f"{method}_linear"] = np.full(data.y.shape, np.nan)
        out[f"{method}_linear"][rows] = est.predict_linear(z_rows)
    return out


def _run_task(data: CVData, split: Split, method: str, cfg: CVConfig, seed: int, nets) -> list:
    """Fit one method on one split's training records; score it per environment."""
    if cfg.n_jobs > 1:
        torch.set_num_threads(1)  # the workers share the cores
    t0 = time.perf_counter()
    observed = ~np.isnan(data.y)
    test = split.test & observed
    train = observed & ~split.test
    preds: dict[str, np.ndarray] = {}
    if method in MULTI_ENV:
        preds = _fit_multi(data, train, test, method, cfg, seed, nets)
    else:
        for j in range(data.y.shape[1]):
            tr, te = np.flatnonzero(train[:, j]), np.flatnonzero(test[:, j])
            if te.size == 0:
                continue
            if tr.size < 3:
                raise ValueError(
                    f"method {method} has fewer than 3 training records in environment {j + 1} "
                    f"of fold {split.fold + 1}; use a multi-environment method for this scheme"
                )
            for name, p in _fit_single(data, data.y[:, j], tr, te, method, cfg, seed, nets).items():
                preds.setdefault(name, np.full(data.y.shape, np.nan))[te, j] = p
    seconds = time.perf_counter() - t0
    return [_score_rows(name, pred, data.y, test, split, seconds) for name, pred in preds.items()]


def _score_rows(name, pred, y, test, split: Split, seconds: float) -> dict:
    per_env = []
    for j in range(y.shape[1]):
        te = np.flatnonzero(test[:, j])
        if te.size:
            per_env.append({
                "env": j, **scores(y[te, j], pred[te, j]), "n_test": int(te.size),
                "rows": te.tolist(), "pred": pred[te, j].tolist(),
            })  # fmt: skip
    return {"repeat": split.repeat, "fold": split.fold, "method": name,
            "seconds": seconds, "envs": per_env}  # fmt: skip


def summarise(fold_rows: list[dict], methods: list[str], envs: list[str] | None = None):
    """Per-method (and environment) means +/- SE, and paired r differences.

    Paired: every method against GBLUP on the same folds (when GBLUP ran), and each network
    against its own linear part (``cnn`` vs ``cnn_linear``).
    """
    summary, paired = [], []
    env_keys = sorted({f.get("env", 0) for f in fold_rows})
    for m in methods:
        for e in env_keys:
            rows = [r for r in fold_rows if r["method"] == m and r.get("env", 0) == e]
            if not rows:
                continue
            r_mean, r_se = _mean_se([r["r"] for r in rows])
            mse_mean, mse_se = _mean_se([r["mse"] for r in rows])
            entry = {
                "method": m, "r_mean": r_mean, "r_se": r_se, "mse_mean": mse_mean,
                "mse_se": mse_se, "slope_mean": float(np.mean([r["slope"] for r in rows])),
                "seconds": float(np.sum([r["seconds"] for r in rows])), "folds": len(rows),
            }  # fmt: skip
            if envs is not None:
                entry["env"] = envs[e]
            summary.append(entry)
    for m in methods:
        base = "gblup" if m != "gblup" else None
        for b in (base, f"{m}_linear"):
            if b is None or b not in methods:
                continue
            for e in env_keys:
                diff = _paired(fold_rows, m, b, e)
                if diff is None:
                    continue
                entry = {"method": m, "against": b, "r_diff_mean": diff[0], "r_diff_se": diff[1]}
                if envs is not None:
                    entry["env"] = envs[e]
                paired.append(entry)
    return summary, paired


def _paired(fold_rows, m: str, base: str, env: int) -> tuple[float, float] | None:
    def by_fold(name):
        return {(r["repeat"], r["fold"]): r["r"] for r in fold_rows
                if r["method"] == name and r.get("env", 0) == env}  # fmt: skip

    a, b = by_fold(m), by_fold(base)
    keys = [k for k in a if k in b]
    if not keys:
        return None
    return _mean_se([a[k] - b[k] for k in keys])


class Progress:
    """Counts finished (fold, method) tasks and logs each with the overall count and an ETA.

    One line per task on the log (stderr), whether or not it is a terminal, so a cv run
    from Rscript, nohup or CI is never silent.
    """

    def __init__(self, total: int, done: int, log: Callable[[str], None]) -> None:
        self.total, self.done, self.log = total, done, log
        self.start, self.new = time.perf_counter(), 0

    def step(self, text: str) -> None:
        self.done += 1
        self.new += 1
        elapsed = time.perf_counter() - self.start
        left = (self.total - self.done) * elapsed / self.new
        self.log(
            f"[{self.done}/{self.total}] {text}; elapsed {_clock(elapsed)}, ETA {_clock(left)}"
        )


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def fingerprint(data: CVData, config: CVConfig, nets: dict, splits: list[Split]) -> str:
    """A hash of the data, settings and folds: a progress file is resumed only if it matches."""
    h = hashlib.sha256()
    for arr in (data.x, data.y, data.kinship):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    if data.fixed is not None:
        h.update(repr(data.fixed).encode())
    h.update(json.dumps(asdict(config), sort_keys=True, default=str).encode())
    h.update(json.dumps(nets, sort_keys=True, default=str).encode())
    for s in splits:
        h.update(np.packbits(s.test).tobytes())
    return h.hexdigest()[:32]


class ProgressFile:
    """Finished tasks, one JSON line each, appended and fsynced as they finish.

    The first line is ``{"fingerprint": ...}``; a file with another fingerprint is refused
    (its results belong to other data or settings). A torn last line (a kill mid-write) is
    ignored.
    """

    def __init__(self, path: str | Path, key: str) -> None:
        self.path, self.key = Path(path), key
        self.finished: dict[tuple[int, int, str], list[dict]] = {}
        if self.path.exists():
            self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"fingerprint": key})

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            head = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            head = {}
        if head.get("fingerprint") != self.key:
            raise FileExistsError(
                f"{self.path} holds an unfinished cross-validation of other data or settings; "
                "rerun that command to finish it, or delete the file (or pass --overwrite)"
            )
        for line in lines[1:]:
            try:
                task = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn last line
            self.finished[(task["repeat"], task["fold"], task["method"])] = task["rows"]

    def _append(self, obj: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(finite(obj), allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def add(self, repeat: int, fold: int, method: str, rows: list[dict]) -> None:
        self._append({"repeat": repeat, "fold": fold, "method": method, "rows": rows})


def _tasks(splits: list[Split], config: CVConfig):
    for s in splits:
        seed = config.seed * 10_000 + s.repeat * 100 + s.fold
        for m in config.methods:
            yield s, m, seed


def _run_all(data, splits, config, nets, log, progress_file) -> list[dict]:
    """Every (fold, method) task: finished ones from ``progress_file``, the rest run now."""
    tasks = list(_tasks(splits, config))
    done = progress_file.finished if progress_file is not None else {}
    todo = [t for t in tasks if (t[0].repeat, t[0].fold, t[1]) not in done]
    if done:
        log(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} (fold, method) results kept")
    prog = Progress(len(tasks), len(tasks) - len(todo), log)

    def finish(task, rows):
        s, m, _ = task
        if progress_file is not None:
            progress_file.add(s.repeat, s.fold, m, _clean(rows))
        done[(s.repeat, s.fold, m)] = rows
        r = ", ".join(f"{e['r']:.3f}" for e in rows[0]["envs"])
        prog.step(f"repeat {s.repeat + 1} fold {s.fold + 1} {m}: r={r} ({rows[0]['seconds']:.1f}s)")

    if config.n_jobs > 1 and len(todo) > 1:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=config.n_jobs, return_as="generator")(
            delayed(_run_task)(data, s, m, config, seed, nets) for s, m, seed in todo
        )
        for task, rows in zip(todo, results, strict=True):
            finish(task, rows)
    else:
        for task in todo:
            s, m, seed = task
            finish(task, _run_task(data, s, m, config, seed, nets))
    return [row for s, m, _ in tasks for row in done[(s.repeat, s.fold, m)]]


def _clean(rows: list[dict]) -> list[dict]:
    return finite(rows)


def _flatten(task_rows: list[dict], multi: bool):
    fold_rows, predictions = [], []
    for t in task_rows:
        for e in t["envs"]:
            row = {"repeat": t["repeat"], "fold": t["fold"], "method": t["method"]}
            if multi:
                row["env"] = e["env"]
            row.update(r=e["r"], mse=e["mse"], slope=e["slope"], n_test=e["n_test"],
                       seconds=t["seconds"] / len(t["envs"]))  # fmt: skip
            fold_rows.append(row)
            pred = {k: row[k] for k in ("repeat", "fold", "method")}
            if multi:
                pred["env"] = e["env"]
            predictions.append({**pred, "rows": e["rows"], "pred": e["pred"]})
    return fold_rows, predictions


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
    fixed=None,
    kinship: np.ndarray | None = None,
    fold_of: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    envs: list[str] | None = None,
    progress_file: str | Path | None = None,
) -> dict:
    """Cross-validate every method on the same folds.

    Args:
        x: genotypes, dosages with ``NaN`` missing, shape ``(N, P)``.
        y: the trait, shape ``(N,)``, or several environments ``(N, E)`` (NaN = no record).
        config: folds, repeats, seed, methods, scheme.
        train: settings of the networks (``cnn``, ``mlp``; ``ensemble`` included), or a
            dict of overrides of each network's defaults.
        model_kwargs: builder options of the networks over their defaults (``dropout``, ...).
        simulation: the simulator's ``truth.json``: adds ``ceiling`` (``sqrt(h2)``, 0 for the
            null trait) and ``daetwyler`` (expected r with the phenotype of the additive part,
            ``sqrt(h2_add) * daetwyler(...)``, None without an additive part).
        log: progress lines (one per finished task, with the count and an ETA).
        keep_predictions: add ``predictions``: per repeat, fold and method the test rows
            and their predictions.
        fixed: fixed effects and covariates (:class:`cnnkit.genomics.dataset.Covariates`).
        kinship: a relationship matrix ``(N, N)`` for method ``kblup``.
        fold_of: a fold label per line (user folds); groups: a group label per line
            (leave-one-group-out).
        envs: names of the columns of ``y`` (environments).
        progress_file: a JSON-lines file of finished tasks: written as tasks finish, and
            read first to resume an interrupted run of the same data and settings.

    Returns:
        The results dict (``n``, ``p``, ``folds``, ``repeats``, ``methods``, ``paired``,
        ``ceiling``, ``daetwyler``, ``snps_dropped_max`` (monomorphic SNPs dropped in the
        worst training fold), ``fold_results``, ``seed``; ``scheme`` and ``envs`` for several
        environments).
    """
    y2 = np.asarray(y, dtype=np.float64)
    multi = y2.ndim == 2 and y2.shape[1] > 1
    y2 = y2.reshape(len(y2), -1)
    data = CVData(np.asarray(x), y2, fixed, kinship)
    _refuse_fixed_in_multi_env(config.methods, fixed)
    splits = make_splits(~np.isnan(y2), config, fold_of=fold_of, groups=groups)
    nets = {"train": train, "model_kwargs": model_kwargs}
    pf = None
    if progress_file is not None:
        key = fingerprint(data, config, {**nets, "train": _jsonable_train(train)}, splits)
        pf = ProgressFile(progress_file, key)
    task_rows = _run_all(data, splits, config, nets, log, pf)
    fold_rows, predictions = _flatten(task_rows, multi)
    names = list(dict.fromkeys(t["method"] for t in task_rows))
    env_names = envs or [f"env{j + 1}" for j in range(y2.shape[1])]
    summary, paired = summarise(fold_rows, names, env_names if multi else None)
    n_repeats = len({s.repeat for s in splits})
    if multi:
        for row in fold_rows:
            row["env"] = env_names[row["env"]]
        for p in predictions:
            p["env"] = env_names[p["env"]]
    result = {
        "n": int(len(y2)), "p": int(x.shape[1]), "folds": len(splits) // n_repeats,
        "repeats": n_repeats,
        "seed": config.seed, "scheme": _scheme_name(config, fold_of, groups),
        "methods": summary, "paired": paired, "ceiling": None, "daetwyler": None,
        "snps_dropped_max": _snps_dropped_max(data, splits), "fold_results": fold_rows,
    }  # fmt: skip
    if multi:
        result["envs"] = env_names
    if keep_predictions:
        result["predictions"] = predictions
    if simulation:
        _add_simulation(result, simulation, len(y2), config.folds)
    return result


def _refuse_fixed_in_multi_env(methods, fixed) -> None:
    """The multi-environment models estimate environment means only (no other fixed effects)."""
    multi = [m for m in methods if m in MULTI_ENV]
    if fixed is not None and multi:
        raise ValueError(
            f"method {multi[0]} takes no fixed effects or covariates (it estimates one mean per "
            f"environment); drop --fixed/--covariates or the multi-environment methods. "
            f"Received: {', '.join(fixed.names)}"
        )


def _scheme_name(config: CVConfig, fold_of, groups) -> str:
    if fold_of is not None:
        return "fold-file"
    if groups is not None:
        return "leave-group-out"
    return config.scheme


def _snps_dropped_max(data: CVData, splits: list[Split]) -> int:
    """Monomorphic SNPs dropped in the worst training fold (the preprocessor's count)."""
    worst = 0
    observed = ~np.isnan(data.y)
    for s in splits:
        lines = np.flatnonzero((observed & ~s.test).any(axis=1))
        sub = data.x[lines]
        with np.errstate(all="ignore"):
            lo, hi = np.nanmin(sub, axis=0), np.nanmax(sub, axis=0)
        worst = max(worst, int(np.sum(~(hi > lo))))
    return worst


def _jsonable_train(train):
    return train.to_dict() if isinstance(train, SnpTrainConfig) else train


def _add_simulation(result: dict, simulation: dict, n: int, folds: int) -> None:
    h2 = float(simulation["h2"])
    n_train = int(n * (folds - 1) / folds)
    h2_add = simulation.get("h2_additive", h2)
    result["ceiling"] = 0.0 if simulation.get("trait") == "null" else math.sqrt(h2)
    if h2_add:  # the Daetwyler formula is for the additive part only
        ne, morgans = float(simulation["ne"]), float(simulation["genome_morgans"])
        # accuracy for the breeding value x sqrt(h2): expected r with the phenotype
        acc = daetwyler(n_train, float(h2_add), ne, morgans)
        result["daetwyler"] = math.sqrt(float(h2_add)) * acc
