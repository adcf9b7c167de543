"""The registry: cards, names, sizes, the conv base and the pretrained hook."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from cnnkit.models import ModelCard, create_model, get_card, list_models, register_model
from cnnkit.models.registry import (
    TABLE_END,
    TABLE_START,
    check_input_size,
    main,
    markdown_table,
)


def test_mnist_nets_registered_with_cards():
    names = list_models()
    for n in ("basic_convnet", "keras_mnist_convnet", "lenet5"):
        assert n in names
        card = get_card(n)
        assert card.input_size == (1, 28, 28)
        assert card.mean == (0.0,) and card.std == (1.0,)
        assert card.num_classes == 10


def test_hyphens_accepted_and_unknown_name_lists_close_matches():
    assert get_card("basic-convnet").name == "basic_convnet"
    with pytest.raises(ValueError, match="Did you mean: lenet5"):
        create_model("lenet-55")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model(card=ModelCard(name="lenet5", input_size=(1, 28, 28)))(lambda **kw: None)


def test_card_validates_kind_and_sizes():
    with pytest.raises(ValueError, match="kind"):
        ModelCard(name="x", input_size=(1, 8, 8), kind="audio")
    with pytest.raises(ValueError, match="input_size"):
        ModelCard(name="x", input_size=(1, 8), kind="image")
    card = ModelCard(name="x", input_size=(1, 100), min_input_size=(8,), kind="snp")
    assert card.in_chans == 1


def test_too_small_input_message_is_keras_style():
    with pytest.raises(ValueError) as e:
        create_model("basic_convnet", input_size=(3, 16, 16))
    assert str(e.value) == (
        "input 16x16 is too small for basic_convnet (minimum 18x18). "
        "Received: input_shape=(3, 16, 16)"
    )
    check_input_size(get_card("basic_convnet"), (1, 18, 18))  # the minimum itself is fine


def test_dense_head_is_built_for_the_requested_size():
    model = create_model("basic_convnet", input_size=(3, 64, 64), num_classes=5)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 5)
    assert model.in_chans == 3 and model.card.input_size == (3, 64, 64)
    assert model.card.mean == (0.0, 0.0, 0.0)  # resolved for 3 channels


def test_input_size_spatial_only_and_conflicting_channels():
    assert create_model("lenet5", input_size=(32, 32)).card.input_size == (1, 32, 32)
    with pytest.raises(ValueError, match="in_chans=3 contradicts"):
        create_model("lenet5", in_chans=3, input_size=(1, 32, 32))
    with pytest.raises(ValueError, match="num_classes"):
        create_model("lenet5", num_classes=-1)


@pytest.mark.parametrize(
    "pooling,shape", [("avg", (2, 128)), ("max", (2, 128)), (None, (2, 128, 3, 3))]
)
def test_num_classes_zero_is_the_conv_base(pooling, shape):
    base = create_model("basic_convnet", num_classes=0, pooling=pooling)
    assert base(torch.rand(2, 1, 28, 28)).shape == shape
    assert sum(p.numel() for p in base.parameters()) == 104_202 - 11_530  # no Dense
    assert base.get_classifier() is None


def test_bad_pooling_raises():
    with pytest.raises(ValueError, match="pooling"):
        create_model("basic_convnet", num_classes=0, pooling="mean")


def test_pretrained_without_loader_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cnnkit.models.pretrained", None)  # import fails
    with pytest.raises(ValueError, match="pretrained="):
        create_model("lenet5", pretrained="some-weights")


def test_pretrained_hook_is_called(monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("cnnkit.models.pretrained")
    fake.load_pretrained = lambda model, name, pretrained: calls.append((name, pretrained))
    monkeypatch.setitem(sys.modules, "cnnkit.models.pretrained", fake)
    create_model("lenet-5".replace("-", ""), pretrained="w.safetensors")
    assert calls == [("lenet5", "w.safetensors")]


def test_markdown_table_lists_every_model(capsys):
    table = markdown_table()
    for n in list_models():
        assert f"| `{n}` |" in table
    assert main(["--markdown"]) == 0
    assert "| `basic_convnet` |" in capsys.readouterr().out


def test_docs_table_is_generated_from_the_registry():
    docs = Path(__file__).parents[2] / "docs" / "models.md"
    text = docs.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text
    for line in markdown_table(kind="image").splitlines():
        assert line in text, f"docs/models.md is stale; run python -m cnnkit.models --update {docs}"


def test_update_markdown_rewrites_between_markers(tmp_path):
    doc = tmp_path / "m.md"
    doc.write_text(f"intro\n{TABLE_START}\nold\n{TABLE_END}\noutro\n")
    assert main(["--update", str(doc)]) == 0
    text = doc.read_text()
    assert "old" not in text and "| `vgg16` |" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    doc.write_text("no markers")
    with pytest.raises(ValueError, match="missing the markers"):
        main(["--update", str(doc)])


def test_unknown_builder_option_is_refused():
    with pytest.raises(TypeError, match="resnet18 does not take aux_logits. Its own options: none"):
        create_model("resnet18", aux_logits=True)
    with pytest.raises(TypeError, match="lenet5 does not take paddding. Its own options: padding"):
        create_model("lenet5", paddding=2)
    assert create_model("lenet5", padding=0, input_size=(1, 32, 32))(
        torch.rand(1, 1, 32, 32)
    ).shape == (1, 10)
