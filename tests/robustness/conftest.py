"""Shared fixtures of the robustness suite: the tricky corpus, a tiny trained run, figures.

Set ``CNNKIT_ROBUSTNESS_FIGURES=FILE.json`` to have the tests record what they tried (files,
crashes, kill points, uploads, fuzz examples); ``bench/robustness.py`` does this and turns
the file into the table of ``docs/robustness.md``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from corpus import make_corpus  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fuzz: hypothesis fuzzing; CNNKIT_FUZZ_EXAMPLES sets the examples (make fuzz)"
    )


def fuzz_examples(default: int = 30) -> int:
    """Hypothesis ``max_examples``: ``$CNNKIT_FUZZ_EXAMPLES`` (2000 in ``make fuzz``)."""
    return int(os.environ.get("CNNKIT_FUZZ_EXAMPLES", default))


def record(name: str, **values) -> None:
    """Add ``values`` under ``name`` to ``$CNNKIT_ROBUSTNESS_FIGURES`` (when it is set)."""
    target = os.environ.get("CNNKIT_ROBUSTNESS_FIGURES")
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = {**data.get(name, {}), **values}
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def band_folder(root: Path, per_class: int = 8, size: int = 28, seed: int = 0) -> Path:
    """Three classes of grey PNGs (a bright band on top, middle or bottom)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("top", "middle", "bottom")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size), dtype=np.uint8)
            band = slice(c * size // 3, (c + 1) * size // 3)
            img[band, :] = rng.integers(180, 255, img[band].shape, dtype=np.uint8)
            Image.fromarray(img).save(root / name / f"{i:02d}.png")
    return root


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a cnnkit subprocess: one thread, this interpreter's package."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("CNNKIT_DEBUG", None)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """``(root, entries)`` of the tricky image corpus (see ``corpus.py``)."""
    root = tmp_path_factory.mktemp("corpus") / "data"
    return root, make_corpus(root)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A one-epoch basic_convnet run, trained through the CLI on a small band folder."""
    import subprocess

    base = tmp_path_factory.mktemp("tiny-run")
    data = band_folder(base / "data")
    run = base / "run"
    cmd = [sys.executable, "-m", "cnnkit", "train", str(data), "--out", str(run), "--epochs", "1",
           "--batch-size", "8", "--no-report", "--precision", "fp32"]  # fmt: skip
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run
