"""Torchvision architectures behind the cnnkit contract (built with ``weights=None``).

The wrapper adopts the torchvision model's children under their own names, so state-dict
keys are exactly torchvision's (``layer4.1.conv2.weight``) and torchvision/timm weight
files load as they are. In-place ReLUs are turned off so hooks (Grad-CAM, summaries)
see every activation. Nothing is ever downloaded.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

from cnnkit.models.base import CnnkitModel, replace_first_conv
from cnnkit.models.layers import PoolFirstSequential, forward_pool_first
from cnnkit.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    ModelCard,
    register_model,
)

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])


class TorchvisionModel(CnnkitModel):
    """A torchvision model split into ``forward_features`` and ``forward_head``.

    Args:
        factory: builds the torchvision model for ``num_classes`` (``weights=None``).
        features: child names run in order by :meth:`forward_features`.
        head: child names of the head (removed for ``num_classes == 0``).
        num_features: channels of the feature map.
        num_classes: outputs (0 = the convolutional base).
        in_chans: input channels.
        first_conv: module path of the first convolution.
        final_relu: apply ReLU after the features (DenseNet's norm5 is followed by one).
        extra: other children to adopt (Inception v3's ``AuxLogits``; dropped for a base).
    """

    def __init__(
        self,
        factory: Callable[..., nn.Module],
        *,
        features: tuple[str, ...],
        head: tuple[str, ...],
        num_features: int,
        num_classes: int,
        in_chans: int,
        first_conv: str,
        final_relu: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        super().__init__(num_classes=num_classes, num_features=num_features, in_chans=in_chans)
        self._factory, self._feature_names, self._head_names = factory, features, head
        self._final_relu = final_relu
        extra = extra if num_classes else ()
        self._adopt(factory(num_classes=max(num_classes, 1)), features + head + extra)
        if num_classes == 0:
            for name in head:
                setattr(self, name, nn.Identity())
        replace_first_conv(self, first_conv, in_chans)

    def _adopt(self, tv: nn.Module, names: tuple[str, ...]) -> None:
        for m in tv.modules():
            if hasattr(m, "inplace"):
                setattr(m, "inplace", False)  # noqa: B010
        for name in names:
            module = getattr(tv, name)
            if type(module) is nn.Sequential:  # VGG/AlexNet/DenseNet: ReLU after max-pool
                module = PoolFirstSequential(OrderedDict(module.named_children()))
            self.add_module(name, module)

    def _build_head(self, num_classes: int) -> None:
        with torch.device("meta"):  # skip initialising a whole torchvision model
            tv = self._factory(num_classes=num_classes)
        for name in self._head_names:
            head = tv.get_submodule(name)
            head.to_empty(device="cpu")
            _init_head(head)
        self._adopt(tv, self._head_names)

    def _head_module_names(self) -> tuple[str, ...]:
        return self._head_names

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(B, C, H, W) -> (B, num_features, h, w)``."""
        x = forward_pool_first([getattr(self, n) for n in self._feature_names], x)
        return torch.relu(x) if self._final_relu else x


class _SequentialHeadModel(TorchvisionModel):
    """Head = pooling + ``classifier`` Sequential whose last layer is the classifier."""

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        x = torch.flatten(self.get_submodule(self._head_names[0])(f), 1)  # (B, C*h*w)
        clf = self.get_submodule(self._head_names[1])
        if isinstance(clf, nn.Sequential):
            x = clf[:-1](x)
            return x if pre_logits else clf[-1](x)
        return x if pre_logits else clf(x)


class _PoolDropFcModel(TorchvisionModel):
    """Head = pooling -> [dropout] -> fc (ResNet, GoogLeNet, Inception v3)."""

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        *pre, fc = (self.get_submodule(n) for n in self._head_names)
        x = torch.flatten(pre[0](f), 1)  # (B, C, h, w) -> (B, C)
        for m in pre[1:]:
            x = m(x)
        return x if pre_logits else fc(x)


class _DenseNetModel(_SequentialHeadModel):
    """DenseNet: torchvision pools in ``forward``; here an explicit AdaptiveAvgPool."""

    def _forward_head(self, f: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1)  # (B, C)
        return x if pre_logits else self.get_submodule("classifier")(x)


class _InceptionV3Model(_PoolDropFcModel):
    """Inception v3 with the optional auxiliary head after ``Mixed_6e``.

    With ``aux_logits=True`` the model returns ``InceptionOutputs(logits, aux_logits)`` in
    training mode (as torchvision does) and plain logits in eval mode.
    """

    def forward(self, x: torch.Tensor) -> Any:
        aux = getattr(self, "AuxLogits", None)
        if aux is None or not self.training or self.num_classes == 0:
            return super().forward(x)
        split = self._feature_names.index("Mixed_6e") + 1
        for name in self._feature_names[:split]:
            x = getattr(self, name)(x)
        aux_out = aux(x)
        for name in self._feature_names[split:]:
            x = getattr(self, name)(x)
        return InceptionOutputs(self.forward_head(x), aux_out)

    def reset_classifier(self, num_classes: int, pooling: str | None = "avg") -> None:
        """As :meth:`CnnkitModel.reset_classifier`; the auxiliary head follows ``num_classes``."""
        had_head = self.num_classes > 0
        super().reset_classifier(num_classes, pooling)
        aux = getattr(self, "AuxLogits", None)
        if aux is not None and num_classes and had_head:
            fc = aux.fc
            aux.fc = nn.Linear(fc.in_features, num_classes).to(fc.weight.device, fc.weight.dtype)

    def _build_head(self, num_classes: int) -> None:
        super()._build_head(num_classes)
        if getattr(self, "AuxLogits", None) is not None:
            with torch.device("meta"):
                aux = self._factory(num_classes=num_classes).get_submodule("AuxLogits")
            aux.to_empty(device="cpu")
            _init_head(aux)
            self.AuxLogits = aux


def _init_head(head: nn.Module) -> None:
    """Fresh classifier weights: N(0, 0.01) and zero bias, as torchvision's VGG/MobileNet."""
    for m in head.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()


def _card(name: str, **kw: Any) -> ModelCard:
    kw = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "imagenet_weights": "DEFAULT", **kw}
    return ModelCard(name=name, source="torchvision", **kw)


_SIZE = (3, 224, 224)


def _vgg_card(name: str, depth_cfg: tuple[int, ...], params: int, what: str) -> ModelCard:
    # depth_cfg: convs per block; features.<i> indices of convs follow conv, relu, [pool].
    convs, i = [], 0
    for n in depth_cfg:
        for _ in range(n):
            convs.append(i)
            i += 2
        i += 1  # max pool
    return _card(
        name,
        input_size=_SIZE,
        min_input_size=(32, 32),
        first_conv="features.0",
        classifier="classifier.6",
        target_layer=f"features.{convs[-1] + 1}",  # ReLU after the last conv
        block_groups=tuple(f"features.{c}" for c in convs),
        published_params=params,
        description=what,
    )


def _vgg(
    arch: str, *, num_classes: int, in_chans: int, pooling: str | None, input_size: tuple[int, ...]
):
    model = _SequentialHeadModel(
        partial(getattr(tvm, arch), weights=None),
        features=("features",),
        head=("avgpool", "classifier"),
        num_features=512,
        num_classes=num_classes,
        in_chans=in_chans,
        first_conv="features.0",
    )
    model.pooling = pooling
    return model


for _name, _cfg, _params in (
    ("vgg11", (1, 1, 2, 2, 2), 132_863_336),
    ("vgg16", (2, 2, 3, 3, 3), 138_357_544),
    ("vgg19", (2, 2, 4, 4, 4), 143_667_240),
):
    register_model(
        card=_vgg_card(
            _name, _cfg, _params, f"VGG-{_name[3:]} (Simonyan & Zisserman), 4096-4096 head"
        )
    )(partial(_vgg, _name))


@register_model(
    card=_card(
        "alexnet",
        input_size=_SIZE,
        min_input_size=(63, 63),
        first_conv="features.0",
        classifier="classifier.6",
        target_layer="features.11",
        block_groups=tuple(f"features.{i}" for i in (0, 3, 6, 8, 10)),
        published_params=61_100_840,
        description="AlexNet (one-GPU torchvision variant)",
    )
)
def alexnet(
    *, num_classes: int, in_chans: int, pooling: str | None, input_size: tuple[int, ...]
) -> CnnkitModel:
    """AlexNet (61,100,840 parameters)."""
    model = _SequentialHeadModel(
        partial(tvm.alexnet, weights=None),
        features=("features",),
        head=("avgpool", "classifier"),
        num_features=256,
        num_classes=num_classes,
        in_chans=in_chans,
        first_conv="features.0",
    )
    model.pooling = pooling
    return model


_RESNET_FEATURES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _resnet(
    arch: str, width: int, *, num_classes: int, in_chans: int, pooling, input_size: tuple[int, ...]
):
    model = _PoolDropFcModel(
        partial(getattr(tvm, arch), weights=None),
        features=_RESNET_FEATURES,
        head=("avgpool", "fc"),
        num_features=width,
        num_classes=num_classes,
        in_chans=in_chans,
        first_conv="conv1",
    )
    model.pooling = pooling
    return model


for _name, _width, _params, _what in (
    ("resnet18", 512, 11_689_512, "ResNet-18 (He et al.), basic blocks"),
    ("resnet50", 2048, 25_557_032, "ResNet-50 (He et al.), bottleneck blocks"),
):
    register_model(
        card=_card(
            _name,
            input_size=_SIZE,
            min_input_size=(1, 1),
            first_conv="conv1",
            classifier="fc",
            target_layer="layer4",
            block_groups=("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"),
            published_params=_params,
            description=_what,
        )
    )(partial(_resnet, _name, _width))


@register_model(
    card=_card(
        "densenet121",
        input_size=_SIZE,
        min_input_size=(29, 29),
        first_conv="features.conv0",
        classifier="classifier",
        target_layer="features.norm5",
        block_groups=(
            "features.conv0",
            "features.norm0",
            "features.denseblock1",
            "features.transition1",
            "features.denseblock2",
            "features.transition2",
            "features.denseblock3",
            "features.transition3",
            "features.denseblock4",
            "features.norm5",
        ),
        published_params=7_978_856,
        description="DenseNet-121 (Huang et al.), growth rate 32",
    )
)
def densenet121(
    *, num_classes: int, in_chans: int, pooling: str | None, input_size: tuple[int, ...]
) -> CnnkitModel:
    """DenseNet-121 (7,978,856 parameters; Keras counts 8,062,504 with BN statistics)."""
    model = _DenseNetModel(
        partial(tvm.densenet121, weights=None),
        features=("features",),
        head=("classifier",),
        num_features=1024,
        num_classes=num_classes,
        in_chans=in_chans,
        first_conv="features.conv0",
        final_relu=True,
    )
    model.pooling = pooling
    return model


@register_model(
    card=_card(
        "mobilenet_v2",
        input_size=_SIZE,
        min_input_size=(1, 1),
        first_conv="features.0.0",
        classifier="classifier.1",
        target_layer="features.18",
        block_groups=tuple(f"features.{i}" for i in range(19)),
        published_params=3_504_872,
        description="MobileNetV2 (Sandler et al.), width 1.0",
    )
)
def mobilenet_v2(
    *, num_classes: int, in_chans: int, pooling: str | None, input_size: tuple[int, ...]
) -> CnnkitModel:
    """MobileNetV2 (3,504,872 parameters; Keras counts 3,538,984 with BN statistics)."""
    model = _SequentialHeadModel(
        _mobilenet_v2_tv,
        features=("features",),
        head=("avgpool", "classifier"),
        num_features=1280,
        num_classes=num_classes,
        in_chans=in_chans,
        first_conv="features.0.0",
    )
    model.pooling = pooling
    return model


def _mobilenet_v2_tv(**kwargs: Any) -> nn.Module:
    tv = tvm.mobilenet_v2(weights=None, **kwargs)
    tv.avgpool = nn.AdaptiveAvgPool2d(1)  # torchvision pools inside forward(); name it
    return tv


_GOOGLENET_FEATURES = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
    "inception5a", "inception5b",
)  # fmt: skip


