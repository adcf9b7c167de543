"""``cnnkit activations``, ``cnnkit filters`` and ``cnnkit explain``.

SOURCE is a run folder (read with :func:`cnnkit.train.load_run`) or a model name from the
zoo (random weights, or ``--pretrained WEIGHTS``); :func:`_resolve_source` turns either
into a model with its preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from cnnkit.cli._common import JSON_OPTION, emit, log

PRETRAINED_OPTION = typer.Option(
    None, "--pretrained", help="Weights for a model NAME (file, torchvision/timm name)."
)


@dataclass
class _Source:
    """A model ready to explain, with how images are turned into its input."""

    model: Any
    preprocess: Callable[[Any], Any]  # uint8 (C, H, W) or (N, C, H, W) -> float (N, C, H, W)
    image_size: tuple[int, int]
    color_mode: str
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_to_aspect_ratio: bool = False


def _resolve_source(source: str, pretrained: str | None) -> _Source:
    """A run folder or a model name -> :class:`_Source`.

    Raises:
        FileNotFoundError: SOURCE looks like a path that does not exist.
        ValueError: SOURCE is neither a run folder nor a known model, or ``--pretrained``
            was given with a run folder.
    """
    path = Path(source)
    if path.is_dir() and ((path / "config.json").exists() or not _is_model_name(source)):
        if pretrained:
            raise ValueError(
                f"--pretrained applies to a model NAME, not to a run folder. "
                f"Received: SOURCE={source!r}, --pretrained={pretrained!r}"
            )
        return _from_run(path)
    if path.exists() or "/" in source or "\\" in source:
        raise FileNotFoundError(
            f"SOURCE must be a run folder or a model name. Received: {source!r} (not a folder)"
        )
    return _from_name(source, pretrained)


def _is_model_name(name: str) -> bool:
    from cnnkit.models import list_models

    return name.strip().lower().replace("-", "_") in list_models()


def _from_run(path: Path) -> _Source:
    try:
        from cnnkit.train import load_run
    except ImportError as e:  # pragma: no cover - the train stage ships with cnnkit
        raise ValueError(f"reading run folders needs cnnkit.train ({e}). Received: {path}") from e
    run = load_run(path)
    cfg = run.config
    h, w = cfg["image_size"]
    return _Source(
        model=run.model,
        preprocess=run.preprocess,
        image_size=(int(h), int(w)),
        color_mode=cfg.get("color_mode") or ("grayscale" if cfg.get("in_chans") == 1 else "rgb"),
        class_names=[str(c) for c in cfg["class_names"]],
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation") or "bilinear",
        crop_to_aspect_ratio=bool(cfg.get("crop_to_aspect_ratio", False)),
    )


def _from_name(name: str, pretrained: str | None) -> _Source:
    import numpy as np
    import torch

    from cnnkit.models import create_model, get_card

    try:
        get_card(name)
    except ValueError as e:
        raise ValueError(f"SOURCE is not a run folder or a known model: {e}") from None
    model: Any = create_model(name, pretrained=pretrained).eval()
    card = model.card
    c, h, w = card.input_size
    mean = torch.tensor(card.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.tensor(card.std, dtype=torch.float32).reshape(1, -1, 1, 1)

    def preprocess(images: Any) -> torch.Tensor:
        x = torch.as_tensor(np.array(images, dtype=np.float32)) / 255.0
        x = x[None] if x.dim() == 3 else x  # (C, H, W) -> (1, C, H, W)
        return (x - mean) / std

    names = _weight_categories(model, card.name, pretrained) or [
        str(i) for i in range(model.num_classes)
    ]
    return _Source(
        model=model,
        preprocess=preprocess,
        image_size=(h, w),
        color_mode="grayscale" if c == 1 else ("rgba" if c == 4 else "rgb"),
        class_names=list(names),
        mean=tuple(card.mean),
        std=tuple(card.std),
        interpolation=card.interpolation,
    )


def _weight_categories(model: Any, name: str, pretrained: str | None) -> list[str] | None:
    """ImageNet class names when torchvision weights with their own head were loaded."""
    info = getattr(model, "pretrained_info", None)
    if info is None or getattr(info, "kind", "") != "torchvision" or info.fresh_head:
        return None
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(name)
        key = str(pretrained).rsplit(".", 1)[-1]
        meta = (weights.DEFAULT if key == "DEFAULT" else weights[key]).meta
    except (ValueError, KeyError, AttributeError):
        return None
    cats = meta.get("categories")
    return [str(c) for c in cats] if cats and len(cats) == model.num_classes else None


def _load_images(src: _Source, image: Path):
    """The image as the model sees it and at its own size (both uint8 (C, H, W))."""
    import numpy as np

    from cnnkit.data.decode import load_image

    resized = load_image(
        image,
        src.image_size,
        src.color_mode,
        src.interpolation,
        crop_to_aspect_ratio=src.crop_to_aspect_ratio,
    )
    original = load_image(image, None, "grayscale" if src.color_mode == "grayscale" else "rgb")
    return np.array(resized), original  # a writable copy: torch warns on read-only arrays


def _write(out: Path, png: bytes) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    return out


# --------------------------------------------------------------------------- activations


def activations_cmd(
    source: str = typer.Argument(..., help="Run folder or model name."),
    image: Path = typer.Argument(..., help="Image file."),
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    layers: str = typer.Option("auto", "--layers", help='"auto" or comma-separated names.'),
    max_channels: int = typer.Option(32, "--max-channels", help="Channels drawn per layer."),
    pretrained: str | None = PRETRAINED_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Intermediate activations of IMAGE as channel grids, one per layer."""
    from cnnkit.explain import activation_grid_png, activations

    if max_channels < 1:
        raise ValueError(f"--max-channels must be >= 1. Received: {max_channels}")
    src = _resolve_source(source, pretrained)
    resized, _ = _load_images(src, image)
    acts = activations(src.model, src.preprocess(resized), layers)
    _write(out, activation_grid_png(acts, max_channels=max_channels))
    result = {
        "out": str(out),
        "layers": [{"name": n, "shape": list(a.shape[1:])} for n, a in acts.items()],
    }
    emit(
        result,
        as_json,
        lambda r: "\n".join(
            [f"{x['name']}: {x['shape']}" for x in r["layers"]] + [f"wrote {r['out']}"]
        ),
    )


