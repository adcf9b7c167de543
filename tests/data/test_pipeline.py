"""Dataset pipeline: map, batch, unbatch, shuffle, cache, prefetch, take, to, lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.pipeline import Dataset, encode_labels, from_arrays

IMAGES = np.arange(10 * 1 * 2 * 2, dtype=np.uint8).reshape(10, 1, 2, 2)
LABELS = np.arange(10) % 3


def _ids(ds) -> list[int]:
    """The image index of each element (first pixel / 4)."""
    out = []
    for el in ds:
        x = el[0] if isinstance(el, tuple) else el
        out += (x.reshape(-1, 4)[:, 0] // 4).long().tolist()
    return out


def test_from_arrays_batches_and_dtypes():
    ds = from_arrays(IMAGES, LABELS, batch_size=4, class_names=["a", "b", "c"])
    batches = list(ds)
    assert len(ds) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (4, 1, 2, 2) and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(IMAGES[:4]).float())


def test_single_images_when_batch_size_none():
    x, y = next(iter(from_arrays(IMAGES, LABELS, batch_size=None)))
    assert x.shape == (1, 2, 2) and y.ndim == 0


def test_label_modes():
    y = np.array([0, 2, 1])
    assert encode_labels(y, "categorical", 3).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert encode_labels(np.array([0, 1]), "binary", 2).shape == (2, 1)
    only_images = next(iter(from_arrays(IMAGES, LABELS, label_mode=None)))
    assert isinstance(only_images, torch.Tensor)


def test_shuffle_each_epoch_reproducible():
    a = from_arrays(IMAGES, LABELS, batch_size=3, shuffle=True, seed=7)
    b = from_arrays(IMAGES, LABELS, batch_size=3, shuffle=True, seed=7)
    e1, e2 = _ids(a), _ids(a)
    assert sorted(e1) == list(range(10)) and e1 != e2
    assert [e1, e2] == [_ids(b), _ids(b)]


def test_unbatch_batch_take_map():
    ds = from_arrays(IMAGES, LABELS, batch_size=4).unbatch().batch(3)
    assert _ids(ds) == list(range(10)) and len(ds.take(2)) == 2 and len(ds) == 4
    assert len(from_arrays(IMAGES, LABELS, batch_size=4).unbatch()) == 10
    with pytest.raises(TypeError):
        len(from_arrays(IMAGES, LABELS, batch_size=None).unbatch())
    doubled = from_arrays(IMAGES, LABELS, batch_size=5).map(lambda x, y: (x * 2, y + 1))
    x, y = next(iter(doubled))
    assert x[1].max() == 2 * IMAGES[1].max() and y.tolist() == (LABELS[:5] + 1).tolist()
    assert len(from_arrays(IMAGES, LABELS, batch_size=4).unbatch().batch(3, True)) > 0


def test_buffered_shuffle_is_a_permutation_and_seeded():
    ds = from_arrays(IMAGES, LABELS, batch_size=None).shuffle(4, seed=1).batch(10)
    first = _ids(ds)
    assert sorted(first) == list(range(10)) and first != list(range(10))
    again = from_arrays(IMAGES, LABELS, batch_size=None).shuffle(4, seed=1).batch(10)
    assert _ids(again) == first


def test_cache_replays_first_pass():
    calls = []

    def noisy(x, y):
        calls.append(1)
        return x + torch.rand(()), y

    ds = from_arrays(IMAGES, LABELS, batch_size=5).map(noisy).cache()
    first = [x.clone() for x, _ in ds]
    second = [x for x, _ in ds]
    assert len(calls) == 2 and all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_prefetch_same_elements_and_errors_propagate():
    ds = from_arrays(IMAGES, LABELS, batch_size=3)
    assert _ids(ds.prefetch(2)) == _ids(ds)

    def boom(x, y):
        raise RuntimeError("bad map")

    with pytest.raises(RuntimeError, match="bad map"):
        list(ds.map(boom).prefetch(2))


def test_to_device_and_argument_errors():
    x, _ = next(iter(from_arrays(IMAGES, LABELS).to("cpu")))
    assert x.device.type == "cpu"
    with pytest.raises(ValueError, match="batch_size"):
        from_arrays(IMAGES, LABELS, batch_size=0)
    with pytest.raises(ValueError, match="label_mode"):
        from_arrays(IMAGES, LABELS, label_mode="sparse")
    assert isinstance(Dataset(lambda e: iter([]), 0), Dataset)


@pytest.mark.parametrize(
    "images,labels,match",
    [
        (np.zeros(8, np.uint8), None, r"rank-4 array \(N, C, H, W\). Received: images with sh"),
        (np.zeros((8, 4, 4), np.uint8), None, r"Received: images with shape \(8, 4, 4\)"),
        ([1, 2], None, "Received: images with shape list"),
        (IMAGES, LABELS[:9], r"per image, shape \(10,\). Received: labels with shape \(9,\)"),
        (IMAGES, np.zeros(11, np.int64), r"Received: labels with shape \(11,\)"),
        (IMAGES, np.zeros((10, 2), np.int64), r"Received: labels with shape \(10, 2\)"),
    ],
)
def test_from_arrays_refuses_bad_shapes(images, labels, match):
    with pytest.raises(ValueError, match=match):
        from_arrays(images, labels)


def test_from_arrays_refuses_indices_out_of_range():
    with pytest.raises(ValueError, match=r"indices must be rows of images, in \[0, 10\)"):
        from_arrays(IMAGES, LABELS, indices=[0, 10])


def test_to_cuda_pinned_when_present():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine (the device check runs it)")
    x, y = next(iter(from_arrays(IMAGES, LABELS, batch_size=4).prefetch(2).to("cuda")))
    assert x.is_cuda and y.is_cuda and torch.equal(x.cpu(), torch.from_numpy(IMAGES[:4]).float())


def test_iterating_keeps_freed_memory_for_reuse():
    from cnnkit import allocator

    allocator.keep_freed_memory.cache_clear()
    ds = from_arrays(np.zeros((4, 1, 2, 2), np.uint8), np.zeros(4, np.int64), batch_size=2)
    assert allocator.keep_freed_memory.cache_info().currsize == 0
    assert len(list(ds)) == 2
    assert allocator.keep_freed_memory.cache_info().currsize == 1
    assert (allocator.keep_freed_memory() is not None) == allocator.is_glibc()
