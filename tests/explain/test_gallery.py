"""The report gallery, the overlay pictures and the pointing-game metric."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit.explain import gradcam_gallery, overlay, overlay_png, peak_in_box


def tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip


def test_gallery_png_rows_per_class():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9, 3, 12, 12), dtype=np.uint8)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    preds = np.array([0, 1, 0, 1, 1, 1, 0, 0, 2])
    png = gradcam_gallery(tiny_classifier(), images, labels, preds, ["a", "b", "c"], per_class=2)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    one_row = gradcam_gallery(tiny_classifier(), images[:3], labels[:3], preds[:3], ["a"])
    assert img.height > 2 * Image.open(io.BytesIO(one_row)).height  # 3 rows vs 1


def test_gallery_checks_lengths():
    with pytest.raises(ValueError, match="agree in N"):
        gradcam_gallery(tiny_classifier(), np.zeros((2, 3, 8, 8), np.uint8), [0], [0, 1], ["a"])


def test_overlay_blends_at_image_size():
    image = np.zeros((1, 10, 20), np.uint8)  # grey (C, H, W)
    cam = torch.zeros(5, 5)
    cam[0, 4] = 1.0  # top-right hot
    out = overlay(image, cam, alpha=0.5)
    assert out.shape == (10, 20, 3) and out.dtype == np.uint8
    assert out[0, 19, 0] > out[9, 0, 0]  # jet: hot is red, cold is blue
    png = overlay_png(image, cam, peak=(19, 0))
    assert Image.open(io.BytesIO(png)).size == (20, 10)
    with pytest.raises(TypeError, match="uint8"):
        overlay(image.astype(np.float32), cam)


def test_peak_in_box_pixel_centres():
    maps = torch.zeros(3, 10, 10)
    maps[0, 2, 3] = 1  # peak at x=3, y=2
    maps[1, 2, 3] = 1
    maps[2, 9, 9] = 1
    boxes = np.array([[3, 2, 4, 3], [4, 2, 6, 3], [0, 0, 9, 9]], dtype=np.float32)
    assert peak_in_box(maps, boxes).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="boxes"):
        peak_in_box(maps, boxes[:2])


def test_a_map_without_evidence_shows_the_image_not_a_colour_wash():
    """A head that ignores the features: every Grad-CAM map is zero. The cells show the grey
    images (with a note), not the saturated blue a zero heatmap blends into them."""
    net = tiny_classifier()
    with torch.no_grad():
        net[-1].weight.zero_()
        net[-1].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    images = np.full((4, 3, 12, 12), 128, np.uint8)
    labels, preds = np.array([0, 0, 1, 1]), np.zeros(4, int)
    png = gradcam_gallery(net, images, labels, preds, ["a", "b"], per_class=2)
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    assert not ((rgb[..., 2] > 100) & (rgb[..., 0] < 60) & (rgb[..., 1] < 60)).any()
    assert ((abs(rgb[..., 0] - 128) < 3) & (abs(rgb[..., 2] - 128) < 3)).sum() > 1000  # grey


def test_cam_note_names_maps_that_locate_nothing():
    from cnnkit.explain import cam_note

    assert cam_note(torch.zeros(3, 3), "Bag") == "no positive evidence for Bag"
    even = "evidence for Bag spread evenly (no location)"
    assert cam_note(torch.full((1, 1), 0.7), "Bag") == even
    assert cam_note(torch.tensor([[0.0, 1.0]]), "Bag") is None
