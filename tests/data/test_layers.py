"""Keras-3 layers: units and directions, training-only behaviour, scipy agreement."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from torch import nn

from cnnkit.data.layers import (
    RandomContrast,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
)


def _dot(h=9, w=9, r=2, c=6) -> torch.Tensor:
    x = torch.zeros(1, 1, h, w)
    x[..., r, c] = 255.0
    return x


def _peak(y: torch.Tensor) -> tuple[int, int]:
    i = int(y[0, 0].argmax())
    return divmod(i, y.shape[-1])


def test_eval_mode_is_identity_and_uint8_kept():
    layers = nn.Sequential(RandomFlip(), RandomRotation(0.2), RandomZoom(0.3), RandomContrast(0.5))
    layers = layers.to("cpu").float()  # nn.Module plumbing (.to/_apply) still works
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    assert layers.eval()(x) is x
    y = layers.train()(x)
    assert y.dtype == torch.uint8 and y.shape == x.shape


def test_rotation_quarter_turn_is_counter_clockwise():
    y = RandomRotation((0.25, 0.25), fill_mode="constant")(_dot(r=2, c=4))
    # a dot above the centre (row 2, col 4) of a 9x9 image goes to the left (row 4, col 2)
    assert _peak(y) == (4, 2)


def test_translation_positive_moves_down_and_right():
    y = RandomTranslation((1 / 9, 1 / 9), (2 / 9, 2 / 9), fill_mode="constant")(_dot(r=2, c=2))
    assert _peak(y) == (3, 4)


def test_zoom_positive_zooms_out_keeping_aspect():
    x = torch.zeros(1, 1, 21, 21)
    x[..., 5:16, 5:16] = 255
    out = RandomZoom((0.5, 0.5), fill_mode="constant")(x)
    inn = RandomZoom((-0.5, -0.5), fill_mode="constant")(x)
    assert (out > 127).sum() < (x > 127).sum() < (inn > 127).sum()
    rows, cols = torch.nonzero(out[0, 0] > 127, as_tuple=True)
    assert rows.max() - rows.min() == cols.max() - cols.min()


def test_flip_modes_exact_and_seeded():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    y = RandomFlip("horizontal", seed=0)(x)
    for img in y:
        assert torch.equal(img, x[0]) or torch.equal(img, x[0].flip(-1))
    assert torch.equal(RandomFlip(seed=5)(x), RandomFlip(seed=5)(x))


def test_rotation_matches_scipy_reflect():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 255, (1, 1, 11, 13))).float()
    y = RandomRotation((0.1, 0.1))(x)[0, 0].double().numpy()
    theta = 2 * np.pi * 0.1
    c, s = np.cos(theta), np.sin(theta)
    m = np.array([[c, s], [-s, c]])
    centre = np.array([5.0, 6.0])
    ref = ndi.affine_transform(x[0, 0].double().numpy(), m, centre - m @ centre, order=1,
                               mode="reflect")  # fmt: skip
    assert np.abs(ref - y).max() < 0.02


def test_contrast_and_rescaling():
    x = torch.tensor([[[[50.0, 100.0], [100.0, 150.0]]]])
    y = RandomContrast((0.0, 0.5))(x)  # factor in [1, 1.5]
    ratio = (y - 100) / (x - 100 + 1e-9)
    factor = ratio[0, 0, 0, 0]
    assert factor >= 1 and factor <= 1.5  # noqa: SIM300
    assert torch.allclose(factor, ratio[0, 0, 1, 1])  # one factor for the whole image
    z = RandomContrast(0.9)(x * 2)
    assert z.min() >= 0 and z.max() <= 255
    assert torch.allclose(Rescaling(1 / 255)(torch.tensor([255.0])), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="fill_mode"):
        RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="mode"):
        RandomFlip("diagonal")


def test_layers_on_gpu_when_present():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine (the device check runs it)")
    x = torch.rand(4, 3, 16, 16, device="cuda") * 255
    y = nn.Sequential(RandomFlip(seed=0), RandomRotation(0.1, seed=0), RandomZoom(0.2))(x)
    assert y.is_cuda and y.shape == x.shape
