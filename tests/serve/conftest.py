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


@pytest.fixture(scope="session")
def silent_run(tmp_path_factory, run_dir) -> Path:
    """A copy of :func:`run_dir` whose head ignores the features (class 0, ``bottom``, by its
    bias alone): every Grad-CAM map is zero, there is no positive evidence to show."""
    from safetensors.torch import load_file, save_file

    run = tmp_path_factory.mktemp("serve-silent") / "run"
    shutil.copytree(run_dir, run)
    state = load_file(run / "model.safetensors")
    state["fc.weight"] = state["fc.weight"] * 0
    state["fc.bias"] = state["fc.bias"] * 0
    state["fc.bias"][0] = 5.0
    save_file(state, run / "model.safetensors")
    return run


def serve_in_thread(run: Path):
    """Serve ``run`` with uvicorn in a thread on 127.0.0.1 (a free port); yields its URL."""
    import threading
    import time

    import uvicorn

    from cnnkit.serve.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(run), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_url(run_dir):
    """The app served by uvicorn in a thread on 127.0.0.1 (a free port); yields its URL."""
    yield from serve_in_thread(run_dir)


@pytest.fixture(scope="module")
def silent_live_url(silent_run):
    """:func:`live_url` for :func:`silent_run`."""
    yield from serve_in_thread(silent_run)
