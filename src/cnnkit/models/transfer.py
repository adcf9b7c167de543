"""Freezing and unfreezing a pretrained model: the base, its BatchNorm, its top N blocks.

The *head* is the model's head modules (``_head_module_names()``: the classifier and, for
VGG/AlexNet, its hidden dense layers); the *base* is everything else, split into the
card's ``block_groups`` (input to output) for ``--unfreeze N``.

Frozen BatchNorm stays in inference mode even when the training loop calls
``model.train()``: a forward pre-hook puts the layer back in eval mode before every call,
so its running statistics never move (Keras' ``training=False``).

>>> freeze_base(model)                      # only the head trains
>>> unfreeze_top(model, 2, bn="frozen")     # then the top 2 block groups too
>>> before = frozen_snapshot(model); ...; changed_since(before, model)
[]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

BN_MODES = ("frozen", "train")


def _check_bn(bn: str) -> None:
    if bn not in BN_MODES:
        raise ValueError(f"bn must be 'frozen' or 'train'. Received: bn={bn!r}")


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Module paths of the model's head (``()`` when it has none)."""
    fn = getattr(model, "_head_module_names", None)
    return tuple(fn()) if fn is not None else ()


def _in(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + ".") for r in roots)


def base_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(path, module)`` of every module of the base (not under a head module)."""
    head = head_names(model)
    return [(p, m) for p, m in model.named_modules() if p and not _in(p, head)]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the head modules."""
    head = head_names(model)
    return [p for n, p in model.named_parameters() if _in(n.rpartition(".")[0], head)]


def _keep_eval(module: nn.Module, args: Any) -> None:
    module.train(False)  # model.train() flipped it back; frozen BN stays in inference mode


def _bn_hooks(model: nn.Module) -> dict[str, Any]:
    hooks = getattr(model, "_cnnkit_bn_hooks", None)
    if hooks is None:
        hooks = {}
        object.__setattr__(model, "_cnnkit_bn_hooks", hooks)
    return hooks


def _freeze_bn(model: nn.Module, path: str, module: nn.Module) -> None:
    hooks = _bn_hooks(model)
    if path not in hooks:
        hooks[path] = module.register_forward_pre_hook(_keep_eval)
    module.train(False)


def _release_bn(model: nn.Module, path: str, module: nn.Module) -> None:
    handle = _bn_hooks(model).pop(path, None)
    if handle is not None:
        handle.remove()
    module.train(model.training)


def freeze_base(model: nn.Module) -> None:
    """Freeze the base: no gradients, BatchNorm in inference mode (statistics fixed).

    The head stays trainable. Calling it again is harmless.

    Raises:
        ValueError: the model has no head modules to train.
    """
    if not head_names(model) or getattr(model, "num_classes", 1) == 0:
        raise ValueError(
            "freeze_base needs a model with a classifier head (num_classes > 0). "
            f"Received: num_classes={getattr(model, 'num_classes', None)!r}"
        )
    for path, m in base_modules(model):
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
        if isinstance(m, _BatchNorm):
            _freeze_bn(model, path, m)
    for p in head_parameters(model):
        p.requires_grad_(True)
    object.__setattr__(model, "_cnnkit_unfrozen", [])


def unfreeze_top(model: Any, n: int, card: Any = None, *, bn: str = "frozen") -> list[str]:
    """Make the top ``n`` block groups of the card trainable again.

    Args:
        model: a model whose base was frozen with :func:`freeze_base`.
        n: how many block groups, counted from the output (0 = none).
        card: the model card (default ``model.card``); its ``block_groups`` are the units.
        bn: ``"frozen"`` keeps BatchNorm of the unfrozen blocks in inference mode (its
            scale/shift still train); ``"train"`` lets it update its statistics.

    Returns:
        The unfrozen block paths, input to output.

    Raises:
        ValueError: ``n`` negative or more than the card's block groups, or bad ``bn``.
    """
    _check_bn(bn)
    groups = tuple((card or model.card).block_groups)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(groups):
        raise ValueError(
            f"unfreeze must be an int from 0 to {len(groups)} (the block groups of "
            f"{getattr(card or model.card, 'name', 'the model')}). Received: unfreeze={n!r}"
        )
    top = list(groups[len(groups) - n :]) if n else []
    for g in top:
        for path, m in model.get_submodule(g).named_modules(prefix=g):
            for p in m.parameters(recurse=False):
                p.requires_grad_(True)
            if isinstance(m, _BatchNorm) and bn == "train":
                _release_bn(model, path, m)
    object.__setattr__(model, "_cnnkit_unfrozen", top)
    return top


def frozen_bn_paths(model: nn.Module) -> list[str]:
    """Paths of the BatchNorm layers held in inference mode."""
    return sorted(_bn_hooks(model))


def frozen_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every frozen tensor: parameters without gradients and frozen-BN buffers."""
    snap = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    for path in frozen_bn_paths(model):
        for name, b in model.get_submodule(path).named_buffers():
            snap[f"{path}.{name}"] = b.detach().clone()
    return snap


def changed_since(snapshot: dict[str, torch.Tensor], model: nn.Module) -> list[str]:
    """Names of snapshot tensors that are no longer bit-identical in ``model``."""
    now: dict[str, torch.Tensor] = dict(model.named_parameters())
    now.update(dict(model.named_buffers()))
    return [k for k, v in snapshot.items() if not torch.equal(now[k].detach().cpu(), v.cpu())]


def describe(model: nn.Module, bn: str = "frozen") -> dict[str, Any]:
    """What trains and what is frozen, for config.json, the summary and the report."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {
        "trainable_params": trainable,
        "frozen_params": frozen,
        "unfrozen_blocks": list(getattr(model, "_cnnkit_unfrozen", [])),
        "bn": bn,
        "frozen_bn_layers": len(frozen_bn_paths(model)),
    }


def describe_text(info: dict[str, Any]) -> str:
    """One paragraph for summary.txt."""
    blocks = ", ".join(info["unfrozen_blocks"]) or "none (head only)"
    return (
        f"transfer: {info.get('strategy', '?')} from {info.get('pretrained', '?')}; "
        f"trainable {info['trainable_params']:,} / frozen {info['frozen_params']:,} params; "
        f"unfrozen blocks: {blocks}; BatchNorm {info['bn']} "
        f"({info['frozen_bn_layers']} layers in inference mode)"
    )
