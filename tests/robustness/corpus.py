"""A generator of awkward image files, arranged as a class-per-folder tree.

``make_corpus(root)`` writes well over 200 files that real folders of photos contain sooner
or later (every Pillow mode that a format can hold, 16/32-bit and float images, CMYK,
palettes with transparency, animations, EXIF orientations 1-8, truncations, empty files,
documents named ``.jpg``, exotic formats renamed ``.png``, decompression bombs, odd names
(non-UTF-8 ones too), hidden files and folders) and returns a manifest saying what each
file should do:

* ``ok``: decodes; ``ref`` (when not None) is the expected ``(16, 16, 3)`` RGB picture,
  computed here with numpy from the pixels written, never by decoding the file;
* ``fail``: must be refused with a cnnkit error naming the file;
* ``ignored``: hidden, never picked up by a folder scan.

Every decodable file shows a 16x16 picture (no resize at ``image_size=(16, 16)``) unless its
entry has ``ref=None``.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 16
WHITE = 255.0


@dataclass
class Entry:
    """One corpus file and what cnnkit must do with it."""

    path: Path
    expect: str  # "ok" | "fail" | "ignored"
    ref: np.ndarray | None = None  # (16, 16, 3) uint8 expected RGB, or None
    tol: int = 0  # largest allowed per-pixel difference to ``ref``
    note: str = ""


class Corpus:
    """Writes files under ``root/<class>/`` and keeps the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.entries: list[Entry] = []
        self.rng = np.random.default_rng(1234)

    def path(self, cls: str, name: str) -> Path:
        p = self.root / cls / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add(self, cls: str, name: str, data: bytes, expect: str, ref=None, tol=0, note=""):
        p = self.path(cls, name)
        p.write_bytes(data)
        self.entries.append(Entry(p, expect, ref, tol, note or name))
        return p

    def rgb(self) -> np.ndarray:
        return self.rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)

    def gray(self) -> np.ndarray:
        return self.rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # some exotic writers are deprecated in Pillow
        warnings.simplefilter("ignore", DeprecationWarning)
        im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gray3(g: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(g, dtype=np.uint8)[..., None], 3, axis=2)


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reference alpha compositing on white, in float, rounded."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    out = rgb.astype(np.float64) * a + WHITE * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- modes


