"""load_folder: pixels, labels, skipped files reported once."""

from __future__ import annotations

import numpy as np

from cnnkit.data import ImageArrays, load_folder, load_image


def test_load_folder_pixels_labels_paths(tree):
    data = load_folder(tree, image_size=(6, 8), progress=False)
    assert isinstance(data, ImageArrays)
    assert data.images.shape == (6, 3, 6, 8) and data.images.dtype == np.uint8
    assert data.class_names == ["cats", "dogs"]
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1]
    for row, path in enumerate(data.file_paths):
        assert np.array_equal(data.images[row], load_image(path, (6, 8)))  # bit-exact
    assert data.images[0, :, 0, 0].tolist() == [255, 0, 0]
    assert data.skipped == []


def test_broken_files_skipped_counted_reported_once(broken_tree, capsys):
    data = load_folder(broken_tree, image_size=(6, 8), color_mode="grayscale")
    problems = {p.rsplit("/", 1)[-1]: problem for p, problem, _ in data.skipped}
    assert problems == {"empty.png": "empty", "trunc.jpg": "truncated", "text.png": "not-an-image"}
    assert any(p.endswith("png_named.jpg") for p in data.file_paths)  # loads by content
    assert len(data) == 7 and data.images.shape[1] == 1
    err = capsys.readouterr().err
    assert err.count("3 files skipped") == 1 and "see " in err
    again = load_folder(broken_tree, image_size=(6, 8), color_mode="grayscale", progress=False)
    assert len(again.skipped) == 3  # still listed, ...
    load_folder(broken_tree, image_size=(6, 8), color_mode="grayscale")
    assert "skipped" not in capsys.readouterr().err  # ... but said once per process


def test_allow_truncated_keeps_the_file(broken_tree):
    data = load_folder(broken_tree, image_size=(6, 8), allow_truncated=True, progress=False)
    assert any(p.endswith("trunc.jpg") for p in data.file_paths)
    assert len(data.skipped) == 2
