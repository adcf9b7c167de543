"""Conformance of every registered image model: one contract, published parameter counts.

SNP models (``kind="snp"``, 1D input) are registered by ``zoo/snp.py`` and checked by the
genomics tests; this file covers every ``kind="image"`` model and says so explicitly.
"""

from __future__ import annotations

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models import create_model, get_card, list_models
from cnnkit.models.registry import KINDS

# Parameter counts at card defaults (torch count: weights, biases, BN gamma/beta).
PUBLISHED = {
    "basic_convnet": 104_202,
    "basic_convnet_bn": 104_426,  # cnnkit's own: basic_convnet + BN, counted by hand
    "gapnet": 61_050,  # cnnkit's own: convs 144+4,608+18,432+36,864, BN 2x(16+32+64+64), fc 650
    "keras_mnist_convnet": 34_826,
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_624_904,
    "inception_v3": 23_834_568,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "xception": 22_855_952,
    "mobilenet": 4_231_976,
    "mobilenet_v2": 3_504_872,
}
IMAGE_MODELS = list_models(kind="image")


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_image_model_is_in_the_published_table():
    assert set(IMAGE_MODELS) == set(PUBLISHED)
    for name in list_models():
        assert get_card(name).kind in KINDS  # kind="snp" ones are tested in tests/genomics


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_parameter_count_matches_published(name):
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = create_model(name)
    assert _count(model) == PUBLISHED[name] == get_card(name).published_params
    assert model.num_classes == get_card(name).num_classes


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_card_paths_resolve(name):
    card = get_card(name)
    with torch.device("meta"):
        model = create_model(name)
    assert isinstance(model.get_submodule(card.first_conv), nn.Conv2d)
    assert isinstance(model.get_submodule(card.classifier), nn.Linear | nn.Conv2d)
    model.get_submodule(card.target_layer)
    assert card.block_groups and [p for p, _ in model.block_group_modules()] == list(
        card.block_groups
    )
    first_group = model.get_submodule(card.block_groups[0])
    assert any(m is model.get_submodule(card.first_conv) for m in first_group.modules())
    assert len(card.mean) == len(card.std) == card.in_chans


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_target_layer_gives_a_spatial_map(name):
    """Grad-CAM needs (B, C, h, w) from the card's default target layer."""
    card = get_card(name)
    with torch.device("meta"):
        model = create_model(name).eval()
        got = []
        layer = model.get_submodule(card.target_layer)
        handle = layer.register_forward_hook(lambda m, i, o: got.append(o.shape))
        model(torch.empty(1, *card.input_size))
    handle.remove()
    assert len(got) == 1 and len(got[0]) == 4 and got[0][2] > 1


def _min_shape(name: str, chans: int) -> tuple[int, int, int]:
    h, w = get_card(name).min_input_size
    return (chans, h, w)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_below_minimum_size_is_a_clear_error(name):
    card = get_card(name)
    h, w = card.min_input_size
    if h == 1:
        return  # no smaller input exists; the 1x1 case runs in test_conformance
    with pytest.raises(ValueError, match=f"too small for {name} \\(minimum {h}x{w}\\)"):
        create_model(name, input_size=(card.in_chans, h - 1, w))


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_both_channel_counts_shapes_at_minimum_size(name):
    for chans in (1, 3):
        shape = _min_shape(name, chans)
        with torch.device("meta"):
            model = create_model(name, input_size=shape, num_classes=4)
            assert model(torch.empty(2, *shape)).shape == (2, 4)
        assert model.get_submodule(model.card.first_conv).in_channels == chans


# Real-weight conformance of the VGGs takes 3-9 s each on 2 shared cores (initialising and
# serialising a 120M-parameter 4096-unit head); their counts, card paths, shapes at the
# minimum size and in_chans=1 still run in the fast suite on the meta device.
SLOW_TO_BUILD = {"vgg11", "vgg16", "vgg19"}
CONFORMANCE = [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_BUILD else n for n in IMAGE_MODELS
]


