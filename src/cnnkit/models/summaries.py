"""A Keras-like model summary: output shapes, parameters and multiply-adds per layer.

>>> from cnnkit.models import summary
>>> s = summary("basic_convnet")
>>> s.total_params
104202
>>> print(s)  # the Keras table

Rows come from forward hooks on leaf modules, in call order (a module called twice gives
two rows; its parameters count on the first). ``param_mode="keras"`` also counts
BatchNorm moving mean/variance as non-trainable parameters, as Keras does (DenseNet121:
7,978,856 -> 8,062,504). Multiply-adds count convolutions and dense layers per sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from cnnkit.models.registry import check_input_size, create_model

PARAM_MODES = ("torch", "keras")


@dataclass(frozen=True)
class LayerSummary:
    """One row of the table.

    Attributes:
        name: module path (``features.0``).
        type: module class name.
        output_shape: output shape without the batch axis (``[C, H, W]``).
        params: parameters of the layer (Keras mode adds BN moving statistics).
        trainable: False when the layer has parameters and all are frozen.
        mult_adds: multiply-adds per sample (conv and dense layers; else 0).
    """

    name: str
    type: str
    output_shape: list[int]
    params: int
    trainable: bool
    mult_adds: int = 0


@dataclass(frozen=True)
class Summary:
    """What :func:`summary` returns; ``str(s)`` is the table, ``s.to_dict()`` the JSON."""

    name: str
    input_shape: tuple[int, ...]
    param_mode: str
    layers: list[LayerSummary] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    mult_adds: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``cnnkit summary --json`` document."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    def __str__(self) -> str:
        return _render(self)


def _bn_stats(module: nn.Module) -> int:
    if not isinstance(module, nn.modules.batchnorm._NormBase):
        return 0
    stats = (module.running_mean, module.running_var)
    return sum(t.numel() for t in stats if t is not None)


def _mult_adds(module: nn.Module, out: torch.Tensor) -> int:
    per_sample = out.numel() // max(out.shape[0], 1)
    if isinstance(module, nn.modules.conv._ConvNd):
        k = math.prod(module.kernel_size)
        return per_sample * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, list | tuple):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


class _Recorder:
    """Forward hooks on every leaf module, recording one row per call."""

    def __init__(self, model: nn.Module, param_mode: str) -> None:
        self.rows: list[LayerSummary] = []
        self._seen: set[int] = set()
        self._keras = param_mode == "keras"
        self._handles = [
            m.register_forward_hook(self._hook(name))
            for name, m in model.named_modules()
            if name and next(m.children(), None) is None and not isinstance(m, nn.Identity)
        ]

    def _hook(self, name: str):
        def hook(module: nn.Module, _inp: Any, out: Any) -> None:
            params = list(module.parameters(recurse=False))
            first = id(module) not in self._seen
            self._seen.add(id(module))
            count = sum(p.numel() for p in params) if first else 0
            if first and self._keras:
                count += _bn_stats(module)
            t = _first_tensor(out)
            shape = list(t.shape[1:]) if t is not None else []
            trainable = not params or any(p.requires_grad for p in params)
            ma = _mult_adds(module, t) if t is not None else 0
            self.rows.append(LayerSummary(name, type(module).__name__, shape, count, trainable, ma))

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _totals(model: nn.Module, param_mode: str) -> tuple[int, int, int]:
    params = {id(p): p for p in model.parameters()}.values()  # shared weights once
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    if param_mode == "keras":
        total += sum(_bn_stats(m) for m in model.modules())
    return total, trainable, total - trainable


def _resolve(
    model: nn.Module | str, input_shape: tuple[int, ...] | None
) -> tuple[nn.Module, tuple]:
    if isinstance(model, str):
        with torch.device("meta"):  # shapes and counts only: no weights to initialise
            model = create_model(model, input_size=input_shape)
    card = getattr(model, "card", None)
    if input_shape is None:
        if card is None:
            raise ValueError("input_shape is required for a model without a card")
        input_shape = tuple(card.input_size)
    shape = tuple(input_shape)
    if not shape or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"input_shape must be positive ints. Received: input_shape={input_shape}")
    if card is not None:
        check_input_size(card, shape)
    return model, shape


def summary(
    model: nn.Module | str,
    input_shape: tuple[int, ...] | None = None,
    *,
    param_mode: str = "torch",
) -> Summary:
    """Run one sample through ``model`` and tabulate every layer.

    Args:
        model: a module, or a registered model name (built on the meta device: no memory,
            no initialisation).
        input_shape: ``(C, H, W)`` without the batch axis; None = ``model.card.input_size``.
        param_mode: ``"torch"`` (parameters only) or ``"keras"`` (plus BatchNorm moving
            mean/variance as non-trainable parameters).

    Returns:
        A :class:`Summary`.

    Raises:
        ValueError: unknown ``param_mode``, missing or too small ``input_shape``, or an
            input the model cannot take (e.g. another size than its Dense head was built for).
    """
    if param_mode not in PARAM_MODES:
        raise ValueError(
            f'param_mode must be "torch" or "keras". Received: param_mode={param_mode!r}'
        )
    model, shape = _resolve(model, input_shape)
    ref = next(model.parameters(), None)
    x = torch.zeros(1, *shape, device=ref.device if ref is not None else None)
    if ref is not None and ref.is_floating_point():
        x = x.to(ref.dtype)
    recorder = _Recorder(model, param_mode)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x)
    except RuntimeError as e:  # e.g. a Flatten -> Dense head built for another size
        raise ValueError(
            f"{type(model).__name__} cannot run on input_shape={shape}: {str(e).splitlines()[0]}"
        ) from e
    finally:
        recorder.remove()
        model.train(was_training)
    total, trainable, frozen = _totals(model, param_mode)
    name = getattr(getattr(model, "card", None), "name", type(model).__name__)
    return Summary(
        name=name,
        input_shape=shape,
        param_mode=param_mode,
        layers=recorder.rows,
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=frozen,
        mult_adds=sum(r.mult_adds for r in recorder.rows),
    )


def _render(s: Summary) -> str:
    """The Keras-style text table."""
    rows = [
        (f"{r.name} ({r.type})", str(tuple([None, *r.output_shape])), f"{r.params:,}")
        for r in s.layers
    ]
    w1 = max([len("Layer (type)")] + [len(a) for a, _, _ in rows]) + 2
    w2 = max([len("Output Shape")] + [len(b) for _, b, _ in rows]) + 2
    w3 = max([len("Param #")] + [len(c) for _, _, c in rows])
    width = w1 + w2 + w3 + 1
    lines = [f'Model: "{s.name}"  input: {tuple(s.input_shape)}', "_" * width]
    lines.append(f" {'Layer (type)':<{w1}}{'Output Shape':<{w2}}{'Param #':>{w3}}")
    lines.append("=" * width)
    lines += [f" {a:<{w1}}{b:<{w2}}{c:>{w3}}" for a, b, c in rows]
    lines.append("=" * width)
    lines += [
        f"Total params: {s.total_params:,}",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.non_trainable_params:,}",
        f"Mult-adds: {s.mult_adds:,} per sample"
        + (" (Keras param mode)" if s.param_mode == "keras" else ""),
        "_" * width,
    ]
    return "\n".join(lines)
