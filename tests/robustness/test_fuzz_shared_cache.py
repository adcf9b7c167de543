"""Fuzzing the native build's cache location: random modes, owners and symbolic links.

Each example lays out a cache folder (its mode, ``native/``'s mode, a cached library's mode,
owner and whether it is a symbolic link into another folder) and asks cnnkit for its library,
with loading and compiling replaced by recorders (nothing runs). Whatever is handed to the
loader must be a file that nobody but this user or root can have changed, which the drawn
layout decides on its own (not by asking the filesystem).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import fuzz_settings
from rb_helpers import record

from cnnkit.data import native

pytestmark = pytest.mark.fuzz
DIR_MODES = [0o700, 0o755, 0o775, 0o757, 0o777, 0o1777, 0o1775, 0o1757]
FILE_MODES = [0o755, 0o644, 0o775, 0o757, 0o777]
COUNT = {"examples": 0, "planted_loaded": 0, "refused": 0}
OTHER_UID = 65534


def _safe_dir(mode: int) -> bool:
    return not mode & 0o022 or bool(mode & 0o1000)


def _layout(base: Path, p: dict) -> Path:
    """Write the drawn layout under ``base``; returns the cache folder."""
    cache = base / "cache"
    target = cache / "native" / f"warp-{'0' * 16}.so"
    target.parent.mkdir(parents=True)
    planted = target
    if p["link"]:
        planted = base / "attic" / "lib.so"
        planted.parent.mkdir()
        target.symlink_to(planted)
        if p["link_other"]:  # a link another user made: theirs to repoint at any time
            os.lchown(target, OTHER_UID, OTHER_UID)
    planted.write_bytes(b"\x7fELF planted")
    planted.chmod(p["file_mode"])
    if p["other_owner"]:
        os.chown(planted, OTHER_UID, OTHER_UID)
    if p["link"]:
        planted.parent.chmod(p["attic_mode"])
    target.parent.chmod(p["native_mode"])
    cache.chmod(p["cache_mode"])
    return cache


def _expected_planted_loads(p: dict) -> bool:
    chain = [p["cache_mode"], p["native_mode"]] + ([p["attic_mode"]] if p["link"] else [])
    file_ok = not p["other_owner"] and not p["file_mode"] & 0o022
    link_ok = not (p["link"] and p["link_other"])
    return file_ok and link_ok and all(_safe_dir(m) for m in chain)


def _build(cc, flags, out: Path) -> None:
    out.write_bytes(b"\x7fELF built by cnnkit")
    out.chmod(0o755)


def _ask(cache: Path) -> list[str]:
    """The paths cnnkit hands to its loader for ``cache`` (loading and compiling recorded)."""
    loaded: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNKIT_CACHE_DIR", str(cache))
        mp.setattr(native, "build_key", lambda cc, flags: "0" * 16)
        mp.setattr(native, "_build", _build)
        mp.setattr(native, "_load", lambda path: loaded.append(os.path.realpath(path)))
        try:
            native._cached_or_built("cc", ("-O3",))
        except native.UnsafeLocation:
            loaded.append("refused")
    return loaded


def _params() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({
        "cache_mode": st.sampled_from(DIR_MODES),
        "native_mode": st.sampled_from(DIR_MODES),
        "attic_mode": st.sampled_from(DIR_MODES),
        "file_mode": st.sampled_from(FILE_MODES),
        "other_owner": st.booleans() if os.getuid() == 0 else st.just(False),
        "link": st.booleans(),
        "link_other": st.booleans() if os.getuid() == 0 else st.just(False),
    })  # fmt: skip


@fuzz_settings()
@given(p=_params())
def test_fuzz_only_a_library_nobody_else_can_change_is_loaded(p):
    COUNT["examples"] += 1
    base = Path(tempfile.mkdtemp(prefix="cnnkit-fuzz-cache-"))
    try:
        cache = _layout(base, p)
        planted = os.path.realpath(cache / "native" / f"warp-{'0' * 16}.so")
        loaded = _ask(cache)
        assert len(loaded) == 1
        if loaded == ["refused"]:  # only when the cache folder itself is open to others
            assert not _safe_dir(p["cache_mode"]), p
            COUNT["refused"] += 1
        for path in loaded:
            if path == "refused":
                continue
            if path == planted:
                assert _expected_planted_loads(p), f"loaded a library others could change: {p}"
                COUNT["planted_loaded"] += 1
            else:  # a fresh build of cnnkit's own, in a folder only this user can change
                assert Path(path).read_bytes() == b"\x7fELF built by cnnkit"
                assert native.foreign_writable(Path(path)) == ""
        if _expected_planted_loads(p):
            assert loaded == [planted], p
    finally:
        for d in (base / "cache", base / "cache" / "native", base / "attic"):
            if d.is_dir():
                d.chmod(0o700)
        shutil.rmtree(base)


def test_fuzz_shared_cache_counted():
    assert COUNT["examples"] > 0
    assert COUNT["planted_loaded"] and COUNT["refused"], COUNT  # both outcomes were reached
    record("fuzz", shared_cache_examples=COUNT["examples"])
