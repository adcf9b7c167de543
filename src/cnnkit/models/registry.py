"""One registry of model builders, each with a :class:`ModelCard`.

>>> from cnnkit.models import create_model
>>> model = create_model("basic_convnet")          # 1x28x28 -> 10 classes
>>> base = create_model("vgg16", num_classes=0, pooling="avg", input_size=(3, 32, 32))

Builders live in ``cnnkit/models/zoo/*.py`` and register themselves with
``@register_model(card=ModelCard(...))``; every module in that package is imported the
first time the registry is queried. ``python -m cnnkit.models --markdown``
prints the models table of the docs.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.models.base import CnnkitModel, check_pooling

KINDS = ("image", "snp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # Keras "tf" preprocessing: x / 127.5 - 1
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What a model expects and where its parts are.

    Attributes:
        name: registry name (lowercase, underscores).
        input_size: default input ``(C, H, W)`` (``(C, L)`` for ``kind="snp"``).
        min_input_size: smallest ``(H, W)`` (``(L,)``) the architecture takes.
        mean: per-channel mean for inputs scaled to 0..1 (MNIST nets: ``(0.0,)``).
        std: per-channel std for inputs scaled to 0..1 (MNIST nets: ``(1.0,)``, i.e. /255).
        num_classes: default number of classes.
        first_conv: module path of the first convolution (swapped for ``in_chans``).
        classifier: module path of the final classifier layer.
        target_layer: module path of the default Grad-CAM layer.
        block_groups: module paths from input to output, the units of ``--unfreeze N``
            (a path covers its module and everything below it).
        interpolation: resize filter of the card's preprocessing.
        published_params: parameter count (torch count, card defaults) to match.
        kind: ``"image"`` (2D input) or ``"snp"`` (1D genotype input).
        source: where the architecture comes from (``torchvision``, ``keras``, ...).
        description: one line for the models table.
        imagenet_weights: what ``pretrained="imagenet"`` (Keras' word) loads: a torchvision
            weight name (``DEFAULT``, torchvision's recommended) or a Keras application weight
            file; empty: the model has no published ImageNet weights.
    """

    name: str
    input_size: tuple[int, ...]
    min_input_size: tuple[int, ...] = (1, 1)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    num_classes: int = 1000
    first_conv: str = ""
    classifier: str = ""
    target_layer: str = ""
    block_groups: tuple[str, ...] = field(default_factory=tuple)
    interpolation: str = "bilinear"
    published_params: int | None = None
    kind: str = "image"
    source: str = "cnnkit"
    description: str = ""
    imagenet_weights: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}. Received: kind={self.kind!r}")
        spatial = 2 if self.kind == "image" else 1
        if len(self.input_size) != spatial + 1 or min(self.input_size) < 1:
            raise ValueError(
                f"input_size of a {self.kind} card must be {spatial + 1} positive ints. "
                f"Received: input_size={self.input_size!r}"
            )
        if len(self.min_input_size) != spatial:
            raise ValueError(
                f"min_input_size of a {self.kind} card must be {spatial} ints. "
                f"Received: min_input_size={self.min_input_size!r}"
            )
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean and std differ in length. Received: {self.mean}, {self.std}")

    @property
    def in_chans(self) -> int:
        """Default number of input channels."""
        return self.input_size[0]


Builder = Callable[..., CnnkitModel]
_REGISTRY: dict[str, tuple[ModelCard, Builder]] = {}
_ZOO_LOADED = False


def register_model(*, card: ModelCard) -> Callable[[Builder], Builder]:
    """Register a keyword-only builder under ``card.name``.

    The builder is called as ``builder(num_classes=..., in_chans=..., input_size=(C, H, W),
    pooling=..., **kwargs)`` and returns a :class:`~cnnkit.models.base.CnnkitModel`.

    Args:
        card: the model card.

    Returns:
        The decorator (returns the builder unchanged).

    Raises:
        ValueError: a model of that name is already registered.
    """

    def decorator(fn: Builder) -> Builder:
        key = _norm(card.name)
        if key != card.name:
            raise ValueError(f"model names are lowercase with underscores. Received: {card.name!r}")
        if key in _REGISTRY:
            raise ValueError(f"a model named {key!r} is already registered")
        _REGISTRY[key] = (card, fn)
        return fn

    return decorator


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _ensure_zoo() -> None:
    global _ZOO_LOADED
    if not _ZOO_LOADED:
        importlib.import_module("cnnkit.models.zoo")  # a broken zoo module raises here
        _ZOO_LOADED = True


