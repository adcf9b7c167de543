"""Shared fixtures of the robustness suite: the tricky corpus, a tiny trained run, figures.

Set ``CNNKIT_ROBUSTNESS_FIGURES=FILE.json`` to have the tests record what they tried (files,
crashes, kill points, uploads, fuzz examples); ``bench/robustness.py`` does this and turns
the file into the table of ``docs/robustness.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from corpus import make_corpus  # noqa: E402
from rb_helpers import band_folder, child_env  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fuzz: hypothesis fuzzing; CNNKIT_FUZZ_EXAMPLES sets the examples (make fuzz)"
    )


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
