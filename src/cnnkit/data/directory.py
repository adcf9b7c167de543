"""Keras' ``image_dataset_from_directory``, over the decode-once cache, and ``split_indices``.

Split semantics are Keras': with ``shuffle=True`` the file list (in Keras order, see
:mod:`cnnkit.data.scan`) is shuffled once with ``np.random.RandomState(seed).shuffle``, then the
LAST ``int(validation_split * N)`` files are the validation subset and the rest training; the
same seed therefore gives the same split in two calls. Differences from Keras, on purpose:

* files that cannot be decoded are skipped (and reported) instead of failing the epoch; the
  split is computed on the full file list first, so a broken file never moves another file
  between subsets;
* ``validation_split`` so small that no file goes to validation gives an empty validation
  subset and the whole training subset (Keras' ``samples[:-0]`` would give an empty training set);
* each epoch is a full reshuffle (a fresh permutation, reproducible from ``seed``) instead of a
  ``batch_size * 8`` buffer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from cnnkit.data.cache import DecodeSettings, decode_files
from cnnkit.data.decode import (
    check_aspect_flags,
    check_color_mode,
    check_interpolation,
    keras_image_size,
)
from cnnkit.data.folder import report_skipped
from cnnkit.data.pipeline import LABEL_MODES, Dataset, from_arrays
from cnnkit.data.scan import scan_folder


def split_indices(
    labels: Sequence[int] | np.ndarray,
    validation_split: float,
    seed: int = 0,
    stratified: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation row indices (stratified by label with scikit-learn).

    Args:
        labels: one int label per row.
        validation_split: fraction in ``[0, 1)`` for validation.
        seed: makes the split reproducible.
        stratified: keep class proportions (falls back to a plain split when a class has
            fewer than 2 rows or the validation set is smaller than the number of classes).

    Returns:
        ``(train, validation)`` sorted int64 index arrays.

    Raises:
        ValueError: ``validation_split`` outside ``[0, 1)``.
    """
    y = np.asarray(labels, dtype=np.int64)
    if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
        raise ValueError(
            "validation_split must be a number in [0, 1). "
            f"Received: validation_split={validation_split!r}"
        )
    idx = np.arange(len(y))
    n_val = int(round(validation_split * len(y)))
    if n_val == 0 or len(y) < 2:
        return idx, np.empty(0, dtype=np.int64)
    counts = np.bincount(y) if len(y) else np.zeros(0)
    can_stratify = stratified and counts[counts > 0].min() >= 2 and n_val >= (counts > 0).sum()
    train, val = train_test_split(
        idx, test_size=n_val, random_state=seed, stratify=y if can_stratify else None
    )
    return np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)


def _check_args(
    labels, label_mode, class_names, color_mode, validation_split, subset, shuffle, seed
):
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(
            "`labels` argument should be a list/tuple of integer labels, of the same size as the "
            'number of image files in the target directory, "inferred" or None. '
            f"Received: labels={labels!r}"
        )
    if label_mode not in LABEL_MODES:
        raise ValueError(
            '`label_mode` argument must be one of "int", "categorical", "binary", or None. '
            f"Received: label_mode={label_mode!r}"
        )
    check_color_mode(color_mode)
    if validation_split and not (
        isinstance(validation_split, (int, float)) and 0 < validation_split < 1
    ):
        raise ValueError(
            f"`validation_split` must be between 0 and 1, received: {validation_split!r}"
        )
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(
            f'`subset` must be either "training", "validation" or "both", received: {subset!r}'
        )
    if validation_split and shuffle and seed is None:
        raise ValueError(
            "If using `validation_split` and shuffling the data, you must provide a `seed` "
            "argument, to make sure that there is no overlap between the training and "
            "validation subset."
        )


def keras_file_order(n: int, shuffle: bool, seed: int) -> np.ndarray:
    """Keras' global shuffle of the file list: ``np.random.RandomState(seed).shuffle``."""
    order = np.arange(n)
    if shuffle:
        np.random.RandomState(seed).shuffle(order)
    return order


def keras_subset(order: np.ndarray, validation_split: float | None, subset: str) -> np.ndarray:
    """The last ``int(validation_split * N)`` of ``order`` are validation, the rest training."""
    if not validation_split:
        return order
    n_val = int(validation_split * len(order))
    cut = len(order) - n_val
    return order[:cut] if subset == "training" else order[cut:]


def _say(verbose: bool, msg: str) -> None:
    if verbose:
        sys.stderr.write(msg + "\n")


