"""Keras applications written for PyTorch: Chollet's Xception and MobileNet v1.

Module names follow the Keras layer names, grouped per block: ``conv_dw_1_bn`` is
``features.block1.conv_dw_1_bn``; Xception's ``block5_sepconv1`` is
``features.block5.sepconv1`` (blocks 2-13 drop the prefix their parent carries) and its
unnamed shortcut convs are ``residual.0``/``.1``. The blocks (``features.block3``) are
the units of ``--unfreeze N``. Padding copies Keras exactly: TF-style "same" (extra
pixel bottom/right) and MobileNet's ``ZeroPadding2D(((0, 1), (0, 1)))`` before strided
depthwise convs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnkit.models.base import CnnkitModel
from cnnkit.models.layers import Conv2d, MaxPool2d, SeparableConv2d
from cnnkit.models.registry import INCEPTION_MEAN, INCEPTION_STD, ModelCard, register_model

KERAS_BN_EPS = 1e-3  # Keras BatchNormalization default epsilon


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=0.01)  # Keras momentum 0.99


class _GapLinearModel(CnnkitModel):
    """Features in ``self.features`` (named layers), head = global avg pool -> ``predictions``."""

    features: nn.Module
    predictions: nn.Module

    def _build_head(self, num_classes: int) -> None:
        self.predictions = nn.Linear(self.num_features, num_classes)

    def _head_module_names(self) -> tuple[str, ...]:
        return ("predictions",)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(B, C, H, W) -> (B, num_features, h, w)``."""
        return self.features(x)

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        x = f.mean(dim=(2, 3))  # (B, C, h, w) -> (B, C), GlobalAveragePooling2D
        return x if pre_logits else self.predictions(x)


class _XceptionBlock(nn.Module):
    """Entry/exit-flow block: [ReLU] sepconv-BN, ReLU sepconv-BN, max-pool, + 1x1 shortcut."""

    def __init__(self, cin: int, c1: int, c2: int, first_act: bool) -> None:
        super().__init__()
        self.residual = nn.Sequential(Conv2d(cin, c2, 1, 2, "same", bias=False), _bn(c2))
        self.act1 = nn.ReLU() if first_act else nn.Identity()
        self.sepconv1 = SeparableConv2d(cin, c1, 3, padding="same")
        self.sepconv1_bn = _bn(c1)
        self.act2 = nn.ReLU()
        self.sepconv2 = SeparableConv2d(c1, c2, 3, padding="same")
        self.sepconv2_bn = _bn(c2)
        self.pool = MaxPool2d(3, 2, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.residual(x)  # (B, c2, ceil(H/2), ceil(W/2))
        x = self.sepconv1_bn(self.sepconv1(self.act1(x)))
        x = self.sepconv2_bn(self.sepconv2(self.act2(x)))
        return self.pool(x) + r


class _XceptionMiddle(nn.Module):
    """Middle-flow block: three (ReLU, sepconv 728, BN) with an identity shortcut."""

    def __init__(self) -> None:
        super().__init__()
        for i in (1, 2, 3):
            self.add_module(f"sepconv{i}_act", nn.ReLU())
            self.add_module(f"sepconv{i}", SeparableConv2d(728, 728, 3, padding="same"))
            self.add_module(f"sepconv{i}_bn", _bn(728))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x
        for i in (1, 2, 3):
            x = getattr(self, f"sepconv{i}_act")(x)
            x = getattr(self, f"sepconv{i}_bn")(getattr(self, f"sepconv{i}")(x))
        return x + r


def _xception_features(in_chans: int) -> nn.Sequential:
    block1 = OrderedDict(
        block1_conv1=Conv2d(in_chans, 32, 3, 2, "valid", bias=False),
        block1_conv1_bn=_bn(32),
        block1_conv1_act=nn.ReLU(),
        block1_conv2=Conv2d(32, 64, 3, 1, "valid", bias=False),
        block1_conv2_bn=_bn(64),
        block1_conv2_act=nn.ReLU(),
    )
    block14 = OrderedDict(
        block14_sepconv1=SeparableConv2d(1024, 1536, 3, padding="same"),
        block14_sepconv1_bn=_bn(1536),
        block14_sepconv1_act=nn.ReLU(),
        block14_sepconv2=SeparableConv2d(1536, 2048, 3, padding="same"),
        block14_sepconv2_bn=_bn(2048),
        block14_sepconv2_act=nn.ReLU(),
    )
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        block1=nn.Sequential(block1),
        block2=_XceptionBlock(64, 128, 128, first_act=False),
        block3=_XceptionBlock(128, 256, 256, first_act=True),
        block4=_XceptionBlock(256, 728, 728, first_act=True),
    )
    for i in range(5, 13):
        layers[f"block{i}"] = _XceptionMiddle()
    layers["block13"] = _XceptionBlock(728, 728, 1024, first_act=True)
    layers["block14"] = nn.Sequential(block14)
    return nn.Sequential(layers)


