"""What a run trains on: loading its data, splitting it, and building its model and augmentation.

DATA is a folder of class sub-folders (decoded once through the data layer's cache) or a
named dataset (``mnist``, ``mnist-5k``, ``fashion-mnist:train``...). Image size and colour
mode default to the model card's, so ``basic_convnet`` trains at 1x28x28 unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.train.config import TrainConfig


@dataclass
class RunData:
    """The images a run uses, and where they came from."""

    arrays: Any  # cnnkit.data.ImageArrays
    color_mode: str
    source: str  # "folder" or "dataset"

    def summary(self) -> dict[str, Any]:
        a = self.arrays
        return {
            "source": self.source,
            "classes": a.counts(),
            "n_images": len(a),
            "image_shape": list(a.image_shape),
            "skipped": [{"path": p, "problem": pr, "detail": d} for p, pr, d in a.skipped],
        }


def _card(name: str) -> Any:
    from cnnkit.models import get_card

    return get_card(name)


def resolve_shape(config: TrainConfig) -> tuple[str, tuple[int, int]]:
    """The colour mode and ``(H, W)`` the run uses: the flags, else the model card's."""
    card = _card(config.model)
    c, h, w = card.input_size
    mode = config.color_mode or ("grayscale" if c == 1 else "rgb")
    size = tuple(config.image_size) if config.image_size else (h, w)
    mh, mw = card.min_input_size[-2:]
    if size[0] < mh or size[1] < mw:
        raise ValueError(
            f"input {size[0]}x{size[1]} is too small for {config.model} (minimum {mh}x{mw}). "
            f"Received: image_size={size}"
        )
    return mode, size  # type: ignore[return-value]


def load_run_data(config: TrainConfig) -> RunData:
    """Load the images named by ``config.data`` at the run's size and colour mode."""
    mode, size = resolve_shape(config)
    path = Path(config.data).expanduser()
    if path.is_dir():
        from cnnkit.data import load_folder

        arrays = load_folder(
            path, image_size=size, color_mode=mode, interpolation=config.interpolation
        )
        source = "folder"
    elif path.exists():
        raise ValueError(
            "data must be a folder of class sub-folders or a dataset name. "
            f"Received: {path} (a file)"
        )
    else:
        arrays = _named(config.data, mode, size)
        source = "dataset"
    if len(arrays) == 0:
        raise ValueError(f"no images found in {config.data}")
    if len(arrays.class_names) < 2:
        raise ValueError(
            f"{config.data}: need at least two classes to train a classifier. "
            f"Received: {arrays.class_names}"
        )
    return RunData(arrays, mode, source)


def _named(spec: str, mode: str, size: tuple[int, int]) -> Any:
    from cnnkit.data import load_dataset, parse_dataset_spec

    name, split = parse_dataset_spec(spec)
    arrays = load_dataset(name, split=split)
    channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[mode]
    if arrays.image_shape != (channels, *size):
        arrays.images = conform_images(arrays.images, channels, size)
    return arrays


def conform_images(
    images: np.ndarray, channels: int, size: tuple[int, int], batch: int = 4096
) -> np.ndarray:
    """Resize (bilinear, antialiased) and convert channels of uint8 ``(N, C, H, W)`` images.

    Grey to RGB repeats the channel; RGB to grey uses ITU-R 601 luma weights (as Pillow "L").
    """
    out = np.empty((len(images), channels, *size), dtype=np.uint8)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.asarray(images[i : i + batch])).float()
        if x.shape[1] >= 3 and channels == 1:
            x = (x[:, :3] * luma).sum(1, keepdim=True)
        elif x.shape[1] == 1 and channels > 1:
            x = x.expand(-1, 3, -1, -1)
            if channels == 4:
                x = torch.cat([x, torch.full_like(x[:, :1], 255.0)], 1)
        elif x.shape[1] == 4 and channels == 3:
            x = x[:, :3]
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[i : i + batch] = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def split(arrays: Any, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/validation indices."""
    from cnnkit.data import split_indices

    return split_indices(arrays.labels, config.validation_split, config.seed, stratified=True)


def check_split(arrays: Any, train_idx: np.ndarray, val_idx: np.ndarray, config: Any) -> None:
    """Refuse a split that leaves nothing to validate on, before any training.

    Raises:
        ValueError: the validation (or training) part is empty, naming the data and counts.
    """
    if len(val_idx) and len(train_idx):
        return
    counts = ", ".join(f"{k}: {v}" for k, v in arrays.counts().items())
    part = "validation" if not len(val_idx) else "training"
    raise ValueError(
        f"{config.data}: validation_split={config.validation_split} of {len(arrays)} images "
        f"leaves no {part} images ({counts}); add images (a few per class at least) or "
        "change validation_split"
    )


def build_model(config: TrainConfig, arrays: Any) -> torch.nn.Module:
    """The model for the run, initialised from ``config.seed`` (and pretrained weights)."""
    from cnnkit.models import create_model

    c, h, w = arrays.image_shape
    torch.manual_seed(config.seed)
    model = create_model(
        config.model,
        num_classes=len(arrays.class_names),
        in_chans=c,
        input_size=(c, h, w),
        pretrained=config.pretrained,
    )
    return model


def build_augment(config: TrainConfig) -> Any:
    """The batched augmentation of the run, or ``None`` when none is asked for."""
    if not config.augment:
        return None
    from cnnkit.data import Augment

    aug = Augment(**config.augment)
    return None if aug.is_identity else aug
