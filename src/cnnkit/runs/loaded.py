"""A finished run folder read back: config + safetensors weights -> a ready model.

Read as JSON + safetensors only (never pickle), so opening someone else's run cannot
execute code; the config is checked (:func:`cnnkit.runs.config.read_run_config`) and the
weights' header is matched to the model before a tensor is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import RunFolderError
from cnnkit.models import create_model
from cnnkit.runs.config import read_run_config
from cnnkit.runs.inference import Normalizer, Precision, predict_proba
from cnnkit.runs.layout import CONFIG, WEIGHTS
from cnnkit.runs.weights import check_header_fits, load_state_strict, load_weights


@dataclass
class LoadedRun:
    """A trained run, ready to predict.

    Attributes:
        path: the run folder.
        config: ``config.json`` as a dict (checked).
        model: the model in eval mode on CPU, fp32.
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
    def interpolation(self) -> str:
        return str(self.config.get("interpolation", "bilinear"))

    @property
    def crop_to_aspect_ratio(self) -> bool:
        return bool(self.config.get("crop_to_aspect_ratio", False))

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(self.config["mean"], self.config["std"], self.in_chans)

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(C, H, W)`` or ``(N, C, H, W)`` at the run's size -> normalised float batch."""
        return self.normalizer(_batch(images))

    def predict_proba(
        self, images: np.ndarray | torch.Tensor, batch_size: int = 256
    ) -> torch.Tensor:
        """Class probabilities ``(N, K)`` for uint8 images ``(N, C, H, W)``."""
        cpu = torch.device("cpu")
        return predict_proba(
            self.model, _batch(images), self.normalizer, Precision.inference(), cpu, batch_size
        )


def _batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = images if isinstance(images, torch.Tensor) else torch.tensor(np.asarray(images))
    return x.unsqueeze(0) if x.ndim == 3 else x  # (C, H, W) -> (1, C, H, W)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a finished image run folder (config.json + model.safetensors).

    Raises:
        RunFolderError: the folder, config or weights are missing, damaged or do not match.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    h, w = cfg["image_size"]
    try:
        model = create_model(
            cfg["model"],
            num_classes=len(cfg["class_names"]),
            in_chans=cfg["in_chans"],
            input_size=(cfg["in_chans"], h, w),
        )
    except ValueError as e:
        raise RunFolderError(f"{run_dir / CONFIG}: {e}") from None
    weights = run_dir / WEIGHTS
    check_header_fits(model, weights)  # names, shapes and types from the header: no tensor yet
    load_state_strict(model, load_weights(weights), str(weights))
    model.eval()
    return LoadedRun(run_dir, cfg, model)
