"""``ImageArrays``: decoded images and labels in memory (or memory-mapped), the data contract.

Every loader (:func:`cnnkit.data.load_folder`, :func:`cnnkit.data.load_dataset`) returns one,
so later stages never care where the pixels came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageArrays:
    """Decoded images with integer labels.

    Attributes:
        images: ``uint8`` array, possibly a read-only ``np.memmap`` from the decode cache.
        labels: ``int64`` class indices into ``class_names``.
        class_names: one name per class, index = label.
        file_paths: the file each image came from (``""`` for in-memory datasets is avoided:
            named datasets use ``NAME:split/INDEX``).
        skipped: ``(path, problem, detail)`` for each file that could not be decoded.
        boxes: optional ``float32`` bounding boxes ``x0, y0, x1, y1`` in pixels (``shapes``).

    Shape:
        images: ``(N, C, H, W)``; labels: ``(N,)``; boxes: ``(N, 4)``.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    file_paths: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    boxes: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                "images must be a uint8 array of shape (N, C, H, W). "
                f"Received: dtype={self.images.dtype}, shape={self.images.shape}"
            )
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"labels must have shape ({len(self.images)},). Received: {self.labels.shape}"
            )
        if self.file_paths and len(self.file_paths) != len(self.images):
            raise ValueError(
                f"file_paths must have {len(self.images)} entries. Received: {len(self.file_paths)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: np.ndarray | list[int]) -> ImageArrays:
        """A new ``ImageArrays`` with the rows ``indices`` (pixels copied into memory).

        Args:
            indices: row numbers, in the order wanted.

        Returns:
            The selected images, labels, paths and boxes; ``skipped`` is kept as is.
        """
        idx = np.asarray(indices, dtype=np.int64)
        paths = [self.file_paths[i] for i in idx] if self.file_paths else []
        boxes = None if self.boxes is None else self.boxes[idx]
        return ImageArrays(
            np.ascontiguousarray(self.images[idx]),
            self.labels[idx],
            list(self.class_names),
            paths,
            list(self.skipped),
            boxes,
        )

    def counts(self) -> dict[str, int]:
        """Images per class name."""
        bins = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, bins, strict=True)}


PSEUDO_PATH = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):(?P<split>[A-Za-z]+)/(?P<index>\d+)$")
"""How a named dataset's image is named in split.csv and predictions.csv: ``NAME:SPLIT/INDEX``."""


def dataset_path(name: str, split: str, index: int) -> str:
    """The pseudo-path of image ``index`` of a named dataset's ``split`` (``mnist-5k:train/12``)."""
    return f"{name}:{split}/{index}"


def parse_dataset_path(path: str) -> tuple[str, str, int] | None:
    """``(name, split, index)`` of a pseudo-path, or None for anything else (a file path)."""
    match = PSEUDO_PATH.match(path)
    return None if match is None else (match["name"], match["split"], int(match["index"]))