@register_model(
    card=ModelCard(
        name="xception",
        input_size=(3, 299, 299),
        min_input_size=(71, 71),
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        first_conv="features.block1.block1_conv1",
        classifier="predictions",
        target_layer="features.block14.block14_sepconv2_act",
        block_groups=tuple(f"features.block{i}" for i in range(1, 15)),
        published_params=22_855_952,
        source="keras",
        description="Xception (Chollet): depthwise-separable Inception, Keras application",
        imagenet_weights="xception_weights_tf_dim_ordering_tf_kernels.h5",
    )
)
def xception(
    *, num_classes: int, in_chans: int, pooling: str | None, input_size: tuple[int, ...]
) -> CnnkitModel:
    """Chollet's Xception (22,855,952 parameters; Keras counts 22,910,480 with BN statistics)."""
    model = _GapLinearModel(num_classes=num_classes, num_features=2048, in_chans=in_chans)
    model.features = _xception_features(in_chans)
    if num_classes:
        model._build_head(num_classes)
    else:
        model.predictions = nn.Identity()
    model.pooling = pooling
    return model


_MOBILENET_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


def _mobilenet_features(in_chans: int, alpha: float) -> nn.Sequential:
    c = int(32 * alpha)
    stem = OrderedDict(
        conv1=Conv2d(in_chans, c, 3, 2, "same", bias=False), conv1_bn=_bn(c), conv1_relu=nn.ReLU6()
    )
    blocks: OrderedDict[str, nn.Module] = OrderedDict(stem=nn.Sequential(stem))
    for i, (filters, stride) in enumerate(_MOBILENET_BLOCKS, start=1):
        out = int(filters * alpha)
        block: OrderedDict[str, nn.Module] = OrderedDict()
        if stride == 2:
            block[f"conv_pad_{i}"] = nn.ZeroPad2d((0, 1, 0, 1))
        pad = "same" if stride == 1 else "valid"
        block[f"conv_dw_{i}"] = Conv2d(c, c, 3, stride, pad, groups=c, bias=False)
        block[f"conv_dw_{i}_bn"] = _bn(c)
        block[f"conv_dw_{i}_relu"] = nn.ReLU6()
        block[f"conv_pw_{i}"] = Conv2d(c, out, 1, bias=False)
        block[f"conv_pw_{i}_bn"] = _bn(out)
        block[f"conv_pw_{i}_relu"] = nn.ReLU6()
        blocks[f"block{i}"] = nn.Sequential(block)
        c = out
    return nn.Sequential(blocks)


class _MobileNetV1(CnnkitModel):
    """MobileNet v1; head as Keras: global pool -> dropout -> 1x1 conv ``conv_preds``."""

    def __init__(self, *, num_classes: int, in_chans: int, alpha: float, dropout: float) -> None:
        super().__init__(num_classes=num_classes, num_features=int(1024 * alpha), in_chans=in_chans)
        self.features = _mobilenet_features(in_chans, alpha)
        self._dropout_rate = dropout
        self.dropout: nn.Module = nn.Identity()
        self.conv_preds: nn.Module = nn.Identity()
        if num_classes:
            self._build_head(num_classes)

    def _build_head(self, num_classes: int) -> None:
        self.dropout = nn.Dropout(self._dropout_rate)
        self.conv_preds = nn.Conv2d(self.num_features, num_classes, 1)

    def _head_module_names(self) -> tuple[str, ...]:
        return ("dropout", "conv_preds")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(B, C, H, W) -> (B, num_features, h, w)``."""
        return self.features(x)

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        x = self.dropout(f.mean(dim=(2, 3), keepdim=True))  # (B, C, 1, 1)
        if pre_logits:
            return torch.flatten(x, 1)
        return torch.flatten(self.conv_preds(x), 1)  # (B, K, 1, 1) -> (B, K)


@register_model(
    card=ModelCard(
        name="mobilenet",
        input_size=(3, 224, 224),
        min_input_size=(32, 32),
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        first_conv="features.stem.conv1",
        classifier="conv_preds",
        target_layer="features.block13.conv_pw_13_relu",
        block_groups=("features.stem",) + tuple(f"features.block{i}" for i in range(1, 14)),
        published_params=4_231_976,
        source="keras",
        description="MobileNet v1 (Howard et al.), alpha 1.0, Keras application",
        imagenet_weights="mobilenet_1_0_224_tf.h5",
    )
)
def mobilenet(
    *,
    num_classes: int,
    in_chans: int,
    pooling: str | None,
    alpha: float = 1.0,
    dropout: float = 1e-3,
    input_size: tuple[int, ...],
) -> CnnkitModel:
    """MobileNet v1 (4,231,976 parameters at alpha 1; Keras counts 4,253,864 with BN stats).

    Args:
        alpha: width multiplier (Keras ``alpha``).
        dropout: dropout rate before the classifier (Keras default 1e-3).
    """
    if not (isinstance(alpha, int | float) and alpha > 0):
        raise ValueError(f"alpha must be a positive number. Received: alpha={alpha!r}")
    model = _MobileNetV1(num_classes=num_classes, in_chans=in_chans, alpha=alpha, dropout=dropout)
    model.pooling = pooling
    return model
