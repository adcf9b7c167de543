"""``audit``: what is in a folder of images, and what is wrong with it, from headers.

For a class-per-folder tree (or ``train``/``val``/``validation``/``test`` top-level folders each
holding class folders) it reports classes and counts (an empty class folder with 0, as training
makes it a class), the imbalance ratio, image sizes, Pillow modes, EXIF-rotated files, problems
and exact duplicates. It reads headers, not pixels: truncation is found from each format's end
marker or declared size (JPEG ``FFD9``, PNG ``IEND``, GIF trailer, BMP/WEBP sizes; TIFF is
decoded); a JPEG/PNG/GIF whose end marker is in the file but not at its end (a motion
photo's video follows the picture) is decoded, and is truncated only when that fails.
Duplicates are found by size first and then a content hash, so only files of equal size are
read in full.

Problems (``{"path", "problem", "detail"}``): ``empty``, ``truncated``, ``not-an-image``,
``extension-mismatch`` (content format differs from the extension; the file still loads),
``too-large`` (over the decompression-bomb pixel limit), ``tiny`` (a side below ``min_side``
pixels), ``unreadable`` (the file is there but cannot be read: permissions, I/O errors) and
``outside-folder`` (a class or split folder that is a symbolic link out of the audited folder:
its images are counted, as training reads them, and the link is reported).

``sizes`` are ``[width, height]`` of real images: the smallest, the median and the largest by
area (pixels), so ``max`` is one image's size, never the widest width with another's height.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from cnnkit.data.decode import EXTENSION_FORMATS, FORMATS, MAX_PIXELS, exif_orientation
from cnnkit.data.scan import iter_image_files, list_class_folders

SPLIT_FOLDERS = ("train", "val", "validation", "test")
TINY_SIDE = 16


def _tail(path: str, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read()


_END_MARKERS = {"JPEG": (b"\xff\xd9", 64), "PNG": (b"IEND", 64), "GIF": (b";", 4)}


def _contains(path: str, marker: bytes) -> bool:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(marker) >= 0


def _decode_error(im: Image.Image) -> str:
    """ "" when the pixels decode, else why not."""
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        return str(e) or type(e).__name__
    return ""


def _truncation(path: str, fmt: str, im: Image.Image, size: int) -> str:
    """Why the file looks cut short ("" when it does not), decoding pixels only when the
    header cannot tell (TIFF, or an end marker that is not at the end of the file)."""
    if fmt in _END_MARKERS:
        marker, tail = _END_MARKERS[fmt]
        if marker in _tail(path, tail):
            return ""
        if not _contains(path, marker):
            return f"no {fmt} end marker ({marker!r})"
        return _decode_error(im)  # data after the picture (a motion photo's video): no damage
    if fmt == "BMP":
        with open(path, "rb") as f:
            declared = struct.unpack("<I", f.read(6)[2:6])[0]
        return "" if declared == 0 or size >= declared else f"{size} of {declared} bytes"
    if fmt == "WEBP":
        with open(path, "rb") as f:
            declared = struct.unpack("<I", f.read(8)[4:8])[0] + 8
        return "" if size >= declared else f"{size} of {declared} bytes"
    return _decode_error(im)  # TIFF: no cheap end marker, decode it


def probe(path: str, min_side: int = TINY_SIDE, max_pixels: int = MAX_PIXELS) -> dict[str, Any]:
    """Header facts and problems of one file.

    Returns:
        ``path``, ``bytes``, ``format``, ``mode``, ``width``, ``height``, ``orientation`` and
        ``problems`` (list of ``(problem, detail)``).
    """
    info: dict[str, Any] = {"path": path, "bytes": 0, "format": None, "mode": None,
                            "width": 0, "height": 0, "orientation": 1, "problems": []}  # fmt: skip
    try:
        size = info["bytes"] = os.path.getsize(path)
    except OSError as e:  # a dangling symlink or an unreadable entry: a finding, not a crash
        info["problems"].append(("not-an-image", f"cannot read the file ({e.strerror or e})"))
        return info
    if size == 0:
        info["problems"].append(("empty", "file has 0 bytes"))
        return info
    unreadable = _unreadable(path)
    if unreadable:
        info["problems"].append(("unreadable", unreadable))
        return info
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path, formats=FORMATS)
    except Image.DecompressionBombError as e:
        info["problems"].append(("too-large", str(e)))
        return info
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        detail = "not a PNG/JPEG/BMP/GIF/TIFF/WEBP file"
        kind = "not-an-image" if isinstance(e, UnidentifiedImageError) else "truncated"
        info["problems"].append((kind, detail if kind == "not-an-image" else str(e)))
        return info
    with im:
        fmt = im.format or ""
        info.update(format=fmt, mode=im.mode, width=im.width, height=im.height)
        info["orientation"] = exif_orientation(im)
        _check_header(info, path, fmt, im, size, min_side, max_pixels)
    return info


def _unreadable(path: str) -> str:
    """Why ``path`` cannot be read ("" when it can): permissions, an I/O error."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        return f"cannot read the file ({e.strerror or e})"
    return ""


