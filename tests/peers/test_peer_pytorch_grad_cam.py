"""pytorch-grad-cam's own tests (jacobgil/pytorch-grad-cam ``tests/``), case by case, in
cnnkit's :func:`cnnkit.explain.gradcam`.

Each test names the case it mirrors. Their ``target_layers=[model.layer4[-1]]`` is cnnkit's
dotted ``target_layer="layer4.1"`` (one layer per call: a list of layers, averaged, cannot
apply), ``ClassifierOutputTarget(100)`` is ``target_class=100`` and ``targets=None`` the
predicted class. Their ``examples/both.png`` becomes a seeded random picture (a random-weight
network explains any picture alike). pytorch-grad-cam itself (a dev extra) is the oracle for
the maps; cases that cannot apply are listed, with the reason, in docs/data.md.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch

from cnnkit.explain import gradcam
from cnnkit.models import create_model

METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "hirescam": "HiResCAM"}


@pytest.fixture(scope="module")
def models():
    """Their ``torchvision.models.resnet18`` and ``vgg11`` (random weights: nothing to
    download), each built once, when first asked for."""
    built: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in built:
            torch.manual_seed(0)
            built[name] = create_model(name, num_classes=101).eval()
        return built[name]

    return get


@pytest.fixture
def pgc(require):
    try:
        import pytorch_grad_cam
    except ImportError:
        pytorch_grad_cam = None
    require(pytorch_grad_cam is not None, "pytorch-grad-cam (pip install grad-cam, a dev extra)")
    return pytorch_grad_cam


def _input(batch: int, height: int, width: int, channels: int = 3) -> torch.Tensor:
    """Their ``preprocess_image(cv2.resize(both.png, (width, height)))``, repeated ``batch``
    times: one normalised picture, ``(B, C, H, W)``."""
    g = torch.Generator().manual_seed(height * width)
    return torch.randn(1, channels, height, width, generator=g).repeat(batch, 1, 1, 1)


def _module(model: torch.nn.Module, dotted: str) -> torch.nn.Module:
    return model.get_submodule(dotted)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("target_category", [None, 100])
@pytest.mark.parametrize("batch_size,width,height", [(2, 32, 32), (1, 32, 40)])
@pytest.mark.parametrize(
    "cnn_model,target_layer",
    [
        ("resnet18", "layer4.1"),
        ("resnet18", "layer4.0"),
        pytest.param("vgg11", "features.20", marks=pytest.mark.slow),  # 133M weights
    ],
)
def test_all_cam_models_can_run(
    models, pgc, cnn_model, target_layer, batch_size, width, height, target_category, method
):
    """test_run_all_models.py::test_all_cam_models_can_run (the Grad-CAM family cnnkit has).

    Theirs asserts the map's shape, ``(B, H, W)``; here the map must also equal theirs.
    """
    model, x = models(cnn_model), _input(batch_size, height, width)
    ours = gradcam(model, x, target_class=target_category, target_layer=target_layer,
                   method=method)  # fmt: skip
    assert tuple(ours.upsampled.shape) == (batch_size, height, width)
    targets = None
    if target_category is not None:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        targets = [ClassifierOutputTarget(target_category) for _ in range(batch_size)]
    cam_class = getattr(pgc, METHODS[method])
    with cam_class(model=model, target_layers=[_module(model, target_layer)]) as cam:
        theirs = cam(input_tensor=x, targets=targets)
    assert theirs.shape == (batch_size, height, width)
    np.testing.assert_allclose(ours.upsampled.numpy(), theirs, atol=2e-3)


def test_one_channel(pgc):
    """test_one_channel.py::test_memory_usage_in_loop: a one-channel resnet18, a batch of 16
    copies of a grey picture (theirs swaps in a 1-channel ``conv1``; cnnkit has ``in_chans``)."""
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, in_chans=1).eval()
    assert model.conv1.in_channels == 1
    x = _input(16, 64, 64, channels=1)
    ours = gradcam(model, x, target_layer="layer4")
    assert tuple(ours.upsampled.shape) == (16, 64, 64)
    with pgc.GradCAM(model=model, target_layers=[model.layer4]) as cam:
        theirs = cam(input_tensor=x, targets=None)
    np.testing.assert_allclose(ours.upsampled.numpy(), theirs, atol=2e-3)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_context_release(models, device):
    """test_context_release.py and test_context_release_cuda.py::test_memory_usage_in_loop:
    repeated CAMs hold on to nothing.

    Theirs watches the system's (or the GPU's) memory over 100 calls; here each of 20 calls
    must leave no hook on any module, no graph behind its result, no gradient on a weight, and
    the target layer's activation freed.
    """
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine (the device check runs it)")
    model = models("resnet18").to(device)
    model.zero_grad(set_to_none=True)
    layer = _module(model, "layer4.1")
    x = _input(1, 64, 64).to(device)
    seen: list[weakref.ref] = []
    try:
        for _ in range(20):
            seen.clear()
            spy = layer.register_forward_hook(lambda m, i, o: seen.append(weakref.ref(o)))
            result = gradcam(model, x, target_class=100, target_layer="layer4.1")
            spy.remove()
            assert all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
                       for m in model.modules())  # fmt: skip
            assert not any(t.requires_grad for t in (result.cam, result.upsampled))
            assert seen and seen[0]() is None  # the activation died with the call
            assert all(p.grad is None for p in model.parameters())
    finally:
        model.to("cpu")
