"""``cnnkit train | evaluate | predict | demo``: the main job, as thin commands over the library."""

import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cnnkit.cli._common import ARGV, JSON_OPTION, emit
from cnnkit.cli.data_cmds import AUGMENT_FLAGS, shift_option

# The augmentation flags are the data layer's (one list for train and augment-preview).
_AUG_FIELDS = tuple(AUGMENT_FLAGS)


def _given(ctx: typer.Context, name: str) -> bool:
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def _given_values(ctx: typer.Context, params: dict[str, Any]) -> dict[str, Any]:
    """Config-file values first, then every flag the user typed (flags map 1:1 to fields)."""
    from cnnkit.train import load_config_file

    values: dict[str, Any] = load_config_file(params["config"]) if params.get("config") else {}
    aug = dict(values.pop("augment", {}) or {})
    for name, v in params.items():
        if name in _NOT_CONFIG or not (_given(ctx, name) or (name == "data" and v)):
            continue
        if name in _AUG_FIELDS:
            aug[name] = list(v) if isinstance(v, tuple) else v
        elif name == "image_size":
            values[name] = list(v) if v else None
        else:
            values[name] = v
    if aug:
        values["augment"] = aug
    return values


_NOT_CONFIG = ("config", "overwrite", "resume", "out", "as_json", "no_report")


def _build_config(ctx: typer.Context, params: dict[str, Any]) -> Any:
    from cnnkit.train import TrainConfig

    values = _given_values(ctx, params)
    if "data" not in values:
        raise ValueError("DATA is required: a folder of class sub-folders or a dataset name")
    return TrainConfig.from_dict(values)


