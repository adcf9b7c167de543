"""The contract every cnnkit model follows (timm-style).

``forward(x) == forward_head(forward_features(x))``; ``forward_features`` returns the
convolutional feature map ``(B, num_features, h, w)`` (``(B, num_features, l)`` for 1D
models); ``forward_head`` pools/flattens and classifies; ``reset_classifier(k)`` swaps
the final layer for ``k`` outputs (``k == 0`` turns the model into its convolutional
base, as Keras ``include_top=False``).

Flatten order: heads that flatten a feature map do it in PyTorch's ``(C, H, W)`` order
(``torch.flatten(f, 1)``), whatever the memory format (``channels_last`` included). Keras
flattens ``(H, W, C)``; this only matters when converting a Keras Dense kernel.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from cnnkit.models.registry import ModelCard

POOLINGS = ("avg", "max", None)


def global_pool(f: torch.Tensor, pooling: str | None) -> torch.Tensor:
    """Global average/max pooling over all spatial axes (``None`` returns ``f`` unchanged).

    Args:
        f: a feature map.
        pooling: ``"avg"``, ``"max"`` or ``None``.

    Returns:
        The pooled features.

    Shape:
        ``(B, C, *spatial) -> (B, C)``; unchanged for ``pooling=None``.
    """
    if pooling is None:
        return f
    dims = tuple(range(2, f.ndim))
    if pooling == "avg":
        return f.mean(dim=dims)
    return f.amax(dim=dims)


def check_pooling(pooling: str | None) -> str | None:
    """Validate a ``pooling`` argument (``"avg"``, ``"max"`` or ``None``)."""
    if pooling not in POOLINGS:
        raise ValueError(f'pooling must be "avg", "max" or None. Received: pooling={pooling!r}')
    return pooling


class CnnkitModel(nn.Module):
    """Base class: shared attributes and the head bookkeeping of every cnnkit model.

    Subclasses implement :meth:`forward_features`, :meth:`_forward_head` (the head of a
    model with ``num_classes > 0``), :meth:`_head_module_names` (modules removed for
    ``num_classes == 0``) and :meth:`_build_head` (creates the head for ``k`` classes).

    Attributes:
        num_classes: outputs of the classifier; 0 for a convolutional base.
        num_features: channels of :meth:`forward_features`' output.
        in_chans: input channels.
        pooling: global pooling of a convolutional base (``"avg"``, ``"max"``, ``None``).
        card: the model's :class:`~cnnkit.models.registry.ModelCard`, resolved for this
            instance (its ``input_size``, ``num_classes``, ``mean``/``std`` match it).
    """

    card: ModelCard

    def __init__(self, *, num_classes: int, num_features: int, in_chans: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = num_features
        self.in_chans = in_chans
        self.pooling: str | None = "avg"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional base.

        Shape:
            ``(B, in_chans, H, W) -> (B, num_features, h, w)``.
        """
        raise NotImplementedError

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        raise NotImplementedError

    def _head_module_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _build_head(self, num_classes: int) -> None:
        raise NotImplementedError

    def forward_head(self, f: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """Pool/flatten and classify the features.

        Args:
            f: output of :meth:`forward_features`.
            pre_logits: return the input of the final classifier layer instead.

        Returns:
            Logits, or pooled features for a convolutional base (``num_classes == 0``).

        Shape:
            ``(B, num_features, h, w) -> (B, num_classes)``; a base returns
            ``(B, num_features)`` (``pooling`` "avg"/"max") or the map itself (``None``).
        """
        if self.num_classes == 0:
            return global_pool(f, self.pooling)
        return self._forward_head(f, pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or base features when ``num_classes == 0``).

        Shape:
            ``(B, in_chans, H, W) -> (B, num_classes)``.
        """
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module | None:
        """The final classifier layer (``card.classifier``), or None for a base."""
        if self.num_classes == 0:
            return None
        return self.get_submodule(self.card.classifier)

    def reset_classifier(self, num_classes: int, pooling: str | None = "avg") -> None:
        """Replace the final classifier layer with a fresh one for ``num_classes`` outputs.

        Hidden head layers (VGG/AlexNet's 4096-unit MLP) are kept. ``num_classes=0``
        removes the whole head, leaving the convolutional base with global ``pooling``;
        resetting a base to ``k > 0`` builds the model's default head again.

        Args:
            num_classes: new number of outputs (0 for the convolutional base).
            pooling: global pooling of the base (only used when ``num_classes == 0``).

        Raises:
            ValueError: ``num_classes`` negative or ``pooling`` unknown.
        """
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(
                f"num_classes must be an int >= 0. Received: num_classes={num_classes!r}"
            )
        self.pooling = check_pooling(pooling)
        ref = next(self.parameters(), None)
        if num_classes == 0:
            for name in self._head_module_names():
                _set_submodule(self, name, nn.Identity())
        elif self.num_classes == 0:
            self._build_head(num_classes)
        else:
            old = self.get_submodule(self.card.classifier)
            _set_submodule(self, self.card.classifier, _like(old, num_classes))
        self.num_classes = num_classes
        if ref is not None:  # new layers follow the model's device and dtype
            self.to(device=ref.device, dtype=ref.dtype)
        if hasattr(self, "card"):
            self.card = replace(self.card, num_classes=num_classes)

    def block_group_modules(self) -> list[tuple[str, nn.Module]]:
        """``(path, module)`` for each of ``card.block_groups``, input to output."""
        return [(p, self.get_submodule(p)) for p in self.card.block_groups]


def _like(old: nn.Module, num_classes: int) -> nn.Module:
    """A fresh layer of the same kind as the classifier ``old`` with ``num_classes`` outputs."""
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    if isinstance(old, nn.Conv2d):  # MobileNet v1's 1x1 conv classifier
        return nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
    raise TypeError(f"cannot reset a classifier of type {type(old).__name__}")


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` (``"classifier.6"``) with ``module``."""
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, module)  # also right for Sequential children ("6")


def replace_first_conv(root: nn.Module, path: str, in_chans: int) -> None:
    """Swap the conv at ``path`` for an identical one taking ``in_chans`` input channels.

    Args:
        root: the model.
        path: module path of the first convolution (``card.first_conv``).
        in_chans: new number of input channels.
    """
    old = root.get_submodule(path)
    if not isinstance(old, nn.Conv2d | nn.Conv1d) or old.groups != 1:
        raise TypeError(f"first_conv {path!r} is a {type(old).__name__}, not a plain convolution")
    if old.in_channels == in_chans:
        return
    new = copy.deepcopy(old)  # keeps the subclass (e.g. TF-style "same" padding)
    new.in_channels = in_chans
    new.weight = nn.Parameter(torch.empty(old.out_channels, in_chans, *old.kernel_size))
    new.reset_parameters()
    _set_submodule(root, path, new)
