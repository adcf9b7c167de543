"""Fuzzing ``cnnkit.data.load_image``: a valid array or ``ImageDecodeError``, nothing else."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from mutations import fuzz_settings, mutated
from PIL import Image
from rb_helpers import record

from cnnkit.data import load_image
from cnnkit.errors import ImageDecodeError

pytestmark = pytest.mark.fuzz


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    out = {}
    for fmt, im, kw in (
        ("PNG", rgb, {}),
        ("PNG-P", rgb.convert("P"), {"transparency": 3}),
        ("JPEG", rgb, {"quality": 80}),
        ("JPEG-prog", rgb, {"progressive": True}),
        ("GIF", rgb.convert("P"), {"save_all": True, "append_images": [rgb.convert("P")]}),
        ("BMP", rgb, {}),
        ("TIFF", rgb, {}),
        ("TIFF-I16", rgb.convert("I;16"), {}),
        ("WEBP", rgb, {"quality": 70}),
        ("WEBP-lossless", rgb.convert("RGBA"), {"lossless": True}),
    ):
        buf = io.BytesIO()
        im.save(buf, format=fmt.split("-")[0], **kw)
        out[fmt] = buf.getvalue()
    return out


SEEDS = _seeds()
COUNT = {"examples": 0, "decoded": 0}


@fuzz_settings()
@given(case=mutated(SEEDS))
def test_fuzz_load_image(case):
    _, data = case
    COUNT["examples"] += 1
    for color_mode in ("rgb", "grayscale"):
        try:
            arr = load_image(data, (8, 8), color_mode, max_pixels=1 << 20)
        except ImageDecodeError as e:
            assert e.problem in {"empty", "truncated", "not-an-image", "too-large"}
            assert "<bytes>" in str(e)
            continue
        assert arr.dtype == np.uint8 and arr.shape == ({"rgb": 3, "grayscale": 1}[color_mode], 8, 8)
        COUNT["decoded"] += 1


def test_fuzz_load_image_counted():
    """Runs after the fuzz test in file order: records how many examples it tried."""
    assert COUNT["examples"] > 0
    record("fuzz", image_decode_examples=COUNT["examples"])
