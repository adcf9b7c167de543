"""A run's ``config.json``, read and checked in one place before anything uses it.

Every reader (evaluate, predict, explain, export, serve, report, resume) goes through
:func:`read_run_config`, so a damaged or tampered file is one clear error naming the file
and the bad values, never a traceback from deep inside a model or an allocator.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cnnkit.data.decode import COLOR_MODES, INTERPOLATIONS
from cnnkit.errors import RunFolderError
from cnnkit.fileio import read_json
from cnnkit.runs.layout import CONFIG

MAX_SIDE = 4096
"""Largest image height or width a run may declare (pixels)."""
MAX_CLASSES = 100_000


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.json`` of an image run, checked.

    Raises:
        RunFolderError: no such folder, no config.json, not a JSON object, or values that
            cannot describe a model (all of them listed).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder not found: {run_dir}")
    path = run_dir / CONFIG
    if not path.is_file():
        raise RunFolderError(f"{run_dir} is not a finished cnnkit run folder (no {CONFIG})")
    try:
        cfg = read_json(path, "run config")
    except (OSError, ValueError) as e:
        raise RunFolderError(str(e)) from None
    problems = config_problems(cfg)
    if problems:
        raise RunFolderError(f"{path}: " + "; ".join(problems))
    return cfg


def config_problems(cfg: dict[str, Any]) -> list[str]:
    """What in an image run's config cannot describe its model and preprocessing."""
    required = ("model", "class_names", "image_size", "in_chans", "color_mode", "mean", "std")
    missing = [k for k in required if k not in cfg]
    if missing:
        return [f"missing {', '.join(missing)}"]
    bad = _model_and_classes(cfg) + _input(cfg)
    chans = cfg["in_chans"]
    for key in ("mean", "std"):
        if not _numbers(cfg[key], chans if _posint(chans, 4) else 1):
            bad.append(f"{key}={_short(cfg[key])} (expected 1 or in_chans finite numbers)")
    if not bad and not all(s > 0 for s in cfg["std"]):
        bad.append(f"std={cfg['std']!r} (expected positive numbers)")
    return bad


def _model_and_classes(cfg: dict[str, Any]) -> list[str]:
    bad = []
    if not isinstance(cfg["model"], str) or not cfg["model"]:
        bad.append(f"model={_short(cfg['model'])} (expected a model name)")
    names = cfg["class_names"]
    if not (
        isinstance(names, list)
        and 0 < len(names) <= MAX_CLASSES
        and all(isinstance(n, str) for n in names)
    ):
        bad.append(f"class_names={_short(names)} (expected a non-empty list of names)")
    elif len(set(names)) != len(names):
        bad.append("class_names has duplicates")
    elif "num_classes" in cfg and cfg["num_classes"] != len(names):
        bad.append(f"num_classes={_short(cfg['num_classes'])} but {len(names)} class_names")
    return bad


def _input(cfg: dict[str, Any]) -> list[str]:
    bad = []
    size = cfg["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_posint(v, MAX_SIDE) for v in size)):
        bad.append(f"image_size={_short(size)} (expected [height, width], each 1..{MAX_SIDE})")
    chans, mode = cfg["in_chans"], cfg["color_mode"]
    if not _posint(chans, 4):
        bad.append(f"in_chans={_short(chans)} (expected 1, 3 or 4)")
    if mode not in COLOR_MODES:
        bad.append(f"color_mode={_short(mode)} (expected one of {', '.join(COLOR_MODES)})")
    elif _posint(chans, 4) and COLOR_MODES[mode] != chans:
        bad.append(f"color_mode={mode!r} has {COLOR_MODES[mode]} channels but in_chans={chans}")
    interp = cfg.get("interpolation", "bilinear")
    if not isinstance(interp, str) or interp.lower() not in INTERPOLATIONS:
        bad.append(f"interpolation={_short(interp)} (expected one of {', '.join(INTERPOLATIONS)})")
    return bad


def _posint(v: Any, top: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= top


def _numbers(v: Any, channels: int) -> bool:
    return (
        isinstance(v, list)
        and len(v) in (1, channels)
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
        )
    )


def _short(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."
