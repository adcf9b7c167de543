"""Atomic writes (whole files, the umask's permissions) and the safe JSON reader."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cnnkit.fileio import (
    FileFormatError,
    atomic_write_json,
    atomic_write_text,
    read_json,
    remove_stale_temporaries,
)


def test_write_text_atomic_replaces_whole_files(tmp_path):
    path = tmp_path / "report.html"
    path.write_text("old")
    atomic_write_text(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600


def test_json_without_nan(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": 2})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": 2}  # strict JSON parses it


def test_non_utf8_names_round_trip(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name: a surrogate escape in Python
    atomic_write_text(tmp_path / "split.csv", f"path\n{name}\n")
    back = (tmp_path / "split.csv").read_text(encoding="utf-8", errors="surrogateescape")
    assert back.splitlines()[1] == name


@pytest.mark.parametrize(
    "content, match",
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
        ('{"a": ' * 70 + "1" + "}" * 70, "nested deeper"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"n": ' + "9" * 5000 + "}", "cannot be read as JSON"),
    ],
)
def test_read_json_gives_one_clear_error(tmp_path, content, match):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=match) as e:
        read_json(path, "run config")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_read_json_refuses_non_utf8(tmp_path):
    (tmp_path / "c.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(FileFormatError, match="not UTF-8"):
        read_json(tmp_path / "c.json")


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".model.safetensors.abc.tmp").write_bytes(b"partial")
    (tmp_path / "keep.txt").write_text("mine")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".model.safetensors.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
