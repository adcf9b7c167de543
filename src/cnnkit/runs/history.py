"""``history.csv``: one row per finished epoch (:data:`HISTORY_FIELDS`), rewritten atomically
each epoch so it always parses."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from cnnkit.fileio import atomic_write_text
from cnnkit.runs.layout import HISTORY_FIELDS


def write_history(path: str | Path, history: list[dict[str, Any]]) -> None:
    """``history.csv`` with the :data:`~cnnkit.runs.HISTORY_FIELDS` columns, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: _fmt(row.get(k)) for k in HISTORY_FIELDS})
    atomic_write_text(Path(path), buf.getvalue())


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def read_history(path: str | Path) -> list[dict[str, float]]:
    """The rows of ``history.csv`` as numbers (a missing or empty cell is NaN); ``[]`` when
    the file is absent."""
    p = Path(path)
    if not p.is_file():
        return []
    with open(p, newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan
