"""Freezing really freezes (parameters and BatchNorm statistics); unfreezing the top N blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.models import create_model
from cnnkit.models.transfer import (
    changed_since,
    describe,
    freeze_base,
    frozen_bn_paths,
    frozen_snapshot,
    head_parameters,
    unfreeze_top,
)


def _model():
    torch.manual_seed(0)
    return create_model("resnet18", num_classes=3, input_size=(3, 16, 16))


def _train_steps(model, n: int = 3) -> None:
    """A few SGD steps in training mode on every parameter that requires gradients."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    gen = torch.Generator().manual_seed(1)
    for _ in range(n):
        model.train()  # the loop does this every epoch; frozen BN must stay in eval
        x = torch.randn(4, 3, 16, 16, generator=gen) * 3 + 1
        loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def _trainable_roots(model) -> set[str]:
    return {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}


def test_freeze_base_leaves_only_the_head_trainable():
    model = _model()
    freeze_base(model)
    assert _trainable_roots(model) == {"fc"}
    assert {id(p) for p in head_parameters(model)} == {id(model.fc.weight), id(model.fc.bias)}
    info = describe(model)
    assert info["trainable_params"] == 512 * 3 + 3
    assert info["frozen_bn_layers"] == 20


def test_frozen_base_is_bit_identical_after_training_params_and_bn_stats():
    model = _model()
    freeze_base(model)
    before = frozen_snapshot(model)
    assert "bn1.running_mean" in before and "layer4.1.bn2.num_batches_tracked" in before
    head_before = model.fc.weight.detach().clone()
    _train_steps(model)
    assert changed_since(before, model) == []
    assert not torch.equal(model.fc.weight, head_before)  # the head did train
    assert model.training and not model.bn1.training  # frozen BN back in inference mode


def test_without_freezing_bn_statistics_do_move():
    """The oracle for the test above: the same steps on an unfrozen model change the stats."""
    model = _model()
    before = model.bn1.running_mean.clone()
    _train_steps(model)
    assert not torch.equal(model.bn1.running_mean, before)


def test_unfreeze_top_n_makes_exactly_those_blocks_trainable():
    model = _model()
    freeze_base(model)
    top = unfreeze_top(model, 2)
    assert top == ["layer3", "layer4"]
    assert _trainable_roots(model) == {"layer3", "layer4", "fc"}
    assert all(not p.requires_grad for p in model.layer2.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    assert describe(model)["unfrozen_blocks"] == ["layer3", "layer4"]


def test_unfreeze_with_bn_frozen_keeps_statistics_but_trains_the_blocks():
    model = _model()
    freeze_base(model)
    unfreeze_top(model, 1, bn="frozen")
    stats = model.layer4[0].bn1.running_mean.clone()
    conv = model.layer4[0].conv1.weight.detach().clone()
    before = frozen_snapshot(model)
    _train_steps(model)
    assert changed_since(before, model) == []  # layer1-3, stem and every BN buffer
    assert torch.equal(model.layer4[0].bn1.running_mean, stats)
    assert not torch.equal(model.layer4[0].conv1.weight, conv)


def test_unfreeze_with_bn_train_lets_the_unfrozen_bn_update():
    model = _model()
    freeze_base(model)
    unfreeze_top(model, 1, bn="train")
    assert not any(p.startswith("layer4.") for p in frozen_bn_paths(model))
    stats4 = model.layer4[0].bn1.running_mean.clone()
    before = frozen_snapshot(model)
    _train_steps(model)
    assert changed_since(before, model) == []  # the still-frozen part did not move
    assert not torch.equal(model.layer4[0].bn1.running_mean, stats4)


def test_unfreeze_all_and_none():
    model = _model()
    freeze_base(model)
    assert unfreeze_top(model, 0) == []
    assert _trainable_roots(model) == {"fc"}
    groups = unfreeze_top(model, 6)
    assert groups == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    assert all(p.requires_grad for p in model.parameters())


def test_bad_unfreeze_and_bn_values_are_clear_errors():
    model = _model()
    freeze_base(model)
    with pytest.raises(
        ValueError, match=r"unfreeze must be an int from 0 to 6 .*Received: unfreeze=7"
    ):
        unfreeze_top(model, 7)
    with pytest.raises(ValueError, match="bn must be 'frozen' or 'train'"):
        unfreeze_top(model, 1, bn="eval")


def test_freeze_base_needs_a_head():
    base = create_model("resnet18", num_classes=0, input_size=(3, 16, 16))
    with pytest.raises(ValueError, match="num_classes > 0"):
        freeze_base(base)


def test_changed_since_detects_a_single_changed_value():
    model = _model()
    freeze_base(model)
    before = frozen_snapshot(model)
    with torch.no_grad():
        model.layer1[0].conv1.weight[0, 0, 0, 0] += 1e-6
    assert changed_since(before, model) == ["layer1.0.conv1.weight"]