def list_models(kind: str | None = None) -> list[str]:
    """Sorted names of registered models (optionally of one ``kind``)."""
    _ensure_zoo()
    return sorted(n for n, (c, _) in _REGISTRY.items() if kind is None or c.kind == kind)


def _lookup(name: str) -> tuple[ModelCard, Builder]:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str. Received: name={name!r}")
    _ensure_zoo()
    key = _norm(name)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def get_card(name: str) -> ModelCard:
    """The registered card of model ``name`` (hyphens accepted).

    Raises:
        ValueError: unknown name (the message lists close matches).
    """
    return _lookup(name)[0]


def check_input_size(card: ModelCard, input_shape: tuple[int, ...]) -> None:
    """Raise a clear error when ``input_shape`` (``(C, H, W)``) is below the card's minimum.

    Raises:
        ValueError: e.g. ``input 16x16 is too small for alexnet (minimum 63x63).
            Received: input_shape=(3, 16, 16)``.
    """
    spatial = tuple(input_shape[1:])
    if len(spatial) != len(card.min_input_size):
        raise ValueError(
            f"input_shape for {card.name} must be {len(card.min_input_size) + 1} ints "
            f"(channels first). Received: input_shape={tuple(input_shape)}"
        )
    if any(s < m for s, m in zip(spatial, card.min_input_size, strict=True)):
        got = "x".join(map(str, spatial))
        need = "x".join(map(str, card.min_input_size))
        raise ValueError(
            f"input {got} is too small for {card.name} (minimum {need}). "
            f"Received: input_shape={tuple(input_shape)}"
        )


def _resolve_input(
    card: ModelCard, in_chans: int | None, input_size: tuple[int, ...] | None
) -> tuple[int, ...]:
    """``(C, *spatial)`` from the card and the optional overrides."""
    spatial_n = len(card.min_input_size)
    if input_size is None:
        size = tuple(card.input_size)
    else:
        size = tuple(input_size)
        if len(size) == spatial_n:
            size = (in_chans or card.in_chans, *size)
        bad = len(size) != spatial_n + 1
        if bad or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ValueError(
                f"input_size must be {spatial_n + 1} positive ints (channels first) or "
                f"{spatial_n} (spatial only). Received: input_size={input_size!r}"
            )
        if in_chans is not None and size[0] != in_chans:
            raise ValueError(
                f"in_chans={in_chans} contradicts input_size={input_size!r} (channels first)"
            )
    if in_chans is not None:
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive int. Received: in_chans={in_chans!r}")
        size = (in_chans, *size[1:])
    return size


