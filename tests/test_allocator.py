"""keep_freed_memory: training steps stop page-faulting their temporaries in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cnnkit import allocator

_STEPS = """
import resource, torch
import torch.nn.functional as F
from cnnkit.allocator import keep_freed_memory
from cnnkit.models import create_model
print(keep_freed_memory())
torch.manual_seed(0)
m = create_model("basic_convnet")
opt = torch.optim.SGD(m.parameters(), 0.01)
x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
def step():
    loss = F.cross_entropy(m(x), y); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5): step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20): step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20)
"""

_PREFETCH = """
import resource, threading, numpy as np
import cnnkit.allocator
cnnkit.allocator.keep_freed_memory()  # what the CLI does first (import cnnkit changes nothing)
t = threading.Thread(target=lambda: bytearray(1 << 20)); t.start(); t.join()  # a worker thread
from cnnkit.data.pipeline import from_arrays
images = np.random.default_rng(0).integers(0, 255, (1024, 3, 180, 180), dtype=np.uint8)
ds = from_arrays(images, batch_size=32).map(lambda x: x * 1.0).prefetch(2)  # 12 MB batches
def epoch():
    for x in ds: pass
epoch()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4): epoch()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / (4 * len(ds)))
"""

glibc = pytest.mark.skipif(not allocator.is_glibc(), reason="the setting exists only in glibc")


def _run(script: str, tuning: str, threads: str = "1") -> list[str]:
    env = dict(os.environ, CNNKIT_MALLOC_TUNING=tuning, OMP_NUM_THREADS=threads)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")


def _faults_per_step(tuning: str) -> tuple[str, float]:
    out = _run(_STEPS, tuning)
    return out[0], float(out[1])


@glibc
def test_tuned_steps_take_far_fewer_page_faults():
    desc, tuned = _faults_per_step("1")
    off, untuned = _faults_per_step("0")
    assert desc.startswith("glibc malloc keeps freed memory") and off == "None"
    assert untuned > 500  # the default returns the step's big blocks to the kernel...
    assert tuned < 0.1 * untuned  # ...and the tuned process keeps them


@glibc
def test_a_prefetch_thread_reuses_its_batches_memory_too():
    # a thread of its own gets a glibc arena of its own (64 MiB heaps, unmapped when empty)
    # unless the arenas are limited before any thread allocates (the CLI's first step)
    # measured on 2-core EPYCs: 24-95 faults per batch tuned (it varies with the venv and what
    # the process imported before the setting), 600-1,200 untuned; the fewest of three tuned runs
    tuned = min(float(_run(_PREFETCH, "1", threads="2")[0]) for _ in range(3))
    untuned = float(_run(_PREFETCH, "0", threads="2")[0])
    assert untuned > 300  # a 12 MB batch is ~3,000 pages
    assert tuned < 0.2 * untuned


@glibc
def test_once_per_process_and_recorded():
    allocator.keep_freed_memory.cache_clear()
    first = allocator.keep_freed_memory()
    assert first is not None and "32 MiB" in first
    assert allocator.keep_freed_memory() == first


def test_switched_off_by_the_environment(monkeypatch):
    allocator.keep_freed_memory.cache_clear()
    monkeypatch.setenv("CNNKIT_MALLOC_TUNING", "0")
    assert allocator.keep_freed_memory() is None
    allocator.keep_freed_memory.cache_clear()  # later tests see the default again


def test_importing_cnnkit_changes_nothing_in_the_process():
    """A host application (a threaded server, a notebook) that imports cnnkit keeps glibc's
    own malloc settings; the CLI and the training loop opt in."""
    code = (
        "import cnnkit, cnnkit.data, cnnkit.train, cnnkit.allocator as a;"
        "print(a.keep_freed_memory.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
