"""Files that are never half-written, and JSON that is read back safely.

Every file cnnkit writes for a user (run folders, reports, weights, checkpoints) goes through
:func:`atomic_write_bytes`: the bytes go to a temporary file in the same folder, are flushed
and fsynced, and only then replace the target with ``os.replace`` (atomic on POSIX). A crash,
SIGKILL or full disk leaves the previous file intact. The result gets the permissions any
new file would get (``0o666`` less the umask): a run folder a lab shares stays readable.

:func:`read_json` is the one JSON reader for files a user may have edited or someone else
may have crafted: one clear error naming the file for a missing, non-UTF-8, malformed,
absurdly nested or non-object file, never a traceback. Torch-free; every stage may use it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from cnnkit.errors import CnnkitError

MAX_JSON_BYTES = 64 << 20
"""Largest JSON file :func:`read_json` reads (a config or metrics file is a few KB)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting :func:`read_json` accepts (cnnkit's own files nest 4 levels)."""


class FileFormatError(CnnkitError):
    """A file exists but its content is not what it must be; the message names the file."""


def current_umask() -> int:
    """The process umask, read without changing it (Linux); else the set-and-restore dance."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``data`` (bytes, or a function writing to a binary file) to ``path`` atomically.

    The file gets mode ``0o666 & ~umask``, as a plain ``open()`` would give it.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8 (``\\n`` line ends).

    File names that are not valid UTF-8 (kept by Python as surrogate escapes) are written
    as their original bytes, so they read back to the same names.
    """
    return atomic_write_bytes(path, text.encode("utf-8", errors="surrogateescape"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """:func:`atomic_write_text` of ``obj`` as indented JSON; NaN and infinity become null.

    JSON has no NaN or infinity; writing them would make a file other tools refuse.
    """
    text = json.dumps(finite(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (lists, tuples and dicts walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files an interrupted :func:`atomic_write_bytes` left behind.

    Only the folder's own files (not sub-folders') are looked at. Call it where one writer owns
    the folder (a run being started or resumed), never where another process may be writing.

    Returns:
        The files removed.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _depth(text: str) -> int:
    """The deepest bracket nesting of JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json(path: str | Path, what: str = "file") -> dict[str, Any]:
    """Read a JSON object from ``path`` with one clear error for anything else.

    Args:
        path: the file.
        what: what the file is, for messages (``"run config"``).

    Raises:
        FileNotFoundError: the file does not exist.
        FileFormatError: unreadable, not UTF-8, larger than :data:`MAX_JSON_BYTES`, nested
            deeper than :data:`MAX_JSON_DEPTH`, not JSON, or not a JSON object.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    try:
        if p.stat().st_size > MAX_JSON_BYTES:
            raise FileFormatError(f"{p}: {what} is larger than {MAX_JSON_BYTES >> 20} MB")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FileFormatError(
            f"{p}: {what} is not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None
    except OSError as e:
        raise FileFormatError(f"{p}: {what} could not be read ({e.strerror or e})") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise FileFormatError(f"{p}: {what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileFormatError(
            f"{p}: {what} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None
    except (RecursionError, ValueError) as e:  # ValueError: an integer over 4300 digits
        raise FileFormatError(f"{p}: {what} cannot be read as JSON ({e})") from None
    if not isinstance(data, dict):
        raise FileFormatError(
            f"{p}: {what} must hold a JSON object. Received: {type(data).__name__}"
        )
    return data
