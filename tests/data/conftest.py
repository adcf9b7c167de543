"""Fixtures for the data tests: tiny real image files written into ``tmp_path``."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save(path: Path, array: np.ndarray, fmt: str | None = None, **kw) -> Path:
    """Write ``array`` (H, W[, C] uint8) as an image file (format from the suffix unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **kw)
    return path


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    """An (H, W, 3) image of one colour."""
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def jpeg_bytes(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``data/{cats,dogs}`` with 3 + 2 real images, plus hidden files/folders and a nested one.

    cats: a.png (red), b.jpg (green), c_ünï.bmp (blue, non-ASCII name), sub/d.png (white).
    dogs: x.gif, y.webp. Hidden: .ipynb_checkpoints/ (a class-like folder), .DS_Store,
    cats/.hidden.png, cats/.cache/e.png.
    """
    root = tmp_path / "data"
    save(root / "cats" / "a.png", solid(12, 16, (255, 0, 0)))
    save(root / "cats" / "b.jpg", solid(12, 16, (0, 255, 0)), quality=95)
    save(root / "cats" / "c_ünï.bmp", solid(12, 16, (0, 0, 255)))
    save(root / "cats" / "sub" / "d.png", solid(12, 16, (255, 255, 255)))
    save(root / "dogs" / "x.gif", solid(12, 16, (255, 0, 0)))
    save(root / "dogs" / "y.webp", solid(12, 16, (0, 0, 0)), lossless=True)
    save(root / ".ipynb_checkpoints" / "z.png", solid(4, 4, (1, 2, 3)))
    save(root / "cats" / ".hidden.png", solid(4, 4, (1, 2, 3)))
    save(root / "cats" / ".cache" / "e.png", solid(4, 4, (1, 2, 3)))
    (root / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "cats" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def broken_tree(tree: Path) -> Path:
    """``tree`` plus broken files: empty, truncated, text named .png, a PNG named .jpg."""
    (tree / "cats" / "empty.png").write_bytes(b"")
    full = jpeg_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (tree / "cats" / "trunc.jpg").write_bytes(full[: len(full) // 2])
    (tree / "dogs" / "text.png").write_text("hello, I am not a picture")
    save(tree / "dogs" / "png_named.jpg", solid(12, 16, (9, 9, 9)), fmt="PNG")
    return tree


def scipy_warp(x, mats, fill_mode: str, cval: float = 0.0) -> np.ndarray:
    """The oracle: ``scipy.ndimage.affine_transform(order=1)`` per image and channel, float64.

    Shape:
        x: ``(B, C, H, W)`` tensor; mats: ``(B, 3, 3)`` output-to-input maps (tensor or array).
    """
    import scipy.ndimage as ndi

    from cnnkit.data.augment import FILL_MODES

    mats = np.asarray(mats)
    out = np.empty(x.shape)
    for i in range(x.shape[0]):
        for ch in range(x.shape[1]):
            out[i, ch] = ndi.affine_transform(
                x[i, ch].double().numpy(), mats[i, :2, :2], mats[i, :2, 2], order=1,
                mode=FILL_MODES[fill_mode], cval=cval,
            )  # fmt: skip
    return out


@pytest.fixture
def native_warp() -> None:
    """Fail on CI (which has a C compiler) and skip elsewhere when the native warp is missing."""
    from cnnkit.data import native

    if native.kernel() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build the native warp: {native.describe()}")
        pytest.skip(f"no native warp here: {native.describe()}")
