"""Learning curves: how accuracy grows with the number of training images, and what more
images would likely bring.

:func:`learning_curve` splits the data once (``split.csv``: the same validation images for
every point), trains ordinary runs (:func:`cnnkit.train.train_run`, the settings of
``cnnkit train``) on growing stratified subsets of the training images, each fraction
``repeats`` times with its own subset and seed, fits ``err(n) = a * n**-b + c``
(:mod:`cnnkit.train.powerlaw`) and predicts the accuracy with 2x and 4x the training images,
with a bootstrap interval. The folder::

    OUT/
      .cnnkit-run            marker (kind: learning-curve)
      split.csv              the one split (path,label,subset)
      points/f0.1-r1/ ...    one run folder per point
      learning_curve.csv     fraction,n_train,repeat,seed,val_accuracy,val_loss,seconds,run
      learning_curve.json    settings, points, fit, predictions and the curve with its band

A point is finished when its run folder holds ``metrics.json``; :func:`resume_learning_curve`
keeps finished points, continues a point that stopped mid-training from its checkpoint, and
trains the rest. Drawing ``learning_curve.png`` and ``report.html`` is the report stage's job
(:func:`cnnkit.report.render_learning_curve`).
"""

from __future__ import annotations

import csv
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit import __version__
from cnnkit.errors import Arg, RunFolderError, user_error
from cnnkit.fileio import atomic_write_json, atomic_write_text, read_json
from cnnkit.progress import duration
from cnnkit.runs import layout
from cnnkit.runs.layout import check_run_dir, create_run_dir
from cnnkit.runs.split import read_split, write_split
from cnnkit.train import data_source
from cnnkit.train.config import TrainConfig
from cnnkit.train.powerlaw import bootstrap, fit_power_law
from cnnkit.train.run import resume_run, train_run

DEFAULT_FRACTIONS = (0.1, 0.2, 0.4, 0.7, 1.0)
DEFAULT_REPEATS = 3
MULTIPLES = (1, 2, 4)
"""The predictions reported, as multiples of the training images there are."""
MIN_PER_CLASS = 2
"""Training images each class needs at the smallest fraction."""
BOOTSTRAP_REPLICATES = 1000
CSV_FIELDS = ("fraction", "n_train", "repeat", "seed", "val_accuracy", "val_loss", "seconds",
              "run")  # fmt: skip
METHOD = (
    "Least-squares fit of err(n) = a * n^-b + c to every point's validation error (b searched "
    "in [0.01, 2], (a, c) solved for each b; a >= 0, 0 <= c <= 1). Interval: 2.5-97.5 "
    "percentiles of {replicates} bootstrap refits, each resampling the validation images "
    "(the same draw for every point) and the repeats within each training-set size. It covers "
    "the validation sample and the subset/seed variation, assuming the power law holds up to "
    "the sizes predicted."
)


_RESULTS = ("points", "by_fraction", "fit", "predictions", "curve", "answer")
"""Keys of learning_curve.json computed from the points (rewritten on resume)."""


@dataclass(frozen=True)
class Point:
    """One training run of the curve: ``repeat`` of ``fraction``, on ``indices``."""

    index: int
    fraction: float
    repeat: int
    seed: int
    indices: np.ndarray

    @property
    def name(self) -> str:
        return f"f{self.fraction:g}-r{self.repeat}"


@dataclass
class CurveResult:
    """What :func:`learning_curve` returns: the folder, the summary it wrote, its time."""

    out: Path
    summary: dict[str, Any]
    seconds: float

    @property
    def answer(self) -> str:
        return str(self.summary.get("answer", ""))


class CurveInterrupted(KeyboardInterrupt):
    """Ctrl-C during a learning curve: finished points are kept; it resumes."""

    def __init__(self, out: Path, done: int, total: int) -> None:
        self.out, self.done, self.total = out, done, total
        super().__init__(
            f"interrupted with {done} of {total} points finished; continue with "
            f"resume_learning_curve({str(out)!r})"
        )

    def cli_message(self) -> str:
        return (
            f"interrupted with {self.done} of {self.total} points finished; continue with: "
            f"cnnkit learning-curve --resume {self.out}"
        )


# --------------------------------------------------------------------------- entry points


