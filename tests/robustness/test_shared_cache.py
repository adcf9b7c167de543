"""Shared and hostile cache folders: no planted library runs, `cache clear` deletes only cnnkit's.

A planted library is a real shared object whose constructor writes a marker file and which
exports the kernel's symbols (so a loader that trusts it would use it). Every check loads
through a fresh ``python`` process, as ``cnnkit train`` would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rb_helpers import child_env, record

from cnnkit.data import native

PROBE = "from cnnkit.data import native; print(native.describe())"
PLANTED = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("planted library ran\n", f); fclose(f); }
}
int cnnkit_warp_f32(void) { return 0; }
int cnnkit_warp_openmp(void) { return 0; }
"""
NO_SYMBOL = "int something_else(void) { return 1; }\n"
OTHER_UID = 65534  # "nobody"


@pytest.fixture
def cc(require) -> str:
    found = native.compiler()
    require(found is not None, "a C compiler (cc/gcc/clang) to build libraries")
    return str(found)


def _compile(cc: str, source: str, out: Path, *defines: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([cc, "-shared", "-fPIC", *defines, "-o", str(out), str(src)], check=True)
    src.unlink()
    return out


def _targets(cache: Path, monkeypatch, cc: str) -> list[Path]:
    """Where cnnkit looks for its build in ``cache/native``, for each flag set it tries."""
    monkeypatch.setenv("CNNKIT_CACHE_DIR", str(cache))
    return sorted({native.library_path(cc, flags) for flags in native.build_flags()})


def _plant(cc: str, targets: list[Path], marker: Path) -> None:
    for target in targets:
        _compile(cc, PLANTED, target, f'-DMARKER="{marker}"')


def _describe(cache: Path, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env=child_env(CNNKIT_CACHE_DIR=str(cache), **env),
        capture_output=True, text=True, timeout=300, cwd=cache.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_a_library_planted_in_a_world_writable_cache_never_runs(tmp_path, monkeypatch, cc):
    cache = tmp_path / "shared-cache"
    marker = tmp_path / "planted-ran"
    _plant(cc, _targets(cache, monkeypatch, cc), marker)
    cache.chmod(0o777)  # writable by everyone, no sticky bit: anyone could have put it there
    described = _describe(cache)
    assert not marker.exists(), "the planted library's code ran"
    assert described.startswith("torch grid_sample: no library is loaded"), described
    assert f"{cache} is writable by other users (mode 0777)" in described
    record("shared_cache", planted_libraries_run=0)


def test_a_world_writable_native_folder_is_bypassed_for_a_private_build(tmp_path, monkeypatch, cc):
    cache = tmp_path / "cache"
    marker = tmp_path / "planted-ran"
    _plant(cc, _targets(cache, monkeypatch, cc), marker)
    (cache / "native").chmod(0o777)
    described = _describe(cache)
    assert not marker.exists(), "the planted library's code ran"
    assert described.startswith("cnnkit native C"), described  # built privately instead
    private = cache / f"native-{os.getuid()}"
    assert oct(private.stat().st_mode & 0o777) == oct(0o700)
    assert [p.name for p in private.glob("warp-*.so")], "no private build"


def test_another_users_library_in_a_sticky_shared_folder_never_runs(
    tmp_path, monkeypatch, cc, require
):
    require(os.getuid() == 0, "root, to give a planted file to another user")
    cache = tmp_path / "lab-cache"
    marker = tmp_path / "planted-ran"
    targets = _targets(cache, monkeypatch, cc)
    _plant(cc, targets, marker)
    for path in (cache, cache / "native"):
        path.chmod(0o1777)  # the usual shared folder: anyone may add, nobody may replace
    for target in targets:
        os.chown(target, OTHER_UID, OTHER_UID)
        target.chmod(0o755)
    described = _describe(cache)
    assert not marker.exists(), "another user's library ran"
    assert described.startswith("cnnkit native C"), described  # built in native-<uid>/


def test_a_cached_library_without_the_kernel_is_rebuilt(tmp_path, monkeypatch, cc):
    cache = tmp_path / "cache"
    targets = _targets(cache, monkeypatch, cc)
    for target in targets:
        _compile(cc, NO_SYMBOL, target)
    described = _describe(cache)
    assert described.startswith("cnnkit native C"), described
    assert any(b"cnnkit_warp_f32" in t.read_bytes() for t in targets)  # the first flags' build


def test_a_library_without_the_kernel_that_cannot_be_rebuilt_falls_back(tmp_path, cc):
    cache = tmp_path / "cache"
    fake = tmp_path / "cc"  # builds a library without the kernel's symbols, every time
    real = cc
    fake.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && exec "{real}" --version\n'
        f'for a; do [ "$prev" = -o ] && out="$a"; prev="$a"; done\n'
        f'printf "{NO_SYMBOL.strip()}\\n" > "$out.c" && exec "{real}" -shared -fPIC '
        f'-o "$out" "$out.c"\n'
    )
    fake.chmod(0o755)
    described = _describe(cache, CC=str(fake))
    assert described.startswith("torch grid_sample: build failed ("), described
    assert "cnnkit_warp_f32" in described  # the missing symbol is the reason given


def _used_cache(tmp_path: Path) -> Path:
    """A folder like ``~/.cache``: other programs' caches, and cnnkit's after one run."""
    home_cache = tmp_path / "dot-cache"
    pip_file = home_cache / "pip" / "http-v2" / "a" / "b"
    hub_file = home_cache / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    foreign = home_cache / "features" / "notes.txt"  # not cnnkit's, though cnnkit's name
    for f in (pip_file, hub_file, foreign):
        f.parent.mkdir(parents=True)
        f.write_bytes(b"someone else's bytes")
    return home_cache


def test_cache_clear_deletes_only_what_cnnkit_made(tmp_path):
    from PIL import Image

    cache = _used_cache(tmp_path)
    data = tmp_path / "data" / "cls"
    data.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 80, 0, 0)).save(data / f"{i}.png")
    env = child_env(CNNKIT_CACHE_DIR=str(cache))
    train = [sys.executable, "-c", "from cnnkit.data import load_folder; "
             f"load_folder({str(data.parent)!r}, image_size=(16, 16), progress=False)"]  # fmt: skip
    subprocess.run(train, env=env, check=True, timeout=300)
    assert any((cache / "decode").iterdir())
    before = sorted(p.relative_to(cache) for p in cache.rglob("*") if "decode" not in p.parts)
    clear = [sys.executable, "-m", "cnnkit", "cache", "clear", "--json"]
    proc = subprocess.run(clear, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (cache / "decode").exists()
    assert (cache / "pip" / "http-v2" / "a" / "b").read_bytes() == b"someone else's bytes"
    hub = cache / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert hub.read_bytes() == b"someone else's bytes"
    assert (cache / "features" / "notes.txt").is_file()
    after = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    assert after == before  # everything that is not cnnkit's decode cache is still there


LOAD = (
    "import sys, json; from cnnkit.data import load_folder; "
    "d = load_folder(sys.argv[1], image_size=(8, 8), progress=False, workers=1); "
    "print(json.dumps([int(d.images.max()), len(d.images)]))"
)


def test_another_users_decode_cache_is_neither_read_nor_written(tmp_path, require):
    require(os.getuid() == 0, "root, to give the decode cache to another user")
    from PIL import Image

    data = tmp_path / "data" / "c"
    data.mkdir(parents=True)
    for i in range(3):
        Image.new("L", (8, 8), 10 * i).save(data / f"{i}.png")
    cache = tmp_path / "lab-cache"
    env = {"CNNKIT_CACHE_DIR": str(cache)}
    first = run_cnnkit_python(LOAD, str(data.parent), **env)
    assert json.loads(first) == [20, 3]
    for pixels in (cache / "decode").rglob("pixels-*.u8"):
        pixels.write_bytes(b"\xff" * pixels.stat().st_size)  # what another user could write
    for path in [cache / "decode", *(cache / "decode").rglob("*")]:
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
    cache.chmod(0o1777)
    again = run_cnnkit_python(LOAD, str(data.parent), unprivileged=True, **env)
    assert json.loads(again) == [20, 3]  # decoded again, privately: not the planted pixels
    assert (cache / f"decode-{os.getuid()}").is_dir()


def run_cnnkit_python(code: str, *args: str, unprivileged: bool = False, **env: str) -> str:
    from rb_helpers import without_file_override

    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=child_env(**env), capture_output=True,
        text=True, timeout=300, preexec_fn=without_file_override if unprivileged else None,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]
