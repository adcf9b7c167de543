"""Networks on SNP genotypes: a 1D CNN over loci and an MLP, each with a linear skip path.

Input is a centred dosage vector per individual, ``(B, L)`` or ``(B, 1, L)`` (``L`` loci in
genome order). The optional linear skip path ``x @ w`` is a ridge-like additive model;
:mod:`cnnkit.genomics` sets it to the GBLUP marker effects and trains the rest of the
network on what the linear model cannot predict (see docs/genomics.md).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from cnnkit.models.base import CnnkitModel
from cnnkit.models.layers import PoolFirstSequential
from cnnkit.models.registry import ModelCard, register_model


def _as_channels(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    """``(B, L) -> (B, 1, L)``; ``(B, C, L)`` passes through."""
    if x.ndim == 2 and in_chans == 1:
        return x.unsqueeze(1)
    if x.ndim != 3 or x.shape[1] != in_chans:
        raise ValueError(
            f"SNP models take (B, L) or (B, {in_chans}, L) inputs. Received: shape={tuple(x.shape)}"
        )
    return x


class _SnpNet(CnnkitModel):
    """Shared head: Flatten -> Dropout -> [Dense hidden -> ReLU -> Dropout] -> Dense, + skip."""

    def _init_head(
        self, flat: int, hidden: int, dropout: float, num_classes: int, skip_in: int, skip: bool
    ) -> None:
        self.flat_features, self._hidden, self._dropout = flat, hidden, dropout
        self._skip_in = skip_in
        self.linear_skip = skip
        self.drop: nn.Module = nn.Identity()
        self.hidden: nn.Module = nn.Identity()
        self.fc: nn.Module = nn.Identity()
        self.skip: nn.Module | None = None
        if num_classes:
            self._build_head(num_classes)

    def _build_head(self, num_classes: int) -> None:
        self.drop = nn.Dropout(self._dropout) if self._dropout else nn.Identity()
        width = self.flat_features
        if self._hidden:
            self.hidden = nn.Sequential(
                nn.Linear(width, self._hidden), nn.ReLU(), nn.Dropout(self._dropout)
            )
            width = self._hidden
        self.fc = nn.Linear(width, num_classes)
        self.skip = nn.Linear(self._skip_in, num_classes) if self.linear_skip else None

    def _head_module_names(self) -> tuple[str, ...]:
        return ("drop", "hidden", "fc", "skip") if self.linear_skip else ("drop", "hidden", "fc")

    def reset_classifier(self, num_classes: int, pooling: str | None = "avg") -> None:
        """As :meth:`CnnkitModel.reset_classifier`; the skip path gets ``num_classes`` outputs."""
        super().reset_classifier(num_classes, pooling)
        if num_classes and self.linear_skip:
            self.skip = nn.Linear(self._skip_in, num_classes)

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        x = self.hidden(self.drop(torch.flatten(f, 1)))  # (B, F, l) -> (B, F*l) -> (B, H)
        return x if pre_logits else self.fc(x)

    def forward_linear(self, x: torch.Tensor) -> torch.Tensor:
        """The skip path alone (zeros without one).

        Shape:
            ``(B, L) -> (B, num_classes)``.
        """
        flat = torch.flatten(_as_channels(x, self.in_chans), 1)  # (B, C, L) -> (B, C*L)
        if self.skip is None or not self.num_classes:
            return flat.new_zeros(flat.shape[0], max(self.num_classes, 1))
        return self.skip(flat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deep path plus the linear skip path.

        Shape:
            ``(B, L)`` or ``(B, C, L) -> (B, num_classes)``.
        """
        x = _as_channels(x, self.in_chans)
        out = self.forward_head(self.forward_features(x))
        if self.skip is not None and self.num_classes:
            out = out + self.skip(torch.flatten(x, 1))
        return out