def learning_curve(
    config: TrainConfig,
    out: str | Path,
    *,
    fractions: tuple[float, ...] | list[float] = DEFAULT_FRACTIONS,
    repeats: int = DEFAULT_REPEATS,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> CurveResult:
    """Train on growing subsets of the training images and fit a power law to the accuracy.

    Args:
        config: the settings of every point's run (as ``cnnkit train``'s); ``seed`` seeds
            the split, the subsets and, plus the point's number, each run.
        out: the folder to write (refused if it holds a learning curve, unless
            ``overwrite``; :func:`resume_learning_curve` continues one).
        fractions: shares of the training images, in (0, 1]; three distinct at least.
        repeats: runs per fraction, each on its own subset with its own seed.
        overwrite: replace what cnnkit wrote in ``out``.
        progress: one line per finished point on stderr, with the time left.
        device: ``cpu``/``cuda``; default CUDA when available.

    Returns:
        The :class:`CurveResult`; ``summary`` is ``learning_curve.json``.

    Raises:
        ValueError: bad fractions/repeats, k-fold or multi-process settings, or a class with
            fewer than :data:`MIN_PER_CLASS` training images at the smallest fraction.
        CurveInterrupted: Ctrl-C; finished points are kept.

    Example:
        >>> cfg = TrainConfig(data="fm", epochs=5)
        >>> learning_curve(cfg, "curves/fm").answer  # doctest: +SKIP
        'with 2x / 4x the training images (1,600 / 3,200), expected accuracy ...'
    """
    fractions = check_fractions(fractions)
    _check_settings(config, repeats)
    out = Path(out)
    _check_out(out, overwrite)
    data = data_source.load_run_data(config)
    config = data_source.with_model(config, data)
    if progress and data.choice is not None:
        _log(data.choice.describe())
    train_idx, val_idx = data_source.split(data.arrays, config)
    data_source.check_split(data.arrays, train_idx, val_idx, config)
    points = plan(data.arrays, train_idx, fractions, repeats, config.seed)
    create_run_dir(out, overwrite=overwrite, kind="learning-curve")
    write_split(out / layout.SPLIT, data.arrays, train_idx, val_idx)
    state = _state(config, data, train_idx, val_idx, fractions, repeats)
    atomic_write_json(out / layout.LEARNING_CURVE, state)
    return _Curve(out, config, data, val_idx, points, state, progress, device).run()


def resume_learning_curve(
    out: str | Path, *, progress: bool = True, device: str | None = None
) -> CurveResult:
    """Continue the learning curve in ``out``: finished points are kept, the rest trained.

    Raises:
        RunFolderError: ``out`` holds no learning curve, or its split no longer matches the
            data.
    """
    out = Path(out)
    saved = read_json(out / layout.LEARNING_CURVE, "learning curve")
    state = {k: v for k, v in saved.items() if k not in _RESULTS} | {"status": "running"}
    try:
        config = TrainConfig.from_dict(state["settings"])
        fractions, repeats = check_fractions(state["fractions"]), int(state["repeats"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunFolderError(f"{out / layout.LEARNING_CURVE}: not a learning curve ({e})") from e
    data = data_source.load_run_data(config)
    config = data_source.with_model(config, data)
    train_idx, val_idx = read_split(out / layout.SPLIT, data.arrays)
    points = plan(data.arrays, train_idx, fractions, repeats, config.seed)
    return _Curve(out, config, data, val_idx, points, state, progress, device).run()


# --------------------------------------------------------------------------- checks and plan


def check_fractions(fractions: Any) -> tuple[float, ...]:
    """The fractions sorted, each in (0, 1], three distinct at least.

    Raises:
        ValueError: naming the fractions received.
    """
    try:
        values = sorted({float(f) for f in fractions})
    except (TypeError, ValueError):
        raise ValueError(
            f"fractions must be numbers in (0, 1]. Received: fractions={fractions!r}"
        ) from None
    if any(not 0 < f <= 1 for f in values) or len(values) < 3:
        raise ValueError(
            "fractions must be three or more distinct numbers in (0, 1] (a power law has "
            f"three parameters). Received: fractions={list(fractions)!r}"
        )
    return tuple(values)


def _check_settings(config: TrainConfig, repeats: Any) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int. Received: repeats={repeats!r}")
    if config.folds > 1:
        raise ValueError(
            "a learning curve validates every point on one split; k-fold is not supported. "
            f"Received: folds={config.folds}"
        )
    if config.devices > 1:
        raise ValueError(
            "a learning curve trains its points in this process; data-parallel training is "
            f"not supported. Received: devices={config.devices}"
        )


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a folder that holds a learning curve (unless ``overwrite``) or something else."""
    if (out / layout.LEARNING_CURVE).is_file() and not overwrite:
        raise user_error(
            FileExistsError,
            "{out} already holds a learning curve; pass {ow} to replace it, or continue it "
            "with {resume}",
            out=out,
            ow=Arg("overwrite=True", "--overwrite"),
            resume=Arg(
                f"resume_learning_curve({str(out)!r})", f"cnnkit learning-curve --resume {out}"
            ),  # fmt: skip
        )
    check_run_dir(out, overwrite=overwrite)


def plan(
    arrays: Any, train_idx: np.ndarray, fractions: tuple[float, ...], repeats: int, seed: int
) -> list[Point]:
    """The points of the curve: for each fraction and repeat, a stratified subset of
    ``train_idx`` drawn with its own seed (the same plan on every call).

    Raises:
        ValueError: a class has fewer than :data:`MIN_PER_CLASS` images at the smallest
            fraction, or the fractions give fewer than three distinct sizes.
    """
    labels = arrays.labels[train_idx]
    by_class = [np.sort(train_idx[labels == c]) for c in range(len(arrays.class_names))]
    _check_smallest(arrays.class_names, by_class, fractions[0])
    points: list[Point] = []
    for f in fractions:
        for r in range(1, repeats + 1):
            rng = np.random.default_rng([seed, round(f * 1_000_000), r])
            take = [rng.choice(ix, _count(f, len(ix)), replace=False) for ix in by_class]
            idx = np.sort(np.concatenate(take))
            points.append(Point(len(points), f, r, seed + len(points), idx))
    sizes = sorted({len(p.indices) for p in points})
    if len(sizes) < 3:
        raise ValueError(
            f"fractions={list(fractions)} of {len(train_idx)} training images give only "
            f"{len(sizes)} distinct sizes ({sizes}); a power law needs three: spread the "
            "fractions or add images"
        )
    return points


def _count(fraction: float, available: int) -> int:
    return available if fraction >= 1 else max(1, round(fraction * available))


def _check_smallest(class_names: list[str], by_class: list[np.ndarray], fraction: float) -> None:
    for name, ix in zip(class_names, by_class, strict=True):
        k = _count(fraction, len(ix)) if len(ix) else 0
        if k < MIN_PER_CLASS:
            need = int(np.ceil(MIN_PER_CLASS / fraction))
            raise ValueError(
                f"class {name!r} has {len(ix)} training images: the smallest fraction "
                f"({fraction:g}) leaves {k}, and each class needs at least {MIN_PER_CLASS}; "
                f"raise the smallest fraction or give {name!r} about {need} training images"
            )


def _state(config, data, train_idx, val_idx, fractions, repeats) -> dict[str, Any]:
    """``learning_curve.json`` as the curve starts: what it is, before any point."""
    return {
        "kind": "learning-curve",
        "status": "running",
        "data": config.data,
        "model": config.model,
        "settings": config.to_dict(),
        "fractions": list(fractions),
        "repeats": repeats,
        "class_names": list(data.arrays.class_names),
        "n_images": len(data.arrays),
        "n_train": len(train_idx),
        "n_validation": len(val_idx),
        "input": data.choice.describe() if data.choice is not None else None,
        "cnnkit_version": __version__,
    }


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- training


class _Curve:
    """Trains the points that are not finished, then writes the summary."""

    def __init__(self, out, config, data, val_idx, points, state, progress, device) -> None:
        self.out, self.config, self.data, self.val_idx = Path(out), config, data, val_idx
        self.points, self.state, self.progress, self.device = points, state, progress, device
        self.records: dict[int, dict[str, Any]] = {}

    def run(self) -> CurveResult:
        t0 = time.perf_counter()
        for p in self.points:
            record = _finished(self.out, p)
            if record is not None:
                self.records[p.index] = record
        todo = [p for p in self.points if p.index not in self.records]
        self._say_start(todo)
        timed: list[tuple[int, float]] = []
        for p in todo:
            try:
                record = self._train(p)
            except KeyboardInterrupt:
                raise CurveInterrupted(self.out, len(self.records), len(self.points)) from None
            self.records[p.index] = record
            timed.append((len(p.indices), record["seconds"]))
            self._write_progress()
            self._say_point(p, record, timed, todo)
        self._write_progress()
        summary = summarise(self.state, self._ordered(), self._correct())
        atomic_write_json(self.out / layout.LEARNING_CURVE, summary)
        return CurveResult(self.out, summary, time.perf_counter() - t0)

    def _train(self, p: Point) -> dict[str, Any]:
        run_dir = self.out / layout.POINTS_DIR / p.name
        result = None
        if (run_dir / layout.CHECKPOINT).is_file():  # stopped mid-training: continue it
            try:
                result = resume_run(run_dir, device=self.device, quiet=True)
            except RunFolderError as e:  # e.g. killed after its last epoch, before its metrics
                if self.progress:
                    _log(f"point {p.name} cannot continue ({e}); training it again")
        if result is None:
            cfg = self.config.replace(seed=p.seed)
            result = train_run(cfg, run_dir, overwrite=True, device=self.device, quiet=True,
                               data=self.data, split=(p.indices, self.val_idx))  # fmt: skip
        return _record(p, run_dir, result.metrics, result.seconds)

    def _ordered(self) -> list[dict[str, Any]]:
        return [self.records[p.index] for p in self.points]

    def _write_progress(self) -> None:
        """learning_curve.csv and the finished points in learning_curve.json."""
        done = [self.records[p.index] for p in self.points if p.index in self.records]
        atomic_write_json(self.out / layout.LEARNING_CURVE, {**self.state, "points": done})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(_csv_row(r) for r in done)
        atomic_write_text(self.out / layout.LEARNING_CURVE_CSV, buf.getvalue())

    def _correct(self) -> np.ndarray:
        """``(points, validation images)``: which images each point's model got right."""
        paths = [self.data.arrays.file_paths[i] for i in self.val_idx]
        rows = [_correct_of(self.out / r["run"], paths) for r in self._ordered()]
        return np.stack(rows)

    def _say_start(self, todo: list[Point]) -> None:
        if not self.progress:
            return
        s = self.state
        kept = len(self.points) - len(todo)
        _log(
            f"learning curve: {len(self.points)} points ({len(s['fractions'])} fractions x "
            f"{s['repeats']} repeats) of {s['n_train']} training images, validated on the "
            f"same {s['n_validation']} images" + (f"; {kept} finished points kept" if kept else "")
        )

    def _say_point(self, p: Point, record, timed, todo: list[Point]) -> None:
        if not self.progress:
            return
        done = len(self.records)
        left = [len(q.indices) for q in todo[todo.index(p) + 1 :]]
        eta = f"; about {duration(_eta(timed, left))} left" if left else ""
        _log(
            f"point {done}/{len(self.points)}: fraction {p.fraction:g} ({len(p.indices)} images), "
            f"repeat {p.repeat}: accuracy {record['val_accuracy']:.4f}, loss "
            f"{record['val_loss']:.4f}, {record['seconds']:.1f} s{eta}"
        )


def _eta(timed: list[tuple[int, float]], left: list[int]) -> float:
    """Seconds left: a straight line through (images, seconds) of the points trained so far
    (a fixed cost per point plus a cost per image), proportional when there is one size."""
    n = np.array([t[0] for t in timed], dtype=float)
    s = np.array([t[1] for t in timed], dtype=float)
    if len(np.unique(n)) >= 2:
        slope, icpt = np.polyfit(n, s, 1)
        if slope > 0 and icpt >= 0:
            return float(sum(icpt + slope * m for m in left))
    return float(s.sum() / n.sum() * sum(left))


def _record(p: Point, run_dir: Path, metrics: dict[str, Any], seconds: float | None):
    return {
        "fraction": p.fraction,
        "n_train": len(p.indices),
        "repeat": p.repeat,
        "seed": p.seed,
        "val_accuracy": float(metrics["accuracy"]),
        "val_loss": float(metrics["log_loss"]),
        "seconds": float(seconds) if seconds is not None else float("nan"),
        "run": f"{layout.POINTS_DIR}/{p.name}",
    }


def _finished(out: Path, p: Point) -> dict[str, Any] | None:
    """The record of a point whose run folder holds its metrics (None: not finished)."""
    run_dir = out / layout.POINTS_DIR / p.name
    if not (run_dir / layout.METRICS).is_file():
        return None
    metrics = read_json(run_dir / layout.METRICS, "metrics")
    config = read_json(run_dir / layout.CONFIG, "run config")
    seconds = (config.get("timing") or {}).get("total_seconds")
    return _record(p, run_dir, metrics, seconds)


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    row = dict(record)
    for key in ("val_accuracy", "val_loss"):
        row[key] = f"{record[key]:.6f}"
    row["seconds"] = f"{record['seconds']:.2f}"
    return row


def _correct_of(run_dir: Path, paths: list[str]) -> np.ndarray:
    """Whether the run's model got each of ``paths`` right, from its predictions.csv."""
    with open(run_dir / layout.PREDICTIONS, newline="", encoding="utf-8",
              errors="surrogateescape") as f:  # fmt: skip
        right = {r["path"]: r["label"] == r["predicted"] for r in csv.DictReader(f)}
    missing = [p for p in paths if p not in right]
    if missing:
        raise RunFolderError(
            f"{run_dir / layout.PREDICTIONS}: {len(missing)} validation images of the curve's "
            f"split are missing, e.g. {missing[:2]}"
        )
    return np.array([right[p] for p in paths], dtype=bool)


# --------------------------------------------------------------------------- the fit


def summarise(state: dict[str, Any], records: list[dict[str, Any]], correct: np.ndarray):
    """``learning_curve.json`` once every point is finished: the points, their means per
    fraction, the power law, the predictions at :data:`MULTIPLES` and the fitted curve."""
    n = np.array([r["n_train"] for r in records], dtype=float)
    acc = np.array([r["val_accuracy"] for r in records], dtype=float)
    law = fit_power_law(n, 1.0 - acc)
    full = int(state["n_train"])
    grid = np.unique(np.concatenate([np.geomspace(n.min() * 0.8, full * 4.2, 60),
                                     [full * m for m in MULTIPLES]]))  # fmt: skip
    seed = int(state["settings"].get("seed", 0))
    band = bootstrap(n, correct, grid, replicates=BOOTSTRAP_REPLICATES, seed=seed)
    fitted = law.accuracy(grid)
    at = {float(g): (float(f), float(lo), float(hi))
          for g, f, lo, hi in zip(grid, fitted, band.lo, band.hi, strict=True)}  # fmt: skip
    predictions = [
        {"multiple": m, "n_train": full * m, "accuracy": at[float(full * m)][0],
         "ci": [at[float(full * m)][1], at[float(full * m)][2]]}
        for m in MULTIPLES
    ]  # fmt: skip
    summary = {
        **state,
        "status": "complete",
        "points": records,
        "by_fraction": _by_fraction(records),
        "fit": {
            "formula": "err(n) = a * n^-b + c",
            "a": law.a,
            "b": law.b,
            "c": law.c,
            "rmse": law.rmse,
            "asymptote_accuracy": 1.0 - law.c,
            "interval": "95% two-way bootstrap",
            "replicates": band.replicates,
            "method": METHOD.format(replicates=band.replicates),
        },  # fmt: skip
        "predictions": predictions,
        "curve": [
            {"n_train": float(g), "accuracy": v[0], "lo": v[1], "hi": v[2]} for g, v in at.items()
        ],  # fmt: skip
    }
    summary["answer"] = answer(summary)
    return summary


def _by_fraction(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for f in sorted({r["fraction"] for r in records}):
        accs = [r["val_accuracy"] for r in records if r["fraction"] == f]
        n = next(r["n_train"] for r in records if r["fraction"] == f)
        sd = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
        rows.append({"fraction": f, "n_train": n, "repeats": len(accs),
                     "accuracy_mean": float(np.mean(accs)), "accuracy_sd": sd})  # fmt: skip
    return rows


def answer(summary: dict[str, Any]) -> str:
    """The one-line answer: ``with 2x / 4x the training images (N, M), expected accuracy
    A [lo, hi] / B [lo, hi]``, and what the full set measured."""
    more = [p for p in summary["predictions"] if p["multiple"] > 1]
    sizes = " / ".join(f"{p['n_train']:,}" for p in more)
    accs = " / ".join(f"{p['accuracy']:.3f} [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]" for p in more)
    mults = " / ".join(f"{p['multiple']}x" for p in more)
    last = summary["by_fraction"][-1]
    return (
        f"with {mults} the training images ({sizes}), expected accuracy {accs} (95% interval); "
        f"measured with {last['n_train']:,}: {last['accuracy_mean']:.3f}"
    )
