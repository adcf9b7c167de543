"""What a run trains on: its data, the input size and colour it uses (and why), its split,
its model and its augmentation.

DATA is a folder of class sub-folders (decoded once through the data layer's cache) or a
named dataset (``mnist``, ``mnist-5k``, ``fashion-mnist:train``...). The input follows the
data where the model allows it: a folder of 64x64 RGB photos trains at 3x64x64 and MNIST at
1x28x28, whatever the model card says; a model tied to a size by pretrained weights resizes
to its card's; ``image_size``/``color_mode`` override both. :func:`choose_input` says which
input it uses and why, in one line that ``train`` prints and ``config.json`` keeps.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data import load_dataset, load_folder, parse_dataset_spec, split_indices
from cnnkit.data.datasets import is_dataset_name, list_datasets
from cnnkit.data.decode import COLOR_MODES, conform_images
from cnnkit.data.probe import profile_images
from cnnkit.data.scan import iter_image_files, list_class_folders
from cnnkit.models import create_model, get_card
from cnnkit.train.config import TrainConfig

DEFAULT_MAX_SIDE = 256
"""Without ``image_size``, larger images train scaled down to this longest side (a phone
photo's 4000x3000 would make every step slow on a CPU for no gain on small data)."""


@dataclass(frozen=True)
class InputChoice:
    """The input a run uses and why, e.g. ``3x64x64 (from the images; --image-size ...)``.

    Attributes:
        color_mode: ``grayscale``, ``rgb`` or ``rgba``.
        size: ``(H, W)``.
        reason: why, in words.
    """

    color_mode: str
    size: tuple[int, int]
    reason: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return (COLOR_MODES[self.color_mode], *self.size)

    def describe(self) -> str:
        c, h, w = self.shape
        return f"input {c}x{h}x{w} ({self.reason})"


@dataclass
class RunData:
    """The images a run uses, and where they came from."""

    arrays: Any  # cnnkit.data.ImageArrays
    color_mode: str
    source: str  # "folder" or "dataset"
    choice: InputChoice | None = None
    root: str | None = None  # the data folder's absolute path
    model: str = ""  # the model the run trains ("auto" resolved for these images)

    def summary(self) -> dict[str, Any]:
        a = self.arrays
        out = {
            "source": self.source,
            "classes": a.counts(),
            "n_images": len(a),
            "image_shape": list(a.image_shape),
            "skipped": [{"path": p, "problem": pr, "detail": d} for p, pr, d in a.skipped],
        }
        if self.choice is not None:
            out["input"] = self.choice.describe()
        if self.root is not None:
            out["root"] = self.root  # places split.csv's relative paths (evaluate)
        return out


# --------------------------------------------------------------------------- where the data is


def check_data(data: str) -> tuple[str, Path | None]:
    """``("folder", path)`` or ``("dataset", None)`` for DATA, with a clear error otherwise.

    Raises:
        FileNotFoundError: neither a folder nor a dataset name (with the closest names).
        ValueError: a file, or a folder of images without class sub-folders, or no images.
    """
    path = Path(data).expanduser()
    if path.is_dir():
        _check_layout(path)
        return "folder", path
    if path.exists():
        raise ValueError(
            f"data must be a folder of class sub-folders or a dataset name. Received: {path} "
            "(a file)"
        )
    if is_dataset_name(data):
        return "dataset", None
    raise FileNotFoundError(f"no such folder: {data}" + _suggest(data))


def _suggest(data: str) -> str:
    """``; did you mean 'fm'?`` from the folders next to DATA and the dataset names."""
    parent = Path(data).expanduser().parent
    folders = [e.name for e in os.scandir(parent) if e.is_dir()] if parent.is_dir() else []
    names = [d["name"] for d in list_datasets()]
    close = difflib.get_close_matches(Path(data).name, folders + names, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return hint + f" (DATA is a folder of class sub-folders or a dataset: {', '.join(names)})"


def _check_layout(path: Path) -> None:
    """A folder with one sub-folder per class, holding images."""
    classes = list_class_folders(str(path))
    if classes and any(iter_image_files(str(path / c)) for c in classes):
        return
    loose = [f for f in iter_image_files(str(path)) if Path(f).parent == path]
    if loose:
        raise ValueError(
            f"{path} holds {len(loose)} images but no class sub-folders; put each class's "
            f"images in a sub-folder of its own: {path}/CLASS_A/image.png, "
            f"{path}/CLASS_B/image.png, ..."
        )
    raise ValueError(
        f"no images found in {path}: expected one sub-folder per class holding image files "
        f"({path}/CLASS_A/image.png, ...); found "
        + (f"sub-folders {classes[:5]} without images" if classes else "no sub-folders")
    )


# --------------------------------------------------------------------------- which input


AUTO_MODEL = "auto"
LARGE_SIDE = 48
"""Images with both sides at least this large train :data:`LARGE_MODEL` under ``--model auto``."""
SMALL_MODEL, LARGE_MODEL = "basic_convnet", "gapnet"


def auto_model(size: tuple[int, int] | None) -> str:
    """The model ``--model auto`` (the default) trains on images of ``(H, W)``.

    Small images (MNIST's 28x28, CIFAR's 32x32) train the lecture's ``basic_convnet``; from
    :data:`LARGE_SIDE` px on, its Flatten head grows with the image (18,432 inputs per class at
    64x64) and memorises a few hundred pictures, so they train ``gapnet`` (batch norm and a
    global-average-pooled head: about 61,000 parameters at any size). On the bench's
    four-class 48x48 folder (420 images): basic_convnet at most 0.40 over a 12-run grid of
    rates and lengths, gapnet 0.72 with the defaults (bench/results/defaults.md).
    """
    if size is not None and min(size) >= LARGE_SIDE:
        return LARGE_MODEL
    return SMALL_MODEL


def auto_model_reason(data: RunData) -> str:
    """Why ``--model auto`` chose ``data.model``: one phrase for the log."""
    h, w = data.arrays.image_shape[-2:]
    if data.model == LARGE_MODEL:
        return f"{h}x{w} images, {LARGE_SIDE} px and up; --model to change"
    return f"{h}x{w} images, under {LARGE_SIDE} px; --model to change"


def _resolved(config: TrainConfig, native: tuple[int, int, int] | None) -> TrainConfig:
    """``config`` with ``model="auto"`` replaced by :func:`auto_model`'s choice."""
    if config.model != AUTO_MODEL:
        return config
    size = tuple(config.image_size) if config.image_size else (native[1:] if native else None)
    return config.replace(model=auto_model(size))  # type: ignore[arg-type]


def with_model(config: TrainConfig, data: RunData) -> TrainConfig:
    """``config`` with ``model="auto"`` replaced by the model ``data`` was loaded for."""
    if config.model != AUTO_MODEL or not data.model:
        return config
    return config.replace(model=data.model)


def choose_input(config: TrainConfig, native: tuple[int, int, int] | None) -> InputChoice:
    """The colour mode and ``(H, W)`` of the run, and why.

    Args:
        config: ``image_size``/``color_mode`` win where given; ``pretrained`` ties the
            input to the model card's.
        native: ``(C, H, W)`` of the data (a folder's typical image, a dataset's shape), or
            None when unknown.
    """
    config = _resolved(config, native)
    card = get_card(config.model)
    cc, ch, cw = card.input_size
    card_mode = {1: "grayscale", 4: "rgba"}.get(cc, "rgb")
    if config.pretrained:
        mode, size, why = card_mode, (ch, cw), f"{config.model}'s pretrained input"
        if native is not None and tuple(native) != (cc, ch, cw):
            why += f"; the images are {'x'.join(map(str, native))}, converted and resized"
    elif native is not None:
        nc, nh, nw = native
        mode, size, why = {1: "grayscale", 4: "rgba"}.get(nc, "rgb"), (nh, nw), "from the images"
        if max(size) > DEFAULT_MAX_SIDE:
            scale = DEFAULT_MAX_SIDE / max(size)
            size = (max(1, round(nh * scale)), max(1, round(nw * scale)))
            why = f"the images' {nh}x{nw}, scaled to a longest side of {DEFAULT_MAX_SIDE}"
    else:
        mode, size, why = card_mode, (ch, cw), f"{config.model}'s default"
    if config.color_mode:
        mode = config.color_mode
    if config.image_size:
        size, why = (int(config.image_size[0]), int(config.image_size[1])), "as asked"
    else:
        size, why = _at_least_min(size, card, why)
        why += "; --image-size to change"
    return InputChoice(mode, size, why)  # type: ignore[arg-type]


def _at_least_min(size: tuple[int, int], card: Any, why: str) -> tuple[tuple[int, int], str]:
    mh, mw = card.min_input_size[-2:]
    if size[0] >= mh and size[1] >= mw:
        return size, why
    bigger = (max(size[0], mh), max(size[1], mw))
    return bigger, f"{why}, enlarged to {card.name}'s minimum {mh}x{mw}"


def check_size(config: TrainConfig, size: tuple[int, int]) -> None:
    """Refuse a size the model cannot take.

    Raises:
        ValueError: smaller than the card's minimum input.
    """
    config = _resolved(config, (0, *size))
    card = get_card(config.model)
    mh, mw = card.min_input_size[-2:]
    if size[0] < mh or size[1] < mw:
        raise ValueError(
            f"input {size[0]}x{size[1]} is too small for {config.model} (minimum {mh}x{mw}). "
            f"Received: image_size={tuple(size)}"
        )


# --------------------------------------------------------------------------- loading


def load_run_data(config: TrainConfig) -> RunData:
    """Load the images named by ``config.data`` at the run's size and colour mode."""
    kind, path = check_data(config.data)
    if kind == "folder":
        assert path is not None  # noqa: S101 - check_data returns a path for folders
        profile = profile_images(iter_image_files(str(path)))
        native = None if profile is None else (
            COLOR_MODES[profile.color_mode], profile.height, profile.width
        )  # fmt: skip
        config = _resolved(config, native)
        choice = choose_input(config, native)
        check_size(config, choice.size)
        arrays = load_folder(
            path,
            image_size=choice.size,
            color_mode=choice.color_mode,
            interpolation=config.interpolation,
        )
    else:
        name, split = parse_dataset_spec(config.data)
        arrays = load_dataset(name, split=split)
        c, h, w = arrays.image_shape
        config = _resolved(config, (c, h, w))
        choice = choose_input(config, (c, h, w))
        check_size(config, choice.size)
        arrays.images = conform_images(
            arrays.images, choice.size, choice.color_mode, config.interpolation
        )
    if len(arrays) == 0:
        raise ValueError(f"no images could be decoded in {config.data}")
    if len(arrays.class_names) < 2:
        raise ValueError(
            f"{config.data}: need at least two classes to train a classifier. "
            f"Received: {arrays.class_names}"
        )
    root = os.path.abspath(path) if path is not None else None
    return RunData(arrays, choice.color_mode, kind, choice, root, config.model)


def split(arrays: Any, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/validation indices."""
    return split_indices(arrays.labels, config.validation_split, config.seed, stratified=True)


def check_split(arrays: Any, train_idx: np.ndarray, val_idx: np.ndarray, config: Any) -> None:
    """Refuse a split that leaves nothing to validate on, before any training.

    Raises:
        ValueError: the validation (or training) part is empty, naming the data and counts.
    """
    if len(val_idx) and len(train_idx):
        return
    counts = ", ".join(f"{k}: {v}" for k, v in arrays.counts().items())
    part = "validation" if not len(val_idx) else "training"
    raise ValueError(
        f"{config.data}: validation_split={config.validation_split} of {len(arrays)} images "
        f"leaves no {part} images ({counts}); add images (a few per class at least) or "
        "change validation_split"
    )


def build_model(config: TrainConfig, arrays: Any, *, pretrained: bool = True) -> torch.nn.Module:
    """The model for the run, initialised from ``config.seed`` (and its pretrained weights,
    unless ``pretrained`` is False: a resumed run's checkpoint holds the weights)."""
    c, h, w = arrays.image_shape
    torch.manual_seed(config.seed)
    return create_model(
        config.model,
        num_classes=len(arrays.class_names),
        in_chans=c,
        input_size=(c, h, w),
        pretrained=config.pretrained if pretrained else None,
    )


def build_augment(config: TrainConfig) -> Any:
    """The batched augmentation of the run, or ``None`` when none is asked for."""
    return None if config.augment.is_identity else config.augment
