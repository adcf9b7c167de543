"""Helpers shared by the CLI commands: JSON output, name normalisation, messages.

Every command prints human text on stdout by default and JSON with ``--json`` (JSON on
stdout; progress and logs on stderr).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
CONFIG_OPTION = typer.Option(
    None, "--config", help="YAML/JSON file of settings (options typed here win)."
)


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(obj: Any) -> str:
    """JSON text for ``obj`` (paths, numpy and torch values allowed).

    A file name that is not valid UTF-8 (Python keeps its bytes as lone surrogates) is written
    as ``\\udcXX`` escapes: the text stays valid UTF-8, and ``os.fsencode`` of the parsed
    string gives the file's bytes back.
    """
    text = json.dumps(obj, indent=2, default=_default, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def printable(text: str) -> str:
    """``text`` with the bytes of non-UTF-8 file names shown as ``\\xNN`` (always encodable)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def emit(obj: Any, as_json: bool, human: Callable[[Any], str] | str | None = None) -> None:
    """Print ``obj`` as JSON (``as_json``) or as the human text ``human(obj)``."""
    if as_json:
        sys.stdout.write(dumps(obj) + "\n")
    elif human is not None:
        text = human(obj) if callable(human) else human
        if text:
            sys.stdout.write(printable(text.rstrip("\n")) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    """Progress and log lines go to stderr so ``--json`` output stays clean."""
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.stderr.flush()


def norm_name(name: str) -> str:
    """Names accept hyphens and underscores for each other: ``mnist_5k`` == ``mnist-5k``."""
    return name.strip().lower().replace("-", "_")