@register_model(
    card=_card(
        "googlenet",
        input_size=_SIZE,
        min_input_size=(15, 15),
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        first_conv="conv1.conv",
        classifier="fc",
        target_layer="inception5b",
        block_groups=tuple(n for n in _GOOGLENET_FEATURES if not n.startswith("maxpool")),
        published_params=6_624_904,
        description="GoogLeNet / Inception v1 (Szegedy et al.), no auxiliary heads",
    )
)
def googlenet(
    *, num_classes: int, in_chans: int, pooling: str | None, input_size: tuple[int, ...]
) -> CnnkitModel:
    """GoogLeNet without auxiliary classifiers (6,624,904 parameters)."""
    factory = partial(
        tvm.googlenet, weights=None, aux_logits=False, transform_input=False, init_weights=True
    )
    model = _PoolDropFcModel(
        factory,
        features=_GOOGLENET_FEATURES,
        head=("avgpool", "dropout", "fc"),
        num_features=1024,
        num_classes=num_classes,
        in_chans=in_chans,
        first_conv="conv1.conv",
    )
    model.pooling = pooling
    return model


AUX_MIN_SIZE = 299  # the auxiliary head (5x5/3 pool, then 5x5 conv) needs Mixed_6e >= 17x17

_INCEPTION_FEATURES = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
)  # fmt: skip