def _resolved_card(card: ModelCard, size: tuple[int, ...], num_classes: int) -> ModelCard:
    """The card of one instance: its input size, classes and per-channel mean/std."""
    mean, std = card.mean, card.std
    if len(mean) != size[0]:  # e.g. an ImageNet card built for grayscale input
        mean = (sum(mean) / len(mean),) * size[0]
        std = (sum(std) / len(std),) * size[0]
    return replace(card, input_size=size, num_classes=num_classes, mean=mean, std=std)


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: tuple[int, ...] | None = None,
    pretrained: Any = None,
    pooling: str | None = "avg",
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: model name (``"vgg16"``; hyphens accepted for underscores).
        num_classes: outputs; None = the card's default; 0 = the convolutional base.
        in_chans: input channels; None = the card's (or ``input_size``'s) channels.
        input_size: ``(C, H, W)`` or ``(H, W)`` the model is built for (Flatten -> Dense
            heads depend on it); None = the card's.
        pretrained: weights to load, handed to
            ``cnnkit.models.pretrained.load_pretrained(model, name, pretrained)``.
        pooling: global pooling of a base (``num_classes=0``): "avg", "max" or None.
        **kwargs: builder-specific options (e.g. ``aux_logits=True`` for inception_v3).

    Returns:
        A :class:`~cnnkit.models.base.CnnkitModel` whose ``card`` is resolved for it.

    Raises:
        ValueError: unknown name, bad sizes, input below the minimum, no weight loader.
        TypeError: a builder option the model does not take.

    Example:
        >>> import torch
        >>> model = create_model("basic_convnet", input_size=(3, 64, 64), num_classes=5)
        >>> model(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 5])
        >>> create_model("vgg16", num_classes=0, input_size=(3, 32, 32)).num_features
        512
    """
    card, builder = _lookup(name)
    size = _resolve_input(card, in_chans, input_size)
    check_input_size(card, size)
    k = card.num_classes if num_classes is None else num_classes
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"num_classes must be an int >= 0. Received: num_classes={num_classes!r}")
    _check_options(card.name, builder, kwargs)
    model = builder(
        num_classes=k, in_chans=size[0], input_size=size, pooling=check_pooling(pooling), **kwargs
    )
    model.card = _resolved_card(card, size, k)
    if pretrained is not None and pretrained is not False:
        _load_pretrained(model, card.name, pretrained)
    return model


_COMMON = ("num_classes", "in_chans", "input_size", "pooling")


def _check_options(name: str, builder: Builder, kwargs: dict[str, Any]) -> None:
    """Refuse builder options the model does not take (a typo must not pass silently)."""
    params = inspect.signature(builder).parameters
    if not kwargs or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        options = [p for p in params if p not in _COMMON]
        raise TypeError(
            f"{name} does not take {', '.join(unknown)}. "
            f"Its own options: {', '.join(options) or 'none'}. Received: {kwargs}"
        )


def _load_pretrained(model: nn.Module, name: str, pretrained: Any) -> None:
    try:
        mod = importlib.import_module("cnnkit.models.pretrained")
    except ModuleNotFoundError as e:
        if e.name != "cnnkit.models.pretrained":
            raise
        raise ValueError(
            f"pretrained weights are not supported in this build (cnnkit.models.pretrained "
            f"is missing). Received: pretrained={pretrained!r}"
        ) from None
    mod.load_pretrained(model, name, pretrained)


TABLE_START = "<!-- models-table:start (python -m cnnkit.models --update docs/models.md) -->"
TABLE_END = "<!-- models-table:end -->"


def _table_rows(kind: str | None) -> list[tuple[str, ...]]:
    """One row per model: name, input, min size, params, source, description."""
    rows: list[tuple[str, ...]] = []
    for n in list_models(kind):
        c = get_card(n)
        params = f"{c.published_params:,}" if c.published_params else ""
        shape, least = "x".join(map(str, c.input_size)), "x".join(map(str, c.min_input_size))
        rows.append((n, shape, least, params, c.source, c.description))
    return rows


def markdown_table(kind: str | None = None) -> str:
    """The models table (Markdown) generated from the registry."""
    rows = [
        "| name | what | input (C, H, W) | min size | params | source |",
        "|---|---|---|---|---|---|",
    ]
    for n, shape, least, params, source, what in _table_rows(kind):
        rows.append(f"| `{n}` | {what} | {shape} | {least} | {params} | {source} |")
    return "\n".join(rows) + "\n"


def text_table(kind: str | None = None, width: int = 100) -> str:
    """The models table for a terminal ``width`` columns wide: name, input (C x H x W), the
    smallest input, parameters and what the model is, wrapped (``--markdown`` adds the source).
    """
    head = ("name", "input", "min", "params", "what")
    rows = [
        (n, shape, least, params, what) for n, shape, least, params, _, what in _table_rows(kind)
    ]
    fixed = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    indent = sum(fixed) + 2 * len(fixed)
    wrap = max(24, width - 1 - indent)
    lines = []
    for row in [head, *rows]:
        cells = [
            c.rjust(w) if i == 3 else c.ljust(w)  # params right-aligned
            for i, (c, w) in enumerate(zip(row[:-1], fixed, strict=True))
        ]
        what = textwrap.wrap(row[-1], wrap) or [""]
        lines.append("  ".join([*cells, what[0]]).rstrip())
        lines.extend(" " * indent + more for more in what[1:])
    return "\n".join(lines) + "\n"


def update_markdown(path: str) -> None:
    """Rewrite the table between the ``models-table`` markers of the Markdown file ``path``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file lacks the start/end markers.
    """
    text = Path(path).read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{path}: missing the markers {TABLE_START!r} and {TABLE_END!r}")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    Path(path).write_text(
        f"{head}{TABLE_START}\n{markdown_table()}{TABLE_END}{tail}", encoding="utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnkit.models [--markdown | --update FILE.md]``: print/refresh the table."""
    args = sys.argv[1:] if argv is None else argv
    if "--update" in args:
        i = args.index("--update")
        if i + 1 >= len(args):
            raise ValueError("--update needs a Markdown file. Received: nothing")
        update_markdown(args[i + 1])
    elif "--markdown" in args:
        sys.stdout.write(markdown_table())
    else:
        sys.stdout.write("\n".join(list_models()) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    # Run the imported module's main: the zoo registers into cnnkit.models.registry, not
    # into this __main__ copy of it.
    from cnnkit.models.registry import main as _main

    sys.exit(_main())
