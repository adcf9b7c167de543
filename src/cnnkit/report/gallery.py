"""``gallery.png``: the report's Grad-CAM gallery of a run's validation predictions.

Drawn when the report is rendered (by the CLI or :func:`cnnkit.report.render_report`), so
runs trained from Python get one too. The validation images are read back by path from
``split.csv``, decoded as training did.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cnnkit.data.lookup import ImageLookup
from cnnkit.errors import RunFolderError
from cnnkit.explain.gallery import gradcam_gallery
from cnnkit.fileio import atomic_write_bytes
from cnnkit.runs import layout
from cnnkit.runs.loaded import LoadedRun, load_run
from cnnkit.runs.split import read_split_rows

GALLERY = "gallery.png"


def validation_images(run: LoadedRun, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` validation images of ``run`` (uint8 ``(N, C, H, W)``) and labels."""
    lookup = ImageLookup(
        run.image_size,
        run.color_mode,
        run.interpolation,
        crop_to_aspect_ratio=run.crop_to_aspect_ratio,
        base_dirs=[Path(str(run.config.get("data", ""))), run.path],
    )
    index = {n: i for i, n in enumerate(run.class_names)}
    images, labels = [], []
    for row in read_split_rows(run.path / layout.SPLIT):
        if row["subset"] != "validation" or row["label"] not in index:
            continue
        image = lookup(row["path"])
        if image is not None:
            images.append(image)
            labels.append(index[row["label"]])
        if len(images) == limit:
            break
    shape = (0, run.in_chans, *run.image_size)
    stacked = np.stack(images) if images else np.zeros(shape, np.uint8)
    return stacked, np.asarray(labels, dtype=np.int64)


def write_gallery(run_dir: str | Path, limit: int = 400) -> Path | None:
    """Draw ``RUN/gallery.png``; None (with the reason on stderr) where there is none to draw.

    A run without weights or validation images has no gallery; a model Grad-CAM cannot
    explain gets a one-line note instead of a failed report.
    """
    run_dir = Path(run_dir)
    if not (run_dir / layout.WEIGHTS).is_file():
        return None
    try:
        run = load_run(run_dir)
        images, labels = validation_images(run, limit)
    except RunFolderError as e:
        sys.stderr.write(f"report: no Grad-CAM gallery ({e})\n")
        return None
    if len(images) == 0:
        return None
    preds = run.predict_proba(images).numpy().argmax(1)
    try:
        png = gradcam_gallery(
            run.model, images, labels, preds, run.class_names, preprocess=run.preprocess
        )
    except (ValueError, RuntimeError) as e:  # the run itself is saved; say why there is no gallery
        sys.stderr.write(f"report: no Grad-CAM gallery ({e})\n")
        return None
    return atomic_write_bytes(run_dir / GALLERY, png)
