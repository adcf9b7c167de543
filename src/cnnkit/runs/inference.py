"""Running a trained model: how images become its input, and its class probabilities.

The one path from uint8 pixels to probabilities, shared by training (validation each epoch),
evaluation, prediction, export checks and the server: :class:`Normalizer` scales and
normalises in one fused op, :func:`prepare_batch` adds augmentation and the memory format,
:func:`predict_proba` runs batches under the chosen :class:`Precision`.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Precision:
    """How the trainer runs the model.

    Attributes:
        value: ``fp32``, ``bf16`` or ``fp16``.
        channels_last: convert model and batches to NHWC (faster convolutions in oneDNN/cuDNN).
        device: ``cpu`` or ``cuda``.
        reason: why this was chosen, in words (recorded in config.json and the report).
    """

    value: str
    channels_last: bool
    device: str
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.value)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes (a no-op in fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=dtype)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def inference(cls, device: str = "cpu") -> Precision:
        """fp32 in the default layout: what prediction uses (exact, any CPU)."""
        return cls("fp32", False, device, "inference")


class Normalizer:
    """``(x / 255 - mean) / std`` as one multiply-add, per channel.

    Args:
        mean, std: per-channel statistics for inputs scaled to 0..1 (the model card's).
        channels: the number of image channels (a single value broadcasts).
    """

    def __init__(self, mean: Any, std: Any, channels: int, device: torch.device | str = "cpu"):
        m = torch.as_tensor(mean, dtype=torch.float32).flatten()
        s = torch.as_tensor(std, dtype=torch.float32).flatten()
        if m.numel() == 1:
            m = m.expand(channels)
        if s.numel() == 1:
            s = s.expand(channels)
        if m.numel() != channels or s.numel() != channels:
            raise ValueError(
                f"mean/std have {m.numel()}/{s.numel()} values for {channels} channels"
            )
        self.scale = (1.0 / (255.0 * s)).view(1, -1, 1, 1).to(device)
        self.shift = (-m / s).view(1, -1, 1, 1).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) uint8/float 0..255 -> float normalised
        return torch.addcmul(self.shift, x.float(), self.scale)


def model_normalizer(model: torch.nn.Module, channels: int, device: Any = "cpu") -> Normalizer:
    """The normaliser from the model's card (``mean``/``std``), or plain /255 without one."""
    card = getattr(model, "card", None)
    mean = getattr(card, "mean", None) or (0.0,)
    std = getattr(card, "std", None) or (1.0,)
    return Normalizer(mean, std, channels, device)


def prepare_batch(
    x: torch.Tensor,
    norm: Normalizer,
    prec: Precision,
    dev: torch.device,
    augment: Any = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` -> augmented, normalised float batch in the right memory format."""
    x = x.to(dev, non_blocking=True)
    if augment is not None:
        x = augment(x, generator=generator)
    x = norm(x)
    if prec.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.inference_mode()
def predict_proba(
    model: torch.nn.Module,
    images: torch.Tensor,
    norm: Normalizer,
    prec: Precision,
    dev: torch.device,
    batch_size: int = 512,
) -> torch.Tensor:
    """Softmax probabilities ``(N, K)`` (float32, CPU) for uint8 images ``(N, C, H, W)``."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = prepare_batch(images[i : i + batch_size], norm, prec, dev)
            with prec.autocast():
                out.append(torch.softmax(model(x).float(), 1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)
