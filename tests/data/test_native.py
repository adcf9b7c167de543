"""The compiled warp: built, cached, exact against scipy, and a clean fallback without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data import native
from cnnkit.data.augment import FILL_MODES, Augment, affine_matrices, warp
from conftest import scipy_warp


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache dir and no loaded kernel; the real state comes back afterwards."""
    monkeypatch.setenv("CNNKIT_CACHE_DIR", str(tmp_path))
    native.kernel.cache_clear()
    native._why_not.clear()
    yield tmp_path
    monkeypatch.undo()
    native.kernel.cache_clear()
    native._why_not.clear()


@pytest.mark.parametrize("fill_mode", list(FILL_MODES))
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_native_matches_scipy_far_outside_the_image(fill_mode, channels, native_warp):
    rng = np.random.default_rng(channels)
    x = torch.from_numpy(rng.uniform(0, 255, (4, channels, 9, 13))).float()
    aug = Augment(rotation_range=90, width_shift_range=40, height_shift_range=30,  # pixels
                  shear_range=20, zoom_range=(0.3, 3.0), horizontal_flip=True)  # fmt: skip
    a = affine_matrices(aug.sample_params(4, 9, 13, torch.Generator().manual_seed(1)), 9, 13)
    got = native.warp(x.transpose(2, 3).contiguous().transpose(2, 3), a, fill_mode, 17.0)
    assert np.abs(got.double().numpy() - scipy_warp(x, a, fill_mode, 17.0)).max() < 1e-3


def test_augment_uses_the_native_kernel_for_float32_cpu(monkeypatch, native_warp):
    calls = []
    real = native.warp
    monkeypatch.setattr(native, "warp", lambda *a: calls.append(1) or real(*a))
    Augment(rotation_range=30)(torch.rand(2, 3, 8, 8) * 255)
    assert len(calls) == 1
    a = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    warp(torch.rand(2, 3, 8, 8, dtype=torch.float64), a)  # float64: grid_sample
    warp(torch.rand(2, 3, 8, 8, requires_grad=True), a)  # autograd: grid_sample
    assert len(calls) == 1
    assert native.describe().startswith("cnnkit native C")


def test_build_is_cached_and_a_damaged_build_is_rebuilt(fresh):
    if native.compiler() is None:  # CI fails in the native_warp tests instead
        pytest.skip("no C compiler on this machine")
    path = native.library_path(native.compiler(), native.build_flags()[0])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a shared library")
    assert native.kernel() is not None
    assert path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over


def test_without_a_compiler_warp_falls_back_to_grid_sample(fresh, monkeypatch):
    monkeypatch.setenv("CC", str(fresh / "no-such-cc"))
    assert native.kernel() is None
    assert "no C compiler" in native.describe()
    x = torch.rand(2, 3, 9, 9) * 255
    a = affine_matrices(Augment(rotation_range=40).sample_params(2, 9, 9), 9, 9)
    got = warp(x, a, "reflect").double().numpy()
    assert np.abs(got - scipy_warp(x, a, "reflect")).max() < 0.02
    with pytest.raises(RuntimeError, match="no C compiler"):
        native.warp(x, a, "reflect", 0.0)


def test_an_unwritable_cache_dir_falls_back_with_the_reason(fresh, monkeypatch):
    if native.compiler() is None:
        pytest.skip("no C compiler on this machine")
    blocker = fresh / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CNNKIT_CACHE_DIR", str(blocker / "cache"))
    assert native.kernel() is None
    assert native.describe().startswith("torch grid_sample: build failed (")
    assert "a-file" in native.describe()
    x = torch.rand(2, 3, 9, 9) * 255
    a = affine_matrices(Augment(rotation_range=40).sample_params(2, 9, 9), 9, 9)
    assert warp(x, a, "reflect").shape == x.shape  # grid_sample instead


