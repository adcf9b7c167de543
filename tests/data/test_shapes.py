"""The generated shapes dataset: reproducible, balanced, boxes that hold the object."""

from __future__ import annotations

import numpy as np

from cnnkit.data.datasets import export_dataset
from cnnkit.data.shapes import SHAPE_CLASSES, make_shapes


def test_seeded_balanced_and_boxed():
    a, b = make_shapes(12, seed=3), make_shapes(12, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.images, make_shapes(12, seed=4).images)
    assert a.images.shape == (12, 3, 64, 64) and a.class_names == SHAPE_CLASSES
    assert np.bincount(a.labels).tolist() == [4, 4, 4]
    x0, y0, x1, y1 = a.boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 64).all() and (y1 <= 64).all()
    assert ((x1 - x0) >= 8).all() and ((y1 - y0) >= 8).all()


def test_object_differs_from_background_inside_the_box():
    data = make_shapes(9, image_size=(48, 40), seed=1)
    for img, box in zip(data.images.astype(float), data.boxes.astype(int), strict=True):
        x0, y0, x1, y1 = box
        inside = img[:, y0:y1, x0:x1].reshape(3, -1)
        outside = np.concatenate([img[:, :, :x0].reshape(3, -1), img[:, :, x1:].reshape(3, -1)], 1)
        if outside.shape[1] == 0:
            continue
        centre = img[:, (y0 + y1) // 2, (x0 + x1) // 2]
        # the object colour (at least the box centre for circles/squares) is far from background
        assert (
            np.linalg.norm(inside.mean(1) - outside.mean(1)) > 20
            or np.linalg.norm(centre - outside.mean(1)) > 60
        )


def test_export_writes_boxes_csv(tmp_path):
    counts = export_dataset(make_shapes(6, seed=0), tmp_path / "shapes")
    assert counts == {"circle": 2, "square": 2, "triangle": 2}
    lines = (tmp_path / "shapes" / "boxes.csv").read_text().splitlines()
    assert lines[0] == "path,x0,y0,x1,y1" and len(lines) == 7
    assert (tmp_path / "shapes" / lines[1].split(",")[0]).is_file()


def test_every_kind_draws_an_object_of_its_own():
    from cnnkit.data.shapes import SHAPE_KINDS

    data = make_shapes(3 * len(SHAPE_KINDS), seed=2, classes=SHAPE_KINDS)
    assert data.class_names == SHAPE_KINDS
    assert np.bincount(data.labels).tolist() == [3] * len(SHAPE_KINDS)
    x0, y0, x1, y1 = data.boxes.T
    assert ((x1 - x0) >= 8).all() and ((y1 - y0) >= 8).all() and (x1 <= 64).all()
    areas = (x1 - x0) * (y1 - y0)
    assert areas.max() < 64 * 64  # never the whole image


def test_ring_has_a_hole_and_star_is_not_convex():
    from cnnkit.data.shapes import _more_kinds

    yy, xx = np.mgrid[0:64, 0:64].astype(float) + 0.5
    ring = _more_kinds(5, np.random.default_rng(0), yy, xx)
    ys, xs = np.nonzero(ring)
    cy, cx = ys.mean(), xs.mean()
    assert ring.sum() > 50 and not ring[int(cy), int(cx)]  # the centre is background
    star = _more_kinds(7, np.random.default_rng(0), yy, xx)
    ys, xs = np.nonzero(star)
    hull_box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    assert 0.2 * hull_box < star.sum() < 0.6 * hull_box  # points, not a filled disc


def test_classes_pick_kinds_and_reject_unknown_ones():
    import pytest

    data = make_shapes(4, seed=0, classes=["ring", "star"])
    assert data.class_names == ["ring", "star"] and data.labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="classes"):
        make_shapes(4, classes=["circle", "blob"])
    with pytest.raises(ValueError, match="classes"):
        make_shapes(4, classes=["ring", "ring"])
