"""Reading a run folder back: config + safetensors weights -> a ready model and its preprocessing.

A run folder handed to evaluate/predict/explain/export/serve is read as JSON + safetensors
only (never pickle), so opening someone else's run cannot execute code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import RunFolderError
from cnnkit.train.checkpoint import check_header_fits, load_state_strict, load_weights
from cnnkit.train.loop import Normalizer, predict_proba
from cnnkit.train.precision import Precision


@dataclass
class LoadedRun:
    """A trained run, ready to predict.

    Attributes:
        path: the run folder.
        config: ``config.json`` as a dict.
        model: the model in eval mode on CPU, fp32.
        class_names: class index -> name.
    """

    path: Path
    config: dict[str, Any]
    model: torch.nn.Module

    @property
    def class_names(self) -> list[str]:
        return list(self.config["class_names"])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config["image_size"])  # type: ignore[return-value]

    @property
    def color_mode(self) -> str:
        return self.config["color_mode"]

    @property
    def in_chans(self) -> int:
        return int(self.config["in_chans"])

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(self.config["mean"], self.config["std"], self.in_chans)

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(C, H, W)`` or ``(N, C, H, W)`` at the run's size -> normalised float batch."""
        x = images if isinstance(images, torch.Tensor) else torch.tensor(np.asarray(images))
        if x.ndim == 3:
            x = x.unsqueeze(0)
        return self.normalizer(x)

    def predict_proba(
        self, images: np.ndarray | torch.Tensor, batch_size: int = 256
    ) -> torch.Tensor:
        """Class probabilities ``(N, K)`` for uint8 images ``(N, C, H, W)``."""
        x = images if isinstance(images, torch.Tensor) else torch.tensor(np.asarray(images))
        if x.ndim == 3:
            x = x.unsqueeze(0)
        prec = Precision("fp32", False, "cpu", "inference")
        return predict_proba(self.model, x, self.normalizer, prec, torch.device("cpu"), batch_size)


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.json`` as a dict, with clear errors for a missing or damaged file."""
    p = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise RunFolderError(f"run folder not found: {run_dir}")
    if not p.is_file():
        raise RunFolderError(f"{run_dir} is not a cnnkit run folder (no config.json)")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{p}: not valid JSON ({e})") from e
    if not isinstance(cfg, dict):
        raise RunFolderError(f"{p}: expected a JSON object. Received: {type(cfg).__name__}")
    missing = [
        k for k in ("model", "class_names", "image_size", "in_chans", "mean", "std") if k not in cfg
    ]
    if missing:
        raise RunFolderError(f"{p}: missing keys {missing}")
    bad = _bad_values(cfg)
    if bad:
        raise RunFolderError(f"{p}: bad values: " + "; ".join(bad))
    return cfg


def _posint(v: Any, top: int = 1 << 16) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= top


def _numbers(v: Any, channels: int) -> bool:
    return (
        isinstance(v, list)
        and len(v) in (1, channels)
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v
        )
    )


def _bad_values(cfg: dict[str, Any]) -> list[str]:
    """What in a run's config.json cannot describe a model (before anything is built)."""
    bad = []
    if not isinstance(cfg["model"], str):
        bad.append(f"model={cfg['model']!r} (expected a model name)")
    names = cfg["class_names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        bad.append(f"class_names={names!r} (expected a non-empty list of names)")
    size = cfg["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_posint(v) for v in size)):
        bad.append(f"image_size={size!r} (expected [height, width], positive ints)")
    chans = cfg["in_chans"]
    if not _posint(chans, 4):
        bad.append(f"in_chans={chans!r} (expected 1, 2, 3 or 4)")
    for key in ("mean", "std"):
        if not _numbers(cfg[key], chans if _posint(chans, 4) else 1):
            bad.append(f"{key}={cfg[key]!r} (expected 1 or in_chans finite numbers)")
    if not bad and not all(s > 0 for s in cfg["std"]):
        bad.append(f"std={cfg['std']!r} (expected positive numbers)")
    return bad


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a finished run folder (config.json + model.safetensors).

    Raises:
        RunFolderError: the folder, config or weights are missing, damaged or do not match.
    """
    from cnnkit.models import create_model

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    weights = run_dir / "model.safetensors"
    h, w = cfg["image_size"]
    model = create_model(
        cfg["model"],
        num_classes=len(cfg["class_names"]),
        in_chans=cfg["in_chans"],
        input_size=(cfg["in_chans"], h, w),
    )
    _apply_head_layout(model, cfg)
    check_header_fits(model, weights)  # names, shapes and types from the header: no tensor yet
    state = load_weights(weights)
    load_state_strict(model, state, str(weights))
    model.eval()
    return LoadedRun(run_dir, cfg, model)


def _apply_head_layout(model: torch.nn.Module, cfg: dict[str, Any]) -> None:
    """Hook for transfer runs whose head differs from the plain builder (none needed yet)."""
    return None
