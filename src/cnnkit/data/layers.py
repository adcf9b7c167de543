"""Keras 3 preprocessing layers as ``nn.Module``s, with their units (active only in training).

================  =======================================  ====================================
Keras 3 layer     unit of its factor                       ``ImageDataGenerator`` / ``Augment``
================  =======================================  ====================================
RandomFlip        mode ``horizontal``, ``vertical`` or     ``horizontal_flip``, ``vertical_flip``
                  ``horizontal_and_vertical``
RandomRotation    fraction of a full turn (2 pi): 0.1 =    ``rotation_range`` in DEGREES
                  up to +-36 degrees; positive = counter-  (0.1 turn = ``rotation_range=36``)
                  clockwise
RandomTranslation fraction of height / width; positive =   ``height_shift_range`` /
                  down / right                             ``width_shift_range`` (fraction < 1,
                                                           pixels >= 1)
RandomZoom        fraction; POSITIVE = ZOOM OUT (content   ``zoom_range`` z -> factor in
                  smaller), ``width_factor=None`` keeps    [1-z, 1+z] per axis; factor < 1
                  the aspect ratio                         ENLARGES content
RandomContrast    factor in [1 - lower, 1 + upper] about   ``contrast``
                  each image's per-channel mean
Rescaling         ``x * scale + offset`` (always on)       (not an augmentation)
================  =======================================  ====================================

Random layers draw per-image parameters from their own ``torch.Generator`` (from ``seed``) or
torch's global RNG, warp with the same scipy-exact code as :class:`cnnkit.data.Augment`
(``fill_mode`` reflect|nearest|wrap|constant, Keras' default ``reflect``), and return their input
untouched in ``eval()`` mode. Inputs are ``(B, C, H, W)`` (or one ``(C, H, W)`` image), float or
uint8, on any device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnkit.data.augment import FILL_MODES, _restore_dtype, affine_matrices, warp


def _range(name: str, factor, *, keras_symmetric: bool = True) -> tuple[float, float]:
    """Keras factors: a float f -> (-f, f); a pair (lo, hi) is kept."""
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        f = float(factor)
        if f < 0 and keras_symmetric:
            raise ValueError(f"{name} must be >= 0 when a single number. Received: {name}={factor}")
        return (-abs(f), abs(f))
    if isinstance(factor, (tuple, list)) and len(factor) == 2:
        lo, hi = float(factor[0]), float(factor[1])
        if lo > hi:
            raise ValueError(f"{name} must have lower <= upper. Received: {name}={factor}")
        return lo, hi
    raise ValueError(
        f"{name} must be a number or a pair (lower, upper). Received: {name}={factor!r}"
    )


class _RandomLayer(nn.Module):
    """Shared plumbing: own generator, eval-mode passthrough, batch/dtype handling."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def _uniform(self, b: int, lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(b, generator=self._generator, dtype=torch.float64)
        return lo + (hi - lo) * u

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Augment in training mode; identity in eval mode.

        Shape:
            x: ``(B, C, H, W)`` or ``(C, H, W)``; returns the same shape and dtype.
        """
        if not self.training:
            return x
        single = x.ndim == 3
        y = x.unsqueeze(0) if single else x
        y = _restore_dtype(self._transform(y.float()), x.dtype)
        return y[0] if single else y

    def _transform(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class _GeometricLayer(_RandomLayer):
    def __init__(self, fill_mode: str, interpolation: str, seed, fill_value: float) -> None:
        super().__init__(seed)
        if fill_mode not in FILL_MODES:
            raise ValueError(
                f"fill_mode must be one of {list(FILL_MODES)}. Received: fill_mode={fill_mode!r}"
            )
        if interpolation != "bilinear":
            raise ValueError(f"interpolation must be 'bilinear'. Received: {interpolation!r}")
        self.fill_mode, self.fill_value = fill_mode, float(fill_value)

    def _params(self, b: int, h: int, w: int) -> dict[str, torch.Tensor]:
        zeros = torch.zeros(b, dtype=torch.float64)
        false = torch.zeros(b, dtype=torch.bool)
        return {"theta": zeros, "tx": zeros, "ty": zeros, "shear": zeros.clone(),
                "zx": zeros + 1, "zy": zeros + 1, "hflip": false, "vflip": false}  # fmt: skip

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        mats = affine_matrices(self._params(b, h, w), h, w)
        return warp(x, mats, self.fill_mode, self.fill_value)


class RandomFlip(_GeometricLayer):
    """Random flips. ``mode``: ``horizontal``, ``vertical`` or ``horizontal_and_vertical``."""

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None) -> None:
        super().__init__("nearest", "bilinear", seed, 0.0)
        if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise ValueError(
                'mode must be "horizontal", "vertical" or "horizontal_and_vertical". '
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        u = torch.rand(b, 2, generator=self._generator)
        h = (u[:, 0] < 0.5) & (self.mode != "vertical")
        v = (u[:, 1] < 0.5) & (self.mode != "horizontal")
        h, v = h.to(x.device).view(-1, 1, 1, 1), v.to(x.device).view(-1, 1, 1, 1)
        x = torch.where(h, x.flip(-1), x)  # exact: no resampling for flips
        return torch.where(v, x.flip(-2), x)


class RandomRotation(_GeometricLayer):
    """Random rotation by ``factor`` x 360 degrees (positive = counter-clockwise)."""

    def __init__(self, factor, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0) -> None:  # fmt: skip
        super().__init__(fill_mode, interpolation, seed, fill_value)
        self.lower, self.upper = _range("factor", factor)

    def _params(self, b, h, w):
        p = super()._params(b, h, w)
        turns = self._uniform(b, self.lower, self.upper)
        p["theta"] = 2 * math.pi * turns  # Keras' angle: positive = counter-clockwise
        return p


class RandomTranslation(_GeometricLayer):
    """Random shift by fractions of the height and width (positive = down / right)."""

    def __init__(self, height_factor, width_factor, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0) -> None:  # fmt: skip
        super().__init__(fill_mode, interpolation, seed, fill_value)
        self.height_factor = _range("height_factor", height_factor)
        self.width_factor = _range("width_factor", width_factor)

    def _params(self, b, h, w):
        p = super()._params(b, h, w)
        p["ty"] = -h * self._uniform(b, *self.height_factor)  # output(r) = input(r - dy)
        p["tx"] = -w * self._uniform(b, *self.width_factor)  # x = columns, y = rows
        return p


class RandomZoom(_GeometricLayer):
    """Random zoom; POSITIVE factors zoom OUT (Keras 3). ``width_factor=None`` keeps aspect."""

    def __init__(self, height_factor, width_factor=None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0) -> None:  # fmt: skip
        super().__init__(fill_mode, interpolation, seed, fill_value)
        self.height_factor = _range("height_factor", height_factor)
        self.width_factor = None if width_factor is None else _range("width_factor", width_factor)
        if self.height_factor[0] <= -1:
            raise ValueError(f"height_factor must be > -1. Received: {height_factor}")

    def _params(self, b, h, w):
        p = super()._params(b, h, w)
        p["zy"] = 1 + self._uniform(b, *self.height_factor)  # y = rows
        p["zx"] = p["zy"] if self.width_factor is None else 1 + self._uniform(b, *self.width_factor)
        return p


class RandomContrast(_RandomLayer):
    """Contrast factor in ``[1 - lower, 1 + upper]`` about each image's per-channel mean."""

    def __init__(self, factor, value_range: tuple[float, float] = (0, 255),
                 seed: int | None = None) -> None:  # fmt: skip
        super().__init__(seed)
        if isinstance(factor, (int, float)) and not isinstance(factor, bool):
            self.lower = self.upper = float(factor)
        elif isinstance(factor, (tuple, list)) and len(factor) == 2:
            self.lower, self.upper = float(factor[0]), float(factor[1])  # [1 - lower, 1 + upper]
        else:
            raise ValueError(f"factor must be a number or a pair. Received: factor={factor!r}")
        if self.lower > 1 or self.lower < 0 or self.upper < 0:
            raise ValueError(f"factor must give 0 <= lower <= 1 and upper >= 0. Received: {factor}")
        self.value_range = (float(value_range[0]), float(value_range[1]))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        f = 1 + self._uniform(x.shape[0], -self.lower, self.upper).to(x.device, x.dtype)
        mean = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return ((x - mean) * f.view(-1, 1, 1, 1) + mean).clamp(*self.value_range)


class Rescaling(nn.Module):
    """``x * scale + offset`` (e.g. ``scale=1/255`` maps 0..255 to 0..1); always active."""

    def __init__(self, scale: float, offset: float = 0.0) -> None:
        super().__init__()
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: any; float output."""
        return x.float() * self.scale + self.offset


__all__ = ["RandomContrast", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
           "Rescaling"]  # fmt: skip
