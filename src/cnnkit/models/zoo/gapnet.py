"""``gapnet``: a small all-convolutional net with batch norm and global average pooling.

Four 3x3 convolutions (same padding, no bias) each followed by BatchNorm and ReLU, max
pooling after the first two, then global average pooling and one Dense layer: the design
the lecture reaches after ``basic_convnet`` (batch norm; a pooled head instead of Flatten,
so the classifier has 64 inputs whatever the image size, and class activation maps point
at the object). On 64x64 pictures of a few hundred images ``basic_convnet``'s Flatten head
has 18,432 inputs per class and memorises the clutter; ``gapnet`` has about 61,000 parameters at
any size (bench/results/defaults.md, bench/results/explain.md).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnkit.models.base import CnnkitModel
from cnnkit.models.layers import PoolFirstSequential
from cnnkit.models.registry import register_model
from cnnkit.models.zoo.mnist import _mnist_card

WIDTHS = (16, 32, 64, 64)
POOL_AFTER = (True, True, False, False)


class GapNet(CnnkitModel):
    """Conv-BN-ReLU blocks, then global average pooling and a Dense classifier.

    Args:
        num_classes: outputs (0 = the convolutional base).
        in_chans: input channels.
        widths, pool_after: channels of each block and whether a 2x2 max pool follows it.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int,
        widths: tuple[int, ...] = WIDTHS,
        pool_after: tuple[bool, ...] = POOL_AFTER,
    ) -> None:
        super().__init__(num_classes=num_classes, num_features=widths[-1], in_chans=in_chans)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        prev = in_chans
        for i, (w, pool) in enumerate(zip(widths, pool_after, strict=True), start=1):
            layers[f"conv{i}"] = nn.Conv2d(prev, w, 3, padding=1, bias=False)
            layers[f"bn{i}"] = nn.BatchNorm2d(w)
            layers[f"relu{i}"] = nn.ReLU()
            if pool:
                layers[f"pool{i}"] = nn.MaxPool2d(2)
            prev = w
        self.features = PoolFirstSequential(layers)
        self.fc: nn.Module = nn.Identity()
        if num_classes:
            self._build_head(num_classes)

    def _build_head(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)

    def _head_module_names(self) -> tuple[str, ...]:
        return ("fc",)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(B, C, H, W) -> (B, 64, H/4, W/4)``."""
        return self.features(x)

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        x = f.mean((2, 3))  # global average pooling: (B, C, h, w) -> (B, C)
        return x if pre_logits else self.fc(x)


@register_model(
    card=_mnist_card(
        "gapnet",
        min_input_size=(8, 8),
        target_layer="features.relu4",
        block_groups=("features.conv1", "features.conv2", "features.conv3", "features.conv4"),
        published_params=61_050,
        description="conv-BN-ReLU x4 (16-32-64-64, two max pools), global average pool, dense",
        source="cnnkit",
    )
)
def gapnet(
    *, num_classes: int, in_chans: int, input_size: tuple[int, int, int], pooling: str | None
) -> GapNet:
    """A small batch-normalised all-conv net with a global-average-pooled head (61,050
    parameters at 1x28x28 with 10 classes, the same at any image size)."""
    del input_size  # the pooled head fits any size
    model = GapNet(num_classes=num_classes, in_chans=in_chans)
    model.pooling = pooling or "avg"
    return model
