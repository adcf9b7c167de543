"""``cnnkit summary`` and ``cnnkit models``: thin commands over :mod:`cnnkit.models`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from cnnkit.cli._common import JSON_OPTION, emit


def _model_from_run(path: Path) -> Any:
    """The trained model of a run folder (through ``cnnkit.train.load_run``)."""
    try:
        from cnnkit.train import load_run
    except ImportError as e:
        raise ValueError(
            f"{path} is a folder, but reading run folders needs cnnkit.train.load_run, which "
            f"is not available in this installation ({e})"
        ) from None
    return load_run(path).model


def _summary(
    name: str,
    input_shape: Optional[tuple[int, int, int]],  # noqa: UP045 (Typer)
    num_classes: Optional[int],  # noqa: UP045
    param_mode: str,
) -> Any:
    import torch

    from cnnkit.models import create_model, summary

    path = Path(name).expanduser()
    if path.is_dir():
        model = _model_from_run(path)
        if num_classes is not None:
            raise ValueError(f"--num-classes applies to a model name, not a run folder ({path})")
    else:
        with torch.device("meta"):  # counts and shapes need no weights: instant even for VGG
            model = create_model(name, num_classes=num_classes, input_size=input_shape)
    return summary(model, input_shape, param_mode=param_mode)


def summary_cmd(
    name: str = typer.Argument(..., help="Model name (cnnkit models) or a run folder."),
    input_shape: Optional[tuple[int, int, int]] = typer.Option(  # noqa: UP045
        None, "--input-shape", help="C H W (default: the model card's)."
    ),
    num_classes: Optional[int] = typer.Option(  # noqa: UP045
        None, "--num-classes", help="Classes (default: the card's; 0 = convolutional base)."
    ),
    param_mode: str = typer.Option(
        "torch", "--param-mode", help="torch | keras (keras also counts BN moving statistics)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Layer table: output shapes, parameters, multiply-adds; trainable / non-trainable totals."""
    s = _summary(name, input_shape, num_classes, param_mode)
    emit(s.to_dict(), as_json, str(s))


def models_cmd(as_json: bool = JSON_OPTION) -> None:
    """List the model zoo: names, default input size, minimum size, parameters."""
    from dataclasses import asdict

    from cnnkit.models import get_card, list_models
    from cnnkit.models.registry import markdown_table

    cards = [asdict(get_card(n)) for n in list_models()]
    emit(cards, as_json, markdown_table())


def register(app: typer.Typer) -> None:
    """Add the model commands to the ``cnnkit`` app."""
    app.command("summary")(summary_cmd)
    app.command("models")(models_cmd)
