"""Module lookup and hooked forward passes shared by the explainers.

Forward hooks fire when a module *finishes*, so a container (``layer1``) is recorded
after its children; that ordering is what the automatic layer choices rely on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The sub-module of ``model`` called ``name`` (a dotted path from ``named_modules``).

    Raises:
        ValueError: no module has that name; the message lists some that exist.
    """
    modules = dict(model.named_modules())
    if isinstance(name, str) and name and name in modules:
        return modules[name]
    known = [n for n in modules if n]
    shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
    raise ValueError(
        f"layer must name a module of the model (a dotted path as in named_modules()). "
        f"Received: layer={name!r}. Known layers: {shown}"
    )


def first_output(output: object) -> torch.Tensor | None:
    """The tensor a module returned: itself, the first of a tuple, or ``.logits``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    logits = getattr(output, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else None


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore every sub-module's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def frozen_params(model: nn.Module) -> Iterator[nn.Module]:
    """Turn off ``requires_grad`` on every parameter (no weight grads); restore afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def spatial_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...], int]]:
    """Run ``model`` once and list the modules with a 4D tensor output.

    Returns:
        ``(name, shape, tensor_id)`` in the order the modules finished, root excluded;
        ``tensor_id`` tells which names returned the very same tensor object.
    """
    seen: list[tuple[str, tuple[int, ...], int]] = []
    alive: list[torch.Tensor] = []  # keeps ids unique: a freed tensor's id can be reused
    handles = []

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            out = first_output(output)
            if out is not None and out.dim() == 4:
                seen.append((name, tuple(out.shape), id(out)))
                alive.append(out)

        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(make_hook(name)))
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def auto_target_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The model card's ``target_layer``, else the last module with a spatial 4D output.

    The card is looked for on the model or on the model it wraps (``model.module``).

    "Spatial" means more than one position (global pooling to 1x1 is skipped); when no
    module has one, the last 4D output of any size is used.

    Raises:
        ValueError: the model has no module with a 4D output.
    """
    inner, prefix = model, ""
    wrapped = getattr(inner, "module", None)
    while not hasattr(inner, "card") and isinstance(wrapped, nn.Module):
        inner, prefix = wrapped, prefix + "module."  # DataParallel / DDP wrappers
        wrapped = getattr(inner, "module", None)
    name = getattr(getattr(inner, "card", None), "target_layer", None)
    if name and prefix + name in dict(model.named_modules()):
        return prefix + name
    seen = spatial_outputs(model, x)
    if not seen:
        raise ValueError(
            "target_layer could not be chosen: no module of the model returns a 4D "
            f"(B, C, H, W) tensor for an input of shape {tuple(x.shape)}. Pass target_layer=NAME."
        )
    spatial = [s for s in seen if s[1][2] * s[1][3] > 1]
    return (spatial or seen)[-1][0]