def _check_header(info, path, fmt, im, size, min_side, max_pixels) -> None:
    problems = info["problems"]
    ext = os.path.splitext(path)[1].lower()
    expected = EXTENSION_FORMATS.get(ext)
    if expected and expected != fmt:
        problems.append(("extension-mismatch", f"{ext} file holds {fmt} data"))
    if im.width * im.height > max_pixels:
        problems.append(("too-large", f"{im.width}x{im.height} pixels > {max_pixels}"))
        return
    if min(im.width, im.height) < min_side:
        problems.append(("tiny", f"{im.width}x{im.height} pixels (a side < {min_side})"))
    cut = _truncation(path, fmt, im, size)
    if cut:
        problems.append(("truncated", cut))


@dataclass
class _Layout:
    """What :func:`_layout` finds: ``classes``/``splits``/``flat``, the files of each split as
    ``(class, path)``, each split's class folders (empty ones too) and links out of the tree."""

    kind: str
    files: dict[str, list[tuple[str, str]]]
    classes: dict[str, list[str]]
    outside: list[dict[str, str]]


def _outside(root: str, folder: str) -> dict[str, str] | None:
    """An ``outside-folder`` problem when ``folder`` is a symbolic link out of ``root``."""
    if not os.path.islink(folder):
        return None
    real, top = os.path.realpath(folder), os.path.realpath(root)
    if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
        return None
    detail = (
        f"a symbolic link to {real}, outside {root}; its images are counted, as train reads them"
    )
    return {"path": folder, "problem": "outside-folder", "detail": detail}


def _layout(root: str) -> _Layout:
    top = list_class_folders(root)
    is_split = bool(top) and all(t.lower() in SPLIT_FOLDERS for t in top)
    layout = _Layout("classes", {}, {}, [])
    for split in top if is_split else [""]:
        base = os.path.join(root, split)
        classes = list_class_folders(base)
        folders = [base] if split else []
        links = (_outside(root, f) for f in folders + [os.path.join(base, c) for c in classes])
        layout.outside += [p for p in links if p]
        files = [(c, p) for c in classes for p in iter_image_files(os.path.join(base, c))]
        loose = [p for p in os.listdir(base) if os.path.isfile(os.path.join(base, p))]
        if not classes and loose:
            files = [("", p) for p in iter_image_files(base)]
        layout.files[split] = files
        layout.classes[split] = classes
    if is_split:
        layout.kind = "splits"
    elif not layout.classes[""]:
        layout.kind = "flat"
    return layout


