"""Augment: differential test against scipy.ndimage per image, and its semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit.data import native
from cnnkit.data.augment import FILL_MODES, Augment, _affine_grid, affine_matrices
from conftest import scipy_warp


@pytest.fixture(params=["native", "grid_sample"])
def kernel(request, monkeypatch):
    """Run a test through the compiled warp and through the grid_sample fallback."""
    if request.param == "grid_sample":
        monkeypatch.setattr(native, "usable", lambda x: False)
    else:
        request.getfixturevalue("native_warp")
    return request.param


def _scipy_reference(x: torch.Tensor, aug: Augment, seed: int) -> np.ndarray:
    b, _, h, w = x.shape
    params = aug.sample_params(b, h, w, torch.Generator().manual_seed(seed))
    return scipy_warp(x, affine_matrices(params, h, w), aug.fill_mode, aug.cval)


@pytest.mark.parametrize("fill_mode", list(FILL_MODES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scipy_affine_transform_per_image(fill_mode, seed, kernel):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(7, 20, size=2)
    x = torch.from_numpy(rng.uniform(0, 255, (5, 2, h, w))).float()
    aug = Augment(
        rotation_range=float(rng.uniform(0, 90)),
        width_shift_range=float(rng.uniform(0, 0.4)),
        height_shift_range=float(rng.uniform(1, 5)),  # pixels
        shear_range=float(rng.uniform(0, 30)),
        zoom_range=(float(rng.uniform(0.5, 1)), float(rng.uniform(1, 1.6))),
        horizontal_flip=True,
        vertical_flip=True,
        fill_mode=fill_mode,
        cval=float(rng.uniform(0, 255)),
    )
    got = aug(x, generator=torch.Generator().manual_seed(seed)).double().numpy()
    assert np.abs(got - _scipy_reference(x, aug, seed)).max() < 0.02


def test_flips_and_right_angle_rotation_are_exact():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    g = torch.Generator().manual_seed(0)
    aug = Augment(horizontal_flip=True)
    p = aug.sample_params(2, 5, 5, torch.Generator().manual_seed(0))
    y = aug(x, generator=g)
    for i in range(2):
        expected = x[i].flip(-1) if p["hflip"][i] else x[i]
        assert torch.allclose(y[i], expected, atol=1e-3)
    params = {k: torch.zeros(1, dtype=torch.float64) for k in ("tx", "ty", "shear")}
    params |= {"theta": torch.tensor([np.pi / 2]), "zx": torch.ones(1), "zy": torch.ones(1)}
    params |= {"hflip": torch.zeros(1, dtype=torch.bool), "vflip": torch.zeros(1, dtype=torch.bool)}
    from cnnkit.data.augment import warp

    rotated = warp(x[:1], affine_matrices(params, 5, 5))
    assert torch.allclose(rotated, torch.rot90(x[:1], 1, (2, 3)), atol=1e-3) or torch.allclose(
        rotated, torch.rot90(x[:1], -1, (2, 3)), atol=1e-3
    )


def test_independent_draw_per_image_and_reproducible():
    x = torch.rand(1, 3, 16, 16).repeat(6, 1, 1, 1) * 255
    aug = Augment(rotation_range=30, zoom_range=0.2)
    y1 = aug(x, generator=torch.Generator().manual_seed(3))
    y2 = aug(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(y1, y2)
    assert not torch.allclose(y1[0], y1[1])


def test_uint8_in_uint8_out_and_identity():
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    aug = Augment(width_shift_range=0.25, fill_mode="wrap", brightness_range=(0.5, 1.5))
    y = aug(x, generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert Augment().is_identity and Augment()(x) is x
    assert not aug.is_identity


def test_zoom_below_one_enlarges_content():
    x = torch.zeros(1, 1, 21, 21)
    x[..., 8:13, 8:13] = 255  # a 5x5 square in the centre
    y = Augment(zoom_range=(0.5, 0.5))(x, generator=torch.Generator().manual_seed(0))
    assert (y > 127).sum() > 4 * (x > 127).sum() * 0.8


def test_brightness_and_contrast_clip():
    x = torch.full((2, 3, 4, 4), 200.0)
    x[:, :, 0, 0] = 0
    y = Augment(brightness_range=(2.0, 2.0))(x)
    assert y.max() == 255 and y.min() == 0
    flat = torch.full((1, 1, 4, 4), 100.0)
    assert torch.allclose(Augment(contrast=0.5)(flat), flat)  # no contrast to change


def test_to_dict_round_trip_and_validation():
    aug = Augment(
        rotation_range=10, zoom_range=0.1, brightness_range=(0.9, 1.1), fill_mode="reflect"
    )
    d = aug.to_dict()
    assert d["zoom_range"] == [0.9, 1.1] and Augment.from_dict(d) == aug
    with pytest.raises(ValueError, match="fill_mode"):
        Augment(fill_mode="mirror")
    with pytest.raises(ValueError, match="zoom_range"):
        Augment(zoom_range=1.5)
    with pytest.raises(ValueError, match="rotation_range"):
        Augment(rotation_range=-1)
    with pytest.raises(ValueError, match="unknown"):
        Augment.from_dict({"rotate": 3})
    with pytest.raises(TypeError):
        Augment(10)  # keyword-only


def test_runs_on_gpu_when_present():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine (the device check runs it)")
    x = torch.rand(4, 3, 16, 16, device="cuda") * 255
    aug = Augment(rotation_range=20, fill_mode="wrap")
    y = aug(x, generator=torch.Generator(device="cuda").manual_seed(0))
    assert y.device.type == "cuda" and y.shape == x.shape


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fill_mode=st.sampled_from(list(FILL_MODES)),
    rotation=st.floats(0, 180),
    shift=st.floats(0, 30),
    shear=st.floats(0, 45),
    zoom=st.tuples(st.floats(0.3, 1.0), st.floats(1.0, 2.5)),
    size=st.tuples(st.integers(3, 16), st.integers(3, 16)),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_matches_scipy(fill_mode, rotation, shift, shear, zoom, size, seed, kernel):
    x = torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (2, 1, *size))).float()
    aug = Augment(rotation_range=rotation, width_shift_range=shift, height_shift_range=shift,
                  shear_range=shear, zoom_range=zoom, horizontal_flip=True, vertical_flip=True,
                  fill_mode=fill_mode, cval=99.0)  # fmt: skip
    got = aug(x, generator=torch.Generator().manual_seed(seed)).double().numpy()
    assert np.abs(got - _scipy_reference(x, aug, seed)).max() < 0.05


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    b=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_affine_grid_equals_torch_affine_grid(h, w, b, seed):
    theta = torch.randn(b, 2, 3, generator=torch.Generator().manual_seed(seed))
    expected = torch.nn.functional.affine_grid(theta, [b, 1, h, w], align_corners=False)
    assert torch.allclose(_affine_grid(theta, h, w), expected, atol=1e-5)


def _row_ramp(b: int = 8, h: int = 9, w: int = 9) -> torch.Tensor:
    """Images whose rows are constant (row r = 20 r)."""
    return (torch.arange(h, dtype=torch.float32) * 20).view(1, 1, h, 1).expand(b, 1, h, w) + 0


def test_shear_is_horizontal_as_keras(kernel):
    # Keras' shear matrix [[1, -sin s], [0, cos s]] acts on (x, y) = (column, row): every output
    # row samples a single input row, so constant rows stay constant
    y = Augment(shear_range=20)(_row_ramp(), generator=torch.Generator().manual_seed(0))
    assert (y.amax(-1) - y.amin(-1)).max() < 1e-3
    assert (y.amax(-2) - y.amin(-2)).min() > 100  # columns still run through the ramp


def test_int_shift_ranges_draw_whole_pixels_as_keras(kernel):
    x = (torch.rand(64, 1, 8, 10, generator=torch.Generator().manual_seed(0)) < 0.5) * 255.0
    aug = Augment(width_shift_range=3, height_shift_range=2)
    y = aug(x, generator=torch.Generator().manual_seed(1))
    assert torch.minimum(y, 255 - y).max() < 0.01  # no blur: whole-pixel shifts
    p = aug.sample_params(30_000, 8, 10, torch.Generator().manual_seed(2))
    tx, counts = p["tx"].unique(return_counts=True)  # Keras: choice(3) * choice([-1, 1])
    assert tx.tolist() == [-2, -1, 0, 1, 2]
    assert np.allclose(counts.numpy() / 30_000, [1 / 6, 1 / 6, 1 / 3, 1 / 6, 1 / 6], atol=0.01)
    assert p["ty"].unique().tolist() == [-1, 0, 1]
    assert Augment(width_shift_range=1).is_identity  # Keras' (-1, 1) holds only 0


def test_float_shift_ranges_fraction_below_one_pixels_above():
    g = torch.Generator().manual_seed(0)
    px = Augment(width_shift_range=3.0).sample_params(4000, 8, 10, g)["tx"]
    frac = Augment(width_shift_range=0.5).sample_params(4000, 8, 10, g)["tx"]
    assert 2.9 < px.abs().max() <= 3 and (px != px.round()).any()
    assert 4.9 < frac.abs().max() <= 5  # 0.5 of the width, 10


def test_int_shift_range_kept_through_to_dict():
    aug = Augment(width_shift_range=np.int64(3), height_shift_range=3.0)
    d = aug.to_dict()
    assert type(d["width_shift_range"]) is int and type(d["height_shift_range"]) is float
    assert type(Augment.from_dict(d).width_shift_range) is int
    with pytest.raises(ValueError, match="width_shift_range"):
        Augment(width_shift_range=-2)


def test_brightness_range_must_be_a_pair_as_keras():
    with pytest.raises(ValueError, match="brightness_range must be a pair"):
        Augment(brightness_range=0.1)
    with pytest.raises(ValueError, match="brightness_range"):
        Augment(brightness_range=(0.5,))
