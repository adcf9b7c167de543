"""``basic_convnet_bn``: the Keras-book convnet with the lecture's batch normalisation.

Each convolution drops its bias (BatchNorm's shift replaces it) and is followed by
BatchNorm, then ReLU, as the lecture recommends; dropout before the classifier. It trains
faster and further than ``basic_convnet`` (see bench/results/accuracy.md).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnkit.models.layers import PoolFirstSequential
from cnnkit.models.registry import register_model
from cnnkit.models.zoo.mnist import FlattenDenseNet, _mnist_card


def _bn_stack(
    in_chans: int, widths: tuple[int, ...], pool_after: tuple[bool, ...]
) -> nn.Sequential:
    """Conv3x3(valid, no bias) -> BatchNorm -> ReLU per width, optionally MaxPool(2)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    prev = in_chans
    for i, (w, pool) in enumerate(zip(widths, pool_after, strict=True), start=1):
        layers[f"conv{i}"] = nn.Conv2d(prev, w, 3, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(w)
        layers[f"relu{i}"] = nn.ReLU()
        if pool:
            layers[f"pool{i}"] = nn.MaxPool2d(2)
        prev = w
    return PoolFirstSequential(layers)


@register_model(
    card=_mnist_card(
        "basic_convnet_bn",
        min_input_size=(22, 22),  # BatchNorm needs > 1 value per channel after conv3
        target_layer="features.relu3",
        block_groups=("features.conv1", "features.conv2", "features.conv3"),
        published_params=104_426,
        description="basic_convnet with conv-BN-ReLU blocks (no conv bias) and dropout 0.3",
        source="cnnkit",
    )
)
def basic_convnet_bn(
    *, num_classes: int, in_chans: int, input_size: tuple[int, int, int], pooling: str | None
) -> FlattenDenseNet:
    """basic_convnet with BatchNorm after every convolution (104,426 parameters at 1x28x28)."""
    features = _bn_stack(in_chans, (32, 64, 128), (True, True, False))
    model = FlattenDenseNet(features, input_size=input_size, num_classes=num_classes, dropout=0.3)
    model.pooling = pooling
    return model
