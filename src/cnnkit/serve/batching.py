"""Run concurrent forward passes as one batch, without making a lone request wait.

A server thread that wants predictions appends its images to a shared queue. If no batch
is running, it becomes the *leader*: it takes everything queued (up to ``max_batch``
images), runs one forward pass and hands each caller its rows. Callers that arrive while
a batch runs wait and are served by the next leader, all together. At low load every
request runs alone at once; under load requests coalesce into batches, which a CPU runs
far more efficiently than one image at a time. Only one forward pass runs at a time, so
concurrent requests never oversubscribe the cores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class _Slot:
    images: np.ndarray
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class Coalescer:
    """Thread-safe ``fn`` over batches, coalescing concurrent calls.

    Args:
        fn: ``(N, ...) -> (N, K)`` on a batch; rows must be independent (eval mode).
        max_batch: most images in one call of ``fn`` (a single larger request still runs
            whole).

    Example:
        >>> run = Coalescer(lambda x: x * 2, max_batch=8)
        >>> run(np.ones((2, 3))).shape
        (2, 3)
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1. Received: {max_batch}")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.calls = 0  # forward passes run (for tests and monitoring)
        self._cv = threading.Condition()
        self._pending: list[_Slot] = []
        self._busy = False

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``fn(images)``, possibly computed in one batch with other threads' images."""
        slot = _Slot(np.asarray(images))
        with self._cv:
            self._pending.append(slot)
            while not slot.done:
                if self._busy:
                    self._cv.wait()
                    continue
                batch = self._take()
                self._busy = True
                self._cv.release()
                try:
                    self._run(batch)
                finally:
                    self._cv.acquire()
                    self._busy = False
                    self._cv.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # set with done by _run

    def _take(self) -> list[_Slot]:
        """Queued slots, oldest first, up to ``max_batch`` images (at least one slot)."""
        batch: list[_Slot] = []
        n = 0
        while self._pending and (not batch or n + len(self._pending[0].images) <= self.max_batch):
            slot = self._pending.pop(0)
            batch.append(slot)
            n += len(slot.images)
        return batch

    def _run(self, batch: list[_Slot]) -> None:
        self.calls += 1
        try:
            out = self.fn(np.concatenate([s.images for s in batch]))
        except BaseException as e:  # every waiting caller gets the error, not a hang
            for s in batch:
                s.error, s.done = e, True
            return
        start = 0
        for s in batch:
            s.result, s.done = out[start : start + len(s.images)], True
            start += len(s.images)
