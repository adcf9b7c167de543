"""``cnnkit datasets | cache | audit | augment-preview``: thin commands over :mod:`cnnkit.data`.

The augmentation options come from :class:`cnnkit.data.Augment`'s fields (one field, one
option; :mod:`cnnkit.cli.options`). Add them to a command with :func:`augment_options` (the
command then receives ``augment: Augment``)::

    @app.command()
    @augment_options
    def preview(data: str, augment: Augment) -> None: ...
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from cnnkit.cli._common import JSON_OPTION, emit, log
from cnnkit.cli.options import settings_parameters
from cnnkit.data.audit import audit, format_audit
from cnnkit.data.augment import Augment
from cnnkit.data.cache import cache_dir, cache_info, clear_cache
from cnnkit.data.datasets import (
    export_dataset,
    is_dataset_name,
    list_datasets,
    load_dataset,
    parse_dataset_spec,
)
from cnnkit.data.decode import load_image
from cnnkit.data.preview import preview_grid
from cnnkit.data.scan import scan_folder

AUGMENT_PARAMETERS = settings_parameters(Augment)
"""One Typer parameter per :class:`cnnkit.data.Augment` field."""


def augment_from_flags(**flags: Any) -> Augment:
    """An :class:`cnnkit.data.Augment` from option values (unknown names are refused).

    ``None`` values are ignored (left at the field default), so commands may pass every option.

    Raises:
        ValueError: an unknown option or a bad value (named in the message).
    """
    known = {p.name for p in AUGMENT_PARAMETERS}
    unknown = sorted(set(flags) - known)
    if unknown:
        raise ValueError(f"unknown augmentation flags {unknown}. Expected some of {sorted(known)}")
    values = {k: v for k, v in flags.items() if v is not None}
    return Augment.from_dict(values)


def augment_options(fn):
    """Decorator: add the augmentation options to a Typer command; it receives ``augment=``."""
    sig = inspect.signature(fn)
    kept = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name, p in sig.parameters.items()
        if name != "augment"
    ]
    names = [p.name for p in AUGMENT_PARAMETERS]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {k: kwargs.pop(k) for k in names if k in kwargs}
        return fn(*args, augment=augment_from_flags(**flags), **kwargs)

    params = kept + AUGMENT_PARAMETERS
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # so inspect and Typer see the new signature
    return wrapper


# ----------------------------------------------------------------------------- datasets


def _datasets_human(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        state = f"available  {r['location']}" if r["available"] else f"missing    {r['how_to_get']}"
        lines.append(f"{r['name']:<14} {state}")
    return "\n".join(lines)


datasets_app = typer.Typer(
    help="List the named datasets (available or not, and how to get them); export one.\n\n"
    "Example: cnnkit datasets",
    invoke_without_command=True,
    no_args_is_help=False,
)


@datasets_app.callback()
def datasets_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List mnist, fashion-mnist, cifar10, mnist-5k, digits, shapes: available or not.

    Example: cnnkit datasets export fashion-mnist fm --limit 200
    """
    if ctx.invoked_subcommand is not None:
        return

    emit(list_datasets(), as_json, _datasets_human)


@datasets_app.command("export")
def datasets_export(
    name: str = typer.Argument(..., help="Dataset name, e.g. mnist-5k or fashion-mnist:test."),
    directory: Path = typer.Argument(..., help="Folder to write (must not exist or be empty)."),
    split: str = typer.Option("train", "--split", help="train|test|all"),
    limit: Optional[int] = typer.Option(  # noqa: UP045
        None, "--limit", help="At most N images per class (the first N)."
    ),
    path: Optional[Path] = typer.Option(None, "--path", help="Where the dataset files are."),  # noqa: UP045
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a named dataset as a class-per-folder PNG tree.

    Each class's files are numbered from 0000.png in dataset order (DIR/Bag/0000.png, ...).

    Example: cnnkit datasets export fashion-mnist fm --limit 200
    """
    spec = name if ":" in name else f"{name}:{split}"
    ds_name, ds_split = parse_dataset_spec(spec)
    counts = export_dataset(ds_name, directory, ds_split, limit, path)
    result = {"dataset": ds_name, "split": ds_split, "directory": str(Path(directory).resolve()),
              "images": sum(counts.values()), "classes": counts}  # fmt: skip
    emit(result, as_json, lambda r: f"wrote {r['images']} PNGs in {len(counts)} class folders "
                                    f"to {r['directory']}")  # fmt: skip


# ----------------------------------------------------------------------------- cache

cache_app = typer.Typer(
    help="The decode-once image cache ($CNNKIT_CACHE_DIR).\n\nExample: cnnkit cache info",
    no_args_is_help=True,
)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@cache_app.command("info")
def cache_info_cmd(as_json: bool = JSON_OPTION) -> None:
    """Where the cache is, its entries and size.

    Example: cnnkit cache info
    """
    info = cache_info()

    def human(i: dict) -> str:
        lines = [f"cache: {i['path']} ({_mib(i['bytes'])})"]
        for e in i["entries"]:
            lines.append(f"  {e['key']}  {e['files']} files  {_mib(e['bytes'])}  {e['root']}")
        return "\n".join(lines)

    emit(info, as_json, human)


@cache_app.command("clear")
def cache_clear_cmd(as_json: bool = JSON_OPTION) -> None:
    """Delete the cached decoded images (they are re-decoded when next needed).

    Example: cnnkit cache clear
    """
    freed = clear_cache()
    result = {"path": str(cache_dir()), "freed_bytes": freed}
    emit(result, as_json, lambda r: f"cleared {r['path']} ({_mib(r['freed_bytes'])} freed)")


# ----------------------------------------------------------------------------- augment-preview


def _sample_images(data: str, image_size, color_mode: str, samples: int):
    """A few images of DATA (a folder or a dataset name) as uint8 ``(N, C, H, W)``."""
    folder = Path(data).expanduser()
    if folder.is_dir():
        labels = "inferred" if any(p.is_dir() for p in folder.iterdir()) else None
        paths = scan_folder(folder, labels=labels).file_paths
        if not paths:
            raise ValueError(f"DATA has no images. Received: {data}")
        size = tuple(image_size) if image_size else (180, 180)
        step = max(1, len(paths) // samples)
        return np.stack([load_image(p, size, color_mode) for p in paths[::step][:samples]])
    if is_dataset_name(data):
        arrays = load_dataset(data)
        return np.asarray(arrays.images[:samples])
    raise FileNotFoundError(f"DATA must be a folder or a dataset name. Received: {data}")


@augment_options
def augment_preview(
    data: str = typer.Argument(..., help="Folder of images or a dataset name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    n: int = typer.Option(16, "--n", help="Number of cells."),
    samples: int = typer.Option(1, "--samples", help="Distinct images (one row each)."),
    seed: int = typer.Option(0, "--seed"),
    image_size: Optional[tuple[int, int]] = typer.Option(  # noqa: UP045
        None, "--image-size", help="H W for folders (default 180 180)."
    ),
    color_mode: str = typer.Option("rgb", "--color-mode", help="grayscale|rgb|rgba (folders)."),
    as_json: bool = JSON_OPTION,
    augment: Any = None,
) -> None:
    """A grid of augmented versions of sample images (the lecture's figure).

    Example: cnnkit augment-preview fm --out aug.png --rotation-range 20 --horizontal-flip
    """
    if samples < 1:
        raise ValueError(f"--samples must be >= 1. Received: {samples}")
    images = _sample_images(data, image_size, color_mode, samples)
    png = preview_grid(images, augment, n=n, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    result = {"out": str(out.resolve()), "n": n, "augment": augment.to_dict()}
    emit(result, as_json, lambda r: f"wrote {r['out']}")
    if augment.is_identity:
        log("note: no augmentation flags given; the grid shows the images unchanged")


# ----------------------------------------------------------------------------- audit


def audit_cmd(
    data: Path = typer.Argument(
        ..., help="Folder of class sub-folders (or train/val/test folders)."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Exit 1 on any problem or train/validation/test duplicate."
    ),
    min_side: int = typer.Option(16, "--min-side", help="Images with a smaller side are tiny."),
    as_json: bool = JSON_OPTION,
) -> int:
    """Classes, counts, sizes, modes, broken/mismatched/tiny files, EXIF rotation, duplicates.

    Example: cnnkit audit fm
    """
    result = audit(data, min_side=min_side)
    emit(result, as_json, format_audit)
    failed = bool(result["problems"] or result["cross_split_duplicates"])
    return 1 if strict and failed else 0


def register(app: typer.Typer) -> None:
    """Add the data commands to the ``cnnkit`` app."""
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(cache_app, name="cache")
    app.command("augment-preview")(augment_preview)
    app.command("audit")(audit_cmd)
