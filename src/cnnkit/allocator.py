"""Keep freed memory for reuse, so a training step does not page-fault its tensors in again.

glibc's ``malloc`` hands large freed blocks back to the kernel (``munmap`` for blocks above
its mmap threshold, heap trimming above its trim threshold). A training step allocates and
frees the same large activations and gradients every time, so each step faults them in
again, page by page: on a 2-core AMD EPYC (AVX2 only) basic_convnet at batch 128 took
5,000-8,000 minor page faults per step, and about none with the thresholds raised, while
training 1.3-1.5x faster (the same steps, each setting in a process of its own). PyTorch's
own CUDA allocator and TensorFlow's CPU allocator keep memory for the same reason.

A thread other than the main one (the pipeline's prefetch thread) gets an arena of its own,
made of 64 MiB heaps that glibc unmaps as soon as one is empty, whatever the thresholds. With
one arena for the process a prefetch thread producing 12 MB batches faults 24 pages per batch
in again, 593 with ``CNNKIT_MALLOC_TUNING=0`` (bench/prefetch.py), and the steady
epoch of bench/pipeline.py ran at 8,541 img/s, 6,129 with ``CNNKIT_MALLOC_TUNING=0`` (2-core
Zen 5 EPYC, 2026-12-02).

:func:`keep_freed_memory` raises both thresholds and limits glibc to one arena, once per
process (``mallopt``, glibc only): blocks up to 32 MiB come from the heap and up to 1 GiB of
freed heap stays with the process. glibc fixes its arena limit the first time a second
thread needs an arena, so the ``cnnkit`` command calls it first thing; ``import cnnkit``
changes nothing (a host application keeps glibc's settings), and :func:`cnnkit.train.fit`
and iterating a :class:`cnnkit.data.Dataset` opt in when they start (after other threads may
have made arenas of their own: a Python program that prefetches batches calls it first).
``CNNKIT_MALLOC_TUNING=0`` turns it off. Elsewhere (macOS, Windows, musl) it does nothing.
Torch-free, so every stage may call it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # glibc's own upper limit for this setting on 64-bit
TRIM_THRESHOLD = 1 << 30


def is_glibc() -> bool:
    """Whether this process runs on glibc (Linux), the only libc the setting exists in."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@functools.cache
def keep_freed_memory() -> str | None:
    """Raise glibc's mmap and trim thresholds, once per process (later calls return the
    first call's answer).

    Returns:
        A one-line description of the setting in force (recorded in a run's environment),
        or None where it does not apply (not glibc, or ``CNNKIT_MALLOC_TUNING=0``).
    """
    if os.environ.get("CNNKIT_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if not is_glibc():
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = all(
            libc.mallopt(param, value)
            for param, value in (
                (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                (M_ARENA_MAX, 1),
            )
        )
    except (OSError, AttributeError):
        return None
    if not ok:
        return None
    return (
        f"glibc malloc keeps freed memory (mmap threshold {MMAP_THRESHOLD >> 20} MiB, "
        f"trim threshold {TRIM_THRESHOLD >> 30} GiB, one arena): no page faults per step"
    )
