"""The decode-once cache: image files -> resized ``uint8`` pixels in a memory-mapped file.

The first pass decodes every file (in parallel processes, each writing its rows straight into
the memory-mapped array) and stores the pixels under :func:`cache_dir`. Later calls, epochs
and runs map that file instead of decoding again. One cache entry belongs to one root folder
and one decoding setting (image size, colour mode, interpolation, crop flag, truncation flag);
inside it every file is keyed on its path, size and modification time, so a changed, added or
removed file re-decodes only itself (rows that are still good are copied over, which is far
cheaper than decoding). Files that fail to decode are remembered too, so they are not retried
until they change. Writes are atomic (temporary file + rename), and the pixel file is synced
to disk once, before the index names it (workers write through the shared page cache without
syncing each chunk: a sync per chunk of 32 made the cold decode of 3,000 JPEGs ~20% slower);
readers that still map an old array keep a valid view.

Layout: ``<cache_dir>/decode/<key>/index.json`` + ``pixels-<token>.u8`` (``N*C*H*W`` bytes).
Every folder cnnkit makes under :func:`cache_dir` (``decode/``, ``native/``, ``features/``)
carries a ``CACHEDIR.TAG`` naming it; ``cnnkit cache clear`` deletes only folders that carry
that tag and belong to the user who clears (``$CNNKIT_CACHE_DIR`` may name a folder that other
programs use too, such as ``~/.cache``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
from tqdm.auto import tqdm

from cnnkit.data.decode import (
    check_aspect_flags,
    check_color_mode,
    check_image_size,
    check_interpolation,
    load_image,
)
from cnnkit.errors import ImageDecodeError

CACHE_VERSION = 2  # 2: bilinear resize by torch's uint8 kernel
_CHUNK = 32
_TAG = "CACHEDIR.TAG"
_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55\n"  # bford.ch/cachedir


def cache_dir() -> Path:
    """Root of cnnkit's caches: ``$CNNKIT_CACHE_DIR`` or the platform user cache dir."""
    env = os.environ.get("CNNKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("cnnkit"))


def make_dirs(path: Path, mode: int = 0o755) -> bool:
    """Make ``path`` and its missing parents, never writable by group or others.

    ``mode`` (default 0755; the umask can only take bits away) holds for every folder made
    here, so a umask of 002 does not leave a cache folder open to a whole group.

    Returns:
        True when ``path`` itself was made by this call.
    """
    if path.is_dir():
        return False
    if path.parent != path and not path.parent.is_dir():
        make_dirs(path.parent, 0o755)
    try:
        os.mkdir(path, mode & 0o755)
    except FileExistsError:  # made meanwhile by another process (or a file: the caller fails)
        return False
    return True


def foreign_writable(path: Path) -> str:
    """Why someone other than this user or root could change ``path``; "" when nobody can.

    ``path`` (symbolic links resolved) and every folder above it must belong to this user or
    root and must not be writable by group or others; a folder with the sticky bit may be
    (there nobody else may rename or delete what is ours: ``/tmp``, a mode 1777 cache).
    Systems without POSIX owners (Windows) are not checked.
    """
    if not hasattr(os, "getuid"):
        return ""
    uid = os.getuid()
    with contextlib.suppress(OSError):  # a link someone else made is theirs to repoint
        link = os.lstat(path)
        if stat.S_ISLNK(link.st_mode) and link.st_uid not in (uid, 0):
            return f"{path} is a symbolic link of another user (uid {link.st_uid})"
    real = Path(os.path.realpath(path))
    for p in (real, *real.parents):
        try:
            st = os.lstat(p)
        except OSError as e:
            return f"cannot check {p} ({e.strerror or e})"
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in (uid, 0):
            return f"{p} belongs to another user (uid {st.st_uid})"
        if stat.S_ISLNK(st.st_mode):  # realpath resolved it: it changed meanwhile
            return f"{p} changed while it was checked"
        sticky = stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX
        if mode & 0o022 and not sticky:
            who = "other users" if mode & 0o002 else "its group"
            return f"{p} is writable by {who} (mode {mode:04o})"
    return ""


def _tag_text(name: str) -> str:
    return f"{_SIGNATURE}# cnnkit cache folder {name!r}: made by cnnkit; `cnnkit cache clear`\n"


def cache_subdir(name: str, *, private: bool = False) -> Path:
    """``cache_dir() / name``, made if needed (mode 0755, or 0700 when ``private``).

    A folder made here is tagged (``CACHEDIR.TAG``) as cnnkit's: the tag is what
    :func:`clear_cache` trusts, so a folder that was there before cnnkit is never tagged.
    """
    folder = cache_dir() / name
    if make_dirs(folder, 0o700 if private else 0o755):
        _atomic_write_text(folder / _TAG, _tag_text(name))
    return folder


def own_subdir(name: str) -> Path:
    """``cache_dir() / name`` where nobody but this user (or root) can change it, else this
    user's own ``<name>-<uid>/`` (mode 0700): the folder another user made in a shared cache
    is neither written (it would fail) nor read (it could hold what they chose)."""
    folder = cache_subdir(name)
    if not foreign_writable(folder) or not hasattr(os, "getuid"):
        return folder
    return cache_subdir(f"{name}-{os.getuid()}", private=True)


def _decode_root() -> Path:
    return own_subdir("decode")


@dataclass(frozen=True)
class DecodeSettings:
    """How files are decoded; part of the cache key."""

    image_size: tuple[int, int]
    color_mode: str = "rgb"
    interpolation: str = "bilinear"
    crop_to_aspect_ratio: bool = False
    allow_truncated: bool = False
    pad_to_aspect_ratio: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", check_image_size(self.image_size))
        check_color_mode(self.color_mode)
        check_interpolation(self.interpolation)
        check_aspect_flags(self.crop_to_aspect_ratio, self.pad_to_aspect_ratio)
        object.__setattr__(self, "interpolation", self.interpolation.lower())

    def key(self) -> dict:
        """The settings as they enter the cache key (a setting left off is omitted, so the
        entries written before it existed stay valid)."""
        d = dict(self.__dict__)
        if not d["pad_to_aspect_ratio"]:
            del d["pad_to_aspect_ratio"]
        return d

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one decoded image."""
        channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[self.color_mode]
        return (channels, *self.image_size)

    def decode(self, path: str) -> np.ndarray:
        """:func:`load_image` with these settings."""
        return load_image(
            path,
            self.image_size,
            self.color_mode,
            self.interpolation,
            crop_to_aspect_ratio=self.crop_to_aspect_ratio,
            pad_to_aspect_ratio=self.pad_to_aspect_ratio,
            allow_truncated=self.allow_truncated,
        )


@dataclass
class Decoded:
    """What :func:`decode_files` returns.

    Attributes:
        images: decoded pixels of the files that loaded, in input order (read-only memmap).
        kept: index into the input ``paths`` of each image row.
        skipped: ``(path, problem, detail)`` of the files that failed.
        entry: the cache entry folder used.
        decoded: how many files were decoded in this call (0 = a full cache hit).

    Shape:
        images: ``(N, C, H, W)`` uint8.
    """

    images: np.ndarray
    kept: np.ndarray
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    entry: Path | None = None
    decoded: int = 0


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _sync(path: Path) -> None:
    """Write ``path``'s dirty pages to disk, those written through memory maps included."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _entry_dir(paths: Sequence[str], settings: DecodeSettings) -> Path:
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    key = {"root": root, "settings": settings.key(), "version": CACHE_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()
    return _decode_root() / digest[:24]


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _read_index(entry: Path, settings: DecodeSettings) -> tuple[dict, np.ndarray | None, str]:
    """The previous index's files, its pixel array and data file name (empty when unusable)."""
    try:
        index = json.loads((entry / "index.json").read_text(encoding="utf-8"))
        if index.get("version") != CACHE_VERSION or tuple(index["shape"]) != settings.shape:
            return {}, None, ""
        rows = int(index["rows"])
        data = None
        if rows:
            data = np.memmap(entry / index["data"], np.uint8, "r", shape=(rows, *settings.shape))
        return index["files"], data, index["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}, None, ""


def _decode_chunk(data_path: str, shape: tuple, jobs: list, settings: DecodeSettings) -> list:
    """Worker: decode ``jobs`` ``[(row, path)]`` into the memmap; return the failures."""
    out = np.memmap(data_path, np.uint8, "r+", shape=shape)
    failures = []
    for row, path in jobs:
        try:
            out[row] = settings.decode(path)
        except ImageDecodeError as e:
            failures.append((row, path, e.problem, e.detail))
        except OSError as e:  # vanished since the scan: skipped and reported
            failures.append((row, path, "unreadable", f"cannot read the file ({e.strerror or e})"))
    del out  # the rows are in the shared page cache; _rebuild syncs the file once
    return failures


def _one_thread() -> None:
    """Decode workers resize with torch: one thread each, the processes are the parallelism."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    else:
        os.environ["OMP_NUM_THREADS"] = "1"


def _pool_context():
    methods = mp.get_all_start_methods()
    return mp.get_context("fork") if "fork" in methods else None


def _run_decode(data_path, shape, jobs, settings, workers, progress) -> list:
    """Decode ``jobs`` with a process pool (or inline when small); returns failures."""
    chunks = [jobs[i : i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    bar = tqdm(total=len(jobs), desc="decoding", unit="img", file=sys.stderr, disable=not progress)
    failures: list = []
    try:
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                failures += _decode_chunk(data_path, shape, chunk, settings)
                bar.update(len(chunk))
            return failures
        ctx = _pool_context()
        with cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_one_thread
        ) as pool:
            futures = {
                pool.submit(_decode_chunk, data_path, shape, c, settings): len(c) for c in chunks
            }
            for fut in cf.as_completed(futures):
                failures += fut.result()
                bar.update(futures[fut])
        return failures
    finally:
        bar.close()


def default_workers() -> int:
    """Decode processes used by default: the CPU count, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def _plan(paths: list[str], old: dict, has_data: bool) -> list[tuple]:
    """Per file: ``("row", old_row)``, ``("fail", problem, detail)`` or ``("decode",)``."""
    plan: list[tuple] = []
    for path in paths:
        st = _stat(path)
        rec = old.get(path)
        if st is None:
            plan.append(("fail", "not-an-image", "cannot read the file"))
        elif rec and rec[0] == st[0] and rec[1] == st[1] and (rec[2] < 0 or has_data):
            plan.append(("row", rec[2]) if rec[2] >= 0 else ("fail", rec[3], rec[4]))
        else:
            plan.append(("decode",))
    return plan


def _is_full_hit(plan: list[tuple], data: np.ndarray | None) -> bool:
    if any(p[0] == "decode" for p in plan):
        return False
    rows = [p[1] for p in plan if p[0] == "row"]
    n_data = 0 if data is None else len(data)
    return rows == list(range(n_data))


def _copy_rows(dst: np.ndarray, dst_rows: list[int], src: np.ndarray, src_rows: list[int]) -> None:
    for i in range(0, len(dst_rows), 256):
        dst[dst_rows[i : i + 256]] = src[src_rows[i : i + 256]]


def _compact(tmp: Path, shape: tuple, failed: set[int]) -> tuple[Path, tuple]:
    """Drop the rows of files that failed to decode (rare: a copy is fine)."""
    keep = [r for r in range(shape[0]) if r not in failed]
    new_shape = (len(keep), *shape[1:])
    src = np.memmap(tmp, np.uint8, "r", shape=shape)
    out_path = tmp.with_name(tmp.name + ".c")
    if keep:
        dst = np.memmap(out_path, np.uint8, "w+", shape=new_shape)
        _copy_rows(dst, list(range(len(keep))), src, keep)
        del dst
    else:
        out_path.touch()
    del src
    tmp.unlink()
    return out_path, new_shape


def _write_entry(entry, paths, plan, rows, failures, data_name, shape, settings) -> None:
    files = {}
    for i, path in enumerate(paths):
        st = _stat(path) or (-1, -1)
        if i in failures:
            files[path] = [st[0], st[1], -1, *failures[i]]
        else:
            files[path] = [st[0], st[1], rows[i], "", ""]
    index = {
        "version": CACHE_VERSION,
        "settings": settings.__dict__,
        "shape": list(settings.shape),
        "rows": shape[0],
        "data": data_name,
        "files": files,
    }
    _atomic_write_text(entry / "index.json", json.dumps(index))


def _collect_garbage(entry: Path, keep: str) -> None:
    """Remove pixel files no index refers to (older than 10 minutes: not being written)."""
    now = time.time()
    for f in entry.glob("*pixels-*"):
        if f.name != keep and now - f.stat().st_mtime > 600:
            f.unlink(missing_ok=True)


def _rebuild(entry, paths, plan, old_data, old_name, settings, workers, progress):
    """Write a new pixel file: reuse good rows, decode the rest; return the row mapping."""
    entry.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = entry / f".pixels-{token}.u8.tmp"
    order = [i for i, p in enumerate(plan) if p[0] != "fail"]
    shape = (len(order), *settings.shape)
    rows = {i: r for r, i in enumerate(order)}
    if order:
        out = np.memmap(tmp, np.uint8, "w+", shape=shape)
        reuse = [i for i in order if plan[i][0] == "row"]
        _copy_rows(out, [rows[i] for i in reuse], old_data, [plan[i][1] for i in reuse])
        del out
    else:
        tmp.touch()
    jobs = [(rows[i], paths[i]) for i in order if plan[i][0] == "decode"]
    failed = _run_decode(str(tmp), shape, jobs, settings, workers, progress) if jobs else []
    failures = {i: (plan[i][1], plan[i][2]) for i, p in enumerate(plan) if p[0] == "fail"}
    by_row = {rows[i]: i for i in order}
    for row, _path, problem, detail in failed:
        failures[by_row[row]] = (problem, detail)
    if failed:
        tmp, shape = _compact(tmp, shape, {row for row, *_ in failed})
    good = [i for i in order if i not in failures]
    rows = {i: r for r, i in enumerate(good)}
    data_name = f"pixels-{token}.u8"
    _sync(tmp)  # on disk before the index names it
    os.replace(tmp, entry / data_name)
    _write_entry(entry, paths, plan, rows, failures, data_name, shape, settings)
    if old_name and old_name != data_name:
        (entry / old_name).unlink(missing_ok=True)
    _collect_garbage(entry, data_name)
    return data_name, shape, good, failures, len(jobs)


def decode_files(
    paths: Sequence[str],
    settings: DecodeSettings,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> Decoded:
    """Decode ``paths`` through the cache (decoding only what is new or changed).

    Args:
        paths: image files, in the order wanted.
        settings: size, colour mode, interpolation, crop and truncation flags.
        workers: decode processes (default :func:`default_workers`; 1 = in this process).
        progress: show a tqdm bar on stderr while decoding.

    Returns:
        A :class:`Decoded`: pixels of the files that loaded (in order), their positions in
        ``paths``, and the skipped files with their problem.
    """
    given = [os.fspath(p) for p in paths]
    absolute = [os.path.abspath(p) for p in given]
    entry = _entry_dir(absolute, settings)
    old, old_data, old_name = _read_index(entry, settings)
    plan = _plan(absolute, old, old_data is not None)
    workers = default_workers() if workers is None else max(1, int(workers))
    if _is_full_hit(plan, old_data):
        kept = np.asarray([i for i, p in enumerate(plan) if p[0] == "row"], dtype=np.int64)
        skipped = [(given[i], p[1], p[2]) for i, p in enumerate(plan) if p[0] == "fail"]
        images = old_data if old_data is not None else np.empty((0, *settings.shape), np.uint8)
        return Decoded(images, kept, skipped, entry, 0)
    name, shape, good, failures, n = _rebuild(
        entry, absolute, plan, old_data, old_name, settings, workers, progress
    )
    del old_data
    images = (
        np.memmap(entry / name, np.uint8, "r", shape=shape)
        if shape[0]
        else np.empty(shape, np.uint8)
    )
    skipped = [(given[i], *failures[i]) for i in sorted(failures)]
    return Decoded(images, np.asarray(good, dtype=np.int64), skipped, entry, n)


def cache_info() -> dict:
    """Where the cache is, its decode entries and the bytes in cnnkit's cache folders."""
    root = cache_dir()
    entries = []
    folders = [f for f in cnnkit_folders(root) if f.name.split("-")[0] == "decode"]
    for entry in sorted(e for folder in folders for e in folder.iterdir()):
        if not entry.is_dir():  # the folder's CACHEDIR.TAG
            continue
        size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
        info = {"key": entry.name, "bytes": size, "files": 0, "root": ""}
        try:
            index = json.loads((entry / "index.json").read_text(encoding="utf-8"))
            files = list(index["files"])
            info["files"] = len(files)
            info["root"] = os.path.commonpath([os.path.dirname(p) for p in files]) if files else ""
            info["image_size"] = index["settings"]["image_size"]
            info["color_mode"] = index["settings"]["color_mode"]
        except (OSError, ValueError, KeyError):
            pass
        entries.append(info)
    total = sum(_bytes(folder) for folder in cnnkit_folders(root))
    return {"path": str(root), "bytes": total, "entries": entries}


def _bytes(folder: Path) -> int:
    return sum(f.lstat().st_size for f in folder.rglob("*") if f.is_file())


def _mine(st: os.stat_result) -> bool:
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def cnnkit_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that cnnkit made (they carry its tag) and this user owns."""
    found = []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            st = child.lstat()
            if not (stat.S_ISDIR(st.st_mode) and _mine(st)):
                continue
            if (child / _TAG).read_text(encoding="utf-8") == _tag_text(child.name):
                found.append(child)
        except (OSError, UnicodeDecodeError):  # no tag, or not ours to read: not cnnkit's
            continue
    return found


def clear_cache() -> int:
    """Delete cnnkit's cache folders under :func:`cache_dir`; returns the bytes freed.

    Only what cnnkit made goes: the sub-folders that carry the tag cnnkit wrote when it made
    them (``decode/``, ``native/``, ``features/``) and that belong to this user. Anything else
    in the folder (``$CNNKIT_CACHE_DIR`` may name ``~/.cache``) is left alone.
    """
    freed = 0
    for folder in cnnkit_folders(cache_dir()):
        freed += _bytes(folder)
        shutil.rmtree(folder)
    return freed
