"""load_image: formats, modes, bit depth, alpha, EXIF, crop, draft and broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.decode import ALPHA_BACKGROUND, crop_box, load_image, pad_offsets
from cnnkit.errors import ImageDecodeError
from conftest import jpeg_bytes, save, solid

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


MODES = ["L", "LA", "P", "RGB", "RGBA", "CMYK", "1", "I;16", "I"]
FORMATS = {"PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("color_mode,channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_every_mode_loads_in_every_color_mode(mode, color_mode, channels):
    im = Image.fromarray(RGB).convert("I" if mode == "I;16" else mode)
    if mode == "I;16":
        im = Image.fromarray(RGB[..., 0].astype(np.uint16) * 257)
    written = 0
    for fmt in sorted(FORMATS):
        try:
            data = _encode(im, fmt)
        except (OSError, KeyError, ValueError):
            continue  # this format cannot store this mode
        written += 1
        x = load_image(data, (5, 7), color_mode)
        assert x.shape == (channels, 5, 7) and x.dtype == np.uint8
    assert written >= 1


def test_16_bit_scaled_by_bit_depth_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 257 * (0, 1, 128, 255)
    for suffix in ("png", "tif"):
        path = save(tmp_path / f"deep.{suffix}", values)
        assert Image.open(path).mode == "I;16"
        x = load_image(path, color_mode="grayscale")
        assert x[0, 0].tolist() == [0, 1, 128, 255]


def test_alpha_composited_on_documented_background():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom fully transparent
    data = _encode(Image.fromarray(rgba), "PNG")
    rgb = load_image(data, color_mode="rgb")
    assert rgb[:, 0, 0].tolist() == [200, 0, 0]
    assert rgb[:, 3, 0].tolist() == [ALPHA_BACKGROUND] * 3
    kept = load_image(data, color_mode="rgba")
    assert kept[3, 3, 0] == 0 and kept[3, 0, 0] == 255


def test_palette_transparency_composited():
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    im.info["transparency"] = 0
    im.putpixel((0, 0), 1)
    x = load_image(_encode(im, "PNG", transparency=0), color_mode="rgb")
    assert x[:, 0, 0].tolist() == [10, 20, 30]
    assert x[:, 3, 3].tolist() == [255, 255, 255]


def test_exif_orientation_applied_by_content(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, 20:] = 255  # left half black, right half white
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    x = load_image(path)
    assert x.shape == (3, 40, 20)  # upright: portrait
    assert x[:, :15].mean() < 30 and x[:, 25:].mean() > 225  # left column of stored -> top


def test_crop_to_aspect_ratio_keeps_centre():
    im = np.zeros((20, 40, 3), np.uint8)
    im[:, :10] = (255, 0, 0)
    im[:, 10:30] = (0, 255, 0)
    im[:, 30:] = (0, 0, 255)
    data = _encode(Image.fromarray(im), "PNG")
    x = load_image(data, (8, 8), crop_to_aspect_ratio=True, interpolation="nearest")
    assert (x[1] == 255).all() and (x[0] == 0).all() and (x[2] == 0).all()
    squashed = load_image(data, (8, 8), interpolation="nearest")
    assert squashed[0].max() == 255  # without crop the red band survives
    assert crop_box(40, 20, (8, 8)) == (10, 0, 30, 20)


def test_pad_to_aspect_ratio_centres_on_black():
    data = _encode(Image.fromarray(np.full((12, 24, 3), 200, np.uint8)), "PNG")
    x = load_image(data, (24, 24), pad_to_aspect_ratio=True)  # Keras 3: pad to 24x24, no resize
    assert (x[:, :6] == 0).all() and (x[:, 6:18] == 200).all() and (x[:, 18:] == 0).all()
    tall = load_image(data, (8, 4), pad_to_aspect_ratio=True, interpolation="nearest")
    assert tall.shape == (3, 8, 4) and (tall[:, 3:5] == 200).all() and (tall[:, :2] == 0).all()
    assert pad_offsets(24, 12, (24, 24)) == (0, 6) and pad_offsets(5, 10, (1, 1)) == (2, 0)
    rgba = load_image(data, (24, 24), "rgba", pad_to_aspect_ratio=True)
    assert (rgba[:, 0] == 0).all()  # the padding is transparent black, as Keras' fill_value=0
    with pytest.raises(ValueError, match="Only one of"):
        load_image(data, (8, 8), crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)


def test_jpeg_draft_close_to_full_decode():
    rng = np.random.default_rng(1)
    big = np.kron(rng.integers(0, 255, (6, 8, 3)), np.ones((50, 50, 1))).astype(np.uint8)
    data = jpeg_bytes(big, quality=95)
    fast = load_image(data, (30, 40)).astype(float)
    reference = np.asarray(Image.open(io.BytesIO(data)).resize((40, 30), Image.BILINEAR))
    assert np.abs(fast - reference.transpose(2, 0, 1)).mean() < 4


def test_gif_first_frame():
    frames = [Image.fromarray(solid(6, 6, c)) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    x = load_image(buf.getvalue())
    assert x[:, 2, 2].tolist() == [255, 0, 0]


def test_png_named_jpg_loads_by_content(tmp_path):
    path = save(tmp_path / "liar.jpg", solid(5, 5, (7, 8, 9)), fmt="PNG")
    assert load_image(path)[:, 0, 0].tolist() == [7, 8, 9]


@pytest.mark.parametrize(
    "content,problem",
    [(b"", "empty"), (b"just some text\n", "not-an-image")],
)
def test_broken_files_raise_decode_error(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError) as e:
        load_image(path)
    assert e.value.problem == problem and e.value.path == str(path)


def test_unsupported_format_renamed_png_is_never_opened(tmp_path):
    path = tmp_path / "exotic.png"
    Image.fromarray(solid(4, 4, (1, 2, 3))).save(path, format="PCX")
    with pytest.raises(ImageDecodeError, match="not-an-image"):
        load_image(path)


def test_truncated_skipped_unless_allowed(tmp_path):
    full = jpeg_bytes(RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    path = tmp_path / "cut.jpg"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ImageDecodeError) as e:
        load_image(path)
    assert e.value.problem == "truncated"
    assert load_image(path, allow_truncated=True).shape == (3, 64, 64)


def test_decompression_bomb_rejected_before_decoding(tmp_path):
    path = save(tmp_path / "big.png", solid(30, 30, (0, 0, 0)))
    with pytest.raises(ImageDecodeError) as e:
        load_image(path, max_pixels=100)
    assert e.value.problem == "too-large"


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.png")
    with pytest.raises(IsADirectoryError):
        load_image(tmp_path)
    data = _encode(Image.fromarray(RGB), "PNG")
    with pytest.raises(ValueError, match="image_size"):
        load_image(data, (0, 32))
    with pytest.raises(ValueError, match="color_mode"):
        load_image(data, color_mode="cmyk")
    with pytest.raises(ValueError, match="interpolation"):
        load_image(data, interpolation="gaussian")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(
    ("src", "dst"), [((198, 249), (180, 180)), ((7, 5), (30, 40)), ((31, 90), (8, 8))]
)
def test_bilinear_resize_is_pillows(tmp_path, mode, src, dst):
    """The fast uint8 resize equals Pillow's to within one grey level (RGBA: Pillow's own)."""
    rng = np.random.default_rng(0)
    channels = len(mode)
    im = Image.fromarray(
        rng.integers(0, 256, (*src, channels), dtype=np.uint8).squeeze(-1)
        if channels == 1
        else rng.integers(0, 256, (*src, channels), dtype=np.uint8),
        mode,
    )
    path = tmp_path / "x.png"
    im.save(path)
    ours = load_image(path, dst, color_mode={"L": "grayscale", "RGB": "rgb", "RGBA": "rgba"}[mode])
    ref = np.asarray(im.resize(dst[::-1], Image.Resampling.BILINEAR))
    ref = ref[None] if ref.ndim == 2 else ref.transpose(2, 0, 1)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert ours.shape == ref.shape and diff.max() <= (0 if mode == "RGBA" else 1)


def _corrupt_exif(orientation: int = 6) -> bytes:
    """An EXIF block whose IFD claims three entries but holds one (the orientation): Pillow
    warns "Corrupt EXIF data" each time it reads it."""
    import struct

    entry = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    return b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 3) + entry


def test_corrupt_exif_and_all_nan_images_load_without_warnings(tmp_path):
    import warnings

    jpg = tmp_path / "corrupt-exif.jpg"
    Image.fromarray(RGB).save(jpg, exif=_corrupt_exif())
    nan = tmp_path / "nan.tif"
    Image.fromarray(np.full((6, 5), np.nan, dtype=np.float32), mode="F").save(nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Image.open(jpg) as im:
            im.getexif()  # Pillow itself warns: the file really is corrupt
        assert any("Corrupt EXIF data" in str(w.message) for w in caught)
        caught.clear()
        rotated = load_image(jpg, None, "rgb")
        black = load_image(nan, None, "grayscale")
    assert [str(w.message) for w in caught] == []
    assert rotated.shape == (3, 14, 10)  # the orientation was still applied
    assert black.shape == (1, 6, 5) and not black.any()


def test_pillow_metadata_warnings_stay_quiet_across_decoding_threads(tmp_path):
    """``catch_warnings`` swaps the process-wide filters: with several threads decoding at once
    one thread's exit re-enabled warnings another thread was inside. Run as a fresh process,
    as a user's command is, with warnings shown."""
    import subprocess
    import sys

    for i in range(16):
        Image.fromarray(RGB).save(tmp_path / f"{i}.jpg", exif=_corrupt_exif())
    code = (
        "import sys; from concurrent.futures import ThreadPoolExecutor\n"
        "from cnnkit.data.decode import load_image\n"
        "files = [f'{sys.argv[1]}/{i}.jpg' for i in range(16)] * 8\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    list(pool.map(lambda f: load_image(f, (8, 8), 'rgb'), files))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "EXIF" not in done.stderr and "Warning" not in done.stderr, done.stderr
