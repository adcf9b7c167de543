"""Validation images for the top-losses tiles: image files, else named-dataset entries.

``predictions.csv`` holds file paths for folder data and pseudo-paths
``NAME:SPLIT/INDEX`` (``mnist-5k:train/12``) for named datasets; the latter are read back
with :func:`cnnkit.data.load_dataset`, once per dataset and split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnkit.report.plots import load_image_file

PSEUDO_PATH = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):(?P<split>[A-Za-z]+)/(?P<index>\d+)$")


def to_hwc(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` uint8 -> ``(H, W)`` for one channel, ``(H, W, 3)`` otherwise.

    Shape:
        image: ``(C, H, W)`` with C in 1, 3, 4 (alpha is dropped).
    """
    if image.shape[0] == 1:
        return image[0]
    return np.ascontiguousarray(image[:3].transpose(1, 2, 0))  # (C, H, W) -> (H, W, 3)


class RunImages:
    """``path -> uint8 image or None``, the ``image_loader`` of :func:`top_losses_png`.

    Args:
        base_dirs: folders that relative file paths are also looked up under.
    """

    def __init__(self, base_dirs: Sequence[str | Path] = ()) -> None:
        self.base_dirs = list(base_dirs)
        self._datasets: dict[tuple[str, str], np.ndarray | None] = {}

    def __call__(self, path: str) -> np.ndarray | None:
        image = load_image_file(path, self.base_dirs)
        if image is not None:
            return image
        match = PSEUDO_PATH.match(path)
        if match is None:
            return None
        images = self._dataset(match["name"], match["split"])
        index = int(match["index"])
        if images is None or index >= len(images):
            return None
        return to_hwc(np.asarray(images[index], dtype=np.uint8))

    def _dataset(self, name: str, split: str) -> np.ndarray | None:
        """The dataset's ``(N, C, H, W)`` images, or None when it is not on this machine."""
        key = (name, split)
        if key not in self._datasets:
            try:
                from cnnkit.data import load_dataset

                self._datasets[key] = load_dataset(name, split).images
            except (ImportError, OSError, ValueError, KeyError):
                self._datasets[key] = None  # a placeholder tile, never a failed report
        return self._datasets[key]
