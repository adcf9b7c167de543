"""Class-activation maps: Grad-CAM, Grad-CAM++ and HiResCAM.

The target layer's output is replaced, inside a forward hook, by a fresh leaf tensor
that requires grad. Gradients therefore reach it even when every weight is frozen or the
caller is under ``torch.no_grad()``, and an in-place op after the layer (``ReLU(inplace)``)
cannot corrupt the saved activation.

References: Selvaraju et al. 2017 (Grad-CAM), Chattopadhay et al. 2018 (Grad-CAM++),
Draelos & Carin 2020 (HiResCAM).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ModelOutputError
from cnnkit.explain._hooks import (
    auto_target_layer,
    eval_mode,
    first_output,
    frozen_params,
    get_module,
)

METHODS = ("gradcam", "gradcam++", "hirescam")


@dataclass(frozen=True)
class CamResult:
    """What :func:`gradcam` returns.

    Attributes:
        cam: low-resolution map at the target layer, ReLU'd, not normalised. Shape (B, h, w).
        upsampled: ``cam`` resized (bilinear) to the input and min-max scaled to 0..1
            per image. Shape (B, H, W).
        labels: predicted class per image. Shape (B,).
        probabilities: softmax over the classes. Shape (B, K).
        target_class: the class each map explains. Shape (B,).
        target_layer: name of the module whose output was used.
        method: ``gradcam``, ``gradcam++`` or ``hirescam``.
    """

    cam: torch.Tensor
    upsampled: torch.Tensor
    labels: torch.Tensor
    probabilities: torch.Tensor
    target_class: torch.Tensor
    target_layer: str
    method: str

    def peaks(self) -> torch.Tensor:
        """Peak of each upsampled map as ``(x, y)`` input pixels. Shape (B, 2)."""
        b, _, w = self.upsampled.shape
        flat = self.upsampled.reshape(b, -1).argmax(dim=1)  # (B, H*W) -> (B,)
        return torch.stack([flat % w, flat // w], dim=1)


def cam_note(cam: torch.Tensor, class_name: str) -> str | None:
    """What to say instead of a heatmap when a class-activation map locates nothing.

    A Grad-CAM map is ReLU'd: all zero means no part of the image raised the class's score
    ("no positive evidence for CLASS"); a constant positive map (a 1x1 target layer, say)
    raises it everywhere alike. Drawn as a heatmap, both would be one uniform colour.

    Args:
        cam: one map, any size (``CamResult.cam[i]``), not normalised.
        class_name: the class the map explains.

    Returns:
        The note, or None when the map has a location to show.
    """
    c = cam.detach().float()
    hi, lo = float(c.max()), float(c.min())
    if not hi > 0:
        return f"no positive evidence for {class_name}"
    if hi - lo <= 1e-6 * max(abs(hi), abs(lo)):  # as _normalise: constant up to rounding
        return f"evidence for {class_name} spread evenly (no location)"
    return None


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target_class: int | Sequence[int] | torch.Tensor | None = None,
    target_layer: str | None = None,
    method: str = "gradcam",
) -> CamResult:
    """Class-activation map of ``model`` for the batch ``x``.

    The model runs in eval mode; its train/eval state, parameters' ``requires_grad`` and
    hooks are restored whatever happens.

    Args:
        model: a classifier returning logits (a tuple or an object with ``.logits`` works).
        x: preprocessed input batch (or a single image of shape (C, H, W)).
        target_class: class index explained, one for all or one per image; None = the
            predicted class of each image.
        target_layer: dotted module name; None = the model card's ``target_layer``, else
            the last module with a spatial output.
        method: ``gradcam``, ``gradcam++`` or ``hirescam``.

    Returns:
        A :class:`CamResult`.

    Shape:
        x: (B, C, H, W). cam: (B, h, w). upsampled: (B, H, W).

    Raises:
        ValueError: unknown method or layer, a target layer without a 4D output, or a
            target class out of range.
        TypeError: ``x`` is not a floating tensor.
        ModelOutputError: the model's output is NaN or infinite (damaged weights).
    """
    x = _check_input(x)
    method = _check_method(method)
    layer = target_layer if target_layer is not None else auto_target_layer(model, x)
    module = get_module(model, layer)
    with eval_mode(model), frozen_params(model), torch.enable_grad():
        acts, logits = _forward_with_leaf(model, module, layer, x)
        _check_finite(logits)
        probs = logits.detach().float().softmax(dim=1)
        labels = probs.argmax(dim=1)
        targets = _targets(target_class, labels, logits.shape[1])
        score = logits.gather(1, targets[:, None]).sum()  # images are independent in eval
        grads = _grad(score, acts, layer)
    cam = _combine(acts.detach().float(), grads.float(), method)
    upsampled = _normalise(F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear"))
    return CamResult(cam, upsampled[:, 0], labels, probs, targets, layer, method)


def _check_finite(logits: torch.Tensor) -> None:
    """Refuse NaN/infinite model output: a heatmap and "nan%" from it would look like a result."""
    bad = (~torch.isfinite(logits.detach()).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise ModelOutputError(
            f"the model's output is not a number (NaN or infinity) for image(s) {bad[:10]} "
            f"of {len(logits)}; its weights may hold NaN or infinity"
        )


def _grad(score: torch.Tensor, acts: torch.Tensor, layer: str) -> torch.Tensor:
    """d score / d acts; a layer the score does not depend on is a user error."""
    grads = None
    if score.requires_grad:
        (grads,) = torch.autograd.grad(score, acts, allow_unused=True)
    if grads is None:
        raise ValueError(
            f"target_layer must lie on the path to the logits; the output does not depend "
            f"on it. Received: target_layer={layer!r}"
        )
    return grads


def _check_input(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(
            "x must be a floating-point tensor of shape (B, C, H, W). "
            f"Received: {type(x).__name__} {getattr(x, 'dtype', '')}"
        )
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W). Received: shape={tuple(x.shape)}")
    return x


def _check_method(method: str) -> str:
    key = str(method).lower().replace("_", "").replace("-", "").replace("plusplus", "++")
    aliases = {"gradcam": "gradcam", "gradcam++": "gradcam++", "hirescam": "hirescam"}
    if key not in aliases:
        raise ValueError(f"method must be one of {', '.join(METHODS)}. Received: method={method!r}")
    return aliases[key]


def _forward_with_leaf(
    model: nn.Module, module: nn.Module, layer: str, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward pass whose ``module`` output is a leaf requiring grad (the last call wins)."""
    leaves: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        out = first_output(output)
        if out is None or out.dim() != 4:
            shape = None if out is None else tuple(out.shape)
            raise ValueError(
                f"target_layer must return a 4D (B, C, h, w) tensor. "
                f"Received: target_layer={layer!r} with output shape {shape}"
            )
        leaf = out.detach().requires_grad_(True)
        leaves.append(leaf)
        # A clone, so that an in-place op downstream leaves the saved activation intact.
        replaced = leaf.clone()
        if isinstance(output, torch.Tensor):
            return replaced
        if isinstance(output, tuple):
            return (replaced, *output[1:])
        if isinstance(output, list):
            return [replaced, *output[1:]]
        raise ValueError(
            f"target_layer must return a tensor or a tuple of tensors. "
            f"Received: {type(output).__name__} from target_layer={layer!r}"
        )

    handle = module.register_forward_hook(hook)
    try:
        logits = first_output(model(x))
    finally:
        handle.remove()
    if logits is None or logits.dim() != 2:
        shape = None if logits is None else tuple(logits.shape)
        raise ValueError(f"model must return logits of shape (B, K). Received: shape={shape}")
    if not leaves:
        raise ValueError(f"target_layer {layer!r} was not called in the forward pass")
    return leaves[-1], logits


