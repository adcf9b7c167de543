"""Slow: on a convnet trained on ``shapes``, Grad-CAM points at the object and filter
patterns drive their filters far above real images (a small version of bench/explain.py)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data import load_dataset
from cnnkit.explain import filter_patterns, gradcam, mean_filter_activation, peak_in_box

MEAN, STD = 0.5, 0.25


def gap_convnet() -> nn.Sequential:
    """conv-bn-relu x4 (pooling after the first two), global average pooling, linear."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    prev = 3
    for i, (width, pool) in enumerate([(16, True), (32, True), (64, False), (64, False)], 1):
        layers[f"conv{i}"] = nn.Conv2d(prev, width, 3, padding=1, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(width)
        layers[f"relu{i}"] = nn.ReLU()
        if pool:
            layers[f"pool{i}"] = nn.MaxPool2d(2)
        prev = width
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(layers),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(prev, 3),
        )
    )


def _prep(images: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(np.array(images)).float() / 255 - MEAN) / STD


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train = load_dataset("shapes", "train")
    x, y = _prep(train.images[:900]), torch.from_numpy(train.labels[:900])
    model = gap_convnet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 32):
            idx = order[i : i + 32]
            xb = x[idx]
            flips = torch.rand(2, generator=gen)
            xb = xb.flip(3) if flips[0] < 0.5 else xb
            xb = xb.flip(2) if flips[1] < 0.5 else xb
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), load_dataset("shapes", "test")


@pytest.mark.slow
def test_gradcam_peak_inside_the_object_box(trained):
    model, test = trained
    x, y = _prep(test.images[:200]), torch.from_numpy(test.labels[:200])
    res = gradcam(model, x)
    assert res.target_layer == "features"  # no card: the last module with a spatial output
    ok = (res.labels == y).numpy()
    assert ok.sum() >= 120, f"only {ok.sum()} of 200 correct: the model did not learn"
    hits = peak_in_box(res.upsampled, test.boxes[:200])[ok]
    assert hits.mean() >= 0.9, f"peak inside the box for {hits.mean():.1%} of correct images"


@pytest.mark.slow
def test_filter_patterns_at_least_5x_real_images(trained):
    model, test = trained
    filters = list(range(8))
    pats = filter_patterns(model, "features.relu4", filters, steps=64, size=64, mean=[MEAN] * 3,
                           std=[STD] * 3)  # fmt: skip
    real = mean_filter_activation(model, "features.relu4", _prep(test.images[:200]), filters)
    opt = mean_filter_activation(model, "features.relu4", (pats - MEAN) / STD, filters)
    ratios = opt.diagonal() / real.mean(0)
    assert bool((ratios >= 5).all()), f"ratios {ratios.tolist()}"