def image_dataset_from_directory(
    directory: str | os.PathLike,
    *,
    labels: str | Sequence[int] | None = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size: int | Sequence[int] = (256, 256),
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    follow_links: bool = False,
    verbose: bool = True,
    allow_truncated: bool = False,
) -> Dataset | tuple[Dataset, Dataset]:
    """Keras' ``image_dataset_from_directory``, decoding each file once (cached on disk).

    Args:
        directory: folder with one sub-folder per class (``labels="inferred"``).
        labels: ``"inferred"``, None (images only) or int labels in sorted path order.
        label_mode: ``int`` (int64 ``(B,)``), ``categorical`` (one-hot float32 ``(B, K)``),
            ``binary`` (float32 ``(B, 1)``, exactly two classes) or None (images only).
        class_names: explicit class order (``labels="inferred"`` only).
        color_mode: ``grayscale``, ``rgb`` or ``rgba`` (1, 3 or 4 channels).
        batch_size: images per batch; None yields single images.
        image_size: ``(height, width)`` after resizing; an int ``n`` means ``(n, n)``.
        shuffle: shuffle the file list once (Keras' split rule) and every epoch.
        seed: shuffle/split seed; required with ``validation_split`` and ``shuffle``.
        validation_split: fraction held out for validation.
        subset: ``training``, ``validation`` or ``both`` (returns ``(train, val)``).
        interpolation: resize filter (Keras names).
        crop_to_aspect_ratio: centre-crop to the target aspect ratio before resizing.
        pad_to_aspect_ratio: pad (black, centred) to the target aspect ratio before resizing;
            not together with ``crop_to_aspect_ratio``.
        follow_links: follow symbolic links to folders.
        verbose: print "Found N files belonging to K classes." and progress on stderr.
        allow_truncated: decode truncated files as far as they go instead of skipping them.

    Returns:
        A :class:`Dataset` yielding ``(images, labels)`` (or ``images``), with
        ``class_names``, ``file_paths`` and ``len()`` in batches; a pair for ``subset="both"``.

    Shape:
        images: ``(B, C, H, W)`` float32 in 0..255 (``(C, H, W)`` when ``batch_size=None``).

    Raises:
        ValueError: a bad argument (named in the message) or no images found.
        FileNotFoundError: ``directory`` does not exist.

    Example:
        >>> train, val = image_dataset_from_directory(  # doctest: +SKIP
        ...     "flowers", validation_split=0.2, subset="both", seed=1337, image_size=(180, 180))
    """
    _check_args(
        labels, label_mode, class_names, color_mode, validation_split, subset, shuffle, seed
    )
    size = keras_image_size(image_size)
    check_interpolation(interpolation)
    check_aspect_flags(crop_to_aspect_ratio, pad_to_aspect_ratio)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
    ):
        raise ValueError(
            f"batch_size must be a positive int or None. Received: batch_size={batch_size!r}"
        )
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    if seed is None:
        seed = int(np.random.randint(1_000_000))
    index = scan_folder(directory, labels, class_names, follow_links)
    names = index.class_names or []
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(
            'When passing `label_mode="binary"`, there must be exactly 2 class_names. '
            f"Received: class_names={names}"
        )
    n = len(index.file_paths)
    _say(verbose, f"Found {n} files" + (f" belonging to {len(names)} classes." if labels else "."))
    if n == 0:
        raise ValueError(f"No images found in directory {os.fspath(directory)}. Allowed formats: "
                         ".png .jpg .jpeg .bmp .gif .tif .tiff .webp")  # fmt: skip
    settings = DecodeSettings(
        size, color_mode, interpolation, crop_to_aspect_ratio, allow_truncated,
        pad_to_aspect_ratio,
    )  # fmt: skip
    decoded = decode_files(index.file_paths, settings, progress=verbose)
    if verbose:
        report_skipped(decoded.skipped, decoded.entry)
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[decoded.kept] = np.arange(len(decoded.kept))
    row_labels = None if index.labels is None else index.labels[decoded.kept]
    row_paths = [index.file_paths[i] for i in decoded.kept]
    order = keras_file_order(n, shuffle, seed)

    def make(which: str, shuffle_epochs: bool) -> Dataset:
        pos = keras_subset(order, validation_split, which)
        if validation_split:
            _say(verbose, f"Using {len(pos)} files for {which}.")
        rows = row_of[pos][row_of[pos] >= 0]  # broken files dropped after the split
        return from_arrays(
            decoded.images, row_labels, indices=rows, batch_size=batch_size,
            shuffle=shuffle_epochs, seed=seed, label_mode=label_mode,
            class_names=list(names) if labels is not None else None, file_paths=row_paths,
        )  # fmt: skip

    if subset == "both":
        return make("training", shuffle), make("validation", False)
    return make(subset or "training", shuffle)
