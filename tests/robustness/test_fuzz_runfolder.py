"""Fuzzing run-folder loading: ``load_run`` gives a LoadedRun or RunFolderError/ValueError."""

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
COUNT = {"examples": 0, "loaded": 0}


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


def test_fuzz_load_run_counted():
    assert COUNT["examples"] > 0
    record("fuzz", run_folder_examples=COUNT["examples"])
