"""Turn a run folder's files into the template's sections (plain dicts, no HTML).

Each ``*_section`` function returns ``None`` when its files are absent, and the template
leaves that section out.
"""

from __future__ import annotations

import math
import shlex
import statistics
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from cnnkit.data.augment import Augment
from cnnkit.report.html import png_data_uri
from cnnkit.report.runfolder import RunFiles
from cnnkit.runs.layout import HISTORY_FIELDS
from cnnkit.train.config import TrainConfig

_ENV_LABELS = {
    "cnnkit": "cnnkit",
    "torch": "PyTorch",
    "torchvision": "torchvision",
    "python": "Python",
    "device": "Device",
    "cpu": "CPU",
    "gpu": "GPU",
    "threads": "Threads",
    "platform": "Platform",
    "cpu_capability": "CPU capability",
    "allocator": "Memory allocator",
    "warp": "Augmentation warp",
}
_MAX_SKIPPED_SHOWN = 50


def as_float(value: Any) -> float | None:
    """``value`` as a finite float, else None (blank CSV cells, ``"nan"``, junk)."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def image(png: bytes, scale: int = 1) -> dict[str, Any]:
    """An ``<img>``'s data URI and CSS size (``scale=2`` for our 2x plots)."""
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    return {"uri": png_data_uri(png), "width": width // scale, "height": height // scale}


def _class_name(key: str, names: Sequence[str]) -> str:
    """A ``data_summary.classes`` key: a class name, or a class index written as text."""
    if key in names:
        return key
    if key.isdigit() and int(key) < len(names):
        return str(names[int(key)])
    return key


def _skipped(items: Any) -> list[dict[str, str]]:
    rows = []
    for item in items or []:
        if isinstance(item, Mapping):
            rows.append({k: str(item.get(k, "")) for k in ("path", "problem", "detail")})
        elif isinstance(item, (list, tuple)):
            parts = [str(p) for p in item] + ["", "", ""]
            rows.append({"path": parts[0], "problem": parts[1], "detail": parts[2]})
    return rows


def data_section(run: RunFiles) -> dict[str, Any] | None:
    """Classes with their image counts (all / train / validation) and skipped files."""
    names = [str(c) for c in run.metrics["class_names"]]
    summary = (run.config or {}).get("data_summary") or {}
    counts = {_class_name(str(k), names): int(v) for k, v in (summary.get("classes") or {}).items()}
    split = {
        s: Counter(r.get("label", "") for r in run.split or [] if r.get("subset") == s)
        for s in ("train", "validation")
    }
    if not counts and not run.split:
        return None
    order = names + [c for c in counts if c not in names]
    rows: list[dict[str, Any]] = []
    for name in order:
        total = counts.get(name, split["train"][name] + split["validation"][name])
        rows.append(
            {
                "name": name,
                "count": total,
                "train": split["train"][name],
                "validation": split["validation"][name],
            }
        )
    biggest = max((r["count"] for r in rows), default=0) or 1
    for r in rows:
        r["share"] = 100.0 * r["count"] / biggest
    skipped = _skipped(summary.get("skipped"))
    smallest = min((r["count"] for r in rows if r["count"]), default=0)
    return {
        "rows": rows,
        "has_split": bool(run.split),
        "total": sum(r["count"] for r in rows),
        "n_train": summary.get("n_train", sum(split["train"].values()) or None),
        "n_val": summary.get("n_val", sum(split["validation"].values()) or None),
        "imbalance": (biggest / smallest) if smallest else None,
        "skipped": skipped[:_MAX_SKIPPED_SHOWN],
        "skipped_total": len(skipped),
    }


def per_class_section(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """Precision, recall, F1 and support per class, with macro and weighted F1."""
    per_class = metrics.get("per_class")
    if not isinstance(per_class, Mapping) or not per_class:
        return None
    macro = as_float(metrics.get("macro_f1"))
    rows = []
    for name, m in per_class.items():
        m = m if isinstance(m, Mapping) else {}
        f1 = as_float(m.get("f1"))
        rows.append(
            {
                "name": str(name),
                "precision": as_float(m.get("precision")),
                "recall": as_float(m.get("recall")),
                "f1": f1,
                "support": as_float(m.get("support")),
                "low": f1 is not None and macro is not None and f1 < macro - 0.1,
            }
        )
    return {
        "rows": rows,
        "macro_f1": macro,
        "weighted_f1": as_float(metrics.get("weighted_f1")),
        "support": sum(r["support"] or 0 for r in rows),
    }


def top_loss_rows(predictions: Sequence[Mapping[str, str]], n: int) -> list[dict[str, Any]]:
    """The ``n`` highest-loss predictions, for the table under the tiles."""
    rows: list[dict[str, Any]] = [
        {
            "path": p.get("path", ""),
            "label": p.get("label", ""),
            "predicted": p.get("predicted", ""),
            "probability": as_float(p.get("probability")),
            "loss": as_float(p.get("loss")),
        }
        for p in predictions
    ]
    rows.sort(key=lambda r: -(r["loss"] if r["loss"] is not None else -math.inf))
    return rows[:n]


def cv_section(cv: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """k-fold results: mean +/- sd and one row per fold."""
    if not cv:
        return None
    folds = [f for f in cv.get("per_fold") or [] if isinstance(f, Mapping)]
    rows = [
        {
            "fold": f.get("fold", i + 1),
            "accuracy": as_float(f.get("accuracy")),
            "n": as_float(f.get("n")),
        }
        for i, f in enumerate(folds)
    ]
    return {
        "folds": cv.get("folds", len(rows)),
        "mean": as_float(cv.get("accuracy_mean")),
        "sd": as_float(cv.get("accuracy_sd")),
        "rows": rows,
        "has_n": any(r["n"] is not None for r in rows),
    }


def total_seconds(run: RunFiles) -> float | None:
    """The run's wall time: all folds together for k-fold runs, else ``timing.total_seconds``."""
    if run.fold_seconds:
        return sum(run.fold_seconds)
    return as_float(((run.config or {}).get("timing") or {}).get("total_seconds"))


def timing_section(run: RunFiles) -> dict[str, Any] | None:
    """Wall time, epochs, seconds per epoch and training throughput."""
    history = run.history or []
    seconds = [s for s in (as_float(r.get("seconds")) for r in history) if s is not None]
    ips = [v for v in (as_float(r.get("images_per_second")) for r in history) if v is not None]
    total = total_seconds(run)
    if total is None and not seconds and not ips:
        return None
    return {
        "total_seconds": total,
        "folds": len(run.fold_seconds) or None,
        "fold_seconds": statistics.median(run.fold_seconds) if run.fold_seconds else None,
        "epochs": len(history) or None,
        "train_seconds": sum(seconds) if seconds else None,
        "epoch_seconds": statistics.median(seconds) if seconds else None,
        "ips_median": statistics.median(ips) if ips else None,
        "ips_max": max(ips) if ips else None,
    }


def history_rows(history: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """``history.csv`` rows as numbers (None where blank), for the per-epoch table."""
    return [{k: as_float(r.get(k)) for k in HISTORY_FIELDS} for r in history]


def curves_summary(history: Sequence[Mapping[str, str]]) -> dict[str, Any] | None:
    """Where validation loss was lowest, and whether it rose afterwards (overfitting).

    Returns:
        ``best_epoch``, ``best_loss``, ``last_epoch``, ``last_loss``, ``best_accuracy``
        (its epoch's validation accuracy, or None) and ``overfit`` (the last validation
        loss is over 10% above the best, reached at least one epoch earlier); None
        without validation losses.
    """
    rows = history_rows(history)
    scored = [(i, r) for i, r in enumerate(rows) if r["val_loss"] is not None]
    if not scored:
        return None
    best_i, best = min(scored, key=lambda ir: (ir[1]["val_loss"], ir[0]))
    last_i, last = scored[-1]
    return {
        "best_epoch": _epoch(best, best_i),
        "best_loss": best["val_loss"],
        "best_accuracy": best["val_accuracy"],
        "last_epoch": _epoch(last, last_i),
        "last_loss": last["val_loss"],
        "overfit": last_i > best_i and last["val_loss"] > 1.1 * best["val_loss"],
    }


def training_facts(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """How the run chose its learning rate and length, and why it stopped (config.json's
    ``training``); None for runs that recorded none of it."""
    training = config.get("training")
    if not isinstance(training, Mapping):
        return None
    found, budget, stop = (training.get(k) for k in ("lr_find", "budget", "stopping"))
    facts = {
        "lr": as_float(config.get("lr")),
        "lr_find": dict(found) if isinstance(found, Mapping) else None,
        "budget": str(budget.get("why", "")) if isinstance(budget, Mapping) else None,
        "stopping": dict(stop) if isinstance(stop, Mapping) else None,
    }
    return facts if any(v is not None for k, v in facts.items() if k != "lr") else None


def _epoch(row: Mapping[str, Any], index: int) -> int:
    return int(row["epoch"]) if row["epoch"] is not None else index + 1


def most_confused(
    cm: Sequence[Sequence[Any]], class_names: Sequence[Any], k: int = 5
) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal cells: which true class is taken for which, how often."""
    cells: list[tuple[float, int, int]] = []
    for i, row in enumerate(cm):
        for j, count in enumerate(row):
            c = as_float(count)
            if i != j and c:
                cells.append((-c, i, j))
    return [
        {"true": str(class_names[i]), "predicted": str(class_names[j]), "count": -neg}
        for neg, i, j in sorted(cells)[:k]
    ]


def environment_rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Versions, device, precision (and why), threads and seed as label/value pairs."""
    env = config.get("environment") or {}
    rows = [(_ENV_LABELS.get(str(k), str(k)), _text(v)) for k, v in env.items()]
    precision = config.get("precision")
    if isinstance(precision, Mapping):
        rows.append(("Precision", _text(precision.get("value"))))
        if "channels_last" in precision:
            rows.append(("Channels-last", "yes" if precision["channels_last"] else "no"))
        if precision.get("reason"):
            rows.append(("Why this precision", _text(precision["reason"])))
    elif precision is not None:
        rows.append(("Precision", _text(precision)))
    if "seed" in config:
        rows.append(("Seed", _text(config["seed"])))
    return rows


def run_settings(config: Mapping[str, Any]) -> TrainConfig | None:
    """The run's settings as it ran them: the input it used, its learning rate and the
    precision chosen; None when ``config.json`` does not hold a valid image-run config."""
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in config.items() if k in names}
    precision = config.get("precision")
    if isinstance(precision, Mapping):
        values["precision"] = precision.get("value", "auto")
    try:
        return TrainConfig.from_dict(values)
    except (ValueError, TypeError):
        return None


def settings_rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every setting that differs from its default (from :class:`TrainConfig`'s fields, so a
    new setting shows up by itself), plus the input and normalisation the run resolved."""
    settings = run_settings(config)
    rows = settings.table() if settings is not None else []
    for key, label in (("in_chans", "Input channels"), ("mean", "Normalisation mean"),
                       ("std", "Normalisation std")):  # fmt: skip
        if config.get(key) is not None:
            rows.append((label, _text(config[key])))
    return [(k, v) for k, v in rows if k not in ("Data", "Augmentation")]


def augment_rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The augmentation options that are switched on, as ``--flag``/value pairs."""
    settings = run_settings(config)
    if settings is None:
        return []
    return [(g[0], " ".join(g[1:]) or "on") for g in settings.cli_args() if _is_augment(g[0])]


def _is_augment(option: str) -> bool:
    return option.lstrip("-").replace("-", "_") in {f.name for f in fields(Augment)}


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " x ".join(_text(v) for v in value) if value else "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def reproduce_command(config: Mapping[str, Any], run_dir: Path) -> str | None:
    """A ``cnnkit train`` command line that repeats this run into a new folder (generated
    from :class:`TrainConfig`'s fields: every setting that differs from its default)."""
    settings = run_settings(config)
    if settings is None:
        return None
    args = settings.cli_args()
    model = [g for g in args if g[0] == "--model"]
    groups = [["cnnkit", "train", settings.data, *model[0]], ["--out", f"{run_dir.name}-again"]]
    groups += [g for g in args if g[0] != "--model"]
    return wrap_command([" ".join(shlex.quote(a) for a in g) for g in groups])


def wrap_command(parts: list[str], width: int = 76) -> str:
    """Join shell argument groups into lines of about ``width`` with ``\\`` continuations."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += " " + part
        else:
            lines.append("    " + part)
    return " \\\n".join(lines)