class SnpCNN1d(_SnpNet):
    """Conv1d blocks over loci -> Flatten -> Dense -> output, with an optional linear skip.

    Each block is Conv1d(kernel_size, stride, ``same``-like padding) -> [BatchNorm] -> ReLU
    -> MaxPool1d(pool) (no pooling for ``pool=1``).

    Args:
        input_size: ``(C, L)``, channels (1 for dosages) and loci.
        num_classes: outputs (1 for a regression or a binary trait; 0 = the conv base).
        filters: channels of each conv block.
        kernel_size: kernel width in loci.
        stride: conv stride in loci.
        pool: max-pooling width after each block.
        dropout: dropout before and after the hidden Dense layer.
        hidden: width of the hidden Dense layer (0 = none).
        batch_norm: BatchNorm after each conv (conv then has no bias).
        linear_skip: add a linear path from the input to the output.
    """

    def __init__(
        self,
        *,
        input_size: tuple[int, int],
        num_classes: int = 1,
        filters: tuple[int, ...] = (16, 16),
        kernel_size: int = 5,
        stride: int = 1,
        pool: int = 4,
        dropout: float = 0.2,
        hidden: int = 0,
        batch_norm: bool = False,
        linear_skip: bool = True,
    ) -> None:
        in_chans, length = input_size
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        prev = in_chans
        for i, f in enumerate(filters, start=1):
            blocks[f"conv{i}"] = nn.Conv1d(
                prev, f, kernel_size, stride, padding=kernel_size // 2, bias=not batch_norm
            )
            if batch_norm:
                blocks[f"bn{i}"] = nn.BatchNorm1d(f)
            blocks[f"act{i}"] = nn.ReLU()
            if pool > 1:
                blocks[f"pool{i}"] = nn.MaxPool1d(pool, ceil_mode=True)
            prev = f
        features = PoolFirstSequential(blocks)  # ReLU after each pool: identical, faster
        with torch.no_grad():
            fmap = features(torch.zeros(1, in_chans, length))  # (1, F, l)
        super().__init__(num_classes=num_classes, num_features=prev, in_chans=in_chans)
        self.features = features
        self._init_head(fmap.numel(), hidden, dropout, num_classes, in_chans * length, linear_skip)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(B, L)`` or ``(B, C, L) -> (B, num_features, l)``."""
        return self.features(_as_channels(x, self.in_chans))


class SnpMLP(_SnpNet):
    """Dense -> ReLU -> Dropout layers on the dosage vector, with an optional linear skip.

    Args:
        input_size: ``(C, L)``.
        num_classes: outputs (1 for regression/binary; 0 = the feature layers only).
        widths: widths of the feature layers.
        dropout: dropout after each feature layer.
        linear_skip: add a linear path from the input to the output.
    """

    def __init__(
        self,
        *,
        input_size: tuple[int, int],
        num_classes: int = 1,
        widths: tuple[int, ...] = (64,),
        dropout: float = 0.3,
        linear_skip: bool = True,
    ) -> None:
        in_chans, length = input_size
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        prev = in_chans * length
        for i, w in enumerate(widths, start=1):
            layers[f"fc{i}"] = nn.Linear(prev, w)
            layers[f"act{i}"] = nn.ReLU()
            layers[f"drop{i}"] = nn.Dropout(dropout)
            prev = w
        super().__init__(num_classes=num_classes, num_features=prev, in_chans=in_chans)
        self.features = nn.Sequential(layers)
        self._init_head(prev, 0, 0.0, num_classes, in_chans * length, linear_skip)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(B, L)`` or ``(B, C, L) -> (B, num_features, 1)``."""
        return self.features(_as_channels(x, self.in_chans)).unsqueeze(-1)


_SNP: dict[str, Any] = dict(
    input_size=(1, 1000),
    min_input_size=(1,),
    mean=(0.0,),
    std=(1.0,),
    num_classes=1,
    kind="snp",
    source="cnnkit",
)


@register_model(
    card=ModelCard(
        name="snp_cnn1d",
        first_conv="features.conv1",
        classifier="fc",
        target_layer="features.act1",
        block_groups=("features", "fc"),
        published_params=3_402,
        description="1D CNN over SNP loci (Perez-Enciso & Zingaretti 2019) + linear skip",
        **_SNP,
    )
)
def snp_cnn1d(
    *,
    num_classes: int,
    in_chans: int,
    input_size: tuple[int, int],
    pooling: str | None = "avg",
    **kwargs,
) -> SnpCNN1d:
    """The default SNP CNN: 2 x (conv16 k5 -> pool4) -> dense output, plus a linear skip."""
    model = SnpCNN1d(input_size=(in_chans, input_size[-1]), num_classes=num_classes, **kwargs)
    model.pooling = pooling
    return model


@register_model(
    card=ModelCard(
        name="snp_mlp",
        classifier="fc",
        block_groups=("features", "fc"),
        published_params=65_130,
        description="MLP on SNP dosages (64 hidden units) + linear skip",
        **_SNP,
    )
)
def snp_mlp(
    *,
    num_classes: int,
    in_chans: int,
    input_size: tuple[int, int],
    pooling: str | None = "avg",
    **kwargs,
) -> SnpMLP:
    """The default SNP MLP: dense64 -> output, plus a linear skip."""
    model = SnpMLP(input_size=(in_chans, input_size[-1]), num_classes=num_classes, **kwargs)
    model.pooling = pooling
    return model
