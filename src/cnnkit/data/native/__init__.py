"""cnnkit's compiled bilinear warp: ``warp.c``, built on this machine the first time it is used.

The steady epoch of an augmented image pipeline is the affine warp. ``warp.c`` samples every
channel of a corner with one 16-byte load (the image is interleaved to 4 floats per pixel
first) and is 2.2-2.8x faster than ``torch.nn.functional.grid_sample`` for RGB at 180x180 on
the 2-core AVX-512 EPYCs, Zen 4 and Zen 5 (1.0-1.4x for one channel; bench/warp.py;
bench/pipeline.py measures the whole pipeline), and closer to ``scipy.ndimage``: it works in
float64 coordinates.

It is compiled with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) as
``-O3 -march=native`` into ``<cache dir>/native/``, keyed on the source, the compiler and the
CPU's flags, written atomically, and loaded with :mod:`ctypes`.

Loading a library runs its code, so cnnkit loads one only from a file that nobody but this user
(or root) can have written: the file and every folder above it must belong to this user or
root and must not be writable by group or others, except folders with the sticky bit (``/tmp``,
a mode 1777 shared cache), where nobody else may rename or delete what is ours. Where
``native/`` fails that (another user made it in a shared cache), the build goes to
``native-<uid>/`` (mode 0700); where the cache folder itself fails it, nothing is loaded and
cnnkit warps with ``grid_sample``, the reason recorded. A cached build that will not load, or
lacks the kernel's symbols, is built again.

Threads: where torch runs on GNU OpenMP (Linux wheels load ``libgomp.so.1``), the kernel is
built with ``-fopenmp`` and so links to *torch's* ``libgomp``: it splits the batch over torch's
own OpenMP threads. A separate thread pool would compete with those threads, which keep
spinning for a while after every torch op (the steady epoch of bench/pipeline.py on the 2-core
Zen 5 EPYC: 8,541 img/s through OpenMP, 4,948 through a pool, ``CNNKIT_OPENMP=0``). GNU
OpenMP does not survive ``fork``, so a forked child (a DataLoader worker) splits over a thread
pool of its own instead, as does a build without OpenMP (``CNNKIT_OPENMP=0``, or a compiler
without it).

With no compiler, a failed build or ``CNNKIT_NATIVE=0``, :func:`kernel` is None and cnnkit
warps with ``grid_sample``; :func:`describe` says which path is in use and why (recorded in
every run's environment).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from cnnkit.data.cache import cache_dir, cache_subdir, foreign_writable, make_dirs

SOURCE = Path(__file__).with_name("warp.c")
FLAGS = ("-O3", "-march=native", "-shared", "-fPIC")
OPENMP = "-fopenmp"
ISA_CAPS = {"avx2": ("-mno-avx512f",), "default": ("-mno-avx",)}
"""``ATEN_CPU_CAPABILITY`` -> the flags that hold cnnkit's kernel to the same cap as torch's."""
_GOMP = re.compile(r"/\S*/libgomp\.so\.1(\.\d+)*$")
MODES = {"nearest": 0, "reflect": 1, "wrap": 2, "constant": 3}
"""``fill_mode`` -> the kernel's mode number."""

_why_not: list[str] = []  # the reason the kernel is unavailable, once known
_HOME_PID = os.getpid()  # another pid here is a forked child: its OpenMP threads are gone


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


def gomp_runtimes() -> set[str]:
    """The GNU OpenMP runtimes (soname ``libgomp.so.1``) mapped into this process.

    torch's Linux wheels bring one; a library built with ``-fopenmp`` binds to it. Privately
    renamed copies (scikit-learn's ``libgomp-<hash>.so.1.0.0``) are not counted.
    """
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return set()
    return {m.group(0) for line in lines if (m := _GOMP.search(line))}


def torch_uses_gomp() -> bool:
    """Whether this process has GNU OpenMP loaded (torch's Linux wheels bring ``libgomp``)."""
    return bool(gomp_runtimes())


def build_flags() -> list[tuple[str, ...]]:
    """The compiler flags to try, in order: OpenMP first where torch runs on GNU OpenMP
    (``CNNKIT_OPENMP=0``: never, the batch is split over a thread pool)."""
    base = (*FLAGS, *isa_cap())
    gomp = torch_uses_gomp() and os.environ.get("CNNKIT_OPENMP", "1") != "0"
    return [(*base, OPENMP), base] if gomp else [base]


def isa_cap() -> tuple[str, ...]:
    """Flags that keep the kernel within torch's ISA cap (``ATEN_CPU_CAPABILITY=avx2``: no
    AVX-512), so a capped process, or an AVX2-only machine emulated on a newer one, is capped
    everywhere."""
    return ISA_CAPS.get(os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower(), ())