def _targets(target_class, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    if target_class is None:
        return labels
    t = torch.as_tensor(target_class, dtype=torch.long).reshape(-1).to(labels.device)
    if t.numel() == 1:
        t = t.expand_as(labels)
    if t.numel() != labels.numel() or bool(((t < 0) | (t >= num_classes)).any()):
        raise ValueError(
            f"target_class must be one class index in [0, {num_classes}) or one per image "
            f"({labels.numel()}). Received: target_class={t.tolist()}"
        )
    return t.clone()


def _combine(acts: torch.Tensor, grads: torch.Tensor, method: str) -> torch.Tensor:
    """Weighted sum of the activation channels, ReLU'd. (B, K, h, w) x2 -> (B, h, w)."""
    if method == "hirescam":
        return (grads * acts).sum(dim=1).clamp_min(0)
    if method == "gradcam":
        weights = grads.mean(dim=(2, 3))  # (B, K, h, w) -> (B, K)
        return (weights[:, :, None, None] * acts).sum(dim=1).clamp_min(0)
    weights = _gradcam_pp_weights(acts, grads)
    return (weights[:, :, None, None] * acts).sum(dim=1).clamp_min(0)


def _gradcam_pp_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ channel weights (eq. 19 with the exponential-score closed form)."""
    g2 = grads.pow(2)
    g3 = g2 * grads
    sum_acts = acts.sum(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    alpha = g2 / (2 * g2 + sum_acts * g3 + 1e-6)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (grads.clamp_min(0) * alpha).sum(dim=(2, 3))  # (B, K, h, w) -> (B, K)


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map to 0..1 (a constant map becomes zeros). (B, 1, H, W).

    A map whose spread is only rounding (a 1x1 map resized, say) counts as constant.
    """
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values[:, None, None, None]
    hi = flat.max(dim=1).values[:, None, None, None]
    constant = hi - lo <= 1e-6 * torch.maximum(hi.abs(), lo.abs())
    return torch.where(constant, 0.0, (maps - lo) / (hi - lo).clamp_min(1e-12))
