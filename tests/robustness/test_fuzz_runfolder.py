"""Fuzzing run folders: ``load_run`` gives a LoadedRun or RunFolderError/ValueError, and
weights holding NaN or infinity give predictions that are finite or errors naming the file."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import fuzz_settings, mutated
from rb_helpers import record

from cnnkit.runs import LoadedRun, load_run

pytestmark = pytest.mark.fuzz
COUNT = {"examples": 0, "loaded": 0, "non_finite_examples": 0, "non_finite_errors": 0}
VALUES = [float("nan"), float("inf"), float("-inf"), 3.0e38, -3.0e38]


@pytest.fixture(scope="module")
def seeds(tiny_run):
    return {
        "config.json": (tiny_run / "config.json").read_bytes(),
        "model.safetensors": (tiny_run / "model.safetensors").read_bytes(),
    }


def _fuzz_one(tiny_run: Path, target: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        for name in ("config.json", "model.safetensors"):
            shutil.copyfile(tiny_run / name, run / name)
        (run / target).write_bytes(data)
        try:
            loaded = load_run(run)
        except ValueError:  # RunFolderError is a ValueError (CnnkitError)
            return
        assert isinstance(loaded, LoadedRun) and len(loaded.class_names) >= 1
        COUNT["loaded"] += 1


@fuzz_settings()
@given(data=st.data())
def test_fuzz_load_run(tiny_run, seeds, data):
    target = data.draw(st.sampled_from(sorted(seeds)))
    # Few edits: a flipped digit in image_size is a new (valid) size, not a huge one.
    _, damaged = data.draw(mutated({target: seeds[target]}, max_edits=4))
    COUNT["examples"] += 1
    _fuzz_one(tiny_run, target, damaged)


@fuzz_settings(most=300)
@given(data=st.data())
def test_fuzz_non_finite_weights(tiny_run, data):
    import json

    import numpy as np
    from safetensors.torch import load_file, save_file

    from cnnkit.serve.predictor import Predictor

    state = load_file(str(tiny_run / "model.safetensors"))
    floats = sorted(k for k, v in state.items() if v.is_floating_point())
    for name in data.draw(st.lists(st.sampled_from(floats), min_size=1, max_size=3)):
        flat = state[name].view(-1)
        for _ in range(data.draw(st.integers(1, 5))):
            flat[data.draw(st.integers(0, flat.numel() - 1))] = data.draw(st.sampled_from(VALUES))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    COUNT["non_finite_examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoint"))
        save_file(state, str(run / "model.safetensors"))
        predictor = Predictor(run)
        shape = (3, {"grayscale": 1, "rgb": 3, "rgba": 4}[predictor.run.color_mode],
                 *predictor.run.image_size)  # fmt: skip
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        results = predictor.predict_arrays(images, ["a.png", "b.png", "c.png"])
    json.dumps(results, allow_nan=False)  # valid JSON, whatever the weights hold
    for r, name in zip(results, ["a.png", "b.png", "c.png"], strict=True):
        if "error" in r:
            assert set(r) == {"file", "error"} and r["error"].startswith(f"{name}: ")
            COUNT["non_finite_errors"] += 1
        else:
            assert 0.0 <= r["probability"] <= 1.0


def test_fuzz_load_run_counted():
    assert COUNT["examples"] > 0
    assert COUNT["non_finite_errors"] > 0, COUNT  # NaN weights were reached and refused
    record("fuzz", run_folder_examples=COUNT["examples"],
           non_finite_weight_examples=COUNT["non_finite_examples"])  # fmt: skip