def _hash(path: str) -> str | None:
    """A content hash, or None when the file cannot be read (any more)."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:  # reported by probe as unreadable (or gone since): no duplicate
        return None
    return h.hexdigest()


def _duplicates(infos: list[dict]) -> list[list[str]]:
    """Groups of byte-identical files (size first, then a hash of same-size files)."""
    by_size: dict[int, list[str]] = defaultdict(list)
    for i in infos:
        if i["bytes"] > 0 and all(p != "unreadable" for p, _ in i["problems"]):
            by_size[i["bytes"]].append(i["path"])
    candidates = [p for paths in by_size.values() if len(paths) > 1 for p in paths]
    with ThreadPoolExecutor(8) as pool:
        digests = dict(zip(candidates, pool.map(_hash, candidates), strict=True))
    groups: dict[str, list[str]] = defaultdict(list)
    for p in candidates:
        digest = digests[p]
        if digest is not None:
            groups[digest].append(p)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _split_of(root: str, path: str) -> str:
    return Path(os.path.relpath(path, root)).parts[0]


def _sizes(infos: list[dict]) -> dict[str, list[int]] | None:
    """``[width, height]`` of the smallest, the median and the largest image by area."""
    ok = sorted((i["width"] * i["height"], i["width"], i["height"]) for i in infos if i["width"])
    if not ok:
        return None
    pick = {"min": ok[0], "median": ok[(len(ok) - 1) // 2], "max": ok[-1]}
    return {k: [w, h] for k, (_, w, h) in pick.items()}


def audit(
    directory: str | os.PathLike, *, min_side: int = TINY_SIDE, workers: int = 8
) -> dict[str, Any]:
    """Audit a folder of images (reads headers; decodes only TIFF).

    Args:
        directory: a class-per-folder tree, optionally under ``train``/``val``/``validation``/
            ``test`` top-level folders.
        min_side: images with a side below this many pixels are ``tiny``.
        workers: threads reading headers.

    Returns:
        A JSON-able dict: ``root``, ``layout``, ``classes`` (``{name: count}``), ``splits``
        (``{split: {class: count}}``, split layout only), ``files``, ``sizes`` (``min``,
        ``median``, ``max`` as ``[width, height]``), ``modes``, ``formats``, ``exif_rotated``
        (count) and ``exif_rotated_files``, ``imbalance_ratio`` (largest / smallest class),
        ``problems``, ``duplicates`` (groups of paths) and ``cross_split_duplicates``.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
    """
    root = os.fspath(directory)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"audit needs a folder of images. Received: {root!r}")
    layout = _layout(root)
    kind, groups = layout.kind, layout.files
    entries = [(split, cls, path) for split, files in groups.items() for cls, path in files]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        infos = list(pool.map(lambda e: probe(e[2], min_side), entries))
    classes = Counter({c: 0 for names in layout.classes.values() for c in names})
    classes.update(cls for _, cls, _ in entries if cls)
    counts = [n for n in classes.values() if n]
    duplicates = _duplicates(infos)
    cross = (
        [g for g in duplicates if len({_split_of(root, p) for p in g}) > 1]
        if kind == "splits"
        else []
    )
    result: dict[str, Any] = {
        "root": os.path.abspath(root),
        "layout": kind,
        "classes": dict(sorted(classes.items())),
        "files": len(infos),
        "sizes": _sizes(infos),
        "modes": dict(Counter(i["mode"] for i in infos if i["mode"]).most_common()),
        "formats": dict(Counter(i["format"] for i in infos if i["format"]).most_common()),
        "exif_rotated": sum(i["orientation"] not in (0, 1) for i in infos),
        "exif_rotated_files": [i["path"] for i in infos if i["orientation"] not in (0, 1)],
        "imbalance_ratio": round(max(counts) / min(counts), 3) if counts else None,
        "problems": layout.outside
        + [
            {"path": i["path"], "problem": p, "detail": d} for i in infos for p, d in i["problems"]
        ],  # fmt: skip
        "duplicates": duplicates,
        "cross_split_duplicates": cross,
    }
    if kind == "splits":
        result["splits"] = {
            s: {c: sum(c == k for k, _ in f) for c in layout.classes[s]} for s, f in groups.items()
        }
    return result


def cross_class_duplicates(result: dict[str, Any]) -> list[list[str]]:
    """Duplicate groups whose files sit in different class folders (label noise)."""
    return [g for g in result["duplicates"] if len({Path(p).parent.name for p in g}) > 1]


def format_audit(result: dict[str, Any]) -> str:
    """Human summary of :func:`audit`'s result."""
    lines = [f"{result['root']}: {result['files']} image files, layout {result['layout']}"]
    if result["classes"]:
        lines.append("classes: " + ", ".join(f"{k} {v}" for k, v in result["classes"].items()))
        lines.append(f"imbalance ratio: {result['imbalance_ratio']}")
    if result["sizes"]:
        wh = {k: "x".join(map(str, v)) for k, v in result["sizes"].items()}
        lines.append(f"sizes (WxH): min {wh['min']}, median {wh['median']}, max {wh['max']}")
    lines.append("modes: " + ", ".join(f"{k} {v}" for k, v in result["modes"].items()))
    lines.append(f"EXIF-rotated: {result['exif_rotated']}")
    lines.append(f"problems: {len(result['problems'])}")
    lines += [f"  {p['problem']:<18} {p['path']}  {p['detail']}" for p in result["problems"]]
    lines.append(f"duplicate groups: {len(result['duplicates'])}"
                 f" ({len(cross_class_duplicates(result))} across classes)")  # fmt: skip
    lines += ["  " + "  ==  ".join(g) for g in result["duplicates"][:20]]
    lines.append(
        f"duplicates across train/validation/test: {len(result['cross_split_duplicates'])}"
    )
    return "\n".join(lines)
