"""scan_folder: Keras ordering, hidden files, labels modes, class_names."""

from __future__ import annotations

import os

import pytest

from cnnkit.data.scan import scan_folder


def _rel(root, paths):
    return [os.path.relpath(p, root) for p in paths]


def test_inferred_order_and_hidden_ignored(tree):
    idx = scan_folder(tree)
    assert idx.class_names == ["cats", "dogs"]
    assert _rel(tree, idx.file_paths) == [
        "cats/a.png",
        "cats/b.jpg",
        "cats/c_ünï.bmp",
        "cats/sub/d.png",
        "dogs/x.gif",
        "dogs/y.webp",
    ]
    assert idx.labels.tolist() == [0, 0, 0, 0, 1, 1]


def test_class_names_override_order_and_subset(tree):
    idx = scan_folder(tree, class_names=["dogs", "cats"])
    assert idx.labels.tolist() == [0, 0, 1, 1, 1, 1]
    only = scan_folder(tree, class_names=["dogs"])
    assert len(only.file_paths) == 2
    with pytest.raises(ValueError, match="`class_names` passed did not match the names of the sub"):
        scan_folder(tree, class_names=["birds"])


def test_labels_none_and_explicit_list(tree):
    idx = scan_folder(tree, labels=None)
    assert idx.labels is None and idx.class_names is None and len(idx.file_paths) == 6
    explicit = scan_folder(tree, labels=[1, 0, 1, 0, 1, 2])
    assert explicit.labels.tolist() == [1, 0, 1, 0, 1, 2]
    with pytest.raises(ValueError, match="labels"):
        scan_folder(tree, labels=[0, 1])
    with pytest.raises(ValueError, match="class_names"):
        scan_folder(tree, labels=None, class_names=["cats"])


def test_follow_links(tree, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "q.png").write_bytes((tree / "cats" / "a.png").read_bytes())
    os.symlink(outside, tree / "dogs" / "linked")
    assert len(scan_folder(tree).file_paths) == 6
    assert len(scan_folder(tree, follow_links=True).file_paths) == 7


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory"):
        scan_folder(tmp_path / "nope")