@register_model(
    card=_card(
        "inception_v3",
        input_size=(3, 299, 299),
        min_input_size=(75, 75),
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        first_conv="Conv2d_1a_3x3.conv",
        classifier="fc",
        target_layer="Mixed_7c",
        block_groups=tuple(n for n in _INCEPTION_FEATURES if not n.startswith("maxpool")),
        published_params=23_834_568,
        description="Inception v3 (Szegedy et al.), auxiliary head optional",
    )
)
def inception_v3(
    *,
    num_classes: int,
    in_chans: int,
    input_size: tuple[int, int, int],
    pooling: str | None,
    aux_logits: bool = False,
) -> CnnkitModel:
    """Inception v3 (23,834,568 parameters without the auxiliary head).

    Args:
        aux_logits: add the auxiliary classifier after ``Mixed_6e``; in training mode the
            model then returns ``InceptionOutputs(logits, aux_logits)``.
    """
    if aux_logits and min(input_size[1:]) < AUX_MIN_SIZE:
        raise ValueError(
            f"aux_logits=True needs inputs of at least {AUX_MIN_SIZE}x{AUX_MIN_SIZE} for "
            f"inception_v3. Received: input_shape={tuple(input_size)}"
        )
    factory = partial(
        tvm.inception_v3,
        weights=None,
        aux_logits=aux_logits,
        transform_input=False,
        init_weights=True,
    )
    model = _InceptionV3Model(
        factory,
        features=_INCEPTION_FEATURES,
        head=("avgpool", "dropout", "fc"),
        num_features=2048,
        num_classes=num_classes,
        in_chans=in_chans,
        first_conv="Conv2d_1a_3x3.conv",
        extra=("AuxLogits",) if aux_logits else (),
    )
    model.pooling = pooling
    return model
