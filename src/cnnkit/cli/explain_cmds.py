"""``cnnkit activations``, ``cnnkit filters`` and ``cnnkit explain``.

SOURCE is a run folder or a model name from the zoo (random weights, or
``--pretrained WEIGHTS``); :func:`cnnkit.runs.resolve_source` turns either into a model
with its preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

from cnnkit.cli._common import JSON_OPTION, emit, log, printable
from cnnkit.data.decode import crop_box
from cnnkit.errors import ModelOutputError
from cnnkit.explain import (
    activation_grid_png,
    activations,
    cam_figure_png,
    cam_note,
    filter_patterns,
    gradcam,
    image_grid_png,
    raw_kernels,
)
from cnnkit.explain.plots import resize_map
from cnnkit.runs.source import load_images, resolve_source

if TYPE_CHECKING:  # the library is imported when a command runs: `cnnkit --help` stays fast
    from cnnkit.runs.source import Source

PRETRAINED_OPTION = typer.Option(
    None,
    "--pretrained",
    help="Weights for a model NAME: imagenet (its published), a file, a torchvision/timm name.",
)


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
    """Intermediate activations of IMAGE as channel grids, one per layer.

    Example: cnnkit activations runs/fm fm/Bag/0000.png --out act.png
    """
    if max_channels < 1:
        raise ValueError(f"--max-channels must be >= 1. Received: {max_channels}")

    src = resolve_source(source, pretrained)
    resized, _ = load_images(src, image)
    acts = activations(src.model, src.preprocess(resized), layers)
    title = f"activations of {image.name} in {source}"
    _write(out, activation_grid_png(acts, max_channels=max_channels, title=title))
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
    """Filter patterns of a layer by gradient ascent (--raw: first-layer kernels).

    Example: cnnkit filters runs/fm --layer features.conv2 --out filters.png
    """
    src = resolve_source(source, pretrained)
    if raw:
        result = _draw_raw(src, layer, out, source)
    else:
        if not layer:
            raise ValueError("--layer NAME is required (or --raw). Received: no --layer")
        chosen = _parse_filters(filters)
        result = _draw_patterns(src, source, layer, out, chosen, steps, size, seed)
    emit(result, as_json, f"wrote {out}")


def _draw_raw(src: Source, layer: str | None, out: Path, name: str) -> dict[str, Any]:
    kernels = raw_kernels(src.model, layer)
    png = image_grid_png(
        kernels,
        cols=8,
        suptitle=f"first-layer kernels of {name}",
        colorbar_label="weight, each kernel scaled: 0 = its most negative, 1 = its most positive",
    )
    _write(out, png)
    return {"out": str(out), "layer": layer, "raw": True, "filters": len(kernels)}


def _draw_patterns(
    src: Source,
    name: str,
    layer: str,
    out: Path,
    chosen: int | list[int],
    steps: int,
    size: int | None,
    seed: int,
) -> dict[str, Any]:
    side = size or min(src.image_size)
    count = chosen if isinstance(chosen, int) else len(chosen)
    log(f"optimising {count} filters of {layer} ({steps} steps, {side}x{side} pixels)...")
    pats = filter_patterns(
        src.model, layer, chosen, steps=steps, size=side, seed=seed, mean=src.mean, std=src.std,
        progress=True,
    )  # fmt: skip
    idx = (list(range(chosen)) if isinstance(chosen, int) else chosen)[: len(pats)]
    png = image_grid_png(
        pats,
        [f"{layer}[{i}]" for i in idx],
        cols=8,
        suptitle=f"what each filter of {layer} responds to most ({name}, {steps} steps)",
        colorbar_label="pattern pixel value (0 = black, 1 = white)",
    )
    _write(out, png)
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
    left, top, right, bottom = box
    full = np.zeros(shape, dtype=np.float32)
    full[top:bottom, left:right] = resize_map(cam, (bottom - top, right - left))
    return full


def explain_cmd(
    source: str = typer.Argument(..., help="Run folder or model name."),
    image: Path = typer.Argument(..., help="Image file."),
    out: Path = typer.Option(
        ..., "--out", help="PNG to write (the heatmap over the image, titled, with a colour bar)."
    ),
    method: str = typer.Option("gradcam", "--method", help="gradcam | gradcam++ | hirescam."),
    class_name: str | None = typer.Option(None, "--class", help="Class to explain."),
    layer: str | None = typer.Option(None, "--layer", help="Target layer (default: auto)."),
    pretrained: str | None = PRETRAINED_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Class-activation heatmap (Grad-CAM) of IMAGE, overlaid on it.

    Example: cnnkit explain runs/fm fm/Bag/0000.png --out cam.png
    """
    src = resolve_source(source, pretrained)
    target = _class_index(class_name, src.class_names)
    resized, original = load_images(src, image)
    try:
        res = gradcam(src.model, src.preprocess(resized), target, layer, method)
    except ModelOutputError as e:  # NaN weights: no heatmap, no "nan%"
        raise ModelOutputError(f"{image}: {e}") from None
    oh, ow = original.shape[1:]
    box = crop_box(ow, oh, src.image_size) if src.crop_to_aspect_ratio else (0, 0, ow, oh)
    px, py = res.peaks()[0].tolist()
    peak = map_point(px, py, src.image_size, box)
    cam = _cam_on_original(res.upsampled[0], box, (oh, ow))
    label = int(res.labels[0])
    target_name = src.class_names[int(res.target_class[0])]
    note = cam_note(res.cam[0], target_name)
    result = {
        "file": str(image),
        "label": src.class_names[label],
        "probability": round(float(res.probabilities[0, label]), 6),
        "target_class": target_name,
        "method": res.method,
        "target_layer": res.target_layer,
        "peak": {"x": peak[0], "y": peak[1]},
        "note": note,
        "out": str(out),
    }
    title = (
        f"{printable(image.name)}: {res.method} for {target_name!r} at {res.target_layer}\n"
        f"predicted {result['label']} ({result['probability']:.1%})"
    )
    _write(out, cam_figure_png(original, cam, title=title, peak=peak, note=note))
    emit(result, as_json, _explain_text)


def _explain_text(r: dict) -> str:
    where = r["note"] or f"peak x={r['peak']['x']} y={r['peak']['y']}"
    return (
        f"{r['file']}: {r['label']} ({r['probability']:.1%}); {r['method']} for "
        f"{r['target_class']!r} at {r['target_layer']}, {where}\nwrote {r['out']}"
    )


def register(app: typer.Typer) -> None:
    """Add the explaining commands to the ``cnnkit`` app."""
    app.command("activations")(activations_cmd)
    app.command("filters")(filters_cmd)
    app.command("explain")(explain_cmd)
