"""Filter patterns by gradient ascent, and raw first-layer kernels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.explain import PatternOptions, filter_patterns, mean_filter_activation, raw_kernels


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip


def test_patterns_raise_their_filter_above_real_images():
    net = small_net()
    opts = PatternOptions(lr=0.2)
    pats = filter_patterns(net, "4", filters=[0, 2, 5], steps=40, size=16, seed=1, options=opts)
    assert pats.shape == (3, 3, 16, 16)
    assert float(pats.min()) >= 0 and float(pats.max()) <= 1
    real = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    base = mean_filter_activation(net, "4", real, [0, 2, 5]).mean(0)  # (F,)
    opt = mean_filter_activation(net, "4", pats, [0, 2, 5])  # (F images, F filters)
    assert bool((opt.diagonal() > 1.5 * base).all()), (opt.diagonal(), base)
    # Each pattern drives its own filter harder than the other patterns do.
    assert opt.argmax(dim=0).tolist() == [0, 1, 2]


def test_batches_and_seed_are_deterministic_and_model_untouched():
    net = small_net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opts = PatternOptions(batch_size=2)
    a = filter_patterns(net, "0", filters=3, steps=3, size=8, seed=0, options=opts)
    b = filter_patterns(net, "0", filters=3, steps=3, size=8, seed=0)
    assert a.shape == (3, 3, 8, 8)
    torch.testing.assert_close(a[:2], b[:2])  # batch 1 of a == first two of b
    assert net.training and all(p.requires_grad for p in net.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_normalisation_and_grayscale():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    pats = filter_patterns(net, "1", filters=2, steps=2, size=10, mean=[0.5], std=[0.25])
    assert pats.shape == (2, 1, 10, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": [8]}, r"filters must be channel indices .* \[0, 8\)"),
        ({"steps": 0}, "steps and size must be >= 1"),
        ({"mean": [0.1, 0.2]}, "mean and std must have 1 or 3 values"),
    ],
)
def test_user_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        filter_patterns(small_net(), "0", **{"steps": 1, "size": 8, **kwargs})


def test_options_validate():
    with pytest.raises(ValueError, match="lr must be > 0"):
        PatternOptions(lr=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        PatternOptions(batch_size=0)


def test_raw_kernels_are_first_conv_scaled():
    net = small_net()
    k = raw_kernels(net)
    assert k.shape == (8, 3, 3, 3)
    assert torch.allclose(k.amin(dim=(1, 2, 3)), torch.zeros(8))
    assert torch.allclose(k.amax(dim=(1, 2, 3)), torch.ones(8))
    # Same order as the weights: the argmax of each kernel does not move.
    w = net[0].weight.detach()
    assert torch.equal(k.flatten(1).argmax(1), w.flatten(1).argmax(1))
    assert raw_kernels(net, "3").shape == (8, 1, 3, 3)  # 8 input channels: averaged
    with pytest.raises(ValueError, match="must be a Conv2d"):
        raw_kernels(net, "1")