def train(
    ctx: typer.Context,
    data: str | None = typer.Argument(
        None, help="Folder of class sub-folders, or a dataset name (mnist-5k, fashion-mnist, ...)."
    ),
    model: str = typer.Option(
        "basic_convnet", "--model", help="Model name; `cnnkit models` lists them."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder to write (required unless --resume)."
    ),
    epochs: int = typer.Option(10, "--epochs"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float | None = typer.Option(
        None, "--lr", help="Learning rate (default: the optimiser's usual)."
    ),
    optimizer: str = typer.Option("adam", "--optimizer", help="sgd|adam|adamw|rmsprop"),
    schedule: str = typer.Option(
        "onecycle", "--schedule", help="none|step|cosine|onecycle|plateau"
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="auto|fp32|bf16|fp16 (auto decides from the hardware)."
    ),
    image_size: tuple[int, int] | None = typer.Option(
        None, "--image-size", help="H W (default: the model card's)."
    ),
    color_mode: str | None = typer.Option(None, "--color-mode", help="grayscale|rgb|rgba"),
    validation_split: float = typer.Option(0.2, "--validation-split"),
    seed: int = typer.Option(0, "--seed"),
    class_weight: str = typer.Option("none", "--class-weight", help="none|balanced"),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing"),
    weight_decay: float = typer.Option(0.0, "--weight-decay"),
    early_stopping: int = typer.Option(
        0, "--early-stopping", help="Patience in epochs (0 = off); restores the best weights."
    ),
    folds: int = typer.Option(1, "--folds", help="K > 1: stratified K-fold cross-validation."),
    devices: int = typer.Option(1, "--devices", help="Local processes for data-parallel training."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads (default: one per core; fewer on a busy machine)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML/JSON file of settings (flags override it)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
    rotation_range: float = typer.Option(0.0, "--rotation-range", help="Degrees."),
    width_shift_range: float = shift_option("--width-shift-range", "width"),
    height_shift_range: float = shift_option("--height-shift-range", "height"),
    shear_range: float = typer.Option(0.0, "--shear-range", help="Degrees."),
    zoom_range: float = typer.Option(0.0, "--zoom-range", help="z: factor in [1-z, 1+z]."),
    horizontal_flip: bool = typer.Option(False, "--horizontal-flip"),
    vertical_flip: bool = typer.Option(False, "--vertical-flip"),
    fill_mode: str = typer.Option("nearest", "--fill-mode", help="nearest|reflect|wrap|constant"),
    cval: float = typer.Option(0.0, "--cval"),
    contrast: float = typer.Option(0.0, "--contrast", help="c: contrast factor in [1-c, 1+c]."),
    brightness_range: tuple[float, float] | None = typer.Option(
        None, "--brightness-range", help="LO HI multiplicative."
    ),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="Weights: torchvision name, file, timm name."
    ),
    strategy: str | None = typer.Option(None, "--strategy", help="features|frozen|finetune"),
    unfreeze: int = typer.Option(0, "--unfreeze", help="finetune: top N blocks to unfreeze."),
    bn: str = typer.Option("frozen", "--bn", help="finetune: frozen|train BatchNorm."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train a model on a folder or a named dataset into a run folder.

    Example: cnnkit train fm --model basic_convnet --out runs/fm --epochs 10
    """
    from cnnkit.train import distributed

    t0 = time.perf_counter()
    if devices > 1 and distributed.env_world_size() == 1:
        raise typer.Exit(distributed.launch(list(ARGV), devices))
    dev = distributed.init_from_env() if distributed.env_world_size() > 1 else None
    try:
        result = _train_or_resume(ctx, data, out, overwrite, resume, dev)
    except BaseException:
        distributed.shutdown(clean=False)
        raise
    distributed.shutdown()
    if distributed.env_world_size() > 1 and int(os.environ.get("RANK", "0")) != 0:
        return
    _finish(result, t0, no_report, as_json)


def _train_or_resume(ctx, data, out, overwrite, resume, dev) -> Any:
    from cnnkit.train import resume_run

    device = str(dev) if dev is not None else None
    if resume is not None:
        overrides = {
            k: v for k, v in _given_values(ctx, dict(ctx.params)).items() if k != "devices"
        }
        return resume_run(resume, overrides=overrides or None, device=device)
    if out is None:
        raise ValueError("--out is required: the run folder to write (or --resume RUN)")
    cfg = _build_config(ctx, dict(ctx.params))
    return _train_or_cv(cfg, out, overwrite, device)


def _train_or_cv(cfg: Any, out: Path, overwrite: bool, device: str | None) -> Any:
    if cfg.folds > 1:
        from cnnkit.train.kfold import train_kfold

        return train_kfold(cfg, out, overwrite=overwrite)
    from cnnkit.train import train_run

    return train_run(cfg, out, overwrite=overwrite, device=device)


def _finish(result: Any, t0: float, no_report: bool, as_json: bool) -> None:
    report = None
    if not no_report:
        report = _render(result.run_dir)
    m = result.metrics
    payload = {
        "run": str(Path(result.run_dir).resolve()),
        "metrics": m,
        "seconds": time.perf_counter() - t0,
        "report": str(report) if report else None,
    }
    emit(payload, as_json, _train_text(payload))


def _render(run_dir: Path) -> Path | None:
    from cnnkit.report import render_report

    return Path(render_report(run_dir, gallery=True)).resolve()


def _train_text(p: dict) -> str:
    m = p["metrics"] or {}
    lines = [f"run: {p['run']}"]
    if "accuracy" in m:
        lo, hi = m["accuracy_ci"]
        lines.append(
            f"validation accuracy {m['accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f}, n={m['n']})"
        )
    if "accuracy_mean" in m:
        lines.append(
            f"cross-validated accuracy {m['accuracy_mean']:.4f} "
            f"+/- {m['accuracy_sd']:.4f} (sd over folds)"
        )
    lines.append(f"time {p['seconds']:.1f} s")
    if p["report"]:
        lines.append(f"report: {p['report']}")
    return "\n".join(lines)


def evaluate(
    run: Path = typer.Argument(..., help="Run folder."),
    data: str | None = typer.Argument(
        None, help="Folder or NAME:test; default: the run's validation split."
    ),
    tta: int = typer.Option(
        0, "--tta", help="Test-time augmentation: average over N augmented copies."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Accuracy with a 95% CI, per-class precision/recall/F1 and the confusion matrix.

    Example: cnnkit evaluate runs/fm
    """
    from cnnkit.train.evaluate import evaluate_run
    from cnnkit.train.metrics import format_metrics

    metrics = evaluate_run(run, data, tta=tta)
    emit(metrics, as_json, format_metrics)


def predict(
    run: Path = typer.Argument(..., help="Run folder."),
    # readable=False: an unreadable file is a per-file error (exit 1), not a usage error
    files: list[Path] = typer.Argument(
        ..., help="Image files, or folders (every image in them, recursively).", readable=False
    ),
    top_k: int = typer.Option(3, "--top-k", help="How many labels per file."),
    backend: str = typer.Option("torch", "--backend", help="torch|onnx"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Also write a CSV: file, label, probability, label_2, probability_2, ..., error.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Top-k labels and probabilities per file (exit 1 if any file failed).

    Example: cnnkit predict runs/fm fm/Bag --out predictions.csv
    """
    from cnnkit.fileio import atomic_write_text
    from cnnkit.serve.predictor import Predictor, predictions_csv

    if top_k < 1:
        raise ValueError(f"--top-k must be a positive int. Received: {top_k}")
    results = Predictor(run, backend=backend).predict_files(files, top_k=top_k)
    if out is not None:
        atomic_write_text(out, predictions_csv(results, top_k))
        emit(results, as_json, lambda r: _predict_summary(r, out))
    else:
        emit(results, as_json, _predict_text)
    if any("error" in r for r in results):
        raise typer.Exit(1)


def _predict_summary(results: list, out: Path) -> str:
    """With ``--out``: one line for the CSV, and one for each file that failed."""
    failed = [f"{r['file']}: ERROR {r['error']}" for r in results if "error" in r]
    head = f"wrote {out} ({len(results)} files, {len(failed)} failed)"
    return "\n".join([head, *failed])


def _predict_text(results: list) -> str:
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: ERROR {r['error']}")
        else:
            alts = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top_k"])
            lines.append(f"{r['file']}: {r['label']} ({r['probability']:.3f})  [{alts}]")
    return "\n".join(lines)


def demo(
    out: Path = typer.Option(
        Path("cnnkit-demo"), "--out", help="Folder for the demo's data, run and report."
    ),
    epochs: int = typer.Option(12, "--epochs"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Export real MNIST digits (mnist-5k) to a PNG folder, train basic_convnet, write a report.

    Example: cnnkit demo --out cnnkit-demo
    """
    from cnnkit.train.demo import run_demo

    t0 = time.perf_counter()
    result = run_demo(out, epochs=epochs)
    report = _render(result.run_dir)
    m = result.metrics
    payload = {
        "run": str(Path(result.run_dir).resolve()),
        "metrics": m,
        "train_seconds": result.seconds,
        "seconds": time.perf_counter() - t0,
        "report": str(report) if report else None,
    }
    if as_json:
        emit(payload, True)
        return
    lo, hi = m["accuracy_ci"]
    sys.stdout.write(
        f"trained basic_convnet on {result.n_train} real MNIST digits in {result.seconds:.1f} s "
        f"({result.precision})\n"
        f"validation accuracy {m['accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f}, n={m['n']})\n"
        f"run: {payload['run']}\n"
    )
    sys.stdout.write(f"report: {payload['report']}\n")


def register(app: typer.Typer) -> None:
    app.command("train", context_settings={"ignore_unknown_options": False})(train)
    app.command("evaluate")(evaluate)
    app.command("predict")(predict)
    app.command("demo")(demo)
