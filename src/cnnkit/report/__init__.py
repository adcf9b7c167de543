"""cnnkit.report: a run folder -> plots and one self-contained ``report.html``.

``render_report(run_dir)`` is the entry point. The plot functions (``curves_png``,
``confusion_png``, ``top_losses_png``) return PNG bytes; the HTML helpers that other
reports reuse (``png_data_uri``, ``BASE_CSS``, ``make_env``) live in
:mod:`cnnkit.report.html`, which does not import matplotlib.

Example:
    >>> from cnnkit.report import render_report
    >>> render_report("runs/digits")  # doctest: +SKIP
    PosixPath('runs/digits/report.html')
"""

from __future__ import annotations

import importlib
from typing import Any

from cnnkit.report.html import BASE_CSS, make_env, png_data_uri

_LAZY = {
    "render_report": "cnnkit.report.render",
    "curves_png": "cnnkit.report.plots",
    "confusion_png": "cnnkit.report.plots",
    "top_losses_png": "cnnkit.report.plots",
}

__all__ = ["BASE_CSS", "make_env", "png_data_uri", *_LAZY]


def __getattr__(name: str) -> Any:
    # matplotlib loads only when a plot or the report is asked for (fast CLI start-up).
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnkit.report' has no attribute {name!r}")
