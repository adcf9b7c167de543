"""The one frozen settings object behind ``cnnkit train`` and ``cnnkit.train.fit``.

Each setting is declared once, as a field with its help, choices and label
(:func:`cnnkit.settings.setting`): ``cnnkit train``'s options (``--batch-size`` ->
``batch_size``), the report's settings table and its reproduce command are generated from
the fields. ``--config FILE`` loads the same fields from YAML or JSON. The resolved object is
saved as ``RUN/config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from cnnkit.data.augment import Augment
from cnnkit.data.decode import COLOR_MODES, INTERPOLATIONS
from cnnkit.settings import default_of, flag, label, meta, setting

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CLASS_WEIGHTS = ("none", "balanced")
STRATEGIES = ("features", "frozen", "finetune")
BN_MODES = ("frozen", "train")


AUTO = "auto"
USUAL_LR = {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}


def parse_lr(value: Any) -> float | str | None:
    """``"auto"``, ``None`` (the optimiser's usual rate) or a positive number (also as text)."""
    if value is None or value == AUTO:
        return value
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not number > 0 or math.isinf(number):
        raise ValueError(f"lr must be a positive number or 'auto'. Received: lr={value!r}")
    return number


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}. Received: {name}={value!r}")


def _posint(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Every setting of a training run (each field's help says what it does).

    ``augment`` is a :class:`cnnkit.data.Augment` (a dict of its fields is accepted and
    checked at once, so a bad augmentation value fails before any image is decoded).
    """

    data: str = setting(
        help="Folder of class sub-folders, or a dataset name (mnist-5k, fashion-mnist, ...).",
        argument=True, identity=True, label="Data",
    )  # fmt: skip
    model: str = setting(
        "auto",
        "Model name; `cnnkit models` lists them. auto: basic_convnet for images under 48 px, "
        "gapnet (batch norm, global average pooling) from 48 px on.",
        identity=True,
        label="Model",
    )
    epochs: int | None = setting(
        None, "Passes over the training images, exactly (default: sized from the data, with "
        "early stopping).", identity=True, label="Epochs",
    )  # fmt: skip
    batch_size: int = setting(64, "Images per step.", identity=True, label="Batch size")
    lr: float | str | None = setting(
        AUTO, "Peak learning rate, or auto: a short range test picks it (its plot is in the "
        "report).", label="Learning rate", cli_type=str, parser=parse_lr, metavar="LR|auto",
    )  # fmt: skip
    optimizer: str = setting("adam", "", choices=OPTIMIZERS, identity=True, label="Optimiser")
    momentum: float = setting(0.9, "SGD momentum.", label="Momentum")
    weight_decay: float = setting(0.0, "L2 penalty (AdamW: decoupled).", label="Weight decay")
    schedule: str = setting(
        "onecycle", "Learning-rate schedule.", choices=SCHEDULES, identity=True,
        label="LR schedule",
    )  # fmt: skip
    precision: str = setting(
        "auto", "auto decides from the hardware (and records why).", choices=PRECISIONS,
        label="Precision",
    )  # fmt: skip
    image_size: tuple[int, int] | None = setting(
        None, "H W (default: the images' own size; a pretrained model's input).",
        identity=True, metavar="H W", label="Image size",
    )  # fmt: skip
    color_mode: str | None = setting(
        None, "Default: the images' own.", choices=tuple(COLOR_MODES), identity=True,
        label="Colour mode",
    )  # fmt: skip
    interpolation: str = setting(
        "bilinear", "Resize filter.", choices=tuple(INTERPOLATIONS), label="Resize filter"
    )
    validation_split: float = setting(
        0.2, "Fraction held out (stratified, seeded).", identity=True, label="Validation split"
    )
    seed: int = setting(
        0, "Seeds the split, shuffling, augmentation and initialisation.", identity=True,
        label="Seed",
    )  # fmt: skip
    class_weight: str = setting(
        "none", "balanced: weight the loss by inverse class frequency.",
        choices=CLASS_WEIGHTS, identity=True, label="Class weights",
    )  # fmt: skip
    label_smoothing: float = setting(0.0, "In [0, 1).", identity=True, label="Label smoothing")
    folds: int = setting(
        1, "K > 1: stratified K-fold cross-validation.", identity=True, label="Folds"
    )
    devices: int = setting(1, "Local processes for data-parallel training.", label="Processes")
    early_stopping: int | None = setting(
        None, "Patience in epochs on the validation loss (0 = off); restores the best weights "
        "(default: on when the epochs are sized from the data).",
        label="Early-stopping patience",
    )  # fmt: skip
    augment: Augment = setting(
        default_factory=Augment, help="ImageDataGenerator-style augmentation.",
        identity=True, expand=True, label="Augmentation",
    )  # fmt: skip
    pretrained: str | None = setting(
        None, "Weights: imagenet, a torchvision/timm name, a file.", identity=True,
        label="Pretrained weights",
    )  # fmt: skip
    strategy: str | None = setting(
        None, "Transfer learning with pretrained weights.", choices=STRATEGIES,
        identity=True, label="Transfer strategy",
    )  # fmt: skip
    unfreeze: int = setting(0, "finetune: top N block groups to unfreeze.", label="Unfrozen blocks")
    bn: str = setting("frozen", "finetune: BatchNorm statistics.", choices=BN_MODES,
                      label="BatchNorm")  # fmt: skip
    checkpoint_every: int = setting(
        1, "Resumable checkpoint every N epochs.", label="Checkpoint every"
    )
    max_steps_per_epoch: int | None = setting(
        None, "Cap the steps per epoch (quick trials).", label="Max steps per epoch"
    )
    threads: int | None = setting(
        None, "CPU threads (default: one per core; fewer on a busy machine).", label="Threads"
    )

    def __post_init__(self) -> None:
        if not str(self.data):
            raise ValueError("data must name a folder or a dataset. Received: data=''")
        for name in ("batch_size", "folds", "devices", "checkpoint_every"):
            _posint(name, getattr(self, name))
        for name in ("epochs", "threads", "max_steps_per_epoch"):
            _posint(name, getattr(self, name), allow_none=True)
        object.__setattr__(self, "lr", parse_lr(self.lr))
        for f in fields(self):
            allowed = meta(f)["choices"]
            value = getattr(self, f.name)
            if allowed and value is not None:
                _choice(f.name, value, allowed)
        self._check_transfer()
        self._check_numbers()
        object.__setattr__(self, "model", self.model.strip().lower().replace("-", "_"))
        if not isinstance(self.augment, Augment):
            object.__setattr__(self, "augment", Augment.from_dict(dict(self.augment or {})))

    def _check_transfer(self) -> None:
        if self.pretrained is not None and self.model.strip().lower() == "auto":
            raise ValueError(
                "pretrained weights belong to a named model: pass --model (e.g. resnet18). "
                "Received: model='auto'"
            )
        if self.strategy is not None and self.pretrained is None:
            raise ValueError(
                f"strategy={self.strategy!r} needs pretrained weights. Received: pretrained=None"
            )
        if (
            isinstance(self.unfreeze, bool)
            or not isinstance(self.unfreeze, int)
            or self.unfreeze < 0
        ):
            raise ValueError(f"unfreeze must be an int >= 0. Received: unfreeze={self.unfreeze!r}")

    def _check_numbers(self) -> None:
        if self.image_size is not None:
            size = tuple(self.image_size)
            if len(size) != 2 or any(
                not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in size
            ):
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
        es = self.early_stopping
        if es is not None and (not isinstance(es, int) or isinstance(es, bool) or es < 0):
            raise ValueError(f"early_stopping must be an int >= 0. Received: {es!r}")

    @property
    def lr_auto(self) -> bool:
        """Whether a range test chooses the learning rate (``lr="auto"``)."""
        return self.lr == AUTO

    @property
    def resolved_lr(self) -> float:
        """The learning rate used: ``lr``, else the optimiser's usual (the starting point
        before a range test replaces it; ``None`` asks for the usual one outright)."""
        if isinstance(self.lr, float):
            return self.lr
        return USUAL_LR[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; ``augment`` holds only the settings that differ from the defaults."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["image_size"] = list(self.image_size) if self.image_size else None
        d["augment"] = self.augment.changed()
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

    def cli_args(self) -> list[list[str]]:
        """The ``cnnkit train`` options that give this config, one group per setting that
        differs from its default, and the model always (DATA, the positional argument, is
        not among them)."""
        groups = []
        for f in fields(self):
            if not meta(f)["cli"] or meta(f)["argument"]:
                continue
            if meta(f)["expand"]:
                groups += _changed_args(getattr(self, f.name))
            else:
                groups += _changed_args_of(f, getattr(self, f.name), f.name == "model")
        return groups

    def reproduce(self, out: str) -> str:
        """A ``cnnkit train`` command line that trains this config into ``out``."""
        parts = [["cnnkit", "train", self.data], ["--out", out], *self.cli_args()]
        return " ".join(" ".join(shlex.quote(a) for a in g) for g in parts)

    def table(self) -> list[tuple[str, str]]:
        """``(label, value)`` of every setting that differs from its default, the data and
        model first; augmentation settings each on a row of their own."""
        rows = []
        for f in fields(self):
            value = getattr(self, f.name)
            if meta(f)["expand"]:
                rows += [(label(g), _text(getattr(value, g.name))) for g in _changed_fields(value)]
            elif value != default_of(f) or f.name in ("data", "model", "epochs"):
                rows.append((label(f), _text(value)))
        return rows


# --------------------------------------------------------------------------- CLI text


def _changed_fields(obj: Any) -> list[dataclasses.Field]:
    changed = obj.changed() if hasattr(obj, "changed") else {}
    return [f for f in fields(obj) if f.name in changed and meta(f)["cli"]]


def _changed_args(obj: Any) -> list[list[str]]:
    return [
        g for f in _changed_fields(obj) for g in _changed_args_of(f, getattr(obj, f.name), True)
    ]


def _changed_args_of(f: dataclasses.Field, value: Any, changed: bool = False) -> list[list[str]]:
    if not changed and value == default_of(f):
        return []
    if value is None:
        return []
    if isinstance(value, bool):
        return [[flag(f.name)]] if value else []
    if f.name == "zoom_range" and isinstance(value, tuple):  # the CLI's z for (1 - z, 1 + z)
        return [[flag(f.name), _num(value[1] - 1.0)]]
    if isinstance(value, (tuple, list)):
        return [[flag(f.name), *(_num(v) for v in value)]]
    return [[flag(f.name), _num(value)]]


def _num(v: Any) -> str:
    return format(v, "g") if isinstance(v, float) else str(v)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " x ".join(_text(v) for v in value) if value else "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, "g")
    return "-" if value is None else str(value)


def identity_keys() -> tuple[str, ...]:
    """Keys that define what a run *is*; resuming with any of them changed is refused."""
    return tuple(f.name for f in fields(TrainConfig) if meta(f)["identity"])


IDENTITY_KEYS = identity_keys()


def field_types() -> dict[str, Any]:
    """``{field: type}`` of TrainConfig with the string annotations resolved."""
    return typing.get_type_hints(TrainConfig)


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
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ValueError(f"{p}: cannot parse config ({_parse_reason(e)})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{p}: a config file must hold a mapping of settings. Received: {type(data).__name__}"
        )
    return {str(k).replace("-", "_"): v for k, v in data.items()}


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
