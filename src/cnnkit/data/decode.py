"""Decode one image file to a ``uint8`` ``(C, H, W)`` array: the single preprocessing path.

Training (through the decode cache), ``predict`` and ``serve`` all call :func:`load_image`, so
a picture is turned into pixels exactly one way everywhere. What it does, in order:

1. Refuses empty files, and opens only the formats in :data:`FORMATS` (Pillow's ``formats=``
   allow-list), by content, whatever the extension says.
2. Rejects images above ``max_pixels`` (a decompression bomb) from the header, before decoding.
3. For JPEG, asks the decoder for a cheap DCT downscale (``draft``) no smaller than the target.
4. Decodes; a truncated file raises ``ImageDecodeError(problem="truncated")`` unless
   ``allow_truncated=True``. Animated GIF/WEBP/TIFF use their first frame.
5. Applies the EXIF orientation, so phone photos come out upright.
6. Converts the mode: 16-bit and 32-bit integer images (``I;16``, ``I``) are scaled to 0..255
   by their real bit depth (``v * 255 / (2**bits - 1)``, from the file header when it says,
   else the smallest of 8/16/32 bits holding the maximum), never clipped; 1-bit, palette,
   CMYK, YCbCr, LAB and HSV go through Pillow's conversions; alpha (``LA``, ``RGBA``, ``PA``,
   palette transparency) is composited on :data:`ALPHA_BACKGROUND` (white) for ``grayscale``
   and ``rgb`` and kept for ``rgba``.
7. Resizes with ``interpolation`` (Keras names), after an optional centred crop to the
   target aspect ratio (``crop_to_aspect_ratio``, Keras' rule) or an optional centred black
   padding to it (``pad_to_aspect_ratio``, Keras 3's rule in ``keras.ops.image.resize``).
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from cnnkit.errors import ImageDecodeError

PILLOW_METADATA_WARNINGS: tuple[str, ...] = (
    r"(Possibly )?[Cc]orrupt EXIF data",
    r"Tag data larger than file",
    r"Tag offset too large",
    r"Metadata Warning",
    r"Image appears to be a malformed MPO file",
)
"""Pillow's warnings about damaged metadata, ignored process-wide once cnnkit decodes.

The pixels of such a file are fine (a broken orientation counts as upright; ``cnnkit audit``
reports EXIF rotation), and Pillow repeats the warning each time it parses the metadata, from
whichever thread decodes. ``warnings.catch_warnings`` cannot hold them back there: it swaps
the process-wide filter list, so decoding threads undo each other's filters and the
warnings reached the terminal. Filters installed at import are kept by every swap."""

for _pattern in PILLOW_METADATA_WARNINGS:
    warnings.filterwarnings("ignore", message=_pattern, category=UserWarning, module=r"PIL\.")

FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
"""Pillow format names cnnkit ever opens."""

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)
"""File extensions picked up by folder scans (case-insensitive)."""

EXTENSION_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}

MAX_PIXELS: int = 89_478_485
"""Default pixel limit (Pillow's own): larger images are ``too-large`` decompression bombs."""

ALPHA_BACKGROUND: int = 255
"""Grey level alpha is composited on for ``grayscale``/``rgb`` (255 = white, as a browser)."""

COLOR_MODES: dict[str, int] = {"grayscale": 1, "rgb": 3, "rgba": 4}
"""Keras ``color_mode`` values and their channel counts."""

INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
    "lanczos3": Image.Resampling.LANCZOS,
}
"""Supported ``interpolation`` names (Keras names; Pillow filters, which antialias)."""

Source = str | os.PathLike | bytes | BinaryIO
_TRUNCATED_LOCK = threading.Lock()


def check_image_size(image_size: Sequence[int] | None, name: str = "image_size") -> tuple[int, int]:
    """Validate ``(height, width)``.

    Raises:
        ValueError: unless two positive ints.
    """
    ok = (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_size)
        and all(v > 0 for v in image_size)
    )
    if not ok:
        raise ValueError(
            f"{name} must be two positive ints (height, width). Received: {name}={image_size!r}"
        )
    return int(image_size[0]), int(image_size[1])  # type: ignore[index]


