"""Decode-once cache: hits, exact invalidation, parallel decode, atomic files, clear."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cnnkit.data.cache import DecodeSettings, cache_dir, cache_info, clear_cache, decode_files
from cnnkit.data.decode import load_image
from cnnkit.data.scan import scan_folder
from conftest import save, solid

SETTINGS = DecodeSettings((6, 8))


def _paths(root):
    return scan_folder(root).file_paths


def test_second_call_is_a_memmap_hit(tree):
    first = decode_files(_paths(tree), SETTINGS, progress=False)
    again = decode_files(_paths(tree), SETTINGS, progress=False)
    assert first.decoded == 6 and again.decoded == 0
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(first.images, again.images)
    assert str(again.entry).startswith(str(cache_dir()))


def test_touch_add_remove_redecode_only_what_changed(tree):
    decode_files(_paths(tree), SETTINGS, progress=False)
    target = tree / "cats" / "b.jpg"
    save(target, solid(12, 16, (10, 20, 30)), quality=95)
    os.utime(target, ns=(1, 1))  # a different mtime even on coarse clocks
    changed = decode_files(_paths(tree), SETTINGS, progress=False)
    assert changed.decoded == 1
    row = list(_paths(tree)).index(str(target))
    assert np.array_equal(changed.images[row], load_image(target, (6, 8)))
    save(tree / "dogs" / "new.png", solid(12, 16, (1, 1, 1)))
    added = decode_files(_paths(tree), SETTINGS, progress=False)
    assert added.decoded == 1 and len(added.images) == 7
    (tree / "cats" / "a.png").unlink()
    removed = decode_files(_paths(tree), SETTINGS, progress=False)
    assert removed.decoded == 0 and len(removed.images) == 6
    for i, path in enumerate(_paths(tree)):
        assert np.array_equal(removed.images[i], load_image(path, (6, 8)))


def test_settings_are_part_of_the_key(tree):
    decode_files(_paths(tree), SETTINGS, progress=False)
    other = decode_files(_paths(tree), DecodeSettings((6, 8), "grayscale"), progress=False)
    assert other.decoded == 6 and other.images.shape == (6, 1, 6, 8)


def test_failures_remembered_until_the_file_changes(broken_tree):
    paths = _paths(broken_tree)
    first = decode_files(paths, SETTINGS, progress=False)
    again = decode_files(paths, SETTINGS, progress=False)
    assert again.decoded == 0 and again.skipped == first.skipped and len(first.skipped) == 3
    save(broken_tree / "cats" / "empty.png", solid(12, 16, (0, 0, 0)))
    fixed = decode_files(paths, SETTINGS, progress=False)
    assert fixed.decoded == 1 and len(fixed.skipped) == 2


def test_parallel_decode_matches_serial(tmp_path):
    rng = np.random.default_rng(0)
    paths = [
        str(save(tmp_path / "imgs" / f"{i:03d}.png", rng.integers(0, 255, (9, 9, 3), np.uint8)))
        for i in range(70)
    ]
    (tmp_path / "imgs" / "050.png").write_bytes(b"broken")
    par = decode_files(paths, DecodeSettings((5, 5)), workers=2, progress=False)
    ser = [load_image(p, (5, 5)) for i, p in enumerate(paths) if i != 50]
    assert par.decoded == 70 and len(par.skipped) == 1
    assert np.array_equal(par.images, np.stack(ser))
    assert par.kept.tolist() == [i for i in range(70) if i != 50]
    leftovers = [f for f in os.listdir(par.entry) if f.endswith(".tmp")]
    assert leftovers == []


def test_pixels_are_on_disk_before_the_index_names_them(tree, monkeypatch):
    from cnnkit.data import cache

    events = []
    real_sync, real_entry = cache._sync, cache._write_entry
    monkeypatch.setattr(cache, "_sync", lambda p: events.append(("sync", p.name)) or real_sync(p))

    def entry(*args):
        events.append(("index", args[5]))  # data_name
        real_entry(*args)

    monkeypatch.setattr(cache, "_write_entry", entry)
    out = decode_files(_paths(tree), SETTINGS, workers=2, progress=False)
    assert [e[0] for e in events] == ["sync", "index"]
    assert events[0][1].endswith(".u8.tmp")
    assert events[1][1] == os.path.basename(out.images.filename)


def test_cache_info_and_clear(tree):
    decode_files(_paths(tree), SETTINGS, progress=False)
    info = cache_info()
    assert info["bytes"] > 6 * 3 * 6 * 8 and len(info["entries"]) >= 1
    assert clear_cache() > 0
    assert cache_info()["entries"] == []
    assert decode_files(_paths(tree), SETTINGS, progress=False).decoded == 6


def _failing_decode(monkeypatch, exc: Exception, victim: str) -> None:
    real = DecodeSettings.decode

    def decode(self, path):
        if os.path.basename(path) == victim:
            raise exc
        return real(self, path)

    monkeypatch.setattr(DecodeSettings, "decode", decode)


def test_file_unreadable_at_decode_time_is_skipped_and_reported(tree, monkeypatch):
    paths = _paths(tree)
    victim = os.path.basename(paths[2])
    _failing_decode(monkeypatch, PermissionError(13, "Permission denied"), victim)
    out = decode_files(paths, SETTINGS, workers=1, progress=False)
    assert len(out.images) == len(paths) - 1 and 2 not in out.kept
    assert out.skipped == [(paths[2], "unreadable", "cannot read the file (Permission denied)")]


def test_a_bug_in_decoding_is_raised_not_recorded_as_a_bad_image(tree, monkeypatch):
    paths = _paths(tree)
    _failing_decode(monkeypatch, RuntimeError("bug"), os.path.basename(paths[0]))
    with pytest.raises(RuntimeError, match="bug"):
        decode_files(paths, SETTINGS, workers=1, progress=False)