@pytest.mark.parametrize("name", CONFORMANCE)
def test_conformance(name):
    """Real weights at the minimum size, with the other channel count (1 <-> 3)."""
    chans = 1 if get_card(name).in_chans == 3 else 3
    shape = _min_shape(name, chans)
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, input_size=shape)
    assert (model.num_classes, model.in_chans, model.card.input_size) == (3, chans, shape)
    assert model.get_submodule(model.card.first_conv).in_channels == chans

    x = torch.randn(2, *shape)
    model.train()
    logits = model(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    grad = model.get_submodule(model.card.first_conv).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[:2] == (2, model.num_features)
        expected = model(x)
        assert torch.allclose(model.forward_head(feats), expected)
        pre = model.forward_head(feats, pre_logits=True)
        clf = model.get_classifier()
        if isinstance(clf, nn.Linear):
            assert torch.allclose(clf(pre), expected, atol=1e-6)
        _check_state_dict_round_trip(name, model, x, expected)
        _check_reset_classifier(model, x)


def _check_state_dict_round_trip(name, model, x, expected):
    blob = safetensors.torch.save(model.state_dict())  # what run folders store
    with torch.device("meta"):
        clone = create_model(name, num_classes=3, input_size=model.card.input_size)
    clone.load_state_dict(safetensors.torch.load(blob), assign=True)
    assert torch.equal(clone.eval()(x), expected)


def _check_reset_classifier(model, x):
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.num_classes == 5 == model.card.num_classes
    model.reset_classifier(0, pooling="max")
    assert model(x).shape == (2, model.num_features) and model.get_classifier() is None
    model.reset_classifier(0, pooling=None)
    assert model(x).ndim == 4
    model.reset_classifier(2)
    assert model(x).shape == (2, 2)


def test_inception_v3_auxiliary_head():
    with pytest.raises(ValueError, match="aux_logits=True needs inputs of at least 299x299"):
        create_model("inception_v3", aux_logits=True, input_size=(3, 298, 298))
    shape = (3, 299, 299)
    with torch.device("meta"):
        model = create_model("inception_v3", aux_logits=True, num_classes=4, input_size=shape)
        out = model.train()(torch.empty(2, *shape))
        assert out.logits.shape == out.aux_logits.shape == (2, 4)
        assert model.eval()(torch.empty(2, *shape)).shape == (2, 4)
        full = create_model("inception_v3", aux_logits=True)
        assert _count(full) == 27_161_264  # torchvision's count with the auxiliary head
        model.reset_classifier(6)
        out = model.train()(torch.empty(2, *shape))
        assert out.logits.shape == out.aux_logits.shape == (2, 6)


@pytest.mark.parametrize(
    "name,shape",
    [("basic_convnet", (1, 28, 28)), ("mobilenet", (3, 32, 32)), ("xception", (3, 71, 71))],
)
def test_channels_last_bf16_autocast(name, shape):
    """The trainer's CPU fast path: channels_last memory and bf16 autocast."""
    model = create_model(name, num_classes=3, input_size=shape)
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(2, *shape).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    F.cross_entropy(logits.float(), torch.tensor([0, 1])).backward()
    assert torch.isfinite(model.get_submodule(model.card.first_conv).weight.grad).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_full_size_forward(name):
    card = get_card(name)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(1, *card.input_size))
    assert out.shape == (1, card.num_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("name", "size"), [("vgg11", 32), ("alexnet", 63), ("densenet121", 32), ("resnet18", 32)]
)
def test_torchvision_models_match_torchvision_with_the_same_weights(name, size):
    """The pool-first reordering (ReLU after max-pool) leaves every output identical."""
    import torchvision.models as tvm

    torch.manual_seed(0)
    ours = create_model(name, num_classes=10, input_size=(3, size, size)).eval()
    theirs = getattr(tvm, name)(weights=None, num_classes=10).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize(
    ("name", "first", "shape"),
    [
        ("basic_convnet_bn", ["conv1", "bn1", "relu1", "pool1"], (2, 1, 28, 28)),
        ("snp_cnn1d", ["conv1", "act1", "pool1"], (2, 1, 301)),  # ceil-mode pools, odd length
    ],
)
def test_models_run_relu_after_pool_but_keep_their_layers(name, first, shape):
    kw = {"input_size": shape[1:]} if name == "snp_cnn1d" else {}
    model = create_model(name, **kw)
    names = [n for n, _ in model.features.named_children()]
    assert names[: len(first)] == first
    written = nn.Sequential(*model.features.children())
    x = torch.randn(*shape) * 3
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.features(x), written(x))