def keras_image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``image_dataset_from_directory``'s rule: an int ``n`` means ``(n, n)``.

    Raises:
        ValueError: unless a positive int or two positive ints.
    """
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    return check_image_size(image_size)  # type: ignore[arg-type]


def check_color_mode(color_mode: str) -> int:
    """Channel count of a Keras ``color_mode``.

    Raises:
        ValueError: for anything but ``grayscale``, ``rgb``, ``rgba``.
    """
    if color_mode not in COLOR_MODES:
        raise ValueError(
            '`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
            f"Received: color_mode={color_mode!r}"
        )
    return COLOR_MODES[color_mode]


def check_interpolation(interpolation: str) -> Image.Resampling:
    """Pillow filter for a Keras ``interpolation`` name.

    Raises:
        ValueError: for an unknown name (``gaussian``/``mitchellcubic`` are not supported).
    """
    key = str(interpolation).lower()
    if key not in INTERPOLATIONS:
        raise ValueError(
            f"interpolation must be one of {sorted(INTERPOLATIONS)}. "
            f"Received: interpolation={interpolation!r}"
        )
    return INTERPOLATIONS[key]


def _source_name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", "<bytes>") if not isinstance(source, bytes) else "<bytes>"


def _open(source: Source, name: str) -> Image.Image:
    """Open (header only) with the format allow-list; empty and unknown files raise."""
    if isinstance(source, (str, os.PathLike)):
        if os.path.getsize(source) == 0:
            raise ImageDecodeError(name, "empty", "file has 0 bytes")
        fp: str | BinaryIO = os.fspath(source)
    elif isinstance(source, bytes):
        if not source:
            raise ImageDecodeError(name, "empty", "0 bytes")
        fp = io.BytesIO(source)
    else:
        fp = source
    try:
        with warnings.catch_warnings():
            # Our own pixel limit replaces Pillow's bomb warning; corrupt metadata warnings
            # (TIFF/EXIF) are not actionable for the caller.
            warnings.simplefilter("ignore")
            return Image.open(fp, formats=FORMATS)
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(name, "too-large", str(e)) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(name, "not-an-image", f"not a {'/'.join(FORMATS)} file") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, (FileNotFoundError, IsADirectoryError)):
            raise
        if isinstance(e, OSError) and e.errno is not None:  # the system's error, not Pillow's
            detail = f"cannot read the file ({e.strerror or e})"
            raise ImageDecodeError(name, "unreadable", detail) from None
        raise ImageDecodeError(name, "truncated", str(e) or type(e).__name__) from None


def _check_pixels(im: Image.Image, name: str, max_pixels: int | None) -> None:
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    w, h = im.size
    if w * h > limit:
        raise ImageDecodeError(name, "too-large", f"{w}x{h} pixels exceeds the limit of {limit}")
    if w == 0 or h == 0:
        raise ImageDecodeError(name, "not-an-image", f"image has size {w}x{h}")


def exif_orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1 = upright; 1 too when the EXIF block is missing or corrupt)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on corrupt EXIF; we fall back to 1
            return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not worth failing the image for
        return 1


def _draft(im: Image.Image, image_size: tuple[int, int] | None) -> None:
    """Let the JPEG decoder downscale by 1/2, 1/4 or 1/8 while staying >= the target."""
    if im.format != "JPEG" or image_size is None:
        return
    h, w = image_size
    if exif_orientation(im) in (5, 6, 7, 8):  # the stored image is transposed
        h, w = w, h
    im.draft(None, (w, h))


def _load(im: Image.Image, name: str, allow_truncated: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt-metadata warnings; real damage raises
        _load_checked(im, name, allow_truncated)


def _load_checked(im: Image.Image, name: str, allow_truncated: bool) -> None:
    try:
        if allow_truncated:
            with _TRUNCATED_LOCK:
                old = ImageFile.LOAD_TRUNCATED_IMAGES
                ImageFile.LOAD_TRUNCATED_IMAGES = True
                try:
                    im.load()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = old
        else:
            im.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        raise ImageDecodeError(name, "truncated", str(e) or type(e).__name__) from None


def _bit_depth(im: Image.Image, arr: np.ndarray) -> int:
    """Real bit depth of an integer image: header first, else the smallest that holds max."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None and 258 in tags:
        bits = tags[258]
        bits = int(bits[0] if isinstance(bits, (tuple, list)) else bits)
        if 1 <= bits <= 32:
            return bits
    if im.format == "PNG" or im.mode.startswith("I;16"):
        return 16
    top = int(arr.max()) if arr.size else 0
    return 8 if top <= 255 else 16 if top <= 65535 else 32


