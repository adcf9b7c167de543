"""``cnnkit audit`` on folders that real users have: findings, never a crash or a wrong call.

Unreadable files (alone, or the size of another file), pictures with data after them (the
motion-photo layout), empty class folders, sizes of images of different shapes, a class folder
that links out of the tree, and file names that are not UTF-8.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from rb_helpers import record, run_cnnkit

from cnnkit.data import audit, scan_folder


def _png(path: Path, w: int, h: int, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _jpeg(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _problems(result: dict) -> dict[str, str]:
    return {Path(p["path"]).name: p["problem"] for p in result["problems"]}


def _audit_json(root: Path, **kw) -> dict:
    proc = run_cnnkit("audit", str(root), "--json", **kw)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def test_unreadable_files_are_their_own_problem_and_no_duplicate(tmp_path):
    root = tmp_path / "data"
    same = _png(root / "a" / "same-size.png", 32, 32, 1)
    twin = root / "a" / "unreadable-twin.png"
    twin.write_bytes(same.read_bytes()[:-1] + b"\x00")  # the same size, other bytes
    alone = root / "b" / "unreadable-alone.png"
    _png(alone, 50, 40, 2)
    _png(root / "b" / "fine.png", 32, 32, 3)
    for f in (twin, alone):
        f.chmod(0o000)
    proc = run_cnnkit("audit", str(root), "--json", unprivileged=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    problems = _problems(result)
    assert problems == {"unreadable-twin.png": "unreadable", "unreadable-alone.png": "unreadable"}
    details = [p["detail"] for p in result["problems"]]
    assert all("Permission denied" in d for d in details), details
    assert result["duplicates"] == [] and result["classes"] == {"a": 2, "b": 2}
    record("audit", unreadable_files=2)


def test_a_picture_with_data_after_it_is_not_truncated(tmp_path):
    root = tmp_path / "data" / "photos"
    root.mkdir(parents=True)
    video = b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(20_000)
    (root / "motion-photo.jpg").write_bytes(_jpeg() + video)  # the layout phones write
    png = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(png, "PNG")
    (root / "png-then-data.png").write_bytes(png.getvalue() + video[:3000])
    cut = _jpeg(seed=1)
    (root / "cut.jpg").write_bytes(cut[: len(cut) * 2 // 3])  # really truncated
    (root / "cut-then-data.jpg").write_bytes(cut[: len(cut) * 2 // 3] + video)
    (root / "no-iend.png").write_bytes(png.getvalue()[:-12])  # the IEND chunk missing
    result = audit(root.parent)
    assert _problems(result) == {
        "cut.jpg": "truncated",
        "cut-then-data.jpg": "truncated",
        "no-iend.png": "truncated",
    }


def test_empty_class_folders_are_classes_with_zero_images(tmp_path):
    root = tmp_path / "data"
    _png(root / "cats" / "1.png", 20, 20)
    (root / "dogs").mkdir()
    (root / "zebras" / "nested").mkdir(parents=True)
    result = audit(root)
    assert result["classes"] == {"cats": 1, "dogs": 0, "zebras": 0}
    assert list(result["classes"]) == scan_folder(root).class_names  # as train sees it
    split = tmp_path / "split"
    _png(split / "train" / "cats" / "1.png", 20, 20)
    (split / "train" / "dogs").mkdir()
    (split / "test" / "cats").mkdir(parents=True)
    result = audit(split)
    assert result["splits"] == {"test": {"cats": 0}, "train": {"cats": 1, "dogs": 0}}
    assert result["classes"] == {"cats": 1, "dogs": 0}


def test_sizes_are_real_image_sizes_by_area(tmp_path):
    root = tmp_path / "data"
    shapes = [(200, 10), (10, 150), (30, 30), (40, 40), (12, 60)]  # (width, height)
    for i, (w, h) in enumerate(shapes):
        _png(root / "c" / f"{i}.png", w, h)
    sizes = audit(root)["sizes"]
    assert sizes == {"min": [12, 60], "median": [10, 150], "max": [200, 10]}  # 720, 1500, 2000 px
    assert all(tuple(v) in shapes for v in sizes.values())


def test_a_class_folder_linking_out_of_the_tree_is_reported(tmp_path):
    root = tmp_path / "data"
    _png(root / "inside" / "1.png", 20, 20)
    outside = tmp_path / "elsewhere" / "secret-class"
    _png(outside / "x.png", 20, 20, 5)
    (root / "linked").symlink_to(outside)
    _png(root / "inside-sub" / "y.png", 20, 20, 6)
    (root / "link-within").symlink_to(root / "inside-sub")  # inside the tree: fine
    result = audit(root)
    found = [p for p in result["problems"] if p["problem"] == "outside-folder"]
    assert [Path(p["path"]).name for p in found] == ["linked"]
    assert str(outside) in found[0]["detail"]
    assert result["classes"]["linked"] == 1  # counted, as train reads it


def test_non_utf8_file_names_in_json_and_text(tmp_path):
    root = tmp_path / "data"
    _png(root / "c" / "ok.png", 20, 20, 1)
    raw = os.fsencode(root / "c") + b"/caf\xe9-\xff.png"
    Path(os.fsdecode(raw)).write_bytes((root / "c" / "ok.png").read_bytes())
    strict = {"PYTHONIOENCODING": "utf-8"}  # a UTF-8 terminal: surrogates cannot be printed
    proc = run_cnnkit("audit", str(root), "--json", **strict)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.encode("utf-8", "surrogateescape")
    result = json.loads(out.decode("utf-8"))  # valid UTF-8, valid JSON
    names = {os.fsencode(p) for group in result["duplicates"] for p in group}
    assert raw in names  # the exact bytes come back
    text = run_cnnkit("audit", str(root), **strict)
    assert text.returncode == 0, text.stderr[-2000:]
    assert "caf\\xe9-\\xff.png" in text.stdout
