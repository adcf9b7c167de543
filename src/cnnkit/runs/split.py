"""``split.csv``: which image trained and which validated, so a resume or an evaluation uses
exactly the same split.

Rows are ``path,label,subset`` (``train`` or ``validation``). File names that are not valid
UTF-8 are stored as their original bytes and read back to the same names.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import RunFolderError
from cnnkit.fileio import atomic_write_text

SUBSETS = ("train", "validation")


def write_split(path: Path, arrays: Any, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
    """Write the rows of ``arrays`` (an ImageArrays) named by the two index sets."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "subset"])
    for subset, idx in zip(SUBSETS, (train_idx, val_idx), strict=True):
        for i in idx:
            w.writerow([arrays.file_paths[i], arrays.class_names[arrays.labels[i]], subset])
    atomic_write_text(path, buf.getvalue())


def read_split_rows(path: Path) -> list[dict[str, str]]:
    """The rows of ``split.csv``.

    Raises:
        RunFolderError: the file is missing or is not a path,label,subset table.
    """
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: the run's saved split")
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
            rows = list(csv.DictReader(f))
    except (csv.Error, OSError) as e:
        raise RunFolderError(f"{path}: not a split.csv of path,label,subset rows ({e})") from None
    if rows and not {"path", "label", "subset"} <= set(rows[0]):
        raise RunFolderError(f"{path}: not a split.csv of path,label,subset rows")
    bad = [r["subset"] for r in rows if r["subset"] not in SUBSETS]
    if bad or any(r["path"] is None for r in rows):
        raise RunFolderError(f"{path}: subset must be train or validation. Received: {bad[:3]}")
    return rows


def read_split(path: Path, arrays: Any) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train/validation rows of ``split.csv`` in ``arrays`` (matched by path).

    Raises:
        RunFolderError: the file is damaged, or names files that are no longer in the data.
    """
    where = {p: i for i, p in enumerate(arrays.file_paths)}
    train: list[int] = []
    val: list[int] = []
    missing: list[str] = []
    for row in read_split_rows(path):
        i = where.get(row["path"])
        if i is None:
            missing.append(row["path"])
            continue
        (train if row["subset"] == "train" else val).append(i)
    if missing:
        raise RunFolderError(
            f"{path}: {len(missing)} files of the saved split are no longer in the data, "
            f"e.g. {missing[:3]}"
        )
    return np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)


def training_paths(path: Path) -> set[str]:
    """The paths the run trained on (``subset == train``)."""
    return {r["path"] for r in read_split_rows(path) if r["subset"] == "train"}