def _to_8bit(im: Image.Image) -> Image.Image:
    """``I;16*``, ``I`` and ``F`` images to ``L``, scaled by bit depth (floats: 0..1 or 0..255)."""
    if not (im.mode.startswith("I") or im.mode == "F"):
        return im
    arr = np.asarray(im)
    if im.mode == "F":
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]  # an all-NaN image is black, without numpy's warning
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        out = np.nan_to_num(arr * scale)
    else:
        bits = _bit_depth(im, arr)
        out = arr.astype(np.float64) * (255.0 / (2.0**bits - 1.0))
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), mode="L")


def _composite(im: Image.Image, color: str) -> Image.Image:
    """``im`` (with alpha) over a flat :data:`ALPHA_BACKGROUND`, in ``color`` (``L``/``RGB``)."""
    rgba = im.convert("LA" if color == "L" else "RGBA")
    background = Image.new(
        rgba.mode, rgba.size, (ALPHA_BACKGROUND,) * (len(rgba.mode) - 1) + (255,)
    )
    return Image.alpha_composite(background.convert("RGBA"), rgba.convert("RGBA")).convert(color)


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("LA", "La", "RGBA", "RGBa", "PA") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info
    )


def _convert(im: Image.Image, color_mode: str) -> Image.Image:
    im = _to_8bit(im)
    if color_mode == "rgba":
        return im if im.mode == "RGBA" else im.convert("RGBA")
    target = "L" if color_mode == "grayscale" else "RGB"
    if _has_alpha(im):
        return _composite(im, target)
    if im.mode in ("CMYK", "LAB", "HSV") and target == "L":  # Pillow has no direct route to L
        im = im.convert("RGB")
    return im if im.mode == target else im.convert(target)