def build_key(cc: str, flags: tuple[str, ...] = FLAGS) -> str:
    """A hash of the source, the compiler (path and version), the flags and the CPU's flags."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    return hashlib.sha256(
        "\0".join([SOURCE.read_text(), cc, version, " ".join(flags), _cpu_flags()]).encode()
    ).hexdigest()[:16]


def library_path(cc: str, flags: tuple[str, ...] = FLAGS) -> Path:
    """Where the build for this source, compiler, flags and CPU lives in the cache's
    ``native/`` folder (loaded only when :func:`foreign_writable` finds nothing)."""
    return cache_dir() / "native" / f"warp-{build_key(cc, flags)}.so"


class UnsafeLocation(PermissionError):
    """A library (or a folder above it) that someone other than this user or root can change."""


def _build(cc: str, flags: tuple[str, ...], out: Path) -> None:
    """Compile ``warp.c`` to ``out`` atomically; raises RuntimeError with the compiler's words."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *flags, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(cc).name} failed: {done.stderr.strip()[:300]}")
        os.chmod(tmp, 0o755)  # the linker applies the umask: 002 would make it group-writable
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load(path: Path) -> ctypes.CDLL:
    """Load a library that :func:`foreign_writable` cleared; raises OSError or AttributeError
    (a library without the kernel's symbols)."""
    lib = ctypes.CDLL(os.path.realpath(path))
    fn = lib.cnnkit_warp_f32
    fn.restype = ctypes.c_int
    # x, y, maps; b0, b1, c, h, w; mode, cval, threads
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] * 5 + [ctypes.c_int, ctypes.c_float]
    fn.argtypes += [ctypes.c_int]
    lib.cnnkit_warp_openmp.restype = ctypes.c_int
    return lib


def _safe_folders(refused: list[str]) -> Iterator[Path]:
    """Where a build may live, each made when first needed: the cache's ``native/``, then
    ``native-<uid>/`` (mode 0700); a folder others could change is skipped (why: ``refused``).

    Raises:
        UnsafeLocation: someone other than this user or root could change the cache folder.
        OSError: a folder cannot be made.
    """
    root = cache_dir()
    make_dirs(root)
    why = foreign_writable(root)
    if why:
        raise UnsafeLocation(f"{why}; set CNNKIT_CACHE_DIR to a folder only you can write")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for name, private in (("native", False), (f"native-{uid}", True)):
        folder = cache_subdir(name, private=private)
        why = foreign_writable(folder)
        if why:
            refused.append(why)
        else:
            yield folder


def _cached_or_built(cc: str, flags: tuple[str, ...]) -> ctypes.CDLL:
    """The cached build for ``cc`` and ``flags`` where it is safe and loads, else a new build.

    Raises:
        UnsafeLocation: no folder (or cached file) that only this user or root can change.
    """
    name = f"warp-{build_key(cc, flags)}.so"
    refused: list[str] = []
    for folder in _safe_folders(refused):
        path = folder / name
        loaded_before = False
        if os.path.lexists(path):
            why = foreign_writable(path)
            if why:  # planted, or not ours to trust: never loaded, try the next folder
                refused.append(why)
                continue
            try:
                return _load(path)
            except (OSError, AttributeError):  # damaged, or not our kernel: build it again
                loaded_before = True
                path.unlink()
        _build(cc, flags, path)
        return _load_new_name(path) if loaded_before else _load(path)
    raise UnsafeLocation("; ".join(refused))


def _load_new_name(path: Path) -> ctypes.CDLL:
    """Load ``path`` through a new hard link: ``dlopen`` would return the handle of the broken
    library that this process already opened under that name."""
    alias = path.with_name(f".{path.stem}-{os.getpid()}-{id(path):x}.so")
    os.link(path, alias)
    try:
        return _load(alias)
    finally:
        alias.unlink()


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
    error: Exception | None = None
    for flags in build_flags():  # with OpenMP first; a compiler without it builds without
        try:
            return _cached_or_built(cc, flags)
        except UnsafeLocation as e:
            _why_not.append(f"no library is loaded from a folder others can change ({e})")
            return None
        except (OSError, AttributeError, RuntimeError, subprocess.SubprocessError) as e:
            error = e
    _why_not.append(f"build failed ({error})")
    return None


def describe() -> str:
    """Which warp cnnkit uses here, for the run's environment record."""
    lib = kernel()
    if lib is not None:
        threads = ", OpenMP" if lib.cnnkit_warp_openmp() else ""
        return f"cnnkit native C ({' '.join([*FLAGS[:2], *isa_cap()])}{threads})"
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

    def run(span: tuple[int, int], threads: int = 1) -> int:
        return lib.cnnkit_warp_f32(
            x.data_ptr(), y.data_ptr(), a.data_ptr(), span[0], span[1], c, h, w, mode, cval,
            threads,
        )  # fmt: skip

    threads = max(1, min(torch.get_num_threads(), b))
    if threads == 1 or (lib.cnnkit_warp_openmp() and os.getpid() == _HOME_PID):
        codes = [run((0, b), threads)]
    else:
        codes = list(_pool(threads, os.getpid()).map(run, _spans(b, threads)))
    if any(codes):
        raise RuntimeError("the native warp ran out of memory")
    return y


def _spans(b: int, threads: int) -> list[tuple[int, int]]:
    cuts = [b * k // threads for k in range(threads + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


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
