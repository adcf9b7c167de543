"""Activations from forward hooks, the automatic layer choice and the channel-grid figure."""

from __future__ import annotations

import io

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from cnnkit.explain import activation_grid_png, activations, auto_layers


def lecture_net() -> nn.Sequential:
    """conv-relu-pool x2, conv-relu, dense: the lecture's MNIST convnet, small."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 10),
    )  # fmt: skip


def test_auto_layers_one_per_resolution_on_lecture_net():
    net = lecture_net()
    acts = activations(net, torch.rand(2, 1, 28, 28))
    assert list(acts) == ["1", "2", "4", "5", "7"]  # post-ReLU conv outputs and pools
    assert [tuple(a.shape) for a in acts.values()] == [
        (2, 4, 26, 26), (2, 4, 13, 13), (2, 8, 11, 11), (2, 8, 5, 5), (2, 8, 3, 3),
    ]  # fmt: skip
    assert all(float(a.min()) >= 0 for a in acts.values())  # after ReLU


def test_auto_layers_on_resnet_pick_blocks_and_skip_1x1():
    model = torchvision.models.resnet18(weights=None)
    assert auto_layers(model, torch.rand(1, 3, 64, 64)) == [
        "relu", "layer1", "layer2", "layer3", "layer4"
    ]  # fmt: skip


def test_auto_layers_capped():
    model = torchvision.models.resnet18(weights=None)
    names = auto_layers(model, torch.rand(1, 3, 64, 64), max_layers=3)
    assert names == ["relu", "layer2", "layer4"]


def test_named_nested_layers_match_manual_forward():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True)), nn.Flatten())
    model.train()
    x = torch.rand(2, 3, 8, 8)
    acts = activations(model, x, ["0.0", "0"])
    conv = model[0][0](x)
    torch.testing.assert_close(acts["0.0"], conv)  # not altered by the in-place ReLU
    torch.testing.assert_close(acts["0"], conv.relu())
    assert model.training and all(not m._forward_hooks for m in model.modules())


def test_comma_string_and_unknown_layer():
    net = lecture_net()
    assert list(activations(net, torch.rand(1, 1, 28, 28), "0, 3")) == ["0", "3"]
    with pytest.raises(ValueError, match="Received: layer='nope'"):
        activations(net, torch.rand(1, 1, 28, 28), ["nope"])
    with pytest.raises(ValueError, match="non-empty list"):
        activations(net, torch.rand(1, 1, 28, 28), " , ")


def test_activation_grid_png_is_a_figure():
    acts = activations(lecture_net(), torch.rand(1, 1, 28, 28))
    png = activation_grid_png(acts, max_channels=4, cols=4)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width > 200 and img.height > 200
