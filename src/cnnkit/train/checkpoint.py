"""Resumable training checkpoints, written atomically.

A checkpoint is a ``torch.save`` file of tensors and plain containers, read back with
``weights_only=True`` (no pickled code runs). Final weights are the run folder's
safetensors file (:mod:`cnnkit.runs.weights`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import RunFolderError
from cnnkit.fileio import atomic_write_bytes
from cnnkit.models.pretrained import torch_load_reason


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically save a resumable state (tensors, numbers, strings, lists, dicts).

    Temporary files that a killed earlier write left next to ``path`` are removed first
    (one writer per checkpoint), so repeated crashes do not fill the disk.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        RunFolderError: the file is missing, truncated, or holds anything but tensors and
            plain containers (a pickled object is refused; its code never runs).
    """
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise RunFolderError(
            f"{path}: not a loadable cnnkit checkpoint ({torch_load_reason(e)})"
        ) from None
