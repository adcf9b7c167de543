"""Run folder -> ``curves.png``, ``confusion.png``, ``top_losses.png`` and ``report.html``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from cnnkit.errors import RunFolderError
from cnnkit.fileio import atomic_write_bytes, atomic_write_text
from cnnkit.report import context as ctx
from cnnkit.report.gallery import GALLERY, write_gallery
from cnnkit.report.html import make_env
from cnnkit.report.images import RunImages
from cnnkit.report.plots import confusion_png, curves_png, lr_find_png, top_losses_png
from cnnkit.report.runfolder import RunFiles, read_run

TEMPLATE = "report.html.j2"

# (id, title) of each section in page order; the table of contents lists those present.
SECTIONS = (
    ("data", "Data"),
    ("model", "Model"),
    ("augmentation", "Augmentation"),
    ("curves", "Training curves"),
    ("confusion", "Confusion matrix"),
    ("per-class", "Per-class metrics"),
    ("top-losses", "Top losses"),
    ("gradcam", "Grad-CAM gallery"),
    ("kfold", "k-fold"),
    ("timing", "Timing"),
    ("environment", "Environment"),
    ("reproduce", "Reproduce"),
)


def render_report(run_dir: str | Path, *, n_top_losses: int = 16, gallery: bool = True) -> Path:
    """Render a run folder's plots and its one-file HTML report.

    Writes ``curves.png`` (from ``history.csv``), ``confusion.png`` (from
    ``metrics.json``) and ``top_losses.png`` (from ``predictions.csv``) into the run
    folder, each only when its source is present, then ``report.html``: a single
    self-contained file (images inlined as data URIs, inline CSS, no external links)
    that opens offline. Sections whose files are absent are left out.

    Args:
        run_dir: the run folder (``cnnkit train --out RUN``).
        n_top_losses: how many highest-loss validation images to show.
        gallery: draw ``gallery.png`` (Grad-CAM of validation predictions) from the run's
            weights when it is missing; False shows only an existing one.

    Returns:
        The path of ``report.html``.

    Raises:
        RunFolderError: if ``run_dir`` is not a folder, or its ``metrics.json`` is
            missing, not JSON, or lacks the accuracy, class names or a valid confusion
            matrix.
        ValueError: if ``n_top_losses`` is not a positive int.

    Example:
        >>> from cnnkit.report import render_report
        >>> render_report("runs/digits")  # doctest: +SKIP
        PosixPath('runs/digits/report.html')
    """
    if isinstance(n_top_losses, bool) or not isinstance(n_top_losses, int) or n_top_losses < 1:
        raise ValueError(
            f"n_top_losses must be a positive int. Received: n_top_losses={n_top_losses!r}"
        )
    if gallery and not (Path(run_dir) / GALLERY).is_file():
        write_gallery(run_dir)
    run = read_run(run_dir)
    plots = _write_plots(run, n_top_losses)
    context = build_context(run, plots, n_top_losses)
    html = make_env().get_template(TEMPLATE).render(**context)
    return atomic_write_text(run.path / "report.html", html)


def _image_loader(run: RunFiles) -> RunImages:
    data = (run.config or {}).get("data")
    bases = [d for d in (Path(str(data)) if data else None, run.path) if d and d.is_dir()]
    return RunImages(bases, grayscale=(run.config or {}).get("color_mode") == "grayscale")


def _write_plots(run: RunFiles, n_top_losses: int) -> dict[str, bytes]:
    """Draw and save the plots whose sources are present; returns name -> PNG bytes."""
    m = run.metrics
    try:
        cm = confusion_png(m["confusion_matrix"], [str(c) for c in m["class_names"]])
    except (ValueError, TypeError) as e:
        raise RunFolderError(f"{run.path / 'metrics.json'}: {e}") from e
    plots = {"confusion": cm}
    if run.history:
        plots["curves"] = curves_png(run.history)
    if run.lr_find:
        try:
            plots["lr_find"] = lr_find_png(run.lr_find)
        except (ValueError, TypeError) as e:
            run.notes.append(f"lr_find.json could not be plotted ({e}).")
    if run.predictions:
        try:
            plots["top_losses"] = top_losses_png(
                run.predictions, n_top_losses, image_loader=_image_loader(run)
            )
        except (ValueError, TypeError) as e:
            run.notes.append(f"predictions.csv could not be plotted ({e}).")
    for name, png in plots.items():
        atomic_write_bytes(run.path / f"{name}.png", png)
    return plots


def _header(run: RunFiles) -> dict[str, Any]:
    m, config = run.metrics, run.config or {}
    ci = m.get("accuracy_ci")
    lo, hi = (
        (ctx.as_float(ci[0]), ctx.as_float(ci[1]))
        if isinstance(ci, list) and len(ci) == 2
        else (None, None)
    )
    return {
        "model": config.get("model"),
        "data": config.get("data"),
        "accuracy": ctx.as_float(m.get("accuracy")),
        "ci_lo": lo,
        "ci_hi": hi,
        "n": ctx.as_float(m.get("n")),
        "n_classes": len(m["class_names"]),
        "macro_f1": ctx.as_float(m.get("macro_f1")),
        "log_loss": ctx.as_float(m.get("log_loss")),
        "epochs": len(run.history) if run.history else config.get("epochs"),
        "total_seconds": ctx.total_seconds(run),
        "folds": (run.cv or {}).get("folds") if run.cv else None,
    }


def _figure_sections(run: RunFiles, plots: dict[str, bytes], n_top: int) -> dict[str, Any]:
    """The sections built around a picture: augmentation, curves, confusion, top losses."""
    config, preds = run.config or {}, run.predictions or []
    m = run.metrics
    aug = run.augment_png
    return {
        "augmentation": {"image": ctx.image(aug), "settings": ctx.augment_rows(config)}
        if aug
        else None,
        "curves": {
            "image": ctx.image(plots["curves"], 2),
            "summary": ctx.curves_summary(run.history or []),
            "training": ctx.training_facts(config),
            "lr_find": ctx.image(plots["lr_find"], 2) if "lr_find" in plots else None,
        }
        if "curves" in plots
        else None,
        "confusion": {
            "image": ctx.image(plots["confusion"], 2),
            "most_confused": ctx.most_confused(m["confusion_matrix"], m["class_names"]),
        },
        "top_losses": {
            "image": ctx.image(plots["top_losses"], 2),
            "rows": ctx.top_loss_rows(preds, n_top),
            "n_wrong": sum(p.get("label") != p.get("predicted") for p in preds),
            "n_predictions": len(preds),
        }
        if "top_losses" in plots
        else None,
        "gradcam": {"image": ctx.image(run.gallery_png)} if run.gallery_png else None,
    }


def build_context(run: RunFiles, plots: dict[str, bytes], n_top_losses: int) -> dict[str, Any]:
    """The template's variables: one entry per section, ``None`` for absent sections."""
    config = run.config
    sections: dict[str, Any] = {
        "data": ctx.data_section(run),
        "model": {"summary": run.summary, "settings": ctx.settings_rows(config or {})}
        if run.summary or config
        else None,
        "per_class": ctx.per_class_section(run.metrics),
        "kfold": ctx.cv_section(run.cv),
        "timing": ctx.timing_section(run),
        "environment": ctx.environment_rows(config) if config else None,
        "reproduce": ctx.reproduce_command(config, run.path) if config else None,
        **_figure_sections(run, plots, n_top_losses),
    }
    if sections["timing"] is not None:
        sections["timing"]["history"] = ctx.history_rows(run.history or [])
    toc = [(sid, title) for sid, title in SECTIONS if sections[sid.replace("-", "_")]]
    return {
        "run_name": run.path.resolve().name,
        "run_path": shlex.quote(str(run.path.resolve())),
        "header": _header(run),
        "notes": run.notes,
        "toc": toc,
        "n_top_losses": n_top_losses,
        **sections,
    }
