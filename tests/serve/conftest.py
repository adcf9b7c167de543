"""A tiny trained run (and an ONNX-exported copy), shared by the serve tests."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main

CLASSES = ("top", "middle", "bottom")


def band_image(cls: int, size: int = 28, seed: int = 0) -> np.ndarray:
    """A grey ``(size, size)`` image with a bright band on top, middle or bottom."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (size, size), dtype=np.uint8)
    band = slice(cls * size // 3, (cls + 1) * size // 3)
    img[band, :] = rng.integers(180, 255, img[band].shape, dtype=np.uint8)
    return img


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def make_folder(root: Path, per_class: int = 12) -> Path:
    """Three easily separated classes of 28x28 grey PNGs, one sub-folder each."""
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(band_image(c, seed=100 * c + i)).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("serve-data") / "data")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, serve_data) -> Path:
    """A basic_convnet run trained for 3 epochs on :func:`make_folder` (no model.onnx)."""
    run = tmp_path_factory.mktemp("serve-run") / "run"
    rc = main(
        [
            "train",
            str(serve_data),
            "--out",
            str(run),
            "--epochs",
            "3",
            "--batch-size",
            "8",
            "--lr",
            "0.005",
            "--no-report",
            "--seed",
            "0",
        ]
    )
    assert rc == 0
    return run


@pytest.fixture(scope="session")
def onnx_run(tmp_path_factory, run_dir) -> Path:
    """A copy of :func:`run_dir` with ``model.onnx`` exported."""
    from cnnkit.serve.export import export_onnx

    run = tmp_path_factory.mktemp("serve-onnx") / "run"
    shutil.copytree(run_dir, run)
    export_onnx(run)
    return run


@pytest.fixture(scope="session")
def images(serve_data) -> dict[str, bytes]:
    """One real PNG per class from the training folder, as bytes."""
    return {name: (serve_data / name / "00.png").read_bytes() for name in CLASSES}
