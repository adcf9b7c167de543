"""Are the explanations true? Localisation of Grad-CAM and strength of filter patterns.

1. Trains a small convnet on the generated ``shapes`` dataset (one circle/square/triangle
   at a random place on a textured background, with its bounding box).
2. Localisation ("pointing game"): for held-out images the model classifies correctly,
   how often the heatmap peak lies inside the object's box, for Grad-CAM, Grad-CAM++ and
   HiResCAM; with two baselines (a random pixel; the image centre).
3. Filter patterns: for filters of a trained layer, the mean activation the optimised
   input reaches divided by the filter's mean activation over real held-out images.

Usage:
    .venv/bin/python bench/explain.py [--model gapnet|basic_convnet] [--epochs 12] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data import load_dataset
from cnnkit.explain import filter_patterns, gradcam, mean_filter_activation, peak_in_box
from cnnkit.models import create_model


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="gapnet", help="a zoo model name")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-train", type=int, default=1500, help="at most 1500")
    p.add_argument("--n-test", type=int, default=500, help="at most 500")
    p.add_argument("--filter-layer", default=None, help="default: the card's target_layer")
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--filter-steps", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cnnkit-defaults",
        action="store_true",
        help="train with `cnnkit train shapes --model MODEL` and its defaults (lr range test, "
        "data-sized length, early stopping) instead of the plain loop here",
    )
    p.add_argument("--out", default=None, help="write a Markdown report here")
    p.add_argument("--pictures", default=None, help="write example PNGs to this folder")
    return p.parse_args(argv)


def build(name: str, input_size: tuple[int, int, int], num_classes: int) -> nn.Module:
    return create_model(name, num_classes=num_classes, input_size=input_size)


def prepare(model, images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> normalised float with the card's mean/std."""
    mean = torch.tensor(model.card.mean).view(1, -1, 1, 1)
    std = torch.tensor(model.card.std).view(1, -1, 1, 1)
    return (torch.from_numpy(np.array(images)).float() / 255 - mean) / std


def train(model, x: torch.Tensor, y: torch.Tensor, args) -> list[float]:
    """Plain Adam loop with random horizontal/vertical flips; returns the epoch losses."""
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    losses = []
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), args.batch_size):
            idx = order[i : i + args.batch_size]
            xb = x[idx]
            flip = torch.rand(2, generator=gen)
            xb = xb.flip(3) if flip[0] < 0.5 else xb
            xb = xb.flip(2) if flip[1] < 0.5 else xb
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
        print(f"epoch {len(losses)}: loss {losses[-1]:.4f}", file=sys.stderr, flush=True)
    model.eval()
    return losses


def train_with_defaults(args) -> tuple[nn.Module, list[float]]:
    """``cnnkit train shapes`` with no tuning flag (``--model`` only when one other than
    ``gapnet``, the one the defaults choose at this size, is named); the model it kept and its
    training losses."""
    import tempfile

    from cnnkit.runs import load_run
    from cnnkit.train import TrainConfig, train_run

    model_name = "auto" if args.model == "gapnet" else args.model  # auto picks gapnet here
    out = tempfile.mkdtemp(prefix="cnnkit-explain-")
    result = train_run(TrainConfig(data="shapes", model=model_name, seed=args.seed), out)
    run = load_run(result.run_dir)
    args.model = run.config["model"]  # the model the defaults chose
    args.trained = json.dumps(run.config.get("training", {}).get("stopping", {}))
    args.lr_found = run.config.get("lr")
    split = (result.run_dir / "split.csv").read_text().splitlines()
    args.n_train_used = sum(line.endswith(",train") for line in split)
    return run.model.eval(), [float(r["loss"]) for r in result.history]


def localisation(model, x, y, boxes, method: str) -> dict:
    """Pointing game on correctly classified images (CAM of the predicted class)."""
    hits, correct = [], []
    for i in range(0, len(x), 100):
        res = gradcam(model, x[i : i + 100], method=method)
        ok = (res.labels == y[i : i + 100]).numpy()
        inside = peak_in_box(res.upsampled, boxes[i : i + 100])
        hits.append(inside[ok])
        correct.append(ok)
    hits_all, ok_all = np.concatenate(hits), np.concatenate(correct)
    return {
        "method": method,
        "n": int(hits_all.size),
        "rate": float(hits_all.mean()),
        "accuracy": float(ok_all.mean()),
        "target_layer": res.target_layer,
    }


