"""cnnkit.data: images in, batches out.

Folder scan and decode-once cache (:func:`load_folder`), Keras'
:func:`image_dataset_from_directory` and a tf.data-like :class:`Dataset`, named datasets
(:func:`load_dataset`), the audit, and batched augmentation (:class:`Augment`, Keras-3 layers
in :mod:`cnnkit.data.layers`). Names are imported lazily so ``import cnnkit.data`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ImageArrays": "cnnkit.data.arrays",
    "load_image": "cnnkit.data.decode",
    "conform_images": "cnnkit.data.decode",
    "COLOR_MODES": "cnnkit.data.decode",
    "IMAGE_EXTENSIONS": "cnnkit.data.decode",
    "ALPHA_BACKGROUND": "cnnkit.data.decode",
    "scan_folder": "cnnkit.data.scan",
    "load_folder": "cnnkit.data.folder",
    "DecodeSettings": "cnnkit.data.cache",
    "decode_files": "cnnkit.data.cache",
    "cache_dir": "cnnkit.data.cache",
    "cache_info": "cnnkit.data.cache",
    "clear_cache": "cnnkit.data.cache",
    "load_dataset": "cnnkit.data.datasets",
    "list_datasets": "cnnkit.data.datasets",
    "parse_dataset_spec": "cnnkit.data.datasets",
    "is_dataset_name": "cnnkit.data.datasets",
    "register_dataset": "cnnkit.data.datasets",
    "export_dataset": "cnnkit.data.datasets",
    "Augment": "cnnkit.data.augment",
    "ImageLookup": "cnnkit.data.lookup",
    "Dataset": "cnnkit.data.pipeline",
    "image_dataset_from_directory": "cnnkit.data.directory",
    "split_indices": "cnnkit.data.directory",
    "preview_grid": "cnnkit.data.preview",
}

__all__ = [
    "ALPHA_BACKGROUND",
    "COLOR_MODES",
    "Augment",
    "Dataset",
    "DecodeSettings",
    "IMAGE_EXTENSIONS",
    "ImageArrays",
    "ImageLookup",
    "audit",
    "cache_dir",
    "cache_info",
    "clear_cache",
    "conform_images",
    "decode_files",
    "export_dataset",
    "image_dataset_from_directory",
    "is_dataset_name",
    "list_datasets",
    "load_dataset",
    "load_folder",
    "load_image",
    "parse_dataset_spec",
    "preview_grid",
    "register_dataset",
    "scan_folder",
    "split_indices",
]

# Eager on purpose: the function ``audit`` must shadow its own submodule ``cnnkit.data.audit``
# on this package (the module only needs numpy and Pillow, so this stays cheap).
from cnnkit.data.audit import audit  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from cnnkit.data.arrays import ImageArrays
    from cnnkit.data.augment import Augment
    from cnnkit.data.cache import DecodeSettings, cache_dir, cache_info, clear_cache, decode_files
    from cnnkit.data.datasets import (
        export_dataset,
        is_dataset_name,
        list_datasets,
        load_dataset,
        parse_dataset_spec,
        register_dataset,
    )
    from cnnkit.data.decode import (
        ALPHA_BACKGROUND,
        COLOR_MODES,
        IMAGE_EXTENSIONS,
        conform_images,
        load_image,
    )
    from cnnkit.data.directory import image_dataset_from_directory, split_indices
    from cnnkit.data.folder import load_folder
    from cnnkit.data.lookup import ImageLookup
    from cnnkit.data.pipeline import Dataset
    from cnnkit.data.preview import preview_grid
    from cnnkit.data.scan import scan_folder


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnkit.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
