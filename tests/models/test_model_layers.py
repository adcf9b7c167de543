"""Building blocks: the output-size formula against real layers, "same" padding, blocks."""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from cnnkit.models.layers import (
    Conv1d,
    Conv2d,
    ConvBNAct,
    ConvBNAct1d,
    DenseBlock,
    DenseTransition,
    InceptionBlock,
    MaxPool2d,
    PoolFirstSequential,
    Rescaling,
    ResidualBlock,
    SeparableConv1d,
    SeparableConv2d,
    conv_output_size,
)

GRID = list(
    itertools.product(range(1, 14), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2))
)  # size, kernel, stride, padding, dilation


def _real(layer: nn.Module, size: int) -> int | None:
    try:
        return layer(torch.zeros(1, 1, size, size)).shape[-1]
    except RuntimeError:
        return None  # PyTorch refuses: output would be empty


def _check_against(layer_for, sizes_grid, **kw):
    checked = 0
    for size, k, s, p, d in sizes_grid:
        real = _real(layer_for(k, s, p, d), size)
        case = dict(size=size, kernel_size=k, stride=s, padding=p, dilation=d, **kw)
        if real is None or real < 1:
            with pytest.raises(ValueError, match=f"size={size}, kernel_size={k}"):
                conv_output_size(**case)
        else:
            assert conv_output_size(**case) == real, case
            checked += 1
    assert checked > len(sizes_grid) // 2


def test_conv_output_size_matches_nn_conv2d():
    _check_against(lambda k, s, p, d: nn.Conv2d(1, 1, k, s, p, d), GRID)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_conv_output_size_matches_max_pool(ceil_mode):
    grid = [g for g in GRID if g[3] <= g[1] // 2]  # PyTorch: pad <= kernel / 2
    _check_against(
        lambda k, s, p, d: nn.MaxPool2d(k, s, p, d, ceil_mode=ceil_mode), grid, ceil_mode=ceil_mode
    )


def test_same_padding_is_ceil_h_over_s_for_conv_and_pool():
    for size, k, s in itertools.product(range(1, 12), (1, 2, 3, 4, 5), (1, 2, 3)):
        expected = math.ceil(size / s)
        assert conv_output_size(size, k, s, "same") == expected
        out = Conv2d(1, 1, k, s, padding="same")(torch.zeros(1, 1, size, size + 1))
        assert tuple(out.shape[-2:]) == (expected, math.ceil((size + 1) / s)), (size, k, s)
        pool = MaxPool2d(k, s, padding="same")(torch.zeros(1, 1, size, size))
        assert pool.shape[-1] == expected, (size, k, s)
        assert Conv1d(1, 1, k, s, padding="same")(torch.zeros(1, 1, size)).shape[-1] == expected


def test_same_padding_is_tf_style_asymmetric():
    # TF pads 1 pixel at the bottom/right only for k=3, s=2 on an even size.
    conv = Conv2d(1, 1, 3, stride=2, padding="same", bias=False)
    nn.init.ones_(conv.weight)
    x = torch.ones(1, 1, 4, 4)
    out = conv(x)
    assert out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_same_maxpool_pads_with_minus_infinity():
    x = -torch.ones(1, 1, 4, 4)
    assert MaxPool2d(3, 2, padding="same")(x).max().item() == -1.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(size=0, kernel_size=3), "size=0"),
        (dict(size=5, kernel_size=3, stride=0), "stride=0"),
        (dict(size=5, kernel_size=3, padding="full"), "padding='full'"),
        (dict(size=2, kernel_size=5), "size=2, kernel_size=5"),
    ],
)
def test_conv_output_size_errors_name_the_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_output_size(**kwargs)


