"""Training: the fit loop, callbacks, metrics, atomic checkpoints and run folders.

>>> from cnnkit.train import TrainConfig, train_run
>>> result = train_run(TrainConfig(data="mnist-5k", model="basic_convnet", epochs=3), "runs/a")
"""

from cnnkit.runs import LoadedRun, Precision, load_run  # the runs stage's; kept here for callers
from cnnkit.train.callbacks import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    ProgressBar,
    TrainState,
)
from cnnkit.train.config import TrainConfig, load_config_file
from cnnkit.train.learning_curves import CurveResult, learning_curve, resume_learning_curve
from cnnkit.train.loop import FitResult, Tensors, TrainingDiverged, fit
from cnnkit.train.lr_find import LRFinding, find_lr
from cnnkit.train.metrics import classification_metrics, wilson_interval
from cnnkit.train.precision import choose_precision
from cnnkit.train.run import RunResult, find_run_lr, resume_run, train_run

__all__ = [
    "Callback",
    "Checkpoint",
    "CSVLogger",
    "CurveResult",
    "EarlyStopping",
    "FitResult",
    "LRFinding",
    "LoadedRun",
    "Precision",
    "ProgressBar",
    "RunResult",
    "Tensors",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "choose_precision",
    "classification_metrics",
    "find_lr",
    "find_run_lr",
    "fit",
    "learning_curve",
    "load_config_file",
    "load_run",
    "resume_learning_curve",
    "resume_run",
    "train_run",
    "wilson_interval",
]
