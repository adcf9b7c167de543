"""A small tf.data-like pipeline: ``map``, ``batch``, ``unbatch``, ``shuffle``, ``cache``,
``prefetch``, ``take``, ``to``.

A :class:`Dataset` is a re-iterable recipe. Each ``for`` over it is one epoch; the epoch number
is passed down the chain so that shuffles with a seed give a different, reproducible order
every epoch (``reshuffle_each_iteration``) and the same sequence of orders in every run.
Elements are torch tensors or tuples of them. :func:`from_arrays` is the fast source over
``uint8`` ``(N, C, H, W)`` arrays (a memory-mapped decode cache included): it gathers whole
batches by index and converts them once.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from cnnkit.allocator import keep_freed_memory

LABEL_MODES = ("int", "categorical", "binary", None)


class Dataset:
    """A re-iterable sequence of elements (tensors or tuples of tensors).

    Attributes:
        class_names: class names of the labels (or None).
        file_paths: the files the elements come from, in source order (or []).
    """

    def __init__(
        self,
        iterate: Callable[[int], Iterator[Any]],
        length: int | None,
        class_names: list[str] | None = None,
        file_paths: list[str] | None = None,
        unbatched: int | None = None,
    ) -> None:
        self._iterate = iterate
        self._length = length
        self._unbatched = unbatched  # element count after .unbatch(), when known
        self._epoch = 0
        self.class_names = class_names
        self.file_paths = list(file_paths or [])

    def _derive(
        self, iterate: Callable[[int], Iterator[Any]], length: int | None, unbatched: Any = "keep"
    ) -> Dataset:
        kept = self._unbatched if unbatched == "keep" else unbatched
        return Dataset(iterate, length, self.class_names, self.file_paths, kept)

    def __iter__(self) -> Iterator[Any]:
        keep_freed_memory()  # each batch's large tensors reuse memory instead of faulting
        epoch = self._epoch
        self._epoch += 1
        return self._iterate(epoch)

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("the length of this dataset is unknown")
        return self._length

    def cardinality(self) -> int:
        """Number of elements, or -1 when unknown (tf.data's convention)."""
        return -1 if self._length is None else self._length

    def map(self, fn: Callable[..., Any]) -> Dataset:
        """Apply ``fn`` to each element (tuples are unpacked into arguments, as tf.data)."""

        def iterate(epoch: int) -> Iterator[Any]:
            for el in self._iterate(epoch):
                yield fn(*el) if isinstance(el, tuple) else fn(el)

        return self._derive(iterate, self._length)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> Dataset:
        """Stack consecutive elements into batches of ``batch_size``.

        Raises:
            ValueError: ``batch_size`` is not a positive int.
        """
        _check_positive("batch_size", batch_size)

        def iterate(epoch: int) -> Iterator[Any]:
            buf: list[Any] = []
            for el in self._iterate(epoch):
                buf.append(el)
                if len(buf) == batch_size:
                    yield _collate(buf)
                    buf = []
            if buf and not drop_remainder:
                yield _collate(buf)

        n = self._length
        length = None if n is None else (n // batch_size if drop_remainder else -(-n // batch_size))
        return self._derive(
            iterate, length, None if n is None else min(n, (length or 0) * batch_size)
        )

    def unbatch(self) -> Dataset:
        """Split batches back into single elements."""

        def iterate(epoch: int) -> Iterator[Any]:
            for el in self._iterate(epoch):
                if isinstance(el, tuple):
                    yield from zip(*el, strict=True)
                else:
                    yield from el

        return self._derive(iterate, self._unbatched, None)

    def shuffle(
        self, buffer_size: int, seed: int | None = None, reshuffle_each_iteration: bool = True
    ) -> Dataset:
        """tf.data's buffered shuffle: keep ``buffer_size`` elements, emit one at random.

        Args:
            buffer_size: elements held; >= the dataset size gives a full uniform shuffle.
            seed: makes the order reproducible (None: a fresh random seed).
            reshuffle_each_iteration: a new order each epoch (still reproducible from seed).
        """
        _check_positive("buffer_size", buffer_size)
        base = _random_seed() if seed is None else int(seed)

        def iterate(epoch: int) -> Iterator[Any]:
            rng = np.random.default_rng([base, epoch if reshuffle_each_iteration else 0])
            buf: list[Any] = []
            for el in self._iterate(epoch):
                if len(buf) < buffer_size:
                    buf.append(el)
                    continue
                i = int(rng.integers(len(buf)))
                yield buf[i]
                buf[i] = el
            rng.shuffle(buf)  # type: ignore[arg-type]
            yield from buf

        return self._derive(iterate, self._length)

    def take(self, count: int) -> Dataset:
        """The first ``count`` elements (-1: all)."""

        def iterate(epoch: int) -> Iterator[Any]:
            if count < 0:
                yield from self._iterate(epoch)
                return
            it = self._iterate(epoch)
            for _ in range(count):
                try:
                    yield next(it)
                except StopIteration:
                    return

        n = self._length
        length = n if count < 0 else (count if n is None else min(n, count))
        return self._derive(iterate, length, self._unbatched if count < 0 else None)

    def cache(self) -> Dataset:
        """Keep the elements of the first complete pass in memory and replay them after."""
        store: list[Any] = []
        done = [False]

        def iterate(epoch: int) -> Iterator[Any]:
            if done[0]:
                yield from store
                return
            fresh: list[Any] = []
            for el in self._iterate(epoch):
                fresh.append(el)
                yield el
            store[:] = fresh
            done[0] = True

        return self._derive(iterate, self._length)

    def prefetch(self, buffer_size: int = 2) -> Dataset:
        """Produce up to ``buffer_size`` elements ahead in a background thread."""
        _check_positive("buffer_size", buffer_size)

        def iterate(epoch: int) -> Iterator[Any]:
            return _background(self._iterate(epoch), buffer_size)

        return self._derive(iterate, self._length)

    def to(self, device: str | torch.device, non_blocking: bool = True) -> Dataset:
        """Move every tensor to ``device`` (from pinned memory when it is CUDA)."""
        dev = torch.device(device)
        pin = dev.type == "cuda"

        def move(t: Any) -> Any:
            if not isinstance(t, torch.Tensor):
                return t
            if pin and t.device.type == "cpu":
                t = t.pin_memory()
            return t.to(dev, non_blocking=non_blocking)

        def iterate(epoch: int) -> Iterator[Any]:
            for el in self._iterate(epoch):
                yield tuple(move(t) for t in el) if isinstance(el, tuple) else move(el)

        return self._derive(iterate, self._length)


def _random_seed() -> int:
    """A fresh seed when none is given (from the OS entropy pool)."""
    return int(np.random.default_rng().integers(2**31))


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")


def _collate(items: list[Any]) -> Any:
    if isinstance(items[0], tuple):
        return tuple(_collate(list(col)) for col in zip(*items, strict=True))
    return torch.stack([torch.as_tensor(t) for t in items])


_END = object()


def _background(it: Iterator[Any], size: int) -> Iterator[Any]:
    """Run ``it`` in a daemon thread, ``size`` elements ahead; errors re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def work() -> None:
        try:
            for el in it:
                while not stop.is_set():
                    try:
                        q.put(el, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(e)

    thread = threading.Thread(target=work, daemon=True, name="cnnkit-prefetch")
    thread.start()
    try:
        while True:
            el = q.get()
            if el is _END:
                return
            if isinstance(el, BaseException):
                raise el
            yield el
    finally:
        stop.set()


def encode_labels(labels: np.ndarray, label_mode: str | None, num_classes: int) -> torch.Tensor:
    """Keras label modes: ``int`` (int64), ``categorical`` (one-hot float32), ``binary``.

    Shape:
        labels: ``(B,)``; returns ``(B,)``, ``(B, K)`` or ``(B, 1)``.
    """
    t = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    if label_mode == "categorical":
        return torch.nn.functional.one_hot(t, num_classes).float()
    if label_mode == "binary":
        return t.float().unsqueeze(-1)
    return t


def _check_arrays(images: Any, labels: Any) -> None:
    """``images`` must be ``(N, C, H, W)`` and ``labels`` (if any) ``(N,)``."""
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) != 4:
        raise ValueError(
            "images must be a rank-4 array (N, C, H, W). "
            f"Received: images with shape {shape or type(images).__name__}"
        )
    if labels is None:
        return
    lshape = tuple(np.shape(labels))
    if len(lshape) != 1 or lshape[0] != shape[0]:
        raise ValueError(
            f"labels must be one int per image, shape ({shape[0]},). "
            f"Received: labels with shape {lshape} for images with shape {shape}"
        )


def from_arrays(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int | None = 32,
    shuffle: bool = False,
    seed: int | None = None,
    label_mode: str | None = "int",
    class_names: list[str] | None = None,
    file_paths: list[str] | None = None,
) -> Dataset:
    """A dataset over ``uint8`` arrays that yields float32 0..255 batches (or single images).

    Args:
        images: decoded images (memmaps fine: rows are gathered per batch).
        labels: int labels, or None to yield images only.
        indices: the rows to use, in order (default: all).
        batch_size: images per batch, or None for single images.
        shuffle: a fresh permutation every epoch, reproducible from ``seed``.
        seed: shuffle seed (None: random).
        label_mode: ``int``, ``categorical``, ``binary`` or None (images only).
        class_names: names of the classes (sets ``num_classes`` for ``categorical``).
        file_paths: paths of ALL rows; the dataset keeps those of ``indices``.

    Returns:
        A :class:`Dataset` of ``(images, labels)`` or ``images``.

    Shape:
        images: ``(N, C, H, W)``; yields ``(B, C, H, W)`` float32 (``(C, H, W)`` unbatched).

    Raises:
        ValueError: ``images`` is not ``(N, C, H, W)``, ``labels`` not one per image, an
            index out of range, or a bad ``batch_size`` / ``label_mode``.
    """
    _check_arrays(images, labels)
    labels = None if labels is None else np.asarray(labels)
    rows = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
        raise ValueError(
            f"indices must be rows of images, in [0, {len(images)}). "
            f"Received: indices from {int(rows.min())} to {int(rows.max())}"
        )
    if batch_size is not None:
        _check_positive("batch_size", batch_size)
    if label_mode not in LABEL_MODES:
        raise ValueError(
            '`label_mode` argument must be one of "int", "categorical", "binary", or None. '
            f"Received: label_mode={label_mode!r}"
        )
    with_labels = labels is not None and label_mode is not None
    k = len(class_names) if class_names else 0
    if not k and with_labels and len(labels):  # type: ignore[arg-type]
        k = int(np.max(labels)) + 1  # type: ignore[arg-type]
    base = _random_seed() if seed is None else int(seed)
    step = batch_size or 1

    def iterate(epoch: int) -> Iterator[Any]:
        order = rows
        if shuffle:
            order = rows[np.random.default_rng([base, epoch]).permutation(len(rows))]
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            x = torch.from_numpy(np.ascontiguousarray(images[idx])).float()  # uint8 -> 0..255
            y = encode_labels(labels[idx], label_mode, k) if with_labels else None  # type: ignore[index]
            if batch_size is None:
                x, y = x[0], (None if y is None else y[0])
            yield (x, y) if with_labels else x

    paths = [file_paths[i] for i in rows] if file_paths else []
    length = len(rows) if batch_size is None else math.ceil(len(rows) / batch_size)
    return Dataset(iterate, length, class_names, paths, len(rows) if batch_size else None)
