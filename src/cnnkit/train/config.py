"""The one frozen settings object behind ``cnnkit train`` and ``cnnkit.train.fit``.

CLI flags map 1:1 onto the fields (``--batch-size`` -> ``batch_size``); ``--config FILE``
loads the same fields from YAML or JSON. The resolved object is saved as
``RUN/config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COLOR_MODES = ("grayscale", "rgb", "rgba")
CLASS_WEIGHTS = ("none", "balanced")
STRATEGIES = ("features", "frozen", "finetune")
BN_MODES = ("frozen", "train")

# Keys that define what a run *is*; resuming with any of them changed is refused.
IDENTITY_KEYS = (
    "data",
    "model",
    "epochs",
    "image_size",
    "color_mode",
    "seed",
    "validation_split",
    "folds",
    "pretrained",
    "strategy",
    "batch_size",
    "optimizer",
    "schedule",
    "augment",
    "class_weight",
    "label_smoothing",
)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}. Received: {name}={value!r}")


def _positive(name: str, value: float | int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number. Received: {name}={value!r}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Every setting of a training run.

    Attributes:
        data: a folder of class sub-folders, or a named dataset (``mnist``, ``mnist-5k:train``).
        model: a registered model name (``cnnkit.models.list_models()``).
        epochs: passes over the training split.
        batch_size: images per step.
        lr: learning rate; ``None`` uses the optimiser's usual default (adam 1e-3, sgd 1e-2).
        optimizer: ``sgd`` (with ``momentum``), ``adam``, ``adamw`` or ``rmsprop``.
        schedule: ``none``, ``step``, ``cosine``, ``onecycle`` or ``plateau``.
        precision: ``auto`` chooses from the hardware and records why; or ``fp32|bf16|fp16``.
        image_size: ``(H, W)``; ``None`` uses the model card's.
        color_mode: ``grayscale``, ``rgb`` or ``rgba``; ``None`` uses the model card's.
        validation_split: fraction held out (stratified, seeded) for validation.
        seed: seeds the split, the shuffling, augmentation and initialisation.
        class_weight: ``balanced`` weights the loss by inverse class frequency.
        folds: ``K > 1`` runs stratified K-fold cross-validation.
        augment: ImageDataGenerator-style settings (``cnnkit.data.Augment`` fields).
        early_stopping: patience in epochs on validation loss (0 = off); restores the best.
        threads: CPU threads for training (None: PyTorch's default, one per core). Fewer
            than the cores helps when other programs keep some of them busy: a thread that
            waits for a busy core stalls every step. Bit-identical resumes need the same count.
    """

    data: str
    model: str = "basic_convnet"
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    precision: str = "auto"
    image_size: tuple[int, int] | None = None
    color_mode: str | None = None
    interpolation: str = "bilinear"
    validation_split: float = 0.2
    seed: int = 0
    class_weight: str = "none"
    label_smoothing: float = 0.0
    folds: int = 1
    devices: int = 1
    early_stopping: int = 0
    augment: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    strategy: str | None = None
    unfreeze: int = 0
    bn: str = "frozen"
    checkpoint_every: int = 1
    max_steps_per_epoch: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if not str(self.data):
            raise ValueError("data must name a folder or a dataset. Received: data=''")
        for name in ("epochs", "batch_size", "folds", "devices", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int. Received: {name}={v!r}")
        _positive("lr", self.lr, allow_none=True)
        if self.threads is not None and (
            not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1
        ):
            raise ValueError(f"threads must be a positive int. Received: threads={self.threads!r}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        _choice("bn", self.bn, BN_MODES)
        if self.color_mode is not None:
            _choice("color_mode", self.color_mode, COLOR_MODES)
        if self.strategy is not None:
            _choice("strategy", self.strategy, STRATEGIES)
            if self.pretrained is None:
                raise ValueError(
                    f"strategy={self.strategy!r} needs pretrained weights. "
                    "Received: pretrained=None"
                )
        if self.image_size is not None:
            size = tuple(self.image_size)
            if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
                raise ValueError(
                    "image_size must be two positive ints. "
                    f"Received: image_size={self.image_size!r}"
                )
            object.__setattr__(self, "image_size", size)
        if not 0.0 < self.validation_split < 1.0:
            raise ValueError(
                "validation_split must be between 0 and 1 (exclusive). "
                f"Received: validation_split={self.validation_split!r}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing must be in [0, 1). Received: {self.label_smoothing!r}"
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0. Received: {self.weight_decay!r}")
        if self.early_stopping < 0:
            raise ValueError(f"early_stopping must be >= 0. Received: {self.early_stopping!r}")
        object.__setattr__(self, "model", self.model.strip().lower().replace("-", "_"))
        object.__setattr__(self, "augment", dict(self.augment or {}))

    @property
    def resolved_lr(self) -> float:
        """The learning rate actually used."""
        if self.lr is not None:
            return float(self.lr)
        return {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are a clear error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown config keys: {', '.join(unknown)}. "
                f"Expected some of: {', '.join(sorted(known))}"
            )
        d = dict(d)
        if d.get("image_size") is not None:
            d["image_size"] = tuple(d["image_size"])
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict of TrainConfig fields.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file does not parse or is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{p}: cannot parse config ({_parse_reason(e)})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{p}: a config file must hold a mapping of settings. Received: {type(data).__name__}"
        )
    return {k.replace("-", "_"): v for k, v in data.items()}


def _parse_reason(e: BaseException) -> str:
    """One line for a JSON/YAML parse error: what is wrong and where (YAML's own message
    spans lines: the problem, the place and a caret)."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem:  # yaml.MarkedYAMLError
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        tags = "; config files are plain YAML: no tags" if "tag" in problem else ""
        return f"{problem}{where}{tags}"
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The identity keys whose values differ between two config dicts."""
    return [k for k in IDENTITY_KEYS if _norm(old.get(k)) != _norm(new.get(k))]


def _norm(v: Any) -> Any:
    return json.loads(json.dumps(v)) if v is not None else None
