"""cnnkit's compiled bilinear warp: ``warp.c``, built on this machine the first time it is used.

The steady epoch of an augmented image pipeline is the affine warp. ``warp.c`` samples every
channel of a corner with one 16-byte load (the image is interleaved to 4 floats per pixel
first) and is 2.2-2.4x faster than ``torch.nn.functional.grid_sample`` at 180x180 on the 2-core
AVX-512 EPYC (bench/warp.py; bench/pipeline.py measures the whole pipeline), and closer to
``scipy.ndimage``: it works in float64 coordinates.

It is compiled with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) as
``-O3 -march=native`` into ``<cache dir>/native/``, keyed on the source, the compiler and the
CPU's flags, written atomically, and loaded with :mod:`ctypes`. With no compiler, a failed build
or ``CNNKIT_NATIVE=0``, :func:`kernel` is None and cnnkit warps with ``grid_sample``;
:func:`describe` says which path is in use and why (recorded in every run's environment).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("warp.c")
FLAGS = ("-O3", "-march=native", "-shared", "-fPIC")
MODES = {"nearest": 0, "reflect": 1, "wrap": 2, "constant": 3}
"""``fill_mode`` -> the kernel's mode number."""

_why_not: list[str] = []  # the reason the kernel is unavailable, once known


def compiler() -> str | None:
    """The C compiler to build with: ``$CC`` or the first of cc, gcc, clang on PATH."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    return next((p for p in map(shutil.which, names) if p), None)


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_path(cc: str) -> Path:
    """Where the build for this source, compiler and CPU lives (a cross-machine cache is safe)."""
    from cnnkit.data.cache import cache_dir

    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256(
        "\0".join([SOURCE.read_text(), cc, version, " ".join(FLAGS), _cpu_flags()]).encode()
    ).hexdigest()[:16]
    return cache_dir() / "native" / f"warp-{key}.so"


def _build(cc: str, out: Path) -> None:
    """Compile ``warp.c`` to ``out`` atomically; raises RuntimeError with the compiler's words."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(cc).name} failed: {done.stderr.strip()[:300]}")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    fn = lib.cnnkit_warp_f32
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] * 5 + [ctypes.c_int, ctypes.c_float]
    return lib


@functools.cache
def kernel() -> ctypes.CDLL | None:
    """The loaded library (built if needed), or None with the reason in :func:`describe`."""
    if os.environ.get("CNNKIT_NATIVE", "1") == "0":
        _why_not.append("off (CNNKIT_NATIVE=0)")
        return None
    cc = compiler()
    if cc is None:
        _why_not.append("no C compiler found (set CC, or install gcc or clang)")
        return None
    try:
        path = library_path(cc)
        if path.exists():
            try:
                return _load(path)
            except OSError:  # a damaged cached build: build it again
                path.unlink(missing_ok=True)
        _build(cc, path)
        return _load(path)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        _why_not.append(f"build failed ({e})")
        return None


def describe() -> str:
    """Which warp cnnkit uses here, for the run's environment record."""
    if kernel() is not None:
        return f"cnnkit native C ({' '.join(FLAGS[:2])})"
    return f"torch grid_sample: {_why_not[-1] if _why_not else 'native kernel unavailable'}"


@functools.cache
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """Worker threads, per process: a forked child (a DataLoader worker) gets its own."""
    return ThreadPoolExecutor(threads, thread_name_prefix="cnnkit-warp")


def warp(x: torch.Tensor, a: torch.Tensor, fill_mode: str, cval: float) -> torch.Tensor:
    """Warp float32 CPU images with the compiled kernel, images split over torch's threads.

    Args:
        x: float32 CPU images.
        a: ``(B, 3, 3)`` output-to-input pixel ``(row, col, 1)`` maps.
        fill_mode: a key of :data:`MODES`.
        cval: outside value for ``constant``.

    Raises:
        RuntimeError: the kernel is not available, or ran out of memory.

    Shape:
        x: ``(B, C, H, W)``; returns ``(B, C, H, W)``.
    """
    lib = kernel()
    if lib is None:
        raise RuntimeError(f"the native warp is not available: {describe()}")
    x = x.contiguous()
    a = a.to(torch.float64).contiguous()
    y = torch.empty_like(x)
    b, c, h, w = x.shape
    mode = MODES[fill_mode]

    def run(span: tuple[int, int]) -> int:
        return lib.cnnkit_warp_f32(
            x.data_ptr(), y.data_ptr(), a.data_ptr(), span[0], span[1], c, h, w, mode, cval
        )

    threads = max(1, min(torch.get_num_threads(), b))
    cuts = [b * k // threads for k in range(threads + 1)]
    spans = list(zip(cuts[:-1], cuts[1:], strict=True))
    codes = [run(spans[0])] if threads == 1 else list(_pool(threads, os.getpid()).map(run, spans))
    if any(codes):
        raise RuntimeError("the native warp ran out of memory")
    return y


def usable(x: torch.Tensor) -> bool:
    """True when ``x`` can go through the native kernel (float32, CPU, no autograd)."""
    return (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and not x.requires_grad
        and x.ndim == 4
        and x.numel() > 0
        and kernel() is not None
    )