# --------------------------------------------------------------------------- filters


def _parse_filters(text: str) -> int | list[int]:
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        parts = []
    if not parts or any(p < 0 for p in parts) or ("," not in text and parts[0] < 1):
        raise ValueError(
            f"--filters must be a count N >= 1 or comma-separated channel indices. "
            f"Received: {text!r}"
        )
    return parts[0] if "," not in text else parts


def filters_cmd(
    source: str = typer.Argument(..., help="Run folder or model name."),
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    layer: str | None = typer.Option(None, "--layer", help="Layer whose filters to show."),
    raw: bool = typer.Option(False, "--raw", help="Show the first conv's kernels instead."),
    filters: str = typer.Option("16", "--filters", help="Count N (the first N) or indices."),
    steps: int = typer.Option(128, "--steps", help="Gradient-ascent steps."),
    size: int | None = typer.Option(None, "--size", help="Pattern side (default: input)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    pretrained: str | None = PRETRAINED_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Filter patterns of a layer by gradient ascent (--raw: first-layer kernels)."""
    src = _resolve_source(source, pretrained)
    if raw:
        result = _draw_raw(src, layer, out)
    else:
        if not layer:
            raise ValueError("--layer NAME is required (or --raw). Received: no --layer")
        result = _draw_patterns(src, layer, out, _parse_filters(filters), steps, size, seed)
    emit(result, as_json, f"wrote {out}")


def _draw_raw(src: _Source, layer: str | None, out: Path) -> dict[str, Any]:
    from cnnkit.explain import image_grid_png, raw_kernels

    kernels = raw_kernels(src.model, layer)
    _write(out, image_grid_png(kernels, cols=8, suptitle="first-layer kernels"))
    return {"out": str(out), "layer": layer, "raw": True, "filters": len(kernels)}


def _draw_patterns(
    src: _Source, layer: str, out: Path, chosen: int | list[int], steps: int, size, seed: int
) -> dict[str, Any]:
    from cnnkit.explain import filter_patterns, image_grid_png

    side = size or min(src.image_size)
    log(f"optimising {chosen if isinstance(chosen, int) else len(chosen)} filters...")
    pats = filter_patterns(
        src.model, layer, chosen, steps=steps, size=side, seed=seed, mean=src.mean, std=src.std
    )
    idx = (list(range(chosen)) if isinstance(chosen, int) else chosen)[: len(pats)]
    _write(out, image_grid_png(pats, [f"{layer}[{i}]" for i in idx], cols=8))
    return {
        "out": str(out),
        "layer": layer,
        "raw": False,
        "filters": idx,
        "steps": steps,
        "size": side,
    }


# --------------------------------------------------------------------------- explain


def _class_index(name: str | None, class_names: list[str]) -> int | None:
    if name is None:
        return None
    if name in class_names:
        return class_names.index(name)
    if name.isdigit() and int(name) < len(class_names):
        return int(name)
    shown = ", ".join(class_names[:20]) + (" ..." if len(class_names) > 20 else "")
    raise ValueError(f"--class must be a class name or index. Received: {name!r}. Classes: {shown}")


def map_point(x: int, y: int, model_size: tuple[int, int], box: tuple[int, int, int, int]):
    """A pixel of the model input -> the original image (pixel centres line up).

    Args:
        x, y: column and row in the model input.
        model_size: ``(H, W)`` of the model input.
        box: ``(left, top, right, bottom)`` of the original the input was resized from.
    """
    h, w = model_size
    left, top, right, bottom = box
    ox = left + (x + 0.5) * (right - left) / w - 0.5
    oy = top + (y + 0.5) * (bottom - top) / h - 0.5
    return int(min(max(round(ox), left), right - 1)), int(min(max(round(oy), top), bottom - 1))


def _cam_on_original(cam, box, shape):
    """Paste a model-input-sized map into the crop box of an all-zero original-sized map."""
    import numpy as np

    from cnnkit.explain.plots import resize_map

    left, top, right, bottom = box
    full = np.zeros(shape, dtype=np.float32)
    full[top:bottom, left:right] = resize_map(cam, (bottom - top, right - left))
    return full


def explain_cmd(
    source: str = typer.Argument(..., help="Run folder or model name."),
    image: Path = typer.Argument(..., help="Image file."),
    out: Path = typer.Option(..., "--out", help="PNG to write (overlay at the image's size)."),
    method: str = typer.Option("gradcam", "--method", help="gradcam | gradcam++ | hirescam."),
    class_name: str | None = typer.Option(None, "--class", help="Class to explain."),
    layer: str | None = typer.Option(None, "--layer", help="Target layer (default: auto)."),
    pretrained: str | None = PRETRAINED_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Class-activation heatmap (Grad-CAM) of IMAGE, overlaid on it."""
    from cnnkit.data.decode import crop_box
    from cnnkit.explain import gradcam, overlay_png

    src = _resolve_source(source, pretrained)
    target = _class_index(class_name, src.class_names)
    resized, original = _load_images(src, image)
    res = gradcam(src.model, src.preprocess(resized), target, layer, method)
    oh, ow = original.shape[1:]
    box = crop_box(ow, oh, src.image_size) if src.crop_to_aspect_ratio else (0, 0, ow, oh)
    px, py = res.peaks()[0].tolist()
    peak = map_point(px, py, src.image_size, box)
    cam = _cam_on_original(res.upsampled[0], box, (oh, ow))
    _write(out, overlay_png(original, cam, peak=peak))
    label = int(res.labels[0])
    result = {
        "file": str(image),
        "label": src.class_names[label],
        "probability": round(float(res.probabilities[0, label]), 6),
        "target_class": src.class_names[int(res.target_class[0])],
        "method": res.method,
        "target_layer": res.target_layer,
        "peak": {"x": peak[0], "y": peak[1]},
        "out": str(out),
    }
    emit(result, as_json, _explain_text)


def _explain_text(r: dict) -> str:
    return (
        f"{r['file']}: {r['label']} ({r['probability']:.1%}); {r['method']} for "
        f"{r['target_class']!r} at {r['target_layer']}, peak x={r['peak']['x']} "
        f"y={r['peak']['y']}\nwrote {r['out']}"
    )


def register(app: typer.Typer) -> None:
    """Add the explaining commands to the ``cnnkit`` app."""
    app.command("activations")(activations_cmd)
    app.command("filters")(filters_cmd)
    app.command("explain")(explain_cmd)
