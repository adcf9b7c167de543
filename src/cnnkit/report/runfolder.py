"""Read the files of a run folder that the report shows (JSON, CSV, text, PNG only).

``metrics.json`` is required; every other file is optional. A missing optional file
just leaves its section out; one that is present but unreadable is recorded in
:attr:`RunFiles.notes` and shown at the top of the report instead of stopping it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnkit.errors import RunFolderError
from cnnkit.fileio import read_json
from cnnkit.report.html import is_png

_METRICS_KEYS = ("accuracy", "class_names", "confusion_matrix")


@dataclass
class RunFiles:
    """What the report reads from a run folder; ``None`` where a file is absent."""

    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any] | None = None
    history: list[dict[str, str]] | None = None
    predictions: list[dict[str, str]] | None = None
    split: list[dict[str, str]] | None = None
    summary: str | None = None
    augment_png: bytes | None = None
    gallery_png: bytes | None = None
    cv: dict[str, Any] | None = None
    lr_find: dict[str, Any] | None = None
    fold_seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return read_json(path, path.name)
    except (OSError, ValueError) as e:
        raise RunFolderError(str(e)) from None


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """``metrics.json`` of ``run_dir``, checked for the fields the report needs.

    Raises:
        RunFolderError: if the file is missing, is not valid JSON, or lacks
            ``accuracy``, ``class_names`` or a ``confusion_matrix`` matching them.
    """
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise RunFolderError(
            f"{path} is missing: the report needs the run's metrics.json "
            "(written by `cnnkit train` or `cnnkit evaluate`)"
        )
    metrics = _load_json(path)
    missing = [k for k in _METRICS_KEYS if k not in metrics]
    if missing:
        raise RunFolderError(f"{path} lacks {', '.join(missing)}")
    names, cm = metrics["class_names"], metrics["confusion_matrix"]
    square = isinstance(cm, list) and all(isinstance(r, list) and len(r) == len(cm) for r in cm)
    if not isinstance(names, list) or not square or len(cm) != len(names):
        raise RunFolderError(
            f"{path}: confusion_matrix must be a {len(names) if isinstance(names, list) else 'K'}"
            f"x{len(names) if isinstance(names, list) else 'K'} list of rows, one per class name"
        )
    return metrics


def _optional(run: RunFiles, name: str, reader: Any) -> Any:
    """``reader(path)`` if ``name`` exists; a note (not an error) if it cannot be read."""
    path = run.path / name
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as e:
        detail = str(e).replace(str(path), name)
        run.notes.append(f"{name} could not be read and is left out ({detail}).")
        return None


def _json_object(path: Path) -> dict[str, Any]:
    return _load_json(path)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        if reader.fieldnames is None:
            raise ValueError("the file is empty (no header)")
    return rows


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _png_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if not is_png(data):
        raise ValueError("not a PNG file")
    return data


def read_run(run_dir: str | Path) -> RunFiles:
    """Read everything the report shows from ``run_dir``.

    Args:
        run_dir: a run folder written by ``cnnkit train``.

    Returns:
        The files' contents; optional files that are absent are ``None``.

    Raises:
        RunFolderError: if ``run_dir`` is not a folder or its ``metrics.json`` is
            missing or corrupt.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunFolderError(
            f"run_dir must be a run folder. Received: {str(run_dir)!r} (no such folder)"
        )
    run = RunFiles(path=path, metrics=read_metrics(path))
    run.config = _optional(run, "config.json", _json_object)
    run.history = _optional(run, "history.csv", _csv_rows)
    run.predictions = _optional(run, "predictions.csv", _csv_rows)
    run.split = _optional(run, "split.csv", _csv_rows)
    run.summary = _optional(run, "summary.txt", _text)
    run.augment_png = _optional(run, "augment.png", _png_bytes)
    run.gallery_png = _optional(run, "gallery.png", _png_bytes)
    run.cv = _optional(run, "cv.json", _json_object)
    run.lr_find = _optional(run, "lr_find.json", _json_object)
    run.fold_seconds = _fold_seconds(path, run.cv)
    return run


def _fold_seconds(run_dir: Path, cv: dict[str, Any] | None) -> list[float]:
    """Each fold's wall time from ``fold-K/config.json``; empty unless every fold has one."""
    folds = cv.get("folds") if cv else None
    if not isinstance(folds, int) or folds < 1:
        return []
    seconds = []
    for k in range(1, folds + 1):
        try:
            config = read_json(run_dir / f"fold-{k}" / "config.json")
            seconds.append(float(config["timing"]["total_seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            return []
    return seconds
