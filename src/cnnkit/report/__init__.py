"""cnnkit.report: a run folder -> plots and one self-contained ``report.html``.

``render_report(run_dir)`` is the entry point (``render_learning_curve(folder)`` for a
``cnnkit learning-curve`` folder). The plot functions (``curves_png``,
``confusion_png``, ``top_losses_png``) return PNG bytes; the HTML helpers that other
reports reuse (``png_data_uri``, ``BASE_CSS``, ``make_env``) live in
:mod:`cnnkit.report.html`.

Example:
    >>> from cnnkit.report import render_report
    >>> render_report("runs/digits")  # doctest: +SKIP
    PosixPath('runs/digits/report.html')
"""

from cnnkit.report.curve_page import render_learning_curve
from cnnkit.report.html import BASE_CSS, make_env, png_data_uri
from cnnkit.report.plots import confusion_png, curves_png, learning_curve_png, top_losses_png
from cnnkit.report.render import render_report

__all__ = [
    "BASE_CSS",
    "confusion_png",
    "curves_png",
    "learning_curve_png",
    "make_env",
    "png_data_uri",
    "render_learning_curve",
    "render_report",
    "top_losses_png",
]