def _modes(c: Corpus) -> None:
    """8-bit and palette modes in every lossless format that holds them."""
    for fmt, ext in (("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("GIF", "gif")):
        g = c.gray()
        c.add("modes", f"L.{ext}", encode(Image.fromarray(g), fmt), "ok", gray3(g))
        bits = c.rng.integers(0, 2, (SIDE, SIDE)).astype(bool)
        one = Image.fromarray(bits).convert("1")
        c.add("modes", f"1.{ext}", encode(one, fmt), "ok", gray3(bits * 255))
        pal = c.rng.integers(0, 256, (256, 3), dtype=np.uint8)
        idx = c.rng.integers(0, 256 if fmt != "BMP" else 256, (SIDE, SIDE), dtype=np.uint8)
        p = Image.frombytes("P", (SIDE, SIDE), idx.tobytes())
        p.putpalette(pal.tobytes())
        c.add("modes", f"P.{ext}", encode(p, fmt), "ok", pal[idx])
    for fmt, ext in (("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")):
        rgb = c.rgb()
        kw = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
        c.add("modes", f"RGB.{ext}", encode(Image.fromarray(rgb), fmt, **kw), "ok", rgb)
    for fmt, ext in (("PNG", "png"), ("TIFF", "tif"), ("WEBP", "webp")):
        rgb, alpha = c.rgb(), c.gray()
        alpha[0, :4] = (0, 255, 128, 1)  # fully transparent, opaque, half, nearly transparent
        im = Image.fromarray(np.dstack([rgb, alpha]))
        kw = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
        c.add("modes", f"RGBA.{ext}", encode(im, fmt, **kw), "ok", over_white(rgb, alpha), 1)
    for fmt, ext in (("PNG", "png"), ("TIFF", "tif")):
        g, alpha = c.gray(), c.gray()
        im = Image.frombytes("LA", (SIDE, SIDE), np.dstack([g, alpha]).tobytes())
        c.add("modes", f"LA.{ext}", encode(im, fmt), "ok", over_white(gray3(g), alpha), 1)
    rgb = c.rgb()
    c.add("modes", "RGBX.tif", encode(Image.fromarray(rgb).convert("RGBX"), "TIFF"), "ok", rgb)
    _cmyk(c)
    _other_colour_spaces(c)
    _lossy(c)


def _cmyk(c: Corpus) -> None:
    cmyk = c.rng.integers(0, 256, (SIDE, SIDE, 4), dtype=np.uint8)
    k = cmyk[..., 3:].astype(np.float64)
    ref = (255.0 - cmyk[..., :3]) * (255.0 - k) / 255.0
    ref = np.clip(np.rint(ref), 0, 255).astype(np.uint8)
    im = Image.frombytes("CMYK", (SIDE, SIDE), cmyk.tobytes())
    c.add("modes", "CMYK.tif", encode(im, "TIFF"), "ok", ref, 1)
    c.add("modes", "CMYK.jpg", encode(im, "JPEG"), "ok", None)


def _other_colour_spaces(c: Corpus) -> None:
    rgb = c.rgb()
    c.add("modes", "LAB.tif", encode(Image.fromarray(rgb).convert("LAB"), "TIFF"), "ok", None)
    ycc = Image.fromarray(rgb).convert("YCbCr")
    c.add("modes", "YCbCr.jpg", encode(ycc, "JPEG", quality=95), "ok", None)
    c.add("modes", "YCbCr.tif", encode(ycc, "TIFF"), "ok", None)
    base = Image.fromarray(c.rgb())
    for mode in ("HSV", "PA", "La", "RGBa", "I;16L", "I;16N", "I;16B", "RGBX", "F", "I"):
        for fmt, ext in (("PNG", "png"), ("TIFF", "tif"), ("WEBP", "webp"), ("BMP", "bmp")):
            try:  # every other mode in each format that will write it
                data = encode(base.convert(mode) if mode not in ("I;16L", "I;16N", "I;16B")
                              else base.convert("L").convert(mode), fmt)  # fmt: skip
            except (OSError, ValueError, KeyError):
                continue
            c.add("modes", f"any-{mode.replace(';', '')}.{ext}", data, "ok", None)


def _lossy(c: Corpus) -> None:
    rgb = c.rgb()
    for q in (5, 50, 100):
        c.add("modes", f"RGB-q{q}.jpg", encode(Image.fromarray(rgb), "JPEG", quality=q), "ok")
    c.add("modes", "RGB-progressive.jpg",
          encode(Image.fromarray(rgb), "JPEG", progressive=True), "ok")  # fmt: skip
    c.add("modes", "L.jpg", encode(Image.fromarray(c.gray()), "JPEG"), "ok")
    c.add("modes", "RGB-lossy.webp", encode(Image.fromarray(rgb), "WEBP", quality=30), "ok")


# --------------------------------------------------------------------------- deep images


def _deep(c: Corpus) -> None:
    """16-bit PNG/TIFF (full and partial range), 32-bit integer and float TIFF."""
    for name, top in (("full", 65535), ("low", 4095)):
        v = c.rng.integers(0, top + 1, (SIDE, SIDE)).astype(np.uint16)
        v[0, 0], v[0, 1] = 0, top
        ref = gray3(np.rint(v.astype(np.float64) * 255.0 / 65535.0))
        im16 = Image.frombytes("I;16", (SIDE, SIDE), v.astype("<u2").tobytes())
        c.add("deep", f"I16-{name}.png", encode(im16, "PNG"), "ok", ref, 1)
        c.add("deep", f"I16-{name}.tif", encode(im16, "TIFF"), "ok", ref, 1)
        big = Image.frombytes("I;16B", (SIDE, SIDE), v.astype(">u2").tobytes())
        c.add("deep", f"I16B-{name}.tif", encode(big, "TIFF"), "ok", ref, 1)
    rgb16 = c.rng.integers(0, 65536, (SIDE, SIDE, 3)).astype(np.uint16)
    ref = np.rint(rgb16 * 255.0 / 65535.0).astype(np.uint8)
    c.add("deep", "RGB48.png", _png48(rgb16), "ok", ref, 1)
    v32 = c.rng.integers(0, 2**31 - 1, (SIDE, SIDE)).astype(np.int32)
    ref32 = gray3(np.rint(v32.astype(np.float64) * 255.0 / (2.0**32 - 1.0)))
    c.add("deep", "I32.tif", encode(Image.fromarray(v32), "TIFF"), "ok", ref32, 1)
    f = c.rng.random((SIDE, SIDE)).astype(np.float32)
    c.add("deep", "F.tif", encode(Image.fromarray(f), "TIFF"), "ok", gray3(np.rint(f * 255)), 1)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_raw(width: int, height: int, bit_depth: int, colour: int, rows: bytes, extra=b"") -> bytes:
    """A PNG written by hand (for depths and headers Pillow will not write)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra
            + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))  # fmt: skip


def _png48(rgb16: np.ndarray) -> bytes:
    rows = b"".join(b"\x00" + r.astype(">u2").tobytes() for r in rgb16)
    return png_raw(SIDE, SIDE, 16, 2, rows)


# --------------------------------------------------------------------------- transparency


def _transparency(c: Corpus) -> None:
    pal = c.rng.integers(0, 256, (256, 3), dtype=np.uint8)
    idx = c.rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    im = Image.frombytes("P", (SIDE, SIDE), idx.tobytes())
    im.putpalette(pal.tobytes())
    alpha = c.rng.integers(0, 256, 256).astype(np.uint8)
    ref = over_white(pal[idx], alpha[idx])
    table = encode(im, "PNG", transparency=alpha.tobytes())
    c.add("alpha", "P-trns-table.png", table, "ok", ref, 1)
    one = np.where(np.arange(256) == 7, 0, 255).astype(np.uint8)
    idx[:4, :4] = 7
    im = Image.frombytes("P", (SIDE, SIDE), idx.tobytes())
    im.putpalette(pal.tobytes())
    ref = over_white(pal[idx], one[idx])
    c.add("alpha", "P-trns-index.png", encode(im, "PNG", transparency=7), "ok", ref, 1)
    c.add("alpha", "P-trns-index.gif", encode(im, "GIF", transparency=7), "ok", ref, 1)
    g = c.gray()
    g[g == 3] = 4
    g[:2, :2] = 3
    ref_l = over_white(gray3(g), np.where(g == 3, 0, 255))
    c.add("alpha", "L-trns.png", encode(Image.fromarray(g), "PNG", transparency=3), "ok", ref_l, 1)
    rgb = c.rgb()
    rgb[:2, :2] = (1, 2, 3)
    key = (rgb == (1, 2, 3)).all(2)
    ref_rgb = over_white(rgb, np.where(key, 0, 255))
    im_rgb = Image.fromarray(rgb)
    c.add("alpha", "RGB-trns.png", encode(im_rgb, "PNG", transparency=(1, 2, 3)), "ok", ref_rgb, 1)


# --------------------------------------------------------------------------- animations


def _animations(c: Corpus) -> None:
    """Animated GIF/PNG/WEBP and multi-page TIFF: the first frame is the picture."""
    frames = [c.rgb() for _ in range(3)]
    ims = [Image.fromarray(f) for f in frames]
    kw = {"save_all": True, "append_images": ims[1:], "duration": 50, "loop": 0}
    c.add("animated", "anim.png", encode(ims[0], "PNG", **kw), "ok", frames[0])
    c.add("animated", "anim.webp", encode(ims[0], "WEBP", lossless=True, exact=True, **kw), "ok",
          frames[0])  # fmt: skip
    c.add("animated", "pages.tif", encode(ims[0], "TIFF", save_all=True, append_images=ims[1:]),
          "ok", frames[0])  # fmt: skip
    pal = c.rng.integers(0, 256, (256, 3), dtype=np.uint8)
    idxs = [c.rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8) for _ in range(3)]
    pims = []
    for i in idxs:
        p = Image.frombytes("P", (SIDE, SIDE), i.tobytes())
        p.putpalette(pal.tobytes())
        pims.append(p)
    gif = encode(pims[0], "GIF", save_all=True, append_images=pims[1:], duration=40, loop=0)
    c.add("animated", "anim.gif", gif, "ok", pal[idxs[0]])


# --------------------------------------------------------------------------- EXIF


TRANSFORMS = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],
    3: lambda s: s[::-1, ::-1],
    4: lambda s: s[::-1, :],
    5: lambda s: s.transpose(1, 0, 2),
    6: lambda s: np.rot90(s, -1),
    7: lambda s: s[::-1, ::-1].transpose(1, 0, 2),
    8: lambda s: np.rot90(s, 1),
}
"""What a viewer shows for a stored ``(H, W, C)`` picture under each EXIF orientation."""


def quadrants(colours: np.ndarray) -> np.ndarray:
    """A 16x16 picture of four 8x8 solid blocks (survives JPEG nearly exactly)."""
    out = np.zeros((SIDE, SIDE, 3), np.uint8)
    h = SIDE // 2
    for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[i * h : (i + 1) * h, j * h : (j + 1) * h] = colours[k]
    return out


def _exif(c: Corpus) -> None:
    colours = np.array([(230, 20, 20), (20, 200, 30), (30, 40, 220), (240, 230, 40)], np.uint8)
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        stored = quadrants(colours)
        shown = np.ascontiguousarray(TRANSFORMS[o](stored))
        im = Image.fromarray(stored)
        jpg = encode(im, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
        c.add("exif", f"orient{o}.jpg", jpg, "ok", shown, 12, f"exif-jpeg-{o}")
        pixels = c.rgb()
        shown = np.ascontiguousarray(TRANSFORMS[o](pixels))
        png = encode(Image.fromarray(pixels), "PNG", exif=exif.tobytes())
        c.add("exif", f"orient{o}.png", png, "ok", shown, 0, f"exif-png-{o}")
        tif = encode(Image.fromarray(pixels), "TIFF", exif=exif.tobytes())
        c.add("exif", f"orient{o}.tif", tif, "ok", shown, 0, f"exif-tiff-{o}")
    for bad in (0, 9, 255, 65535):  # orientations that do not exist: shown as stored
        exif = Image.Exif()
        exif[0x0112] = bad
        pixels = c.rgb()
        png = encode(Image.fromarray(pixels), "PNG", exif=exif.tobytes())
        c.add("exif", f"orient-bad{bad}.png", png, "ok", None)
    garbage = _chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x00" * 7)
    rows = b"".join(b"\x00" + bytes(SIDE * 3) for _ in range(SIDE))
    c.add("exif", "broken-exif.png", png_raw(SIDE, SIDE, 8, 2, rows, garbage), "ok",
          np.zeros((SIDE, SIDE, 3), np.uint8))  # fmt: skip


# --------------------------------------------------------------------------- broken files


def _seeds(c: Corpus) -> dict[str, bytes]:
    rgb = c.rgb()
    im = Image.fromarray(rgb)
    big = Image.fromarray(np.kron(c.rgb(), np.ones((4, 4, 1), np.uint8)))  # 64x64
    return {
        "png": encode(big, "PNG"),
        "jpg": encode(big, "JPEG", quality=90),
        "gif": encode(big.convert("P"), "GIF"),
        "bmp": encode(big, "BMP"),
        "tif": encode(big, "TIFF"),
        "webp": encode(big, "WEBP", quality=80),
        "small.png": encode(im, "PNG"),
    }


def _truncations(c: Corpus, seeds: dict[str, bytes]) -> None:
    for ext in ("png", "jpg", "gif", "bmp", "tif", "webp"):
        data = seeds[ext]
        n = len(data)
        for cut in sorted({1, 2, 8, 16, 40, n // 4, n // 2, (3 * n) // 4, n - 12, n - 1}):
            # Formats with an end marker cut inside the last bytes may still decode
            # (decoders stop at the image data): "any" = either, but never a crash.
            expect = "fail" if cut < n // 2 else "any"
            c.add("truncated", f"{ext}-cut{cut}.{ext}", data[:cut], expect)


def _empty_and_impostors(c: Corpus) -> None:
    for ext in ("png", "jpg", "jpeg", "gif", "bmp", "tif", "webp"):
        c.add("impostor", f"empty.{ext}", b"", "fail")
    docs = {
        "text.jpg": b"just some text, not a picture\n",
        "page.jpg": b"<!DOCTYPE html><html><body><img src=x></body></html>\n",
        "error-page.png": b"<html><head><title>404 Not Found</title></head></html>",
        "doc.jpg": b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "vector.png": b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"/>',
        "data.jpg": b'{"image": "base64..."}',
        "archive.png": b"PK\x03\x04" + bytes(26) + b"PK\x05\x06" + bytes(18),
        "program.jpg": b"\x7fELF\x02\x01\x01" + bytes(57),
        "pickle.png": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.",
        "nul.jpg": bytes(4096),
        "ff.png": b"\xff" * 4096,
        "bom.jpg": b"\xef\xbb\xbf<?xml version='1.0'?><svg/>",
        "magic-only.png": b"\x89PNG\r\n\x1a\n",
        "magic-only.jpg": b"\xff\xd8\xff",
        "magic-only.gif": b"GIF89a",
        "magic-only.tif": b"II*\x00",
    }
    for name, data in docs.items():
        c.add("impostor", name, data, "fail")


def _exotic(c: Corpus) -> None:
    """Formats cnnkit does not open, renamed to extensions it does."""
    rgb = c.rgb()
    im = Image.fromarray(rgb)
    for fmt, kw in (("PPM", {}), ("ICO", {}), ("PCX", {}), ("TGA", {}), ("EPS", {}),
                    ("SGI", {}), ("IM", {}), ("DDS", {}), ("JPEG2000", {}), ("QOI", {}),
                    ("AVIF", {}), ("ICNS", {}), ("SPIDER", {})):  # fmt: skip
        source = im.convert("F") if fmt == "SPIDER" else im
        try:
            data = encode(source, fmt, **kw)
        except (OSError, KeyError, ValueError):
            continue
        c.add("exotic", f"{fmt.lower()}-as.png", data, "fail")
        c.add("exotic", f"{fmt.lower()}-as.jpg", data, "fail")
    c.add("exotic", "xbm-as.png", encode(im.convert("1"), "XBM"), "fail")
    c.add("exotic", "pgm-as.png", encode(im.convert("L"), "PPM"), "fail")
    # Allowed formats under the wrong extension: they still load (by content).
    c.add("exotic", "png-as.jpg", encode(im, "PNG"), "ok", rgb)
    c.add("exotic", "bmp-as.png", encode(im, "BMP"), "ok", rgb)
    c.add("exotic", "tiff-as.gif", encode(im, "TIFF"), "ok", rgb)
    c.add("exotic", "webp-as.tif", encode(im, "WEBP", lossless=True), "ok", rgb)


def _bombs(c: Corpus) -> None:
    """Huge declared dimensions in tiny files: refused from the header."""
    row = b"\x00" + bytes(3)
    c.add("bombs", "png-100k.png", png_raw(100_000, 100_000, 8, 2, row), "fail")
    c.add("bombs", "png-wide.png", png_raw(2**31 - 1, 1, 8, 0, row), "fail")
    c.add("bombs", "png-10k.png", png_raw(10_000, 10_000, 8, 2, row), "fail")
    sof = bytes.fromhex("ffd8ffc0001108fde8fde803012200021101031101")
    c.add("bombs", "jpeg-65k.jpg", sof + bytes.fromhex("ffd9"), "fail")
    gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
    gif += b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00\x02\x02\x44\x01\x00\x3b"
    c.add("bombs", "gif-65k.gif", gif, "fail")
    bmp = b"BM" + struct.pack("<IHHI", 70, 0, 0, 54)
    bmp += struct.pack("<IiiHHIIiiII", 40, 50_000, 50_000, 1, 24, 0, 0, 0, 0, 0, 0) + bytes(16)
    c.add("bombs", "bmp-50k.bmp", bmp, "fail")
    c.add("bombs", "tiff-huge.tif", _tiff_header(200_000, 200_000), "fail")
    big = np.zeros((1, 1, 3), np.uint8)
    vp8l = encode(Image.fromarray(big), "WEBP", lossless=True)
    c.add("bombs", "webp-ok-tiny.webp", vp8l, "ok", None)
    ztxt = zlib.compress(b"x" * (64 << 20), 9)  # 64 MiB of text in a zTXt chunk
    rows = b"".join(b"\x00" + bytes(SIDE * 3) for _ in range(SIDE))
    c.add("bombs", "ztxt-bomb.png", png_raw(SIDE, SIDE, 8, 2, rows,
          _chunk(b"zTXt", b"Comment\x00\x00" + ztxt)), "any")  # fmt: skip
    c.add("bombs", "iccp-bomb.png", png_raw(SIDE, SIDE, 8, 2, rows,
          _chunk(b"iCCP", b"icc\x00\x00" + ztxt)), "any")  # fmt: skip


def _tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose only IFD declares ``width x height`` 8-bit grey, 1 strip."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height),
               (279, 4, 1, 16)]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    body = bytes(16)
    return b"II*\x00" + struct.pack("<I", 8 + len(body)) + body + ifd


def _odd_files(c: Corpus, seeds: dict[str, bytes]) -> None:
    rgb = c.rgb()
    png = encode(Image.fromarray(rgb), "PNG")
    c.add("odd", "trailing-garbage.png", png + os.urandom(300), "ok", rgb)
    c.add("odd", "jpeg-trailing.jpg", seeds["jpg"] + b"\x00" * 100, "ok", None)
    bad_crc = bytearray(png)
    bad_crc[29:33] = b"\x00\x00\x00\x00"  # IHDR CRC
    c.add("odd", "bad-crc.png", bytes(bad_crc), "fail")
    c.add("odd", "zero-width.png", png_raw(0, 16, 8, 2, b""), "fail")
    c.add("odd", "one-pixel.png", encode(Image.fromarray(rgb[:1, :1]), "PNG"), "ok", None)
    c.add("odd", "line.png", encode(Image.fromarray(c.gray()[:1].repeat(200, 1)), "PNG"), "ok")
    c.add("odd", "tall.png", encode(Image.fromarray(np.zeros((3000, 1), np.uint8)), "PNG"), "ok")
    gif_noframes = b"GIF89a" + struct.pack("<HH", 16, 16) + b"\x00\x00\x00\x3b"
    c.add("odd", "gif-no-frames.gif", gif_noframes, "fail")
    c.add("odd", "png-uppercase.PNG", png, "ok", rgb)
    c.add("odd", "jpeg-mixed.JpEg", seeds["jpg"], "ok", None)
    target = c.add("odd", "symlink-target.png", png, "ok", rgb)
    link = c.path("odd", "symlink.png")
    link.symlink_to(target.name)
    c.entries.append(Entry(link, "ok", rgb, 0, "symlink"))
    dangling = c.path("odd", "dangling-link.png")
    dangling.symlink_to("does-not-exist.png")
    c.entries.append(Entry(dangling, "fail", None, 0, "dangling symlink"))
    c.path("odd", "folder.png").mkdir()  # a folder named like an image: not a file
    c.path("odd", "notes.txt").write_text("not an image extension: never scanned")


def _names(c: Corpus) -> None:
    names = [
        "café-crème.png", "日本語の写真.png", "фото.png", "صورة.png", "emoji-😀🐱.png",
        "space name .png", "  leading spaces.png", "-rf.png", "--help.png", "$(touch pwned).png",
        "`id`;rm x.png", "quote'\"name.png", "back\\slash.png", "semi;colon&amp.png",
        "percent%20%s%n.png", "tab\tname.png", "new\nline.png", "a" * 240 + ".png",
        "é" * 120 + ".png", "name.with.many.dots.png", "COM1.png", "nul.png",
    ]  # fmt: skip
    # Names that are not UTF-8 (a Latin-1 or Windows-1252 disk, a broken unzip): Python holds
    # their bytes as lone surrogates; every tool must keep them and print them safely.
    names += [os.fsdecode(b) for b in (b"latin1-caf\xe9.png", b"\xff\xfe-not-utf8.png",
                                        b"half-\xe6\x97\xa5\xe6.png")]  # fmt: skip
    for name in names:
        rgb = c.rgb()
        c.add("names", name, encode(Image.fromarray(rgb), "PNG"), "ok", rgb, 0, repr(name))
    deep = "/".join(["d" * 50] * 6)
    rgb = c.rgb()
    c.add("names", f"{deep}/deep.png", encode(Image.fromarray(rgb), "PNG"), "ok", rgb)
    cls = "klasse-ß-日本"
    rgb = c.rgb()
    c.add(cls, "ok.png", encode(Image.fromarray(rgb), "PNG"), "ok", rgb)


def _hidden(c: Corpus) -> None:
    png = encode(Image.fromarray(c.rgb()), "PNG")
    for cls, name in (("modes", ".hidden.png"), ("names", "._resource-fork.jpg"),
                      ("odd", ".DS_Store"), (".hidden-class", "x.png"),
                      (".ipynb_checkpoints", "y.png"), ("names", ".cache/z.png")):  # fmt: skip
        c.add(cls, name, png if name.endswith("png") else b"\x00\x05\x16\x07", "ignored")
    c.add("modes", ".broken-but-hidden.png", b"<html>", "ignored")


def make_corpus(root: str | Path) -> list[Entry]:
    """Write the corpus under ``root`` (one folder per class) and return its manifest."""
    c = Corpus(Path(root))
    seeds = _seeds(c)
    for part in (_modes, _deep, _transparency, _animations, _exif, _empty_and_impostors,
                 _exotic, _bombs, _names, _hidden):  # fmt: skip
        part(c)
    _truncations(c, seeds)
    _odd_files(c, seeds)
    return c.entries
