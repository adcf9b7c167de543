"""The names of a run folder's files, and the folder itself: created, marked, replaced safely.

A run folder is cnnkit's unit of work (DESIGN.md, "A run folder")::

    RUN/
      .cnnkit-run        the marker: this folder is a cnnkit run (written first)
      config.json        every setting, resolved; classes; preprocessing; environment
      split.csv          path,label,subset
      model.safetensors  final weights
      checkpoint/        resumable state
      history.csv  metrics.json  predictions.csv  summary.txt
      curves.png  confusion.png  top_losses.png  augment.png  gallery.png  report.html
      fold-1/ ... fold-K/  cv.json   (k-fold)

A learning-curve folder (``cnnkit learning-curve``, marker kind ``learning-curve``) holds
``split.csv``, ``learning_curve.json|csv|png``, ``report.html`` and one ordinary run folder
per point under ``points/``.

Only a folder holding the marker is ever replaced (``overwrite``), and then only the files
cnnkit writes there: anything else a user put in it stays, and is named.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cnnkit.fileio import atomic_write_text, remove_stale_temporaries

MARKER = ".cnnkit-run"
CONFIG = "config.json"
SPLIT = "split.csv"
WEIGHTS = "model.safetensors"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT = f"{CHECKPOINT_DIR}/last.pt"
HISTORY = "history.csv"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
SUMMARY = "summary.txt"
CV = "cv.json"
LR_FIND = "lr_find.json"
REPORT = "report.html"
PNGS = (
    "curves.png", "confusion.png", "top_losses.png", "augment.png", "gallery.png", "lr_find.png"
)  # fmt: skip
ONNX = "model.onnx"
LEARNING_CURVE = "learning_curve.json"
LEARNING_CURVE_CSV = "learning_curve.csv"
LEARNING_CURVE_PNG = "learning_curve.png"
POINTS_DIR = "points"

#: Columns of ``history.csv``, one row per finished epoch, in this order.
HISTORY_FIELDS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
    "images_per_second",
)

_FOLD = re.compile(r"^fold-\d+$")


def owned_names(kind: str = "image") -> frozenset[str]:
    """The top-level names cnnkit writes in a run folder of ``kind`` (``image``, ``genomics``
    or ``learning-curve``)."""
    names = {
        MARKER, CONFIG, SPLIT, WEIGHTS, CHECKPOINT_DIR, HISTORY, METRICS, PREDICTIONS,
        SUMMARY, CV, LR_FIND, REPORT, ONNX, *PNGS,
    }  # fmt: skip
    if kind == "genomics":
        names |= {"preprocessor.safetensors", "saliency.png", "marker_effects.csv"}
    if kind == "learning-curve":
        names |= {LEARNING_CURVE, LEARNING_CURVE_CSV, LEARNING_CURVE_PNG, POINTS_DIR}
    return frozenset(names)


@dataclass(frozen=True)
class RunDir:
    """A run folder that this process owns from now on.

    Attributes:
        path: the folder.
        kept: files in it that cnnkit did not write and left alone (on ``overwrite``).
    """

    path: Path
    kept: tuple[str, ...] = ()


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a cnnkit run folder (holds the marker, or a config.json that
    cnnkit wrote before markers existed: one naming a model and its class names)."""
    p = Path(path)
    if (p / MARKER).is_file():
        return True
    return _legacy_config(p / CONFIG)


def _legacy_config(config: Path) -> bool:
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(cfg, dict) and "cnnkit_version" in cfg and "model" in cfg


def run_kind(path: str | Path) -> str | None:
    """``image`` or ``genomics`` from the marker (None: not a marked run folder)."""
    try:
        text = (Path(path) / MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.startswith("kind:"):
            return line.split(":", 1)[1].strip()
    return "image"


def check_run_dir(out: str | Path, *, overwrite: bool = False) -> None:
    """Refuse ``out`` now, before any work, if :func:`create_run_dir` would refuse it later.

    Raises:
        FileExistsError: as :func:`create_run_dir`.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder; choose another run folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not is_run_dir(path):
        raise FileExistsError(
            f"{path} is not empty and is not a cnnkit run folder; nothing was changed "
            "(choose a new or empty folder)"
        )
    if not overwrite and is_started(path):
        raise RunExistsError(path)


def is_started(path: str | Path) -> bool:
    """Whether the run folder ``path`` got as far as its config (a run that can resume)."""
    return (Path(path) / CONFIG).is_file()


def create_run_dir(out: str | Path, *, overwrite: bool = False, kind: str = "image") -> RunDir:
    """Create the run folder ``out`` (and its marker) for a new run.

    An empty or missing folder is used as it is, and so is a run folder whose run stopped
    before it wrote its config (nothing in it can be resumed). A folder holding a run is
    refused unless ``overwrite``; then cnnkit's own files in it are deleted and anything else
    is kept. Any other non-empty folder is refused, ``overwrite`` or not.

    Raises:
        FileExistsError: ``out`` is a file, holds a run (without ``overwrite``), or holds
            files of something that is not a cnnkit run.
    """
    check_run_dir(out, overwrite=overwrite)
    path = Path(out)
    kept: tuple[str, ...] = ()
    if path.is_dir() and any(path.iterdir()):
        kept = clear_run_dir(path, run_kind(path) or kind)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / MARKER, f"cnnkit run folder\nkind: {kind}\n")
    return RunDir(path, kept)


class RunExistsError(FileExistsError):
    """A run folder already holds a run; the CLI names ``--overwrite`` and ``--resume``,
    Python callers ``overwrite=True`` and ``resume_run``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"run folder {path} already holds a run; pass overwrite=True to replace it, "
            f"or continue it with resume_run({str(path)!r})"
        )

    def cli_message(self) -> str:
        return (
            f"run folder {self.path} already holds a run; pass --overwrite to replace it or "
            f"`cnnkit train --resume {self.path}` to continue it"
        )


def clear_run_dir(path: Path, kind: str = "image") -> tuple[str, ...]:
    """Delete what cnnkit wrote in the run folder ``path``; return the names left alone."""
    owned = owned_names(kind)
    kept = []
    for entry in sorted(path.iterdir()):
        name = entry.name
        if name in owned or _FOLD.match(name) or _is_temporary(name):
            _remove(entry)
        else:
            kept.append(name)
    return tuple(kept)


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)


def adopt_run_dir(path: str | Path) -> RunDir:
    """Take over an existing run folder to resume it: its stale temporary files go."""
    p = Path(path)
    remove_stale_temporaries(p)
    remove_stale_temporaries(p / CHECKPOINT_DIR)
    return RunDir(p)


def discard_if_unstarted(run: RunDir, keep: Iterable[str] = ()) -> bool:
    """Remove a run folder that a failed start left with nothing but cnnkit's first files.

    A run that failed before training (bad data, bad weights) should not leave an empty run
    folder behind; one that trained for an epoch keeps everything for ``resume``.

    Returns:
        Whether the folder was removed.
    """
    path = run.path
    first = {MARKER, CONFIG, SPLIT, *keep}
    if not path.is_dir() or run.kept:
        return False
    names = {p.name for p in path.iterdir() if not _is_temporary(p.name)}
    if not names <= first:
        return False
    shutil.rmtree(path)
    return True
