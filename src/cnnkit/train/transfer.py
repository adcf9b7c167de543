"""Transfer learning as phases of the one training loop (``cnnkit train --strategy``).

- ``features``: run the frozen base once over all images, cache the feature maps on disk
  (keyed on the base's weights, the images and the preprocessing), train the head on them
  (one phase, ``forward="head"``, no augmentation). The saved model is base + head.
- ``frozen``: base frozen (no gradients, BatchNorm in inference mode), new head,
  augmentation in the loop (one phase).
- ``finetune``: the head first with the base frozen (``epochs // 2`` epochs), then the top
  ``--unfreeze N`` block groups (0 = the top one) for the remaining epochs at low rates:
  ``lr * BASE_LR_FACTOR`` for the base and ``lr * HEAD_LR_FACTOR`` for the head.

``lr`` is the head's learning rate. Without ``--lr`` it is ``HEAD_LR_MULTIPLIER`` times the
optimiser's usual default (Adam 1e-2): a new head on fixed features sees few steps on small
data, and at the default whole-network rate it is still underfitting when training ends.
BatchNorm stays in inference mode unless ``--bn train``.

Every strategy checks that the frozen part is bit-identical after each phase (parameters
and BatchNorm buffers; :class:`FrozenCheck`) and records it in config.json under
``transfer``. Training, checkpoints, resume and data-parallel runs are the loop's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from cnnkit.data.cache import own_subdir
from cnnkit.fileio import atomic_write_bytes
from cnnkit.models.pretrained import zero_classifier
from cnnkit.models.transfer import (
    changed_since,
    describe,
    freeze_base,
    frozen_snapshot,
    head_names,
    head_parameters,
    unfreeze_top,
)
from cnnkit.runs.inference import model_normalizer
from cnnkit.train.callbacks import Callback, TrainState
from cnnkit.train.loop import ParamGroups, Phase

HEAD_LR_MULTIPLIER = 10.0  # head-only training without --lr: 10x the optimiser's default
BASE_LR_FACTOR = 0.01  # finetune phase 2: unfrozen base at head lr * 0.01
HEAD_LR_FACTOR = 0.1  # finetune phase 2: head at head lr * 0.1


def new_head(model: Any) -> None:
    """A new task gets a new classifier, even when the weights' head had as many classes.

    The last layer starts at zero (uniform predictions); a VGG/AlexNet hidden head keeps its
    pretrained dense layers.
    """
    model.reset_classifier(model.num_classes)
    zero_classifier(model)
    info = getattr(model, "pretrained_info", None)
    if info is not None and not info.fresh_head:
        info.fresh_head = True
        info.notes.append("classifier replaced for the new task")


def head_lr(config: Any) -> float:
    """The head's learning rate: ``config.lr`` when it is a number, else 10x the optimiser's
    usual default (the starting point a range test replaces when ``lr`` is ``auto``)."""
    if isinstance(config.lr, (int, float)) and not isinstance(config.lr, bool):
        return float(config.lr)
    return HEAD_LR_MULTIPLIER * config.resolved_lr


def transfer_phases(config: Any, lr: float) -> list[Phase]:
    """The phases of ``config.strategy`` over ``config.epochs`` epochs at head rate ``lr``."""
    strategy = config.strategy
    if strategy == "features":
        return [Phase("head", config.epochs, _freeze, augment=False, forward="head")]
    if strategy == "frozen":
        return [Phase("head", config.epochs, _freeze)]
    if strategy == "finetune":
        head = max(1, config.epochs // 2)
        tune = max(1, config.epochs - head)
        return [Phase("head", head, _freeze), Phase("finetune", tune, _unfreezer(config, lr))]
    raise ValueError(f"strategy must be features, frozen or finetune. Received: {strategy!r}")


def _freeze(model: nn.Module) -> None:
    freeze_base(model)
    return None


def _unfreezer(config: Any, lr: float):
    """Phase set-up: the top ``unfreeze`` block groups train, base slower than the head."""

    def setup(model: nn.Module) -> ParamGroups:
        freeze_base(model)
        unfreeze_top(model, config.unfreeze or 1, bn=config.bn)
        return param_groups(model, lr)

    return setup


def param_groups(model: nn.Module, lr: float) -> ParamGroups:
    """Discriminative rates: unfrozen base parameters slower than the head."""
    head = {id(p) for p in head_parameters(model)}
    base = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    return [
        {"params": base, "lr": lr * BASE_LR_FACTOR},
        {"params": [p for p in model.parameters() if id(p) in head], "lr": lr * HEAD_LR_FACTOR},
    ]


class FrozenCheck(Callback):
    """Checks that what a phase froze is bit-identical at its end; records what trained.

    ``state.extra["transfer"]`` gets the last phase's :func:`cnnkit.models.transfer.describe`
    plus ``frozen_changed`` (names of frozen tensors that moved: empty when all is well).
    """

    def __init__(self, bn: str) -> None:
        self.bn = bn
        self._before: dict[str, torch.Tensor] = {}

    def on_phase_start(self, state: TrainState) -> None:
        self._before = frozen_snapshot(state.model)
        state.extra["transfer"] = describe(state.model, self.bn if state.phase else "frozen")

    def on_phase_end(self, state: TrainState) -> None:
        state.extra["transfer"]["frozen_changed"] = changed_since(self._before, state.model)


# --- features: cached base outputs ---------------------------------------------------------

FEATURE_CACHE_VERSION = 1


def feature_cache_key(model: Any, images: np.ndarray) -> str:
    """sha256 over the base's weights, the images and the preprocessing (not the head).

    Shape:
        images: ``(N, C, H, W)`` uint8.
    """
    card = getattr(model, "card", None)
    h = hashlib.sha256()
    pre = (
        FEATURE_CACHE_VERSION,
        getattr(card, "name", type(model).__name__),
        getattr(card, "mean", None),
        getattr(card, "std", None),
        tuple(images.shape),
    )
    h.update(repr(pre).encode())
    head = tuple(n + "." for n in head_names(model))
    for name, t in sorted(model.state_dict().items()):
        if not name.startswith(head):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def cached_features(
    model: Any, images: np.ndarray, dev: torch.device, batch_size: int = 256
) -> tuple[torch.Tensor, bool, Path]:
    """``model.forward_features`` of every image, from the on-disk cache when it matches.

    The cache lives in ``$CNNKIT_CACHE_DIR/features/<key>.safetensors`` (``features-<uid>/``
    where another user made ``features/``); any change to the base's weights, the images or
    the preprocessing gives a new key (a miss).

    Returns:
        ``(features, hit, path)``; features float32 on the CPU.

    Shape:
        images: ``(N, C, H, W)`` uint8 -> features ``(N, num_features, h, w)``.
    """
    path = own_subdir("features") / f"{feature_cache_key(model, images)}.safetensors"
    if path.is_file():
        feats = load_file(str(path))["features"]
        if len(feats) == len(images):
            return feats, True, path
    was_training = model.training
    model.eval().to(dev)
    norm = model_normalizer(model, images.shape[1], dev)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = norm(torch.from_numpy(np.array(images[i : i + batch_size])).to(dev))
            out.append(model.forward_features(x).float().cpu())
    model.train(was_training)
    feats = torch.cat(out).contiguous()
    atomic_write_bytes(path, save({"features": feats}))
    return feats, False, path
