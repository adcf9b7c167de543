"""cnnkit.data: images in, batches out.

Folder scan and decode-once cache (:func:`load_folder`), Keras'
:func:`image_dataset_from_directory` and a tf.data-like :class:`Dataset`, named datasets
(:func:`load_dataset`), the audit, and batched augmentation (:class:`Augment`, Keras-3 layers
in :mod:`cnnkit.data.layers`).
"""

# ``audit`` (the function) is imported after its submodule, so the name is the function.
from cnnkit.data.arrays import ImageArrays
from cnnkit.data.audit import audit
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

__all__ = [
    "ALPHA_BACKGROUND",
    "Augment",
    "COLOR_MODES",
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
