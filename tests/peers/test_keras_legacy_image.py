"""The legacy ``ImageDataGenerator`` tests, case by case, in cnnkit's ``Augment`` API.

Keras 3 keeps the legacy generator (``keras/src/legacy/preprocessing/image.py``) without its
tests; they live on in tf-keras' ``tf_keras/preprocessing/image_test.py`` (``TestImage``,
``TestAffineTransformations``) and, identically, in keras-preprocessing's
``tests/image/affine_transformations_test.py`` and ``image_data_generator_test.py``. Each test
names the case it mirrors. Keras' images are ``(H, W, C)`` or ``(C, H, W)`` with the axes as
arguments; cnnkit has one layout, ``(B, C, H, W)``, so each case runs once. Keras'
``apply_affine_transform(theta, tx, ty, shear, zx, zy)`` arguments are the keys of the
parameter dict :func:`cnnkit.data.augment.affine_matrices` takes. Cases that cannot apply are
listed, with the reason, in docs/data.md ("Keras' own test cases").

:func:`keras_apply_affine_transform` below writes out Keras' documented matrices (rotation,
shift, shear, zoom in ``(x, y)``, ``transform_matrix_offset_center``, the x/y swap) with
scipy, as the oracle for sheared, rotated, zoomed and shifted images.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from cnnkit.data import Augment, native, split_indices
from cnnkit.data.augment import affine_matrices, warp


@pytest.fixture(params=["native", "grid_sample"])
def kernel(request, monkeypatch, require):
    """Each case through the compiled warp and through the grid_sample fallback."""
    if request.param == "grid_sample":
        monkeypatch.setattr(native, "usable", lambda x: False)
    else:
        require(native.kernel() is not None, f"the native warp: {native.describe()}")
    return request.param


def keras_apply_affine_transform(
    x: np.ndarray, theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, fill_mode="nearest",
    cval=0.0,
) -> np.ndarray:  # fmt: skip
    """Keras' ``apply_affine_transform`` for one ``(H, W)`` image (``row_axis=0, col_axis=1``).

    The matrices are Keras' own, in ``(x, y)``; ``transform_matrix_offset_center(m, h, w)``
    puts the centre at ``((h - 1) / 2, (w - 1) / 2)`` in ``(x, y)``, which is the true centre
    only for square images; then the x/y swap ``P M P`` and ``scipy.ndimage.affine_transform``.
    """
    t, s = np.deg2rad(theta), np.deg2rad(shear)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shear_m = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    m = rotation @ shift @ shear_m @ zoom
    h, w = x.shape
    o_x, o_y = h / 2 - 0.5, w / 2 - 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    m = offset @ m @ reset
    m = m[[1, 0, 2]][:, [1, 0, 2]]  # fill_mode goes to scipy as it is, as in Keras
    return ndi.affine_transform(x, m[:2, :2], m[:2, 2], order=1, mode=fill_mode, cval=cval)


def cnnkit_apply(
    x: np.ndarray, fill_mode: str = "nearest", cval: float = 0.0, **params: float
) -> np.ndarray:
    """``x`` ``(H, W)`` or ``(C, H, W)`` warped by cnnkit with Keras' parameters (degrees)."""
    img = torch.as_tensor(np.asarray(x, np.float32))
    img = img[None, None] if img.ndim == 2 else img[None]
    h, w = img.shape[-2:]
    p = {k: torch.tensor([float(params.get(k, d))], dtype=torch.float64)
         for k, d in (("tx", 0), ("ty", 0), ("zx", 1), ("zy", 1))}  # fmt: skip
    p["theta"] = torch.deg2rad(torch.tensor([float(params.get("theta", 0))], dtype=torch.float64))
    p["shear"] = torch.deg2rad(torch.tensor([float(params.get("shear", 0))], dtype=torch.float64))
    p["hflip"] = torch.tensor([bool(params.get("flip_horizontal", False))])
    p["vflip"] = torch.tensor([bool(params.get("flip_vertical", False))])
    out = warp(img, affine_matrices(p, h, w), fill_mode, cval)[0]
    return out[0].numpy() if np.ndim(x) == 2 else out.numpy()


def test_random_transforms_keep_the_shape(kernel):
    """TestAffineTransformations.test_random_transforms: rotation, shift, shear (and zoom)."""
    x = torch.rand(1, 2, 28, 28)
    for aug in (Augment(rotation_range=45), Augment(width_shift_range=1.0, height_shift_range=1.0),
                Augment(shear_range=20), Augment(zoom_range=(5, 5))):  # fmt: skip
        assert aug(x, generator=torch.Generator().manual_seed(0)).shape == (1, 2, 28, 28)