def test_a_failing_compiler_is_reported(fresh, monkeypatch):
    fake = fresh / "cc"
    fake.write_text("#!/bin/sh\necho 'cc: error: broken toolchain' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    assert native.kernel() is None
    assert "broken toolchain" in native.describe()


def test_torchs_openmp_threads_do_the_split(native_warp):
    if not native.torch_uses_gomp():
        pytest.skip("torch does not run on GNU OpenMP here")
    gomp = native.gomp_runtimes()
    assert len(gomp) == 1, f"two GNU OpenMP runtimes loaded: {gomp}"  # torch's own, shared
    assert native.describe().endswith("OpenMP)")
    x = torch.rand(5, 3, 11, 7) * 255
    a = affine_matrices(Augment(rotation_range=50).sample_params(5, 11, 7), 11, 7)
    torch.set_num_threads(2)
    assert torch.equal(native.warp(x, a, "wrap", 0.0), _one_thread(x, a, "wrap"))


@pytest.mark.parametrize(
    ("mapped", "counted"),
    [
        ("/venv/site-packages/torch/lib/libgomp.so.1", True),  # torch's wheel
        ("/opt/conda/lib/libgomp.so.1.0.0", True),  # the soname's real file
        ("/venv/site-packages/scikit_learn.libs/libgomp-e985bcbb.so.1.0.0", False),  # private
        ("/usr/lib/libgomp.so.1.0.0.bak", False),
    ],
)
def test_which_mapped_files_count_as_gnu_openmp(mapped, counted):
    line = f"7f2a00000000-7f2a00020000 r-xp 00000000 08:01 1234  {mapped}"
    assert bool(native._GOMP.search(line)) is counted


def _one_thread(x, a, fill_mode):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return native.warp(x, a, fill_mode, 0.0)
    finally:
        torch.set_num_threads(threads)


def test_a_compiler_without_openmp_builds_without_it(fresh, monkeypatch):
    cc = native.compiler()
    if cc is None or not native.torch_uses_gomp():
        pytest.skip("needs a C compiler and torch on GNU OpenMP")
    fake = fresh / "cc"
    refuse = 'case "$*" in *-fopenmp*) echo "unsupported option -fopenmp" >&2; exit 1;; esac'
    fake.write_text(f'#!/bin/sh\n{refuse}\nexec "{cc}" "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    assert native.describe() == "cnnkit native C (-O3 -march=native)"
    x = torch.rand(6, 3, 9, 9) * 255
    a = affine_matrices(Augment(rotation_range=40).sample_params(6, 9, 9), 9, 9)
    torch.set_num_threads(2)  # split over cnnkit's thread pool instead
    got = native.warp(x, a, "reflect", 0.0)
    assert np.abs(got.double().numpy() - scipy_warp(x, a, "reflect")).max() < 1e-3


def test_torchs_isa_cap_caps_the_kernel_too(fresh, monkeypatch):
    if native.compiler() is None:
        pytest.skip("no C compiler on this machine")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert all("-mno-avx512f" in flags for flags in native.build_flags())
    assert "-march=native -mno-avx512f" in native.describe()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert all("-mno-avx" in flags for flags in native.build_flags())
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    assert not any("-mno" in f for flags in native.build_flags() for f in flags)


def test_off_switch(fresh, monkeypatch):
    monkeypatch.setenv("CNNKIT_NATIVE", "0")
    assert native.kernel() is None
    assert native.describe() == "torch grid_sample: off (CNNKIT_NATIVE=0)"


def test_every_run_records_which_warp_it_used():
    from cnnkit.train.run import environment

    assert environment()["warp"] == native.describe()


def _warp_in_child(queue, threads) -> None:
    torch.set_num_threads(threads)
    a = torch.eye(3, dtype=torch.float64).repeat(4, 1, 1)
    queue.put(float(native.warp(torch.ones(4, 3, 8, 8), a, "nearest", 0.0).sum()))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_forked_worker_warps_with_its_own_threads(threads, native_warp):
    import multiprocessing as mp

    torch.set_num_threads(2)
    a = torch.eye(3, dtype=torch.float64).repeat(4, 1, 1)
    native.warp(torch.ones(4, 3, 8, 8), a, "nearest", 0.0)  # the parent's threads exist now
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_warp_in_child, args=(queue, threads))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child hung or failed"
    assert queue.get(timeout=5) == 4 * 3 * 8 * 8
