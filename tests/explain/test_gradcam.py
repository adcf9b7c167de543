"""Grad-CAM against a manual hooks + autograd computation and against pytorch-grad-cam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from scipy.stats import spearmanr
from torch import nn

from cnnkit.explain import gradcam
from cnnkit.explain.gradcam import METHODS


class TinyNet(nn.Module):
    """Nested: a ``body`` with ``block`` children, then GAP + linear."""

    def __init__(self, in_chans: int = 3, k: int = 4, inplace: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(inplace=inplace)),
            nn.MaxPool2d(2),
            nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=inplace)),
        )
        self.head = nn.Linear(16, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def _manual(model: nn.Module, module: nn.Module, x: torch.Tensor, method: str) -> torch.Tensor:
    """Independent oracle: hooks store the output, autograd gives d score / d output."""
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    model.eval()
    x = x.clone().requires_grad_(True)
    logits = model(x)
    handle.remove()
    a = store["a"]
    cls = logits.argmax(1)
    (g,) = torch.autograd.grad(logits[torch.arange(len(x)), cls].sum(), a)
    a, g = a.detach().numpy(), g.numpy()
    if method == "hirescam":
        cam = (g * a).sum(1)
    elif method == "gradcam":
        cam = (g.mean((2, 3))[:, :, None, None] * a).sum(1)
    else:  # Grad-CAM++ closed form, written out per paper eq. 19
        s = a.sum((2, 3), keepdims=True)
        alpha = g**2 / (2 * g**2 + s * g**3 + 1e-6)
        alpha[g == 0] = 0
        w = (np.maximum(g, 0) * alpha).sum((2, 3))
        cam = (w[:, :, None, None] * a).sum(1)
    return torch.from_numpy(np.maximum(cam, 0))


def _minmax(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lo = m.min(axis=(-2, -1), keepdims=True)
    hi = m.max(axis=(-2, -1), keepdims=True)
    return (m - lo) / np.maximum(hi - lo, 1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_equals_manual_hooks_and_autograd(method):
    torch.manual_seed(0)
    model = TinyNet()
    x = torch.randn(3, 3, 16, 16)
    res = gradcam(model, x, target_layer="body.2", method=method)
    expected = _manual(model, model.body[2], x, method)
    assert res.cam.shape == (3, 8, 8)
    torch.testing.assert_close(res.cam, expected, rtol=1e-5, atol=1e-6)
    assert res.upsampled.shape == (3, 16, 16)
    assert float(res.upsampled.min()) >= 0 and float(res.upsampled.max()) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=5).eval()


@pytest.mark.parametrize("method", METHODS)
def test_agrees_with_pytorch_grad_cam_on_resnet18(method, resnet18, require):
    try:
        import pytorch_grad_cam as pgc
    except ImportError:
        pgc = None
    require(pgc is not None, "pytorch-grad-cam (pip install grad-cam, a dev extra)")
    cls = {"gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "hirescam": pgc.HiResCAM}
    model = resnet18
    x = torch.randn(2, 3, 64, 64)
    ours = gradcam(model, x, target_layer="layer3", method=method)
    with cls[method](model=model, target_layers=[model.layer3]) as theirs:
        theirs(x, None)
        acts = theirs.activations_and_grads.activations[0].numpy()
        grads = theirs.activations_and_grads.gradients[0].numpy()
        low = theirs.get_cam_image(x, model.layer3, None, acts, grads, False)
    low = np.maximum(low, 0)  # their low-res map before scale_cam_image resizes it
    assert low.shape == tuple(ours.cam.shape) == (2, 4, 4)
    np.testing.assert_allclose(_minmax(ours.cam.numpy()), _minmax(low), atol=1e-4)


def test_auto_layer_is_last_spatial_module_of_wrapped_model():
    torch.manual_seed(0)
    wrapped = nn.Sequential(nn.Identity(), torchvision.models.resnet18(weights=None))
    res = gradcam(wrapped, torch.randn(1, 3, 64, 64))
    assert res.target_layer == "1.layer4"  # avgpool's 1x1 output is not spatial


def test_card_target_layer_is_used():
    model = TinyNet()
    model.card = type("Card", (), {"target_layer": "body.0"})()
    assert gradcam(model, torch.randn(1, 3, 16, 16)).target_layer == "body.0"


def test_frozen_no_grad_inplace_model_matches_and_state_is_restored():
    torch.manual_seed(0)
    model = TinyNet(inplace=True)
    x = torch.randn(2, 3, 16, 16)
    # body.2.0 is a conv followed by an in-place ReLU: the saved activation must be pre-ReLU.
    reference = TinyNet(inplace=False)
    reference.load_state_dict(model.state_dict())
    expected = _manual(reference, reference.body[2][0], x, "gradcam")
    for p in model.parameters():
        p.requires_grad_(False)
    model.train()
    with torch.no_grad():
        res = gradcam(model, x, target_layer="body.2.0")
    torch.testing.assert_close(res.cam, expected, rtol=1e-5, atol=1e-6)
    assert model.training and all(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_and_flags_restored_after_an_error():
    model = TinyNet()
    with pytest.raises(ValueError, match="target_layer must return a 4D"):
        gradcam(model, torch.randn(1, 3, 16, 16), target_layer="head")
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert model.training


def test_batched_equals_one_by_one_and_target_class():
    torch.manual_seed(1)
    model = TinyNet()
    x = torch.randn(4, 3, 16, 16)
    batch = gradcam(model, x, target_class=[0, 1, 2, 3], method="gradcam++")
    for i in range(4):
        one = gradcam(model, x[i : i + 1], target_class=i, method="gradcam++")
        torch.testing.assert_close(batch.cam[i], one.cam[0], rtol=1e-4, atol=1e-6)
    assert batch.target_class.tolist() == [0, 1, 2, 3]
    assert batch.probabilities.shape == (4, 4)
    torch.testing.assert_close(batch.probabilities.sum(1), torch.ones(4))
    assert batch.labels.tolist() == batch.probabilities.argmax(1).tolist()


def test_peaks_are_argmax_in_xy():
    model = TinyNet()
    res = gradcam(model, torch.randn(2, 3, 16, 16))
    for i, (px, py) in enumerate(res.peaks().tolist()):
        assert res.upsampled[i, py, px] == res.upsampled[i].max()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "scorecam"}, "method must be one of"),
        ({"target_layer": "nope"}, "Known layers"),
        ({"target_class": 7}, "target_class must be"),
    ],
)
def test_user_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradcam(TinyNet(), torch.randn(1, 3, 16, 16), **kwargs)


def test_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        gradcam(TinyNet(), torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def _bars(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 1x16x16 images with one bright bar at a random place: 0 = horizontal, 1 = vertical."""
    x = torch.rand(n, 1, 16, 16, generator=gen) * 0.3
    y = torch.randint(0, 2, (n,), generator=gen)
    pos = torch.randint(0, 11, (n, 2), generator=gen)
    for i in range(n):
        r, c = pos[i].tolist()
        if y[i] == 0:
            x[i, 0, r + 2, c : c + 6] = 1.0
        else:
            x[i, 0, r : r + 6, c + 2] = 1.0
    return x, y


