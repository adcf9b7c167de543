"""Small HTML helpers shared by cnnkit's reports (image runs and genomics).

Everything here builds *self-contained* pages: images travel as ``data:`` URIs, CSS is
inlined, and the Content-Security-Policy in ``base.html.j2`` forbids any other source.

Example:
    >>> from cnnkit.report.html import png_data_uri
    >>> png_data_uri(b"\\x89PNG\\r\\n\\x1a\\n")[:22]
    'data:image/png;base64,'

Another report can reuse the base layout and style with its own template::

    env = make_env(jinja2.PackageLoader("cnnkit.genomics", "templates"))
    html = env.get_template("cv.html.j2").render(title="...")  # {% extends "base.html.j2" %}
"""

from __future__ import annotations

import base64
import math
from importlib import resources
from typing import Any

import jinja2

from cnnkit import __version__

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BASE_CSS: str = (resources.files("cnnkit.report") / "templates" / "base.css").read_text("utf-8")
"""The reports' stylesheet (typography, cards, tables, figures); inline it in ``<style>``."""


def is_png(data: bytes) -> bool:
    """True when ``data`` starts with the PNG signature."""
    return data[:8] == PNG_SIGNATURE


def png_data_uri(data: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for PNG bytes, for ``<img src>``.

    Args:
        data: the bytes of a PNG file.

    Returns:
        The data URI.

    Raises:
        ValueError: if ``data`` is not a PNG.
    """
    if not is_png(data):
        raise ValueError(f"png_data_uri expects PNG bytes. Received: {data[:8]!r}...")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def pct(value: Any, digits: int = 1) -> str:
    """``0.9783`` -> ``"97.8%"``; ``None``/NaN -> ``"–"``."""
    if not _is_number(value):
        return "–"
    return f"{100.0 * float(value):.{digits}f}%"


def fixed(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``None``/NaN -> ``"–"``."""
    if not _is_number(value):
        return "–"
    return f"{float(value):.{digits}f}"


def num(value: Any) -> str:
    """An integer with thousands separators (``12,345``); ``None``/NaN -> ``"–"``."""
    if not _is_number(value):
        return "–"
    return f"{round(float(value)):,}"


def duration(seconds: Any) -> str:
    """``61.2`` -> ``"1 min 1 s"``, ``3.25`` -> ``"3.2 s"``; ``None`` -> ``"–"``."""
    if not _is_number(seconds):
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def make_env(loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    """A Jinja2 environment for reports: autoescape on, strict undefined, our filters.

    Args:
        loader: where templates come from; ``base.html.j2`` (the shared layout) is always
            found as well. Default: the templates shipped in ``cnnkit.report``.

    Returns:
        The environment, with filters ``pct``, ``fixed``, ``num``, ``duration``,
        ``png_uri`` and the globals ``base_css`` and ``cnnkit_version``.
    """
    ours = jinja2.PackageLoader("cnnkit.report", "templates")
    env = jinja2.Environment(
        loader=ours if loader is None else jinja2.ChoiceLoader([loader, ours]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=pct, fixed=fixed, num=num, duration=duration, png_uri=png_data_uri)
    env.globals.update(base_css=BASE_CSS, cnnkit_version=__version__)
    return env
