"""Intermediate activations from forward hooks (works for nested modules).

``layers="auto"`` picks one output per stage: the modules, in the order they finish, are
cut into runs with the same spatial size (1x1 outputs skipped), and each run gives its
outermost module, the last to finish among equals (the block or pooling output at that
resolution); at most ``max_layers`` of them, evenly spread.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.explain._hooks import eval_mode, first_output, get_module, spatial_outputs


def activations(
    model: nn.Module,
    x: torch.Tensor,
    layers: str | Sequence[str] = "auto",
    *,
    max_layers: int = 8,
) -> dict[str, torch.Tensor]:
    """Outputs of the chosen layers for the batch ``x``, in the order they ran.

    The model runs in eval mode without gradients; its mode and hooks are restored. A
    module called several times in one pass (a shared ReLU) gives its last output.

    Args:
        model: any ``nn.Module``.
        x: preprocessed input batch.
        layers: ``"auto"`` or module names (dotted paths as in ``named_modules()``).
        max_layers: how many layers ``"auto"`` keeps at most.

    Returns:
        ``{layer name: detached output tensor}``.

    Shape:
        x: (B, C, H, W). Each value: (B, C_l, H_l, W_l) (other shapes pass through).

    Raises:
        ValueError: an unknown layer name, an empty list, or a layer that never ran.
    """
    names = auto_layers(model, x, max_layers) if _is_auto(layers) else _layer_list(layers)
    modules = [(n, get_module(model, n)) for n in names]
    found: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(_saver(found, n)) for n, m in modules]
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"layers {missing} did not return a tensor in the forward pass")
    return {n: found[n] for n in names}


def auto_layers(model: nn.Module, x: torch.Tensor, max_layers: int = 8) -> list[str]:
    """Names of the modules ``activations(layers="auto")`` records (see module doc).

    Modules that finish before the first convolution (rescaling, normalisation) are skipped.
    """
    seen = [s for s in spatial_outputs(model, x[:1]) if s[1][2] * s[1][3] > 1]
    conv_names = {n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)}
    first_conv = next((i for i, s in enumerate(seen) if s[0] in conv_names), 0)
    runs: list[list[str]] = []
    last_size: tuple[int, ...] | None = None
    for name, shape, _ in seen[first_conv:]:
        if shape[2:] != last_size:
            runs.append([])
            last_size = shape[2:]
        runs[-1].append(name)
    # The outermost module of each run, the last to finish among equals: a block's output.
    names = [min(reversed(run), key=lambda n: n.count(".")) for run in runs]
    if len(names) > max_layers:
        step = (len(names) - 1) / max(max_layers - 1, 1)
        names = [names[round(i * step)] for i in range(max_layers)]
    return names


def _saver(found: dict[str, torch.Tensor], name: str):
    def hook(_module, _inputs, output):
        out = first_output(output)
        if out is not None:
            found[name] = out.detach().clone()  # clone: an in-place op later must not alter it

    return hook


def _is_auto(layers: object) -> bool:
    return isinstance(layers, str) and layers.strip().lower() == "auto"


def _layer_list(layers: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else list(layers)
    names = [n for n in names if n]
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(
            'layers must be "auto" or a non-empty list of module names. '
            f"Received: layers={layers!r}"
        )
    return names
