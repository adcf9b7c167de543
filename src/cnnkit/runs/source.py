"""A run folder or a model name -> a model ready to explain, with its preprocessing.

``cnnkit activations|filters|explain SOURCE`` take either a trained run (read with
:func:`cnnkit.runs.load_run`) or a model name from the zoo (random weights, or
``pretrained`` weights); :func:`resolve_source` turns either into a :class:`Source`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data.decode import load_image
from cnnkit.models import create_model, get_card, list_models
from cnnkit.runs.layout import CONFIG
from cnnkit.runs.loaded import load_run


@dataclass
class Source:
    """A model ready to explain, with how images are turned into its input."""

    model: Any
    preprocess: Callable[[Any], Any]  # uint8 (C, H, W) or (N, C, H, W) -> float (N, C, H, W)
    image_size: tuple[int, int]
    color_mode: str
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_to_aspect_ratio: bool = False


def resolve_source(source: str, pretrained: str | None) -> Source:
    """A run folder or a model name -> :class:`Source`.

    Raises:
        FileNotFoundError: SOURCE looks like a path that does not exist.
        ValueError: SOURCE is neither a run folder nor a known model, or ``--pretrained``
            was given with a run folder.
    """
    path = Path(source)
    if path.is_dir() and ((path / CONFIG).exists() or not _is_model_name(source)):
        if pretrained:
            raise ValueError(
                f"--pretrained applies to a model NAME, not to a run folder. "
                f"Received: SOURCE={source!r}, --pretrained={pretrained!r}"
            )
        return _from_run(path)
    if path.exists() or "/" in source or "\\" in source:
        raise FileNotFoundError(
            f"SOURCE must be a run folder or a model name. Received: {source!r} (not a folder)"
        )
    return _from_name(source, pretrained)


def _is_model_name(name: str) -> bool:
    return name.strip().lower().replace("-", "_") in list_models()


def _from_run(path: Path) -> Source:
    run = load_run(path)
    cfg = run.config
    h, w = cfg["image_size"]
    return Source(
        model=run.model,
        preprocess=run.preprocess,
        image_size=(int(h), int(w)),
        color_mode=run.color_mode,
        class_names=[str(c) for c in cfg["class_names"]],
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=run.interpolation,
        crop_to_aspect_ratio=run.crop_to_aspect_ratio,
    )


def _from_name(name: str, pretrained: str | None) -> Source:
    try:
        get_card(name)
    except ValueError as e:
        raise ValueError(f"SOURCE is not a run folder or a known model: {e}") from None
    model: Any = create_model(name, pretrained=pretrained).eval()
    card = model.card
    c, h, w = card.input_size
    mean = torch.tensor(card.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.tensor(card.std, dtype=torch.float32).reshape(1, -1, 1, 1)

    def preprocess(images: Any) -> torch.Tensor:
        x = torch.as_tensor(np.array(images, dtype=np.float32)) / 255.0
        x = x[None] if x.dim() == 3 else x  # (C, H, W) -> (1, C, H, W)
        return (x - mean) / std

    names = _weight_categories(model, card.name, pretrained) or [
        str(i) for i in range(model.num_classes)
    ]
    return Source(
        model=model,
        preprocess=preprocess,
        image_size=(h, w),
        color_mode="grayscale" if c == 1 else ("rgba" if c == 4 else "rgb"),
        class_names=list(names),
        mean=tuple(card.mean),
        std=tuple(card.std),
        interpolation=card.interpolation,
    )


def _weight_categories(model: Any, name: str, pretrained: str | None) -> list[str] | None:
    """ImageNet class names when torchvision weights with their own head were loaded (what
    ``load_pretrained`` read from the weights' metadata, whatever name chose them: a weight
    name, ``DEFAULT`` or ``imagenet``)."""
    info = getattr(model, "pretrained_info", None)
    if info is None or getattr(info, "kind", "") != "torchvision" or info.fresh_head:
        return None
    cats = info.categories
    return [str(c) for c in cats] if cats and len(cats) == model.num_classes else None


def load_images(src: Source, image: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image as the model sees it and at its own size (both uint8 (C, H, W))."""
    resized = load_image(
        image,
        src.image_size,
        src.color_mode,
        src.interpolation,
        crop_to_aspect_ratio=src.crop_to_aspect_ratio,
    )
    original = load_image(image, None, "grayscale" if src.color_mode == "grayscale" else "rgb")
    return np.array(resized), original  # a writable copy: torch warns on read-only arrays