def baselines(boxes: np.ndarray, size: tuple[int, int]) -> dict:
    """Chance of a uniformly random pixel, and of the image centre, being in the box."""
    h, w = size
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (h * w)
    centre = np.zeros((len(boxes), h, w), np.float32)
    centre[:, h // 2, w // 2] = 1
    return {"random": float(area.mean()), "centre": float(peak_in_box(centre, boxes).mean())}


def filter_ratios(model, layer: str, x_real: torch.Tensor, args) -> dict:
    """Optimised-pattern activation / mean activation over real images, per filter."""
    size = model.card.input_size[1]
    n = min(args.filters, _channels(model, layer, x_real))
    filters = list(range(n))
    t0 = time.perf_counter()
    pats = filter_patterns(
        model,
        layer,
        filters,
        steps=args.filter_steps,
        size=size,
        seed=args.seed,
        mean=model.card.mean,
        std=model.card.std,
    )
    seconds = time.perf_counter() - t0
    real = mean_filter_activation(model, layer, x_real, filters).mean(0)  # (F,)
    opt = mean_filter_activation(model, layer, prepare(model, _u8(pats)), filters).diagonal()
    ratios = [_ratio(float(o), float(r)) for o, r in zip(opt, real, strict=True)]
    return {
        "layer": layer,
        "filters": filters,
        "ratios": ratios,
        "seconds": seconds,
        "real": real.tolist(),
        "optimised": opt.tolist(),
        "patterns": pats,
    }


def _ratio(optimised: float, real: float) -> float:
    if real > 0:
        return optimised / real
    return float("inf") if optimised > 0 else float("nan")  # nan: a dead filter


def _u8(images01: torch.Tensor) -> np.ndarray:
    return (images01.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _channels(model, layer: str, x: torch.Tensor) -> int:
    from cnnkit.explain.filters import layer_activation

    return layer_activation(model, model.get_submodule(layer), x[:1]).shape[1]


def pictures(model, test_set, x_te: torch.Tensor, filt: dict, folder: str) -> None:
    """Gallery, one overlay, activations and filter patterns of the trained model."""
    from pathlib import Path

    from cnnkit.explain import activation_grid_png, activations, gradcam_gallery, overlay_png
    from cnnkit.explain.plots import image_grid_png

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        preds = model(x_te).argmax(1).numpy()
    n = len(x_te)
    gallery = gradcam_gallery(
        model,
        test_set.images[:n],
        test_set.labels[:n],
        preds,
        test_set.class_names,
        preprocess=lambda a: prepare(model, a),
    )
    (out / "gallery.png").write_bytes(gallery)
    res = gradcam(model, x_te[:1])
    peak = tuple(res.peaks()[0].tolist())
    (out / "overlay.png").write_bytes(overlay_png(test_set.images[0], res.upsampled[0], peak=peak))
    (out / "activations.png").write_bytes(activation_grid_png(activations(model, x_te[:1])))
    pats = filt["patterns"]
    (out / "filters.png").write_bytes(image_grid_png(pats, [str(f) for f in filt["filters"]]))


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "").strip()
    flags = fields.get("Flags", "").split()
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    family = (
        f"family {fields.get('CPU family', '?').strip()} model {fields.get('Model', '?').strip()}"
    )
    return f"{model} ({family}), {fields.get('CPU(s)', '?').strip()} CPUs, flags: {' '.join(simd)}"


def report(args, info: dict) -> str:
    loc = info["localisation"]
    ratios = info["filters"]["ratios"]
    finite = [r for r in ratios if np.isfinite(r)]
    lines = [
        "# Explaining: localisation and filter patterns",
        "",
        f"Command: `{info['command']}`",
        "",
        f"CPU: {info['cpu']}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"machine shared with other jobs (timings are indicative only).",
        "",
        (
            f"Trained by `cnnkit train shapes` with its defaults (lr {args.lr_found:.2g} from the "
            f"range test; stopping {args.trained}): "
            if getattr(args, "trained", None)
            else ""
        )
        + f"Model `{args.model}` at {info['input']}, trained {len(info['losses'])} epochs on "
        f"{info['n_train']} `shapes` train images in {info['train_seconds']:.0f} s "
        f"(losses {', '.join(f'{v:.3f}' for v in info['losses'])}); "
        f"held-out accuracy {loc[0]['accuracy']:.1%} on {info['n_test']} `shapes:test` images.",
        "",
        "## Pointing game (goal: >= 90% of correctly classified held-out images)",
        "",
        "| method | target layer | correctly classified | peak inside the box |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | `{r['target_layer']}` | {r['n']} | **{r['rate']:.1%}** |" for r in loc
    ]
    b = info["baselines"]
    lines += [
        "",
        f"Baselines on the same images: a uniformly random pixel is inside the box "
        f"{b['random']:.1%} of the time (mean box area); the image centre {b['centre']:.1%}.",
        "",
        "## Filter patterns (goal: each filter >= 5x its mean activation on real images)",
        "",
        f"Layer `{info['filters']['layer']}`, {len(ratios)} filters, "
        f"{args.filter_steps} steps, optimised together in {info['filters']['seconds']:.0f} s.",
        "",
        f"Ratios: min {min(ratios):.1f}, median {statistics.median(ratios):.1f}, "
        f"max {max(ratios):.1f}; {sum(r >= 5 for r in ratios)}/{len(ratios)} filters >= 5x"
        + (
            ""
            if len(finite) == len(ratios)
            else f" ({len(ratios) - len(finite)} filters silent on real images: ratio inf)"
        ),
        "",
        "| filter | real mean | optimised | ratio |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {f} | {r:.4f} | {o:.4f} | {q:.1f} |"
        for f, r, o, q in zip(
            info["filters"]["filters"],
            info["filters"]["real"],
            info["filters"]["optimised"],
            ratios,
            strict=True,
        )
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    torch.manual_seed(args.seed)
    train_set = load_dataset("shapes", "train")
    test_set = load_dataset("shapes", "test")
    tr_n, te_n = min(args.n_train, len(train_set.images)), min(args.n_test, len(test_set.images))
    c, h, w = train_set.images.shape[1:]
    model = build(args.model, (c, h, w), 3) if not args.cnnkit_defaults else None
    y_tr = torch.from_numpy(train_set.labels[:tr_n])
    y_te = torch.from_numpy(test_set.labels[:te_n])
    boxes = test_set.boxes[:te_n]
    t0 = time.perf_counter()
    if args.cnnkit_defaults:
        model, losses = train_with_defaults(args)
    else:
        losses = train(model, prepare(model, train_set.images[:tr_n]), y_tr, args)
    train_seconds = time.perf_counter() - t0
    x_te = prepare(model, test_set.images[:te_n])
    loc = [localisation(model, x_te, y_te, boxes, m) for m in ("gradcam", "gradcam++", "hirescam")]
    for r in loc:
        print(f"{r['method']}: {r['rate']:.1%} of {r['n']} (acc {r['accuracy']:.1%})")
    layer = args.filter_layer or model.card.target_layer
    filt = filter_ratios(model, layer, x_te, args)
    print("filter ratios:", " ".join(f"{r:.1f}" for r in filt["ratios"]))
    info = {
        "command": " ".join([".venv/bin/python", "bench/explain.py", *(argv or sys.argv[1:])]),
        "cpu": cpu_name(),
        "input": f"{c}x{h}x{w}",
        "n_train": getattr(args, "n_train_used", None) or tr_n,
        "n_test": te_n,
        "losses": losses,
        "train_seconds": train_seconds,
        "localisation": loc,
        "baselines": baselines(boxes, (h, w)),
        "filters": filt,
    }
    if args.pictures:
        pictures(model, test_set, x_te, filt, args.pictures)
    text = report(args, info)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
