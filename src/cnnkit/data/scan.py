"""Index a folder of images with Keras ``image_dataset_from_directory`` rules.

* ``labels="inferred"``: each non-hidden sub-folder of ``directory`` is a class, classes in
  sorted order (or in the order of ``class_names``); files are found recursively inside each
  class folder.
* ``labels=None``: every image under ``directory``, no classes.
* ``labels=[...]``: integer labels given in the sorted order of the image paths.

Files are listed per class in ``sorted(os.walk(...))`` order (by folder, then file name),
exactly as Keras. Only :data:`cnnkit.data.decode.IMAGE_EXTENSIONS` are picked up; hidden
files and folders (name starting with ``.``: ``.DS_Store``, ``.ipynb_checkpoints``) are
ignored and never a class.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.data.decode import IMAGE_EXTENSIONS, is_image_file


@dataclass(frozen=True)
class FolderIndex:
    """The files of a folder and their labels (None when ``labels=None``).

    Shape:
        labels: ``(N,)`` int64.
    """

    file_paths: list[str]
    labels: np.ndarray | None
    class_names: list[str] | None


def _hidden(name: str) -> bool:
    return name.startswith(".")


def iter_image_files(directory: str, follow_links: bool = False) -> list[str]:
    """Image files under ``directory`` in Keras order, hidden files and folders skipped.

    Args:
        directory: folder to walk (recursively).
        follow_links: follow symbolic links to folders.

    Returns:
        Paths (``directory`` joined with the relative path).
    """
    found = []
    walk = os.walk(directory, followlinks=follow_links)
    for root, dirs, files in sorted(walk, key=lambda t: t[0]):
        rel = os.path.relpath(root, directory)
        if rel != "." and any(_hidden(part) for part in Path(rel).parts):
            continue
        dirs[:] = [d for d in dirs if not _hidden(d)]
        for fname in sorted(files):
            if not _hidden(fname) and is_image_file(fname):
                found.append(os.path.join(root, fname))
    return found


def list_class_folders(directory: str) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``directory``."""
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not _hidden(e.name))


def _check_directory(directory: str | os.PathLike) -> str:
    path = os.fspath(directory)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise NotADirectoryError(f"directory must be a folder. Received: directory={path!r}")
        raise FileNotFoundError(f"directory not found. Received: directory={path!r}")
    return path


def _inferred(directory: str, class_names, follow_links: bool) -> FolderIndex:
    subdirs = list_class_folders(directory)
    if class_names is not None:
        names = [str(c) for c in class_names]
        missing = sorted(set(names) - set(subdirs))
        if missing:
            raise ValueError(
                "The `class_names` passed did not match the names of the subdirectories of the "
                f"target directory. Expected: {subdirs} (or a subset of it), but received: "
                f"class_names={names} (no folder for {missing})"
            )
        subdirs = names
    paths: list[str] = []
    labels: list[int] = []
    for label, sub in enumerate(subdirs):
        files = iter_image_files(os.path.join(directory, sub), follow_links)
        paths += files
        labels += [label] * len(files)
    return FolderIndex(paths, np.asarray(labels, dtype=np.int64), list(subdirs))


def scan_folder(
    directory: str | os.PathLike,
    labels: str | Sequence[int] | None = "inferred",
    class_names: Sequence[str] | None = None,
    follow_links: bool = False,
) -> FolderIndex:
    """List the image files of ``directory`` and their labels, Keras' way.

    Args:
        directory: the data folder.
        labels: ``"inferred"`` (from sub-folders), None (no labels) or a list of int labels
            in the sorted order of the image paths.
        class_names: explicit class order (only with ``labels="inferred"``); must name
            existing sub-folders.
        follow_links: follow symbolic links to folders.

    Returns:
        A :class:`FolderIndex`.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        ValueError: bad ``labels``/``class_names`` combination or counts.
    """
    path = _check_directory(directory)
    if isinstance(labels, str) and labels == "inferred":
        return _inferred(path, class_names, follow_links)
    if class_names is not None:
        raise ValueError(
            'You can only pass `class_names` if `labels="inferred"`. '
            f"Received: labels={labels!r}, and class_names={list(class_names)}"
        )
    files = iter_image_files(path, follow_links)
    if labels is None:
        return FolderIndex(files, None, None)
    if isinstance(labels, str) or not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(
            '`labels` argument should be a list/tuple of integer labels, "inferred" or None. '
            f"Received: labels={labels!r}"
        )
    if len(labels) != len(files):
        raise ValueError(
            "Expected the lengths of `labels` to match the number of files in the target "
            f"directory. len(labels) is {len(labels)} while we found {len(files)} files "
            f"in directory {path}."
        )
    arr = np.asarray(labels, dtype=np.int64)
    names = [str(i) for i in range(int(arr.max()) + 1)] if len(arr) else []
    return FolderIndex(files, arr, names)


__all__ = [
    "FolderIndex",
    "IMAGE_EXTENSIONS",
    "iter_image_files",
    "list_class_folders",
    "scan_folder",
]
