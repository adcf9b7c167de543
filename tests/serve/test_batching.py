"""Coalescer: concurrent calls batched, results routed back, errors to every caller."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cnnkit.serve.batching import Coalescer


def test_a_lone_call_runs_at_once():
    c = Coalescer(lambda x: x * 2)
    np.testing.assert_array_equal(c(np.arange(6.0).reshape(3, 2)), np.arange(6.0).reshape(3, 2) * 2)
    assert c.calls == 1


def test_concurrent_calls_are_batched_and_each_gets_its_rows():
    sizes = []
    gate = threading.Event()

    def slow_double(x):
        sizes.append(len(x))
        gate.wait(5)  # the first batch holds until every other caller has queued
        return x * 2

    c = Coalescer(slow_double, max_batch=100)
    results: dict[int, np.ndarray] = {}
    threads = [
        threading.Thread(
            target=lambda i=i: results.__setitem__(i, c(np.full((i % 3 + 1, 2), float(i))))
        )
        for i in range(20)
    ]
    for t in threads:
        t.start()
    while len(c._pending) < 19:  # one leader runs, 19 wait
        time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join(10)
    assert len(results) == 20
    for i, out in results.items():
        np.testing.assert_array_equal(out, np.full((i % 3 + 1, 2), 2.0 * i))
    assert c.calls == 2 and sizes[1] == sum(i % 3 + 1 for i in range(20)) - sizes[0]


def test_max_batch_splits_the_queue():
    gate = threading.Event()
    sizes = []

    def fn(x):
        sizes.append(len(x))
        gate.wait(5)
        return x

    c = Coalescer(fn, max_batch=4)
    threads = [threading.Thread(target=c, args=(np.zeros((1, 1)),)) for _ in range(9)]
    for t in threads:
        t.start()
    while len(c._pending) < 8:
        time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join(10)
    assert sizes == [1, 4, 4]


def test_errors_reach_every_caller_and_the_next_call_works():
    def fn(x):
        if (x < 0).any():
            raise ValueError("negative")
        return x

    c = Coalescer(fn)
    with pytest.raises(ValueError, match="negative"):
        c(np.array([[-1.0]]))
    np.testing.assert_array_equal(c(np.array([[1.0]])), [[1.0]])
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(fn, max_batch=0)
