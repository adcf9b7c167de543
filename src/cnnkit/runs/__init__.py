"""Run folders: their layout, how they are created and read back, and running their model.

The stage between the model zoo and the trainer: ``train`` writes run folders through it;
``evaluate``, ``explain``, ``report``, ``serve`` and the CLI read them through it, so none of
them needs the trainer.

>>> from cnnkit.runs import load_run
>>> run = load_run("runs/digits")                       # doctest: +SKIP
>>> run.predict_proba(images).argmax(1)                  # doctest: +SKIP
"""

from cnnkit.runs.config import read_run_config
from cnnkit.runs.inference import (
    Normalizer,
    Precision,
    model_normalizer,
    predict_proba,
    prepare_batch,
)
from cnnkit.runs.layout import (
    HISTORY_FIELDS,
    RunDir,
    RunExistsError,
    adopt_run_dir,
    create_run_dir,
    discard_if_unstarted,
    is_run_dir,
)
from cnnkit.runs.loaded import LoadedRun, load_run
from cnnkit.runs.source import Source, load_images, resolve_source
from cnnkit.runs.split import read_split, read_split_rows, training_paths, write_split
from cnnkit.runs.weights import load_weights, save_weights

__all__ = [
    "HISTORY_FIELDS",
    "LoadedRun",
    "Normalizer",
    "Precision",
    "RunDir",
    "RunExistsError",
    "Source",
    "adopt_run_dir",
    "create_run_dir",
    "discard_if_unstarted",
    "is_run_dir",
    "load_images",
    "load_run",
    "load_weights",
    "model_normalizer",
    "predict_proba",
    "prepare_batch",
    "read_run_config",
    "read_split",
    "read_split_rows",
    "resolve_source",
    "save_weights",
    "training_paths",
    "write_split",
]
