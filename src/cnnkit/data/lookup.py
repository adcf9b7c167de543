"""``path -> pixels`` for the paths a run folder records: image files and named-dataset entries.

``split.csv`` and ``predictions.csv`` name folder images by file path and named-dataset
images by pseudo-path (``mnist-5k:train/12``). :class:`ImageLookup` reads either back,
decoded and conformed exactly as training saw it; the report's thumbnails and the export's
reference images both use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnkit.data.arrays import parse_dataset_path
from cnnkit.data.datasets import load_dataset
from cnnkit.data.decode import conform_images, load_image
from cnnkit.errors import CnnkitError


class ImageLookup:
    """``path -> uint8 (C, H, W)``, or None for a missing or unreadable image.

    Args:
        image_size: ``(H, W)`` to resize to; None keeps each image's own size.
        color_mode: ``grayscale``, ``rgb`` or ``rgba``.
        interpolation, crop_to_aspect_ratio: as :func:`cnnkit.data.load_image`.
        base_dirs: folders a relative file path is also looked up under.
    """

    def __init__(
        self,
        image_size: Sequence[int] | None = None,
        color_mode: str = "rgb",
        interpolation: str = "bilinear",
        *,
        crop_to_aspect_ratio: bool = False,
        base_dirs: Sequence[str | Path] = (),
    ) -> None:
        self.image_size = None if image_size is None else tuple(image_size)
        self.color_mode = color_mode
        self.interpolation = interpolation
        self.crop = crop_to_aspect_ratio
        self.base_dirs = [Path(d) for d in base_dirs]
        self._datasets: dict[tuple[str, str], np.ndarray | None] = {}

    def __call__(self, path: str) -> np.ndarray | None:
        entry = parse_dataset_path(path)
        if entry is not None:
            return self._dataset_image(*entry)
        p = Path(path)
        for candidate in [p] if p.is_absolute() else [p, *(d / p for d in self.base_dirs)]:
            if candidate.is_file():
                try:
                    return load_image(
                        candidate,
                        self.image_size,
                        self.color_mode,
                        self.interpolation,
                        crop_to_aspect_ratio=self.crop,
                    )
                except (CnnkitError, OSError, ValueError):
                    return None
        return None

    def _dataset_image(self, name: str, split: str, index: int) -> np.ndarray | None:
        images = self._dataset(name, split)
        if images is None or index >= len(images):
            return None
        image = np.asarray(images[index : index + 1], dtype=np.uint8)
        size = self.image_size or image.shape[-2:]
        return conform_images(image, size, self.color_mode, self.interpolation)[0]

    def _dataset(self, name: str, split: str) -> np.ndarray | None:
        """The dataset's ``(N, C, H, W)`` images, or None when it is not on this machine."""
        key = (name, split)
        if key not in self._datasets:
            try:
                self._datasets[key] = load_dataset(name, split).images
            except (OSError, ValueError, KeyError):
                self._datasets[key] = None  # a missing dataset is a missing image, not an error
        return self._datasets[key]
