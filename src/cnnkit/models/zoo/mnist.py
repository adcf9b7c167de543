"""The small lecture nets for MNIST-sized images: conv base, then Flatten -> Dense.

Like Keras models built from ``Input(shape)``, the Dense layer is sized for the requested
``input_size``, so ``basic_convnet`` also trains on 3x64x64 images. Flattening is in
``(C, H, W)`` order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnkit.models.base import CnnkitModel, replace_first_conv
from cnnkit.models.layers import PoolFirstSequential
from cnnkit.models.registry import ModelCard, register_model

MNIST_MEAN = (0.0,)  # inputs are just scaled to 0..1 (x / 255), as in the Keras book
MNIST_STD = (1.0,)


class FlattenDenseNet(CnnkitModel):
    """A ``features`` conv base followed by Flatten -> [Dropout] -> hidden Dense -> Dense.

    Args:
        features: the convolutional base (its output is flattened).
        input_size: ``(C, H, W)`` the Dense layers are sized for.
        num_classes: outputs (0 = the base only).
        hidden: widths of hidden Dense layers (LeNet-5: ``(120, 84)``).
        dropout: dropout rate before the first Dense layer (0 = none).
        act: activation factory for hidden Dense layers.
    """

    def __init__(
        self,
        features: nn.Sequential,
        *,
        input_size: tuple[int, int, int],
        num_classes: int,
        hidden: tuple[int, ...] = (),
        dropout: float = 0.0,
        act: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        with torch.no_grad():
            fmap = features(torch.zeros(1, *input_size))  # (1, C, h, w)
        super().__init__(
            num_classes=num_classes, num_features=fmap.shape[1], in_chans=input_size[0]
        )
        self.features = features
        self.flat_features = fmap.numel()
        self._hidden_sizes, self._dropout_rate, self._act = hidden, dropout, act
        self.dropout: nn.Module = nn.Identity()
        self.hidden: nn.Module = nn.Identity()
        self.fc: nn.Module = nn.Identity()
        if num_classes:
            self._build_head(num_classes)

    def _build_head(self, num_classes: int) -> None:
        self.dropout = nn.Dropout(self._dropout_rate) if self._dropout_rate else nn.Identity()
        layers: list[nn.Module] = []
        width = self.flat_features
        for h in self._hidden_sizes:
            layers += [nn.Linear(width, h), self._act()]
            width = h
        self.hidden = nn.Sequential(*layers) if layers else nn.Identity()
        self.fc = nn.Linear(width, num_classes)

    def _head_module_names(self) -> tuple[str, ...]:
        return ("dropout", "hidden", "fc")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(B, C, H, W) -> (B, num_features, h, w)``."""
        return self.features(x)

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        x = torch.flatten(f, 1)  # (B, C, h, w) -> (B, C*h*w), (C, H, W) order
        x = self.hidden(self.dropout(x))
        return x if pre_logits else self.fc(x)


def _conv_stack(
    in_chans: int, widths: tuple[int, ...], pool_after: tuple[bool, ...]
) -> nn.Sequential:
    """Conv3x3(valid)+ReLU per width, each optionally followed by MaxPool(2)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    prev = in_chans
    for i, (w, pool) in enumerate(zip(widths, pool_after, strict=True), start=1):
        layers[f"conv{i}"] = nn.Conv2d(prev, w, 3)
        layers[f"relu{i}"] = nn.ReLU()
        if pool:
            layers[f"pool{i}"] = nn.MaxPool2d(2)
        prev = w
    return PoolFirstSequential(layers)


def _mnist_card(name: str, **kw: Any) -> ModelCard:
    """A card with the MNIST defaults: 1x28x28, /255 scaling, 10 classes."""
    defaults: dict[str, Any] = {
        "input_size": (1, 28, 28),
        "mean": MNIST_MEAN,
        "std": MNIST_STD,
        "num_classes": 10,
        "first_conv": "features.conv1",
        "classifier": "fc",
        "source": "keras",
    }
    return ModelCard(name=name, **{**defaults, **kw})


@register_model(
    card=_mnist_card(
        "basic_convnet",
        min_input_size=(18, 18),
        target_layer="features.relu3",
        block_groups=("features.conv1", "features.conv2", "features.conv3"),
        published_params=104_202,
        description="Keras-book MNIST convnet: conv32-pool-conv64-pool-conv128, dense",
    )
)
def basic_convnet(
    *, num_classes: int, in_chans: int, input_size: tuple[int, int, int], pooling: str | None
) -> FlattenDenseNet:
    """Deep Learning with Python's first convnet (104,202 parameters at 1x28x28)."""
    features = _conv_stack(in_chans, (32, 64, 128), (True, True, False))
    model = FlattenDenseNet(features, input_size=input_size, num_classes=num_classes)
    model.pooling = pooling
    return model


@register_model(
    card=_mnist_card(
        "keras_mnist_convnet",
        min_input_size=(10, 10),
        target_layer="features.relu2",
        block_groups=("features.conv1", "features.conv2"),
        published_params=34_826,
        description="keras.io MNIST example: conv32-pool-conv64-pool, dropout 0.5, dense",
    )
)
def keras_mnist_convnet(
    *, num_classes: int, in_chans: int, input_size: tuple[int, int, int], pooling: str | None
) -> FlattenDenseNet:
    """The keras.io "simple MNIST convnet" (34,826 parameters at 1x28x28)."""
    features = _conv_stack(in_chans, (32, 64), (True, True))
    model = FlattenDenseNet(features, input_size=input_size, num_classes=num_classes, dropout=0.5)
    model.pooling = pooling
    return model


@register_model(
    card=_mnist_card(
        "lenet5",
        min_input_size=(12, 12),
        target_layer="features.act2",
        block_groups=("features.conv1", "features.conv2"),
        published_params=61_706,
        description="LeNet-5: 6 and 16 5x5 filters (tanh, avg-pool), dense 120-84",
        source="LeCun et al. 1998",
    )
)
def lenet5(
    *,
    num_classes: int,
    in_chans: int,
    input_size: tuple[int, int, int],
    pooling: str | None,
    padding: int | None = None,
) -> FlattenDenseNet:
    """LeNet-5 (61,706 parameters at 1x28x28 and at 1x32x32).

    Args:
        padding: of the first conv; None = 2 below 32x32 (28x28 MNIST gives LeNet's
            original 28x28 first feature map) and 0 from 32x32 (the paper's input).
    """
    pad = (2 if min(input_size[1:]) < 32 else 0) if padding is None else padding
    features = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 6, 5, padding=pad),
            act1=nn.Tanh(),
            pool1=nn.AvgPool2d(2),
            conv2=nn.Conv2d(6, 16, 5),
            act2=nn.Tanh(),
            pool2=nn.AvgPool2d(2),
        )
    )
    replace_first_conv(features, "conv1", in_chans)
    model = FlattenDenseNet(
        features, input_size=input_size, num_classes=num_classes, hidden=(120, 84), act=nn.Tanh
    )
    model.pooling = pooling
    return model