def crop_box(width: int, height: int, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Keras' centred crop to the aspect ratio of ``image_size``: ``(left, top, right, bottom)``."""
    th, tw = image_size
    crop_h = min(height, int(width * th / tw))
    crop_w = min(width, int(height * tw / th))
    crop_h, crop_w = max(crop_h, 1), max(crop_w, 1)
    top = int((height - crop_h) / 2)
    left = int((width - crop_w) / 2)
    return left, top, left + crop_w, top + crop_h


def check_aspect_flags(crop_to_aspect_ratio: bool, pad_to_aspect_ratio: bool) -> None:
    """Keras' rule: at most one of the two.

    Raises:
        ValueError: both are set.
    """
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError(
            "Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`. "
            f"Received: crop_to_aspect_ratio={crop_to_aspect_ratio!r}, "
            f"pad_to_aspect_ratio={pad_to_aspect_ratio!r}"
        )


def pad_offsets(width: int, height: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """Keras 3's padding to the aspect ratio of ``image_size``: ``(left, top)`` margins.

    The image is centred on a black canvas of ``width + 2 * left`` by ``height + 2 * top``
    pixels (``keras.ops.image.resize(pad_to_aspect_ratio=True)``), which is then resized.
    """
    th, tw = image_size
    pad_h = max(height, int(width * th / tw))
    pad_w = max(width, int(height * tw / th))
    return int((pad_w - width) / 2), int((pad_h - height) / 2)


def _pad(im: Image.Image, image_size: tuple[int, int]) -> Image.Image:
    left, top = pad_offsets(im.width, im.height, image_size)
    if left == top == 0:
        return im
    canvas = Image.new(im.mode, (im.width + 2 * left, im.height + 2 * top), 0)
    canvas.paste(im, (left, top))
    return canvas


def _resize(
    im: Image.Image, image_size, resample, crop_to_aspect_ratio: bool, pad: bool = False
) -> np.ndarray:
    """Resized ``(C, H, W)`` pixels (crop or pad first to the target aspect ratio)."""
    if image_size is None:
        return _to_chw(im)
    if pad:
        im = _pad(im, image_size)
    h, w = image_size
    box = crop_box(im.width, im.height, image_size) if crop_to_aspect_ratio else None
    if im.size == (w, h) and box in (None, (0, 0, w, h)):
        return _to_chw(im)
    if resample == Image.Resampling.BILINEAR and box is None and im.mode in ("L", "RGB"):
        return _bilinear_u8(im, (h, w))
    return _to_chw(im.resize((w, h), resample, box=box))


def _bilinear_u8(im: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Pillow's antialiased bilinear resize, computed by torch's uint8 kernel.

    Equal to ``im.resize(size, BILINEAR)`` to within one grey level (rounding) and 2-3x
    faster on a CPU, which makes the decode cache's first pass about a quarter faster. Used for
    L and RGB only: Pillow resizes RGBA with premultiplied alpha.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only array: torch only reads it
        hwc = torch.from_numpy(np.asarray(im, dtype=np.uint8).reshape(im.height, im.width, -1))
    x = hwc.permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W) in channels_last memory: the fast path
    y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return np.ascontiguousarray(y[0].numpy())


def _to_chw(im: Image.Image) -> np.ndarray:
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:  # (H, W) -> (1, H, W)
        return np.ascontiguousarray(arr[None])
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def load_image(
    source: Source,
    image_size: Sequence[int] | None = None,
    color_mode: str = "rgb",
    interpolation: str = "bilinear",
    *,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    allow_truncated: bool = False,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode one image file to pixels, the same way for training, ``predict`` and ``serve``.

    Args:
        source: a path, raw bytes or a binary file object.
        image_size: ``(height, width)`` to resize to, or None to keep the size.
        color_mode: ``grayscale`` (1 channel), ``rgb`` (3) or ``rgba`` (4).
        interpolation: resize filter, a Keras name (``bilinear``, ``nearest``, ``bicubic``,
            ``area``, ``lanczos3``...).
        crop_to_aspect_ratio: centre-crop to the target aspect ratio before resizing, so
            the image is not distorted (Keras' rule).
        pad_to_aspect_ratio: centre the image on black padding of the target aspect ratio
            before resizing, so nothing is cut off nor distorted (Keras 3's rule).
        allow_truncated: decode what is there of a truncated file (the rest grey) instead
            of raising.
        max_pixels: pixel limit (default :data:`MAX_PIXELS`).

    Returns:
        ``uint8`` pixels.

    Shape:
        ``(C, H, W)``.

    Raises:
        ImageDecodeError: ``problem`` is ``empty``, ``truncated``, ``not-an-image``,
            ``too-large`` or ``unreadable`` (the file is there but cannot be read).
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: a bad ``image_size``, ``color_mode`` or ``interpolation``, or both
            ``crop_to_aspect_ratio`` and ``pad_to_aspect_ratio``.

    Example:
        >>> x = load_image("cat.jpg", (180, 180))  # doctest: +SKIP
        >>> x.shape, x.dtype  # doctest: +SKIP
        ((3, 180, 180), dtype('uint8'))
    """
    size = None if image_size is None else check_image_size(image_size)
    check_color_mode(color_mode)
    resample = check_interpolation(interpolation)
    check_aspect_flags(crop_to_aspect_ratio, pad_to_aspect_ratio)
    name = _source_name(source)
    im = _open(source, name)
    try:
        _check_pixels(im, name, max_pixels)
        _draft(im, size)
        _load(im, name, allow_truncated)
        if exif_orientation(im) != 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # re-reads the EXIF: "Corrupt EXIF data" again
                im = ImageOps.exif_transpose(im)
        im = _convert(im, color_mode)
        return _resize(im, size, resample, crop_to_aspect_ratio, pad_to_aspect_ratio)
    finally:
        im.close()


def conform_images(
    images: np.ndarray,
    image_size: Sequence[int],
    color_mode: str,
    interpolation: str = "bilinear",
    *,
    crop_to_aspect_ratio: bool = False,
) -> np.ndarray:
    """Decoded uint8 images (a named dataset's) converted and resized as :func:`load_image`
    would have done from their files: the same colour conversion and resize filter.

    Shape:
        images: ``(N, C, H, W)`` with C in 1, 3, 4 -> ``(N, C', H', W')``.

    Raises:
        ValueError: a bad ``image_size``, ``color_mode`` or ``interpolation``, or images that
            are not ``(N, C, H, W)`` uint8 with 1, 3 or 4 channels.
    """
    size = check_image_size(image_size)
    channels = check_color_mode(color_mode)
    resample = check_interpolation(interpolation)
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1] not in (1, 3, 4):
        raise ValueError(
            "images must be uint8 (N, C, H, W) with 1, 3 or 4 channels. "
            f"Received: {images.dtype} {images.shape}"
        )
    if tuple(images.shape[1:]) == (channels, *size):
        return images
    out = np.empty((len(images), channels, *size), dtype=np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[images.shape[1]]
    for i, chw in enumerate(images):
        hwc = chw[0] if mode == "L" else chw.transpose(1, 2, 0)  # (C, H, W) -> (H, W[, C])
        im = _convert(Image.fromarray(np.ascontiguousarray(hwc), mode=mode), color_mode)
        out[i] = _resize(im, size, resample, crop_to_aspect_ratio)
    return out


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS
