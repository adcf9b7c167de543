"""``load_folder``: a class-per-folder tree of images -> :class:`ImageArrays`, decoded once."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from cnnkit.data.arrays import ImageArrays
from cnnkit.data.cache import DecodeSettings, decode_files
from cnnkit.data.decode import keras_image_size
from cnnkit.data.scan import scan_folder

_REPORTED: set[tuple[str, ...]] = set()
"""The skipped-file sets already reported by this process (a command that loads the same
folder twice, e.g. training then its report, says it once)."""


def report_skipped(skipped: Sequence[tuple[str, str, str]], entry=None) -> str:
    """One line for skipped files, written once to stderr: ``N files skipped, see ...``.

    The same files skipped again in this process (the same folder loaded a second time) are
    not reported again; the line is still returned.

    Args:
        skipped: ``(path, problem, detail)`` triples.
        entry: the cache entry folder; the full list is written there as ``skipped.tsv``.

    Returns:
        The line ("" when nothing was skipped).
    """
    if not skipped:
        return ""
    where = _write_skipped(entry, skipped)
    first = f"{skipped[0][0]} ({skipped[0][1]})"
    see = where or "ImageArrays.skipped"
    line = (
        f"{len(skipped)} file{'s' if len(skipped) != 1 else ''} skipped (first: {first}), see {see}"
    )
    key = (str(entry), *sorted(p for p, _, _ in skipped))
    if key not in _REPORTED:
        _REPORTED.add(key)
        sys.stderr.write(line + "\n")
    return line


def _write_skipped(entry, skipped) -> str | None:
    if entry is None or not skipped:
        return None
    path = os.path.join(entry, "skipped.tsv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("path\tproblem\tdetail\n")
        for p, problem, detail in skipped:
            f.write(f"{p}\t{problem}\t{detail}\n".replace("\r", " "))
    return path


def load_folder(
    directory: str | os.PathLike,
    *,
    image_size: int | Sequence[int],
    color_mode: str = "rgb",
    interpolation: str = "bilinear",
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    class_names: Sequence[str] | None = None,
    labels: str | Sequence[int] | None = "inferred",
    follow_links: bool = False,
    allow_truncated: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> ImageArrays:
    """Decode every image of a class-per-folder tree (through the decode-once cache).

    The first call decodes in parallel processes into a memory-mapped cache file; later calls
    map it, re-decoding only files that were added or changed. Files that cannot be decoded
    are skipped, listed in ``skipped`` and reported once on stderr.

    Args:
        directory: folder with one sub-folder per class (Keras layout).
        image_size: ``(height, width)`` every image is resized to (an int ``n``: ``(n, n)``).
        color_mode: ``grayscale``, ``rgb`` or ``rgba``.
        interpolation: resize filter (Keras names).
        crop_to_aspect_ratio: centre-crop to the target aspect ratio before resizing.
        pad_to_aspect_ratio: centre each image on black padding of the target aspect ratio
            before resizing (not with ``crop_to_aspect_ratio``).
        class_names: explicit class order (sub-folder names).
        labels: ``"inferred"``, None (all images, label 0, no classes) or a list of ints in
            sorted path order.
        follow_links: follow symbolic links to folders.
        allow_truncated: decode truncated files as far as they go instead of skipping them.
        progress: tqdm bar while decoding, and the skipped-files line.
        workers: decode processes (default: CPU count, at most 8).

    Returns:
        :class:`ImageArrays` with ``file_paths`` of the files actually loaded, in Keras order.

    Shape:
        images: ``(N, C, H, W)`` uint8 (a read-only memmap when N > 0).

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        ValueError: bad arguments (named in the message).

    Example:
        >>> data = load_folder("flowers/", image_size=(180, 180))  # doctest: +SKIP
        >>> data.images.shape, data.class_names  # doctest: +SKIP
        ((3670, 3, 180, 180), ['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips'])
    """
    settings = DecodeSettings(
        keras_image_size(image_size),
        color_mode,
        interpolation,
        bool(crop_to_aspect_ratio),
        bool(allow_truncated),
        bool(pad_to_aspect_ratio),
    )
    index = scan_folder(directory, labels, class_names, follow_links)
    decoded = decode_files(index.file_paths, settings, workers=workers, progress=progress)
    all_labels = index.labels if index.labels is not None else np.zeros(len(index.file_paths))
    if progress:
        report_skipped(decoded.skipped, decoded.entry)
    return ImageArrays(
        images=decoded.images,
        labels=np.asarray(all_labels, dtype=np.int64)[decoded.kept],
        class_names=list(index.class_names or []),
        file_paths=[index.file_paths[i] for i in decoded.kept],
        skipped=list(decoded.skipped),
    )
