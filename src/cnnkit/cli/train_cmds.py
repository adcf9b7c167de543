"""``cnnkit train | lr-find | learning-curve | evaluate | predict | demo``: the main job, as
thin commands over the library.

``cnnkit train``'s options are generated from :class:`cnnkit.train.TrainConfig`'s fields
(:func:`cnnkit.cli.options.with_settings`): a new setting is a new field, nothing here.
"""

import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cnnkit.cli._common import CONFIG_OPTION, JSON_OPTION, emit
from cnnkit.cli.options import given, with_settings
from cnnkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from cnnkit.report import render_learning_curve, render_report
from cnnkit.report.plots import lr_find_png
from cnnkit.serve.predictor import Predictor, predictions_csv
from cnnkit.train import TrainConfig, find_run_lr, load_config_file, resume_run, train_run
from cnnkit.train.demo import run_demo
from cnnkit.train.evaluate import evaluate_run
from cnnkit.train.kfold import train_kfold
from cnnkit.train.learning_curves import (
    DEFAULT_FRACTIONS,
    DEFAULT_REPEATS,
    learning_curve,
    resume_learning_curve,
)
from cnnkit.train.metrics import format_metrics


def _settings(values: dict[str, Any], config_file: Path | None) -> dict[str, Any]:
    """The config file's settings, then every option the user typed on top."""
    merged: dict[str, Any] = load_config_file(config_file) if config_file else {}
    typed_augment = values.pop("augment", {})
    merged.update(values)
    if typed_augment:
        merged["augment"] = {**dict(merged.get("augment") or {}), **typed_augment}
    return merged


