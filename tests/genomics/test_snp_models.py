"""Conformance of the registered SNP models (snp_cnn1d, snp_mlp)."""

from __future__ import annotations

import pytest
import torch

from cnnkit.models.registry import create_model, get_card, list_models

SNP_MODELS = ["snp_cnn1d", "snp_mlp"]


def test_registered_with_kind_snp():
    assert set(SNP_MODELS) <= set(list_models(kind="snp"))
    assert get_card("snp-cnn1d").kind == "snp"


@pytest.mark.parametrize("name", SNP_MODELS)
def test_published_parameter_count(name):
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == get_card(name).published_params


@pytest.mark.parametrize("name", SNP_MODELS)
@pytest.mark.parametrize("skip", [True, False])
def test_shapes_gradients_and_state_dict(name, skip):
    torch.manual_seed(0)
    model = create_model(name, input_size=(1, 123), linear_skip=skip).eval()  # no dropout
    x = torch.randn(4, 123)
    out = model(x)
    assert out.shape == (4, 1)
    assert torch.allclose(model(x.unsqueeze(1)), out)  # (B, L) and (B, 1, L) agree
    out.sum().backward()
    first = next(p for n, p in model.named_parameters() if n.startswith("features"))
    assert first.grad is not None and first.grad.abs().sum() > 0
    again = create_model(name, input_size=(1, 123), linear_skip=skip).eval()
    again.load_state_dict(model.state_dict())
    assert torch.equal(again(x), out)


@pytest.mark.parametrize("name", SNP_MODELS)
def test_reset_classifier_and_base(name):
    model = create_model(name, input_size=(1, 64))
    model.reset_classifier(3)
    assert model(torch.randn(2, 64)).shape == (2, 3)
    model.reset_classifier(0)
    assert model(torch.randn(2, 64)).shape == (2, model.num_features)


def test_skip_path_is_linear_and_rejects_bad_shapes():
    model = create_model("snp_cnn1d", input_size=(1, 50))
    x = torch.randn(3, 50)
    assert torch.allclose(
        model.forward_linear(2 * x) - model.skip.bias,
        2 * (model.forward_linear(x) - model.skip.bias),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        model(torch.randn(2, 2, 50))
