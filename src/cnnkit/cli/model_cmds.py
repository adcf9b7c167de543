"""``cnnkit summary`` and ``cnnkit models``: thin commands over :mod:`cnnkit.models`."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch
import typer
from typer.core import TyperCommand

from cnnkit.cli._common import JSON_OPTION, emit
from cnnkit.models import create_model, get_card, list_models, summary
from cnnkit.models.fetch import fetch_weights
from cnnkit.models.registry import markdown_table, text_table
from cnnkit.runs import load_run

SHAPE_FLAG = "--input-shape"


def _join_shape_tokens(args: list[str]) -> list[str]:
    """Fold the numbers after ``--input-shape`` into one token (click options have fixed arity).

    ``summary snp_cnn1d --input-shape 1 1000`` becomes ``... --input-shape "1 1000"``. Every
    number is taken, so that a wrong count reaches :func:`_parse_shape` and its message.
    """
    out, i = [], 0
    while i < len(args):
        out.append(args[i])
        i += 1
        if out[-1] == SHAPE_FLAG:
            j = i
            while j < len(args) and args[j].lstrip("-").isdigit():
                j += 1
            if j > i:
                out.append(" ".join(args[i:j]))
                i = j
    return out


class _ShapeCommand(TyperCommand):
    """A command whose ``--input-shape`` takes 2 or 3 numbers (``C L`` or ``C H W``)."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        return super().parse_args(ctx, _join_shape_tokens(list(args)))


def _parse_shape(text: str | None, name: str) -> tuple[int, ...] | None:
    """``"1 1000"`` -> ``(1, 1000)``, checked against the model card's number of dims."""
    if text is None:
        return None
    want = None if Path(name).expanduser().is_dir() else _card_dims(name)
    tokens = text.replace(",", " ").split()
    ok = all(t.isdigit() and int(t) > 0 for t in tokens)
    if ok and (len(tokens) == want or (want is None and len(tokens) in (2, 3))):
        return tuple(int(t) for t in tokens)
    if want is None:
        expected = "2 positive ints (C L, SNP models) or 3 (C H W, image models)"
    else:
        expected = f"{want} positive ints ({'C L' if want == 2 else 'C H W'}) for {name}"
    raise ValueError(f"{SHAPE_FLAG} must be {expected}. Received: {SHAPE_FLAG} {text}")


def _card_dims(name: str) -> int:
    return len(get_card(name).input_size)


def _model_from_run(path: Path) -> Any:
    """The trained model of a run folder."""
    return load_run(path).model


def _summary(
    name: str,
    input_shape: tuple[int, ...] | None,
    num_classes: Optional[int],  # noqa: UP045
    param_mode: str,
) -> Any:
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
    input_shape: Optional[str] = typer.Option(  # noqa: UP045 (Typer)
        None,
        SHAPE_FLAG,
        metavar="C H W | C L",
        help="C H W for image models, C L (channels, loci) for SNP models "
        "(default: the model card's).",
    ),
    num_classes: Optional[int] = typer.Option(  # noqa: UP045
        None, "--num-classes", help="Classes (default: the card's; 0 = convolutional base)."
    ),
    param_mode: str = typer.Option(
        "torch", "--param-mode", help="torch | keras (keras also counts BN moving statistics)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Layer table: output shapes, parameters, multiply-adds; trainable / non-trainable totals.

    Example: cnnkit summary vgg16 --input-shape 3 224 224
    """
    s = _summary(name, _parse_shape(input_shape, name), num_classes, param_mode)
    emit(s.to_dict(), as_json, str(s))


def models_cmd(
    markdown: bool = typer.Option(
        False, "--markdown", help="A Markdown table (with each model's source), as in README.md."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the model zoo: names, default input size, minimum size, parameters.

    Example: cnnkit models
    """
    cards = [asdict(get_card(n)) for n in list_models()]
    width = shutil.get_terminal_size((100, 24)).columns
    emit(cards, as_json, markdown_table() if markdown else text_table(width=width))


weights_app = typer.Typer(
    help="Published pretrained weights, fetched on request (cnnkit never downloads by itself)."
    "\n\nOn a machine with internet, `weights fetch` puts them in the torch hub cache "
    "($TORCH_HOME/hub/checkpoints); copy that folder to machines without."
    "\n\nExample: cnnkit weights fetch resnet18",
    no_args_is_help=True,
)


@weights_app.command("fetch")
def weights_fetch_cmd(
    model: str = typer.Argument(..., help="Model name (cnnkit models lists them)."),
    weights: str = typer.Argument(
        "imagenet", help="imagenet (the model's), a torchvision weight name or a Keras .h5 name."
    ),
    mirror: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--mirror",
        help="Base URL of a copy of the files (a lab's), instead of the publisher.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Download a model's published weights into the torch hub cache, checked against their hash.

    Example: cnnkit weights fetch resnet18 imagenet
    """
    name = get_card(model).name
    r = fetch_weights(name, weights, mirror=mirror)
    result = {"model": name, "weights": weights, "path": str(r.path), "url": r.url,
              "checked": r.checked, "downloaded": r.downloaded}  # fmt: skip
    done = "fetched" if r.downloaded else "already here (not fetched again)"
    emit(result, as_json, f"{done}: {r.path}\nchecked: {r.checked}")


def register(app: typer.Typer) -> None:
    """Add the model commands to the ``cnnkit`` app."""
    app.command("summary", cls=_ShapeCommand)(summary_cmd)
    app.command("models")(models_cmd)
    app.add_typer(weights_app, name="weights")