def test_deterministic_transform(kernel):
    """TestImage.test_deterministic_transform and TestAffineTransformations'.

    Flips of a random image are exact; ``theta=45`` with ``fill_mode="constant"`` turns a 3x3
    image of ones into a plus sign. Its four corners sample 0.41 pixels beyond the border:
    Keras hands ``"constant"`` to scipy as its ``constant`` mode (no interpolation beyond the
    edge, so 0); cnnkit's ``constant`` is scipy's ``grid-constant`` (the border blends into
    ``cval``, continuously), so the corners are ``2 - sqrt(2)``: a deliberate difference.
    """
    x = np.random.default_rng(0).random((3, 32, 32))
    np.testing.assert_allclose(cnnkit_apply(x, flip_vertical=True), x[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(cnnkit_apply(x, flip_horizontal=True), x[:, :, ::-1], atol=1e-6)
    rotated = cnnkit_apply(np.ones((3, 3, 3)), fill_mode="constant", theta=45)
    plus = np.array([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]])
    np.testing.assert_allclose(rotated[:, plus == 1], 1, atol=1e-5)
    np.testing.assert_allclose(rotated[:, plus == 0], 2 - np.sqrt(2), atol=1e-5)
    keras = keras_apply_affine_transform(np.ones((3, 3)), theta=45, fill_mode="constant")
    np.testing.assert_allclose(keras, plus, atol=1e-12)


def test_matrix_center(kernel):
    """TestAffineTransformations.test_matrix_center: ``theta=90`` turns counter-clockwise."""
    x = np.array([[0.0, 1], [0, 0]])
    np.testing.assert_allclose(cnnkit_apply(x, theta=90), [[1, 0], [0, 0]], atol=1e-5)


def test_translation(kernel):
    """TestAffineTransformations.test_translation: ``tx`` moves along x, ``ty`` along y.

    Keras runs it channels-first and channels-last, and with rows and columns exchanged
    (``row_axis=2, col_axis=1``); cnnkit has one layout, so the exchanged-axes half cannot apply.
    """
    x = np.zeros((3, 4))
    x[1, 1] = 1
    up, down, left, right = (np.zeros((3, 4)) for _ in range(4))
    up[0, 1] = down[2, 1] = left[1, 0] = right[1, 2] = 1
    for params, expected in [
        ({"tx": 1}, left),
        ({"tx": -1}, right),
        ({"ty": 1}, up),
        ({"ty": -1}, down),
    ]:
        np.testing.assert_allclose(cnnkit_apply(x, **params), expected, atol=1e-5)


def test_random_zoom_and_its_error():
    """TestAffineTransformations.test_random_zoom and test_random_zoom_error."""
    x = torch.rand(1, 2, 28, 28)
    assert torch.equal(Augment(zoom_range=(1, 1))(x), x)
    with pytest.raises(ValueError, match="zoom_range"):
        Augment(zoom_range=[0])


def test_random_brightness_errors():
    """test_random_brightness_error (``[0]``) and TestImage.test_valid_args (a scalar 0.1)."""
    for bad in ([0], 0.1):
        with pytest.raises(ValueError, match="brightness_range"):
            Augment(brightness_range=bad)


def test_random_brightness_scale():
    """TestAffineTransformations.test_random_brightness_scale (``scale=False``): ``[1, 1]``
    leaves 128 at 128; brightness is multiplicative, as PIL's ``ImageEnhance.Brightness``."""
    img = torch.full((1, 3, 1, 1), 128.0)
    assert torch.equal(Augment(brightness_range=(1, 1))(img), img)
    assert torch.equal(Augment(brightness_range=(0.5, 0.5))(img), torch.full_like(img, 64.0))


def test_get_random_transform():
    """TestImage.test_random_transforms: every drawn parameter is random and seeded."""
    aug = Augment(rotation_range=90.0, width_shift_range=0.1, height_shift_range=0.1,
                  shear_range=0.5, zoom_range=0.2, brightness_range=(1, 5),
                  horizontal_flip=True, vertical_flip=True)  # fmt: skip
    one = aug.sample_params(1, 28, 28, torch.Generator().manual_seed(1))
    two = aug.sample_params(1, 28, 28, torch.Generator().manual_seed(2))
    for key in ("theta", "tx", "ty", "shear", "zx", "zy", "brightness"):
        assert one[key].item() != 0 and one[key].item() != two[key].item(), key
    plain = Augment().sample_params(1, 28, 28, torch.Generator().manual_seed(1))
    drawn = [plain[k].item() for k in ("theta", "tx", "ty", "shear", "zx", "zy")]
    assert drawn == [0, 0, 0, 0, 1, 1]
    assert plain["brightness"].item() == 1 and Augment().is_identity  # Keras: None


def test_image_data_generator_with_split_value_error():
    """TestImage.test_image_data_generator_with_split_value_error: ``validation_split=5``."""
    with pytest.raises(ValueError, match="validation_split"):
        split_indices(np.zeros(10, np.int64), 5)


def _params(rng: np.random.Generator) -> dict[str, float]:
    theta, shear = rng.uniform(-90, 90), rng.uniform(-30, 30)
    (tx, ty), (zx, zy) = rng.uniform(-3, 3, size=2), rng.uniform(0.7, 1.3, size=2)
    return dict(theta=theta, tx=tx, ty=ty, shear=shear, zx=zx, zy=zy)


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_transform_equals_keras_matrices(kernel, fill_mode, seed):
    """apply_affine_transform: sheared, rotated, zoomed, shifted square images equal Keras'."""
    rng = np.random.default_rng(seed)
    x, params = rng.uniform(0, 255, (11, 11)), _params(rng)
    expected = keras_apply_affine_transform(x, fill_mode=fill_mode, **params)
    assert np.abs(cnnkit_apply(x, fill_mode=fill_mode, **params) - expected).max() < 0.02


@pytest.mark.parametrize("fill_mode", ["constant", "wrap"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_and_wrap_differ_from_keras_only_beyond_the_border(kernel, fill_mode, seed):
    """Keras hands ``constant``/``wrap`` to scipy's legacy modes (``wrap`` repeats with period
    ``n - 1``); cnnkit's are scipy's ``grid-constant``/``grid-wrap`` (period ``n``): the same
    wherever a pixel samples inside the image, different beyond its border, by design."""
    rng = np.random.default_rng(seed)
    x, params = rng.uniform(0, 255, (11, 11)), _params(rng)
    got = cnnkit_apply(x, fill_mode=fill_mode, cval=17.0, **params)
    expected = keras_apply_affine_transform(x, fill_mode=fill_mode, cval=17.0, **params)
    rows = np.repeat(np.arange(11.0)[:, None], 11, axis=1)
    inside = np.isfinite(keras_apply_affine_transform(rows, fill_mode="constant", cval=np.nan,
                                                      **params))  # fmt: skip
    assert inside.any() and (~inside).any()
    assert np.abs(got - expected)[inside].max() < 0.02
    assert np.abs(got - expected)[~inside].max() > 1


@pytest.mark.parametrize("params", [{"shear": 20}, {"shear": -35}, {"theta": 30}, {"theta": -90}])
def test_shear_and_rotation_equal_keras_matrices(kernel, params):
    """A sheared and a rotated image against Keras' matrices; shear keeps each row one row."""
    rows = np.repeat(np.arange(9.0)[:, None] * 20, 9, axis=1)  # every row constant
    for x in (rows, np.random.default_rng(3).uniform(0, 255, (9, 9))):
        expected = keras_apply_affine_transform(x, **params)
        assert np.abs(cnnkit_apply(x, **params) - expected).max() < 0.02
    if "shear" in params:
        assert np.ptp(cnnkit_apply(rows, **params), axis=1).max() < 1e-3


def test_non_square_images_turn_about_their_own_centre(kernel):
    """cnnkit's deliberate difference: ``transform_matrix_offset_center(m, h, w)`` puts Keras'
    centre at ``(x, y) = ((h-1)/2, (w-1)/2)``, off the image centre when ``h != w``."""
    x = np.arange(15.0).reshape(3, 5)
    np.testing.assert_allclose(cnnkit_apply(x, theta=180), x[::-1, ::-1], atol=1e-4)
    assert not np.allclose(keras_apply_affine_transform(x, theta=180), x[::-1, ::-1], atol=0.5)
    zoomed = cnnkit_apply(x, zx=0.5, zy=0.5)
    assert zoomed[1, 2] == pytest.approx(7.0, abs=1e-4)  # the centre pixel stays put


def test_height_shift_moves_rows_and_width_shift_columns():
    """cnnkit's deliberate difference: Keras 3's ``get_random_transform`` draws ``tx`` (which
    ``apply_affine_transform`` applies along x, the columns) from ``height_shift_range``, so
    its height shift moves images sideways; cnnkit's height shift moves rows."""
    x = torch.zeros(40, 1, 9, 9)
    x[:, :, 4, 4] = 255
    for aug, moving in ((Augment(height_shift_range=3), 0), (Augment(width_shift_range=3), 1)):
        y = aug(x, generator=torch.Generator().manual_seed(0))
        peaks = torch.stack([torch.nonzero(img[0] > 127)[0] for img in y])  # (B, 2): (row, col)
        assert (peaks[:, 1 - moving] == 4).all() and len(peaks[:, moving].unique()) == 5


def test_int_shift_range_draws_from_keras_set():
    """ImageDataGenerator's docstring: ``width_shift_range=2`` gives the integers [-1, 0, +1]
    (``np.random.choice(2) * np.random.choice([-1, 1])``), 1.0 gives floats in [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    ints = Augment(width_shift_range=2).sample_params(4000, 8, 8, g)["tx"]
    assert ints.unique().tolist() == [-1, 0, 1] and (ints == 0).double().mean() == pytest.approx(
        0.5, abs=0.03
    )
    floats = Augment(width_shift_range=1.0).sample_params(4000, 8, 8, g)["tx"]
    assert floats.abs().max() <= 1 and len(floats.unique()) == 4000
