"""audit: counts, sizes, modes, EXIF, every problem kind, duplicates within and across splits."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from cnnkit.data import audit
from cnnkit.data.audit import cross_class_duplicates, format_audit
from conftest import save, solid


def _by_name(result):
    return {p["path"].rsplit("/", 1)[-1]: p["problem"] for p in result["problems"]}


def test_audit_finds_every_problem(broken_tree):
    png = (broken_tree / "cats" / "a.png").read_bytes()
    (broken_tree / "dogs" / "cut.png").write_bytes(png[: len(png) - 20])  # no IEND
    save(broken_tree / "dogs" / "small.png", solid(5, 40, (0, 0, 0)))
    result = audit(broken_tree, min_side=8)  # the fixture's own images are 12x16
    assert _by_name(result) == {
        "empty.png": "empty",
        "trunc.jpg": "truncated",
        "text.png": "not-an-image",
        "png_named.jpg": "extension-mismatch",
        "cut.png": "truncated",
        "small.png": "tiny",
    }
    assert len(audit(broken_tree)["problems"]) > 6  # default min_side 16: 12x16 images are tiny
    assert result["classes"] == {"cats": 6, "dogs": 6}
    assert result["files"] == 12 and result["imbalance_ratio"] == 1.0


def test_sizes_modes_exif_and_imbalance(tmp_path):
    root = tmp_path / "d"
    save(root / "a" / "1.png", solid(20, 30, (1, 2, 3)))
    save(root / "a" / "2.png", np.zeros((40, 50), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "b").mkdir()
    Image.fromarray(solid(60, 70, (9, 9, 9))).save(root / "b" / "p.jpg", exif=exif.tobytes())
    result = audit(root)
    assert result["sizes"] == {"min": [30, 20], "median": [50, 40], "max": [70, 60]}
    assert result["modes"] == {"RGB": 2, "L": 1}
    assert result["exif_rotated"] == 1 and result["exif_rotated_files"][0].endswith("p.jpg")
    assert result["imbalance_ratio"] == 2.0 and result["problems"] == []


def test_duplicates_across_classes_and_splits(tmp_path):
    root = tmp_path / "splits"
    save(root / "train" / "cat" / "1.png", solid(20, 20, (5, 5, 5)))
    save(root / "train" / "cat" / "2.png", solid(20, 20, (6, 6, 6)))
    save(root / "train" / "dog" / "3.png", solid(20, 20, (7, 7, 7)))
    (root / "validation" / "cat").mkdir(parents=True)
    shutil.copy(root / "train" / "cat" / "1.png", root / "validation" / "cat" / "1b.png")
    (root / "train" / "dog" / "2copy.png").write_bytes((root / "train/cat/2.png").read_bytes())
    result = audit(root)
    assert result["layout"] == "splits"
    assert result["splits"] == {"train": {"cat": 2, "dog": 2}, "validation": {"cat": 1}}
    assert len(result["duplicates"]) == 2
    assert len(result["cross_split_duplicates"]) == 1
    assert result["cross_split_duplicates"][0][0].endswith("train/cat/1.png")
    assert len(cross_class_duplicates(result)) == 1
    assert "across train/validation/test: 1" in format_audit(result)


def test_audit_cli_exit_codes(broken_tree, tree, capsys):
    import json

    from cnnkit.cli.main import main

    assert main(["audit", str(broken_tree), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"classes", "files", "sizes", "modes", "exif_rotated", "imbalance_ratio", "problems",
            "duplicates", "cross_split_duplicates"} <= set(result)  # fmt: skip
    assert main(["audit", str(broken_tree), "--strict"]) == 1
    assert "problems:" in capsys.readouterr().out
    assert main(["audit", str(broken_tree / "nope")]) == 2