@with_settings(TrainConfig)
def train(
    ctx: typer.Context,
    settings: dict,
    out: Path | None = typer.Option(
        None, "--out", help="Run folder to write (required unless --resume)."
    ),
    config: Path | None = CONFIG_OPTION,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the run in --out (only cnnkit's own files)."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this folder (with --epochs N: train further)."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train a model on a folder or a named dataset into a run folder.

    Example: cnnkit train photos/ --out runs/photos --epochs 20 --rotation-range 10
    """
    t0 = time.perf_counter()
    values = _settings(settings, config)
    if resume is not None:
        result = resume_run(resume, overrides=values or None)
    else:
        if out is None:
            raise ValueError("--out is required: the run folder to write (or --resume RUN)")
        if "data" not in values:
            raise ValueError("DATA is required: a folder of class sub-folders or a dataset name")
        cfg = TrainConfig.from_dict(values)
        run = train_kfold if cfg.folds > 1 else train_run
        result = run(cfg, out, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return
    _finish(result, t0, no_report, as_json)


@with_settings(TrainConfig)
def lr_find(
    ctx: typer.Context,
    settings: dict,
    out: Path = typer.Option(
        Path("lr_find.png"), "--out", help="The plot to write (its numbers go beside it as .json)."
    ),
    config: Path | None = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Learning-rate range test: loss against a growing rate, and the rate train would pick.

    It takes train's options and tests what `cnnkit train` would train (the same split,
    model, augmentation; a transfer run's head on its frozen base).

    Example: cnnkit lr-find photos/ --out photos-lr.png
    """
    values = _settings(settings, config)
    if "data" not in values:
        raise ValueError("DATA is required: a folder of class sub-folders or a dataset name")
    finding = find_run_lr(TrainConfig.from_dict(values))
    atomic_write_bytes(out, lr_find_png(finding.to_dict()))
    atomic_write_json(out.with_suffix(".json"), finding.to_dict())
    payload = {**finding.to_dict(), "plot": str(out.resolve())}
    emit(payload, as_json, f"{finding.describe()}\nplot: {out}\n"
         f"train with it: cnnkit train {values['data']} --lr {finding.suggestion:.2g} ...\n"
         "(cnnkit train runs the same test by itself when --lr is not given)")  # fmt: skip


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
    include_train: bool = typer.Option(
        False, "--include-train", help="Count the images the run trained on (left out by default)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Accuracy with a 95% CI, per-class precision/recall/F1 and the confusion matrix.

    Example: cnnkit evaluate runs/fm fm_test
    """
    metrics = evaluate_run(run, data, tta=tta, include_train=include_train)
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
    failed = [_error_line(r) for r in results if "error" in r]
    head = f"wrote {out} ({len(results)} files, {len(failed)} failed)"
    return "\n".join([head, *failed])


def _error_line(result: dict) -> str:
    """``FILE: ERROR why``, the file named once (the error starts with it)."""
    file, error = result["file"], result["error"]
    return f"{file}: ERROR {error.removeprefix(f'{file}: ')}"


def _predict_text(results: list) -> str:
    lines = []
    for r in results:
        if "error" in r:
            lines.append(_error_line(r))
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


@with_settings(TrainConfig)
def learning_curve_cmd(
    ctx: typer.Context,
    settings: dict,
    out: Path | None = typer.Option(
        None, "--out", help="Folder to write (required unless --resume)."
    ),
    fractions: str = typer.Option(
        ",".join(format(f, "g") for f in DEFAULT_FRACTIONS),
        "--fractions",
        help="Shares of the training images to train on, comma-separated (three at least).",
    ),
    repeats: int = typer.Option(
        DEFAULT_REPEATS, "--repeats", help="Runs per fraction, each with its own subset and seed."
    ),
    config: Path | None = CONFIG_OPTION,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the learning curve in --out."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the learning curve in this folder (finished points kept)."
    ),
    no_report: bool = typer.Option(
        False, "--no-report", help="Skip learning_curve.png and report.html."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train on growing subsets of the training images; predict the accuracy with more images.

    Every point validates on the same images (OUT/split.csv); a power law fitted to the
    points answers "with 2x / 4x the images, expected accuracy A [lo, hi]".

    Example: cnnkit learning-curve photos/ --out curves/photos --epochs 20
    """
    values = _settings(settings, config)
    if resume is not None:
        if values or given(ctx, "fractions") or given(ctx, "repeats"):
            raise ValueError(
                f"--resume continues {resume} with its own settings; drop the other options "
                "(or start a new curve with --out)"
            )
        result = resume_learning_curve(resume)
    else:
        if out is None:
            raise ValueError("--out is required: the folder to write (or --resume DIR)")
        if "data" not in values:
            raise ValueError("DATA is required: a folder of class sub-folders or a dataset name")
        result = learning_curve(TrainConfig.from_dict(values), out, overwrite=overwrite,
                                fractions=_fractions(fractions), repeats=repeats)  # fmt: skip
    report = None if no_report else Path(render_learning_curve(result.out)).resolve()
    payload = {**result.summary, "folder": str(Path(result.out).resolve()),
               "report": str(report) if report else None}  # fmt: skip
    payload.pop("curve", None)
    emit(payload, as_json, _curve_text)


def _fractions(text: str) -> list[float]:
    try:
        return [float(t) for t in text.replace(" ", ",").split(",") if t]
    except ValueError:
        raise ValueError(
            f"--fractions must be numbers in (0, 1] separated by commas. Received: {text!r}"
        ) from None


def _curve_text(p: dict) -> str:
    lines = [f"learning curve: {p['folder']}"]
    for r in p["by_fraction"]:
        lines.append(
            f"  {r['n_train']:>7,} images (fraction {r['fraction']:g}): accuracy "
            f"{r['accuracy_mean']:.4f} +/- {r['accuracy_sd']:.4f} (sd, {r['repeats']} runs)"
        )
    f = p["fit"]
    lines.append(f"fit: error = {f['a']:.3g} * n^-{f['b']:.3f} + {f['c']:.3f}")
    lines.append(p["answer"])
    if p["report"]:
        lines.append(f"report: {p['report']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("train", context_settings={"ignore_unknown_options": False})(train)
    app.command("learning-curve")(learning_curve_cmd)
    app.command("lr-find")(lr_find)
    app.command("evaluate")(evaluate)
    app.command("predict")(predict)
    app.command("demo")(demo)
