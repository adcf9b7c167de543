"""Atomic files: checkpoints, safetensors weights and JSON, written temp-file + rename.

A crash (or SIGKILL, or a full disk) while writing leaves the previous file intact: the
new bytes go to a temporary file in the same folder, are flushed and fsynced, and only
then replace the old file with ``os.replace`` (atomic on POSIX).

Resumable checkpoints are ``torch.save`` files of tensors and plain containers, read back
with ``weights_only=True`` (no pickled code runs). Final weights are safetensors.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from cnnkit.errors import RunFolderError


def atomic_write_bytes(path: str | Path, data: bytes | Callable[[Any], None]) -> Path:
    """Write ``data`` (bytes, or a function writing to a binary file) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise
    return path


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et, ev, tb) -> bool:
        return et is not None and issubclass(et, OSError)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically save a resumable state (tensors, numbers, strings, lists, dicts).

    Temporary files that a killed earlier write left next to ``path`` are removed first
    (one writer per checkpoint), so repeated crashes do not fill the disk.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with _suppress_oserror():
            stale.unlink()
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
            f"{path}: not a loadable cnnkit checkpoint ({e.__class__.__name__}: "
            f"{str(e).splitlines()[0][:200]})"
        ) from e


def save_weights(
    path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict | None = None
) -> Path:
    """Atomically write a state dict as safetensors (contiguous CPU copies)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read safetensors weights, with a clear error for a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"weights not found: {path}")
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001
        raise RunFolderError(f"{path}: not a valid safetensors file ({str(e)[:200]})") from e


def weights_header(path: str | Path) -> dict[str, tuple[bool, tuple[int, ...]]]:
    """``{name: (is_float, shape)}`` from a safetensors header; no tensor is read or built.

    Raises:
        RunFolderError: the file is missing or its header is damaged (truncated, trailing
            bytes, an absurd header length, offsets outside the file).
    """
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 - not a dict
            return {k: (s.get_dtype().startswith(("F", "BF")), tuple(s.get_shape()))
                    for k, s in slices.items()}  # fmt: skip
    except Exception as e:  # noqa: BLE001
        raise RunFolderError(f"{path}: not a valid safetensors file ({str(e)[:200]})") from e


def check_header_fits(model: torch.nn.Module, path: str | Path) -> None:
    """Refuse weights whose header has missing/extra/mis-shaped/mis-typed keys, before loading.

    Raises:
        RunFolderError: listing the first offending keys.
    """
    header = weights_header(path)
    own = {k: (v.dtype.is_floating_point, tuple(v.shape)) for k, v in model.state_dict().items()}
    _refuse_misfit(own, header, str(path))


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``, refusing missing/extra/mis-shaped keys by name."""
    own = {k: (v.dtype.is_floating_point, tuple(v.shape)) for k, v in model.state_dict().items()}
    got = {k: (v.dtype.is_floating_point, tuple(v.shape)) for k, v in state.items()}
    _refuse_misfit(own, got, source)
    model.load_state_dict(state)


def _refuse_misfit(
    own: dict[str, tuple[bool, tuple]], state: dict[str, tuple[bool, tuple]], source: str
) -> None:
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and own[k][1] != state[k][1]]
    typed = [k for k in own if k in state and own[k][0] != state[k][0]]
    if missing or extra or shaped or typed:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if extra:
            parts.append(f"unexpected keys {extra[:5]}")
        if shaped:
            parts.append(
                "mis-shaped " + ", ".join(f"{k} {state[k][1]} vs {own[k][1]}" for k in shaped[:5])
            )
        if typed:
            parts.append(f"integer/float type differs for {typed[:5]}")
        raise RunFolderError(f"{source}: weights do not fit the model: " + "; ".join(parts))