def test_sanity_reinitialised_weights_change_the_map():
    """Adebayo et al. 2018: the map of a trained model must depend on its weights."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyNet(in_chans=1, k=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        x, y = _bars(32, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = _bars(32, gen)
    assert (model(x).argmax(1) == y).float().mean() > 0.8  # it really learned the task
    trained = gradcam(model, x, target_class=y, target_layer="body.2").cam.flatten(1)
    torch.manual_seed(123)
    random = gradcam(TinyNet(in_chans=1, k=2), x, target_class=y, target_layer="body.2").cam
    random = random.flatten(1)
    assert bool((trained.std(1) > 0).all())  # every trained map says something
    # A constant (all-zero) re-initialised map shares no ranking with the trained one: 0.
    rhos = [
        spearmanr(a, b)[0] if b.std() > 0 else 0.0 for a, b in zip(trained, random, strict=True)
    ]
    rho = float(np.mean(rhos))
    assert rho < 0.3, f"mean Spearman {rho:.2f} between trained and re-initialised maps"


def test_card_of_a_dataparallel_style_wrapper():
    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x)

    inner = TinyNet()
    inner.card = type("Card", (), {"target_layer": "body.0"})()
    res = gradcam(Wrapper(inner), torch.randn(1, 3, 16, 16))
    assert res.target_layer == "module.body.0"


def test_layer_off_the_logits_path_is_a_clear_error():
    class Branchy(TinyNet):
        def __init__(self):
            super().__init__()
            self.side = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            self.side(x)  # computed, never used
            return super().forward(x)

    with pytest.raises(ValueError, match="path to the logits"):
        gradcam(Branchy(), torch.randn(1, 3, 8, 8), target_layer="side")
