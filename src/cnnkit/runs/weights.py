"""Final weights as safetensors: written atomically, read back only after the header fits.

A run's ``model.safetensors`` is read as a safetensors file only (never pickle), so opening
someone else's run cannot execute code; the header (names, shapes, dtypes) is checked
against the model before any tensor is read.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from cnnkit.errors import RunFolderError
from cnnkit.fileio import atomic_write_bytes


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