def test_conv_bn_act_order_and_no_bias():
    block = ConvBNAct(3, 8, 3, stride=2)
    assert [type(m) for m in block] == [Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert block.conv.bias is None
    assert block(torch.rand(2, 3, 9, 9)).shape == (2, 8, 5, 5)
    assert ConvBNAct1d(4, 6, 5, stride=2)(torch.rand(2, 4, 11)).shape == (2, 6, 6)


def test_separable_conv_parameter_count_matches_keras():
    sep = SeparableConv2d(32, 64, 3, bias=True)  # Keras: 3*3*32 + 32*64 + 64
    assert sum(p.numel() for p in sep.parameters()) == 288 + 2048 + 64
    assert sep(torch.rand(1, 32, 7, 7)).shape == (1, 64, 7, 7)
    sep1 = SeparableConv1d(4, 8, 5)
    assert sum(p.numel() for p in sep1.parameters()) == 5 * 4 + 4 * 8
    assert sep1(torch.rand(1, 4, 10)).shape == (1, 8, 10)


def test_inception_block_concatenates_four_paths():
    block = InceptionBlock(16, 8, 4, 12, 2, 4, 6)
    assert block(torch.rand(2, 16, 7, 7)).shape == (2, 30, 7, 7)
    assert block.out_channels == 30


@pytest.mark.parametrize("bottleneck,out", [(False, 16), (True, 64)])
def test_residual_block_shapes_and_identity_shortcut(bottleneck, out):
    block = ResidualBlock(8, 16, stride=2, bottleneck=bottleneck)
    assert block(torch.rand(2, 8, 9, 9)).shape == (2, out, 5, 5)
    same = ResidualBlock(16, 16)
    assert isinstance(same.shortcut, nn.Identity)


def test_dense_block_grows_channels_and_transition_halves():
    block = DenseBlock(8, num_layers=3, growth_rate=4)
    x = torch.rand(2, 8, 8, 8)
    y = block(x)
    assert y.shape == (2, 20, 8, 8) and block.out_channels == 20
    assert torch.equal(y[:, :8], x)  # the input is passed on unchanged (concatenation)
    assert DenseTransition(20, 10)(y).shape == (2, 10, 4, 4)


def test_rescaling():
    x = torch.tensor([0.0, 255.0])
    assert Rescaling(1 / 255)(x).tolist() == [0.0, 1.0]
    assert Rescaling(1 / 127.5, -1)(x).tolist() == [-1.0, 1.0]


def _act_pool_stack(act: type[nn.Module], pool: nn.Module) -> OrderedDict[str, nn.Module]:
    return OrderedDict(conv=nn.Conv2d(3, 4, 3), act=act(), pool=pool, flat=nn.Flatten())


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
@pytest.mark.parametrize(
    "pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, padding=1), nn.MaxPool2d(2, ceil_mode=True)]
)
def test_pool_first_sequential_gives_identical_outputs_and_gradients(act, pool):
    torch.manual_seed(0)
    written = nn.Sequential(_act_pool_stack(act, pool))
    fast = PoolFirstSequential(OrderedDict(written.named_children()))
    x = torch.randn(2, 3, 11, 11) * 4  # odd size: the pool drops a row and a column
    out_w = written(x)
    grads_w = torch.autograd.grad(out_w.square().sum(), list(written.parameters()))
    out_f = fast(x)
    grads_f = torch.autograd.grad(out_f.square().sum(), list(fast.parameters()))
    assert torch.equal(out_f, out_w)
    for gf, gw in zip(grads_f, grads_w, strict=True):
        assert torch.equal(gf, gw)
    assert list(fast.state_dict()) == list(written.state_dict())


def test_pool_first_sequential_really_reorders():
    calls: list[str] = []
    stack = PoolFirstSequential(OrderedDict(act=nn.ReLU(), pool=nn.MaxPool2d(2)))
    original = nn.functional.max_pool2d

    def spy(x, *args, **kwargs):
        calls.append("pool" if x.min() < 0 else "pool-after-relu")
        return original(x, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nn.functional, "max_pool2d", spy)
        mp.setattr(torch.nn.modules.pooling.F, "max_pool2d", spy)
        stack(-torch.ones(1, 1, 4, 4))
    assert calls == ["pool"]  # the pool saw the negative input: it ran first


@pytest.mark.parametrize("hook_on", ["act", "pool", "global"])
def test_pool_first_sequential_keeps_written_order_for_hooks(hook_on):
    stack = PoolFirstSequential(OrderedDict(act=nn.ReLU(), pool=nn.MaxPool2d(2)))
    seen: list[tuple[str, tuple[int, ...]]] = []

    def hook(module, inputs, output):
        names = {nn.ReLU: "act", nn.MaxPool2d: "pool"}
        if type(module) in names:
            seen.append((names[type(module)], tuple(output.shape)))

    if hook_on == "global":
        handles = [nn.modules.module.register_module_forward_hook(hook)]
    else:
        handles = [getattr(stack, hook_on).register_forward_hook(hook)]
    try:
        out = stack(torch.randn(1, 1, 4, 4))
    finally:
        for h in handles:
            h.remove()
    assert out.shape == (1, 1, 2, 2)
    expected = {"act": [("act", (1, 1, 4, 4))], "pool": [("pool", (1, 1, 2, 2))]}
    expected["global"] = [("act", (1, 1, 4, 4)), ("pool", (1, 1, 2, 2))]
    assert seen == expected[hook_on]
