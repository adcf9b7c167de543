"""Filter patterns: the input each filter responds to most, by gradient ascent.

A batch of images, one per filter, is optimised at once. The image is parametrised in
Fourier space with a 1/f spectrum and (for RGB) decorrelated colour, as in Olah et al.
2017 ("Feature Visualization"); every step sees it randomly jittered and slightly blurred
(Yosinski et al. 2015) so the pattern has to be robust, which keeps it readable. The
forward pass stops at the layer (later layers never run). For an activation module (a
ReLU) the ascent maximises its input, the pre-activation, which has a gradient even where
the ReLU is off; a filter that is silent on a grey image would otherwise never move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.explain._hooks import eval_mode, first_output, frozen_params, get_module
from cnnkit.progress import Progress

# Square root of the ImageNet colour correlation matrix (Lucid), columns normalised below.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


@dataclass(frozen=True, kw_only=True)
class PatternOptions:
    """Settings of the gradient ascent in :func:`filter_patterns`.

    Attributes:
        lr: Adam learning rate on the Fourier coefficients.
        jitter: largest random shift per step, in pixels (None = size // 16, at least 1).
        blur_sigma: std of the Gaussian blur applied every step, in pixels (0 = none).
        decorrelate: decorrelate colour for 3-channel inputs.
        batch_size: filters optimised together.
    """

    lr: float = 0.05
    jitter: int | None = None
    blur_sigma: float = 0.5
    decorrelate: bool = True
    batch_size: int = 16

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0. Received: lr={self.lr}")
        if self.jitter is not None and self.jitter < 0:
            raise ValueError(f"jitter must be >= 0 pixels. Received: jitter={self.jitter}")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0. Received: blur_sigma={self.blur_sigma}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish)


class _Stop(Exception):
    """Raised by the hook once the layer has run, so later layers are skipped."""


def filter_patterns(
    model: nn.Module,
    layer: str,
    filters: Sequence[int] | int | None = None,
    *,
    steps: int = 128,
    size: int = 64,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    options: PatternOptions | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Images in 0..1 that maximise the mean activation of each filter of ``layer``.

    Args:
        model: any ``nn.Module``; weights are not changed, mode and flags are restored.
        layer: dotted name of a module with a 4D (B, C, H, W) output.
        filters: channel indices; an int n = the first n; None = the first 16.
        steps: optimisation steps.
        size: side of the square images.
        seed: seed of the initial spectrum and of the jitter.
        mean, std: the model's input normalisation (inputs in 0..1); None = none.
        options: :class:`PatternOptions`.
        progress: report the steps on stderr (:class:`cnnkit.progress.Progress`: a bar on a
            terminal, a line every 30 s with steps/s and the time left elsewhere).

    Returns:
        The patterns, one per filter.

    Shape:
        Returns: (F, C_in, size, size), values in 0..1.

    Raises:
        ValueError: unknown layer, filters out of range, or steps/size below 1.
    """
    opts = options or PatternOptions()
    if steps < 1 or size < 1:
        raise ValueError(f"steps and size must be >= 1. Received: steps={steps}, size={size}")
    module = get_module(model, layer)
    in_chans = _in_chans(model)
    norm = _normaliser(mean, std, in_chans)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    grey = torch.full((1, in_chans, size, size), 0.5, device=device)
    probe = layer_activation(model, module, norm(grey))
    chosen = _filter_list(filters, probe.shape[1], layer)
    # One draw for all filters and the same jitter sequence in every batch: a filter's
    # pattern does not depend on batch_size.
    init = (
        torch.randn(
            len(chosen),
            *_FourierImage.shape(in_chans, size),
            generator=torch.Generator().manual_seed(seed),
        )
        * 0.01
    )
    out = []
    batches = range(0, len(chosen), opts.batch_size)
    desc = f"filters of {layer}"
    with (
        eval_mode(model),
        frozen_params(model),
        Progress(len(batches) * steps, desc, "steps", enabled=progress) as bar,
    ):
        for start in batches:
            idx = torch.tensor(chosen[start : start + opts.batch_size], device=device)
            spectrum = init[start : start + opts.batch_size]
            gen = torch.Generator().manual_seed(seed + 1)
            out.append(_ascend(model, module, idx, spectrum, norm, steps, opts, gen, bar))
    return torch.cat(out)


def _ascend(model, module, idx, spectrum, norm, steps, opts, gen, bar) -> torch.Tensor:
    """Gradient ascent for one batch of filters; returns the images (F, C, S, S)."""
    param = _FourierImage(spectrum, opts.decorrelate).to(idx.device)
    optim = torch.optim.Adam(param.parameters(), lr=opts.lr)
    jitter = opts.jitter if opts.jitter is not None else max(1, param.size // 16)
    rows = torch.arange(len(idx), device=idx.device)
    for _ in range(steps):
        img = _blur(_jitter(param(), jitter, gen), opts.blur_sigma)
        act = layer_activation(model, module, norm(img), grad=True, pre_activation=True)
        loss = -act[rows, idx].mean(dim=(1, 2)).sum()  # each image pushes its own filter up
        optim.zero_grad()
        loss.backward()
        optim.step()
        bar.update()
    with torch.no_grad():
        return param().cpu()


def layer_activation(
    model: nn.Module,
    module: nn.Module,
    x: torch.Tensor,
    *,
    grad: bool = False,
    pre_activation: bool = False,
) -> torch.Tensor:
    """Output of ``module`` for ``x``, running ``model`` only up to it.

    Args:
        model: the model.
        module: one of its modules.
        x: preprocessed input.
        grad: keep the autograd graph.
        pre_activation: when ``module`` is an elementwise activation (ReLU...), return its
            input instead: it has a gradient where the ReLU is off.

    Shape:
        x: (B, C, H, W). Returns: (B, K, h, w).
    """
    got: list[torch.Tensor | None] = []

    def pre_hook(_m, inputs):  # before the module: an in-place ReLU cannot overwrite it
        got.append(inputs[0])
        raise _Stop

    def hook(_m, _inputs, output):
        got.append(first_output(output))
        raise _Stop

    if pre_activation and isinstance(module, _ACTIVATIONS):
        handle = module.register_forward_pre_hook(pre_hook)
    else:
        handle = module.register_forward_hook(hook)
    try:
        with torch.set_grad_enabled(grad), eval_mode(model):
            model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not got or got[0] is None or got[0].dim() != 4:
        raise ValueError("layer must return a 4D (B, C, H, W) tensor for filter patterns")
    return got[0]  # type: ignore[return-value]


def mean_filter_activation(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    filters: Sequence[int],
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Mean activation (over positions) of each filter of ``layer`` per image.

    Shape:
        x: (N, C, H, W) preprocessed. Returns: (N, F).
    """
    module = get_module(model, layer)
    idx = torch.as_tensor(list(filters), dtype=torch.long)
    parts = [
        layer_activation(model, module, x[i : i + batch_size])[:, idx].mean(dim=(2, 3))
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(parts)


def raw_kernels(model: nn.Module, layer: str | None = None) -> torch.Tensor:
    """The first convolution's kernels as images, each min-max scaled to 0..1.

    Kernels with 1 or 3 input channels are shown as grey or RGB; others are averaged
    over their input channels.

    Args:
        model: any model with a 2D convolution.
        layer: a conv layer name; None = the card's ``first_conv``, else the first Conv2d.

    Shape:
        Returns: (O, 1 or 3, k, k).
    """
    conv = _first_conv(model) if layer is None else get_module(model, layer)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"layer must be a Conv2d for raw kernels. Received: {type(conv).__name__}")
    w = conv.weight.detach().float().cpu()
    if w.shape[1] not in (1, 3):
        w = w.mean(dim=1, keepdim=True)  # (O, I, k, k) -> (O, 1, k, k)
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    return (w - lo) / (hi - lo).clamp_min(1e-12)


def _first_conv(model: nn.Module) -> nn.Module:
    card = getattr(model, "card", None)
    name = getattr(card, "first_conv", None)
    if name and name in dict(model.named_modules()):
        return get_module(model, name)
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("model has no Conv2d layer, so there are no raw kernels to show")
    return conv


def _in_chans(model: nn.Module) -> int:
    chans = getattr(model, "in_chans", None)
    if isinstance(chans, int):
        return chans
    conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if conv is None:
        raise ValueError("model must contain a convolution to infer its input channels")
    return conv.in_channels


def _normaliser(mean, std, in_chans: int):
    if mean is None and std is None:
        return lambda x: x
    m = torch.as_tensor(mean if mean is not None else [0.0] * in_chans, dtype=torch.float32)
    s = torch.as_tensor(std if std is not None else [1.0] * in_chans, dtype=torch.float32)
    if m.numel() not in (1, in_chans) or s.numel() not in (1, in_chans):
        raise ValueError(
            f"mean and std must have 1 or {in_chans} values. Received: mean={mean}, std={std}"
        )
    m, s = m.reshape(1, -1, 1, 1), s.reshape(1, -1, 1, 1)
    return lambda x: (x - m.to(x.device)) / s.to(x.device)


def _filter_list(filters, n_channels: int, layer: str) -> list[int]:
    if filters is None:
        filters = min(16, n_channels)
    chosen = list(range(min(filters, n_channels))) if isinstance(filters, int) else list(filters)
    bad = [f for f in chosen if not isinstance(f, int) or not 0 <= f < n_channels]
    if not chosen or bad:
        raise ValueError(
            f"filters must be channel indices of layer {layer!r} in [0, {n_channels}). "
            f"Received: filters={filters!r}"
        )
    return chosen


class _FourierImage(nn.Module):
    """Images from Fourier coefficients with a 1/f scale, optional colour decorrelation."""

    scale: torch.Tensor
    mix: torch.Tensor

    def __init__(self, spectrum: torch.Tensor, decorrelate: bool) -> None:
        super().__init__()
        size = spectrum.shape[2]
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        freqs = (fy**2 + fx**2).sqrt()
        self.register_buffer("scale", 1.0 / freqs.clamp_min(1.0 / size))
        self.spectrum = nn.Parameter(spectrum.clone())
        self.size = size
        self.decorrelate = decorrelate and spectrum.shape[1] == 3
        self.register_buffer("mix", _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max())

    @staticmethod
    def shape(chans: int, size: int) -> tuple[int, ...]:
        """Shape of one image's real-valued spectrum: (C, S, S // 2 + 1, 2)."""
        return (chans, size, size // 2 + 1, 2)

    def forward(self) -> torch.Tensor:
        coeffs = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(coeffs, s=(self.size, self.size), norm="ortho") / 4
        if self.decorrelate:
            img = torch.einsum("ij,njhw->nihw", self.mix, img)  # colour mixing per pixel
        return torch.sigmoid(img)


def _jitter(img: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    if pixels <= 0:
        return img
    dy, dx = torch.randint(-pixels, pixels + 1, (2,), generator=gen).tolist()
    return torch.roll(img, shifts=(dy, dx), dims=(2, 3))


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return img
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = img.shape[1]
    img = F.conv2d(
        F.pad(img, (radius, radius, 0, 0), mode="circular"),
        k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
        groups=c,
    )
    return F.conv2d(
        F.pad(img, (0, 0, radius, radius), mode="circular"),
        k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
        groups=c,
    )
