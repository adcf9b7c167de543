"""Checks of a genomic run folder's config.json and arrays before anything is built from them.

A run folder may have been edited, truncated or replaced. Every field :func:`load_run` uses
is checked here for its type and range (the builders' own limits included), so a damaged
folder is one :class:`~cnnkit.errors.RunFolderError` naming the file and the field, never a
traceback or a run that does not end (``train.ensemble: 1000000``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnkit.errors import RunFolderError
from cnnkit.genomics.trainer import SnpTrainConfig

_NETWORKS = ("snp_cnn1d", "snp_mlp")
_KERNELS = ("gblup", "rkhs", "kblup")
# Builder options of the networks: name -> (kind, low, high).
_KWARGS = {
    "filters": ("ints", 1, 4096),
    "widths": ("ints", 1, 65536),
    "kernel_size": ("int", 1, 4097),
    "stride": ("int", 1, 4097),
    "pool": ("int", 1, 4097),
    "hidden": ("int", 0, 65536),
    "dropout": ("float", 0.0, 0.99),
    "batch_norm": ("bool", None, None),
    "linear_skip": ("bool", None, None),
}
_MAX_ENSEMBLE = 1000


def _fail(path: Path, field: str, expected: str, got) -> RunFolderError:
    shown = repr(got)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return RunFolderError(f"{path}: {field} must be {expected}. Received: {shown}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_kwargs(kwargs, path: Path) -> None:
    if not isinstance(kwargs, dict):
        raise _fail(path, "model_kwargs", "an object", kwargs)
    for key, value in kwargs.items():
        if key not in _KWARGS:
            raise _fail(path, "model_kwargs", f"keys among {', '.join(_KWARGS)}", key)
        kind, lo, hi = _KWARGS[key]
        field = f"model_kwargs.{key}"
        if kind == "bool" and not isinstance(value, bool):
            raise _fail(path, field, "true or false", value)
        if kind == "int" and not (_int(value) and lo <= value <= hi):
            raise _fail(path, field, f"an int in [{lo}, {hi}]", value)
        if kind == "float" and not (_number(value) and lo <= value <= hi):
            raise _fail(path, field, f"a number in [{lo}, {hi}]", value)
        if kind == "ints" and not (
            isinstance(value, list) and 1 <= len(value) <= 16
            and all(_int(v) and lo <= v <= hi for v in value)
        ):  # fmt: skip
            raise _fail(path, field, f"a list of 1-16 ints in [{lo}, {hi}]", value)


def _check_train(train, path: Path) -> None:
    if not isinstance(train, dict):
        raise _fail(path, "train", "an object", train)
    unknown = set(train) - set(SnpTrainConfig.__dataclass_fields__)
    if unknown:
        raise _fail(path, "train", "SnpTrainConfig fields", sorted(unknown))
    ens = train.get("ensemble", 1)
    if not (_int(ens) and 1 <= ens <= _MAX_ENSEMBLE):
        raise _fail(path, "train.ensemble", f"an int in [1, {_MAX_ENSEMBLE}]", ens)
    for key in ("epochs", "batch_size", "patience"):
        if key in train and not _int(train[key]):
            raise _fail(path, f"train.{key}", "an int", train[key])
    for key in ("lr", "weight_decay", "val_fraction"):
        if key in train and not _number(train[key]):
            raise _fail(path, f"train.{key}", "a finite number", train[key])
    try:
        SnpTrainConfig(**train)
    except (TypeError, ValueError) as e:
        raise RunFolderError(f"{path}: train is not valid ({e})") from None


def check_config(config, path: Path) -> None:
    """Check a genomic run's ``config.json`` contents.

    Raises:
        RunFolderError: naming the field, what it must be and what it holds.
    """
    if not isinstance(config, dict):
        raise _fail(path, "the config", "a JSON object", type(config).__name__)
    if config.get("kind") != "genomics":
        raise RunFolderError(
            f"{path.parent} is not a genomics run folder (kind={config.get('kind')!r})"
        )
    model = config.get("model")
    if model not in (*_NETWORKS, *_KERNELS):
        raise _fail(path, "model", f"one of {', '.join((*_NETWORKS, *_KERNELS))}", model)
    ids = config.get("snp_ids")
    if not (isinstance(ids, list) and ids and all(isinstance(s, str) for s in ids)):
        raise _fail(path, "snp_ids", "a non-empty list of strings", ids)
    if model in _NETWORKS:
        _check_kwargs(config.get("model_kwargs"), path)
        _check_train(config.get("train"), path)
        for key in ("y_mean", "y_std"):
            if not _number(config.get(key)):
                raise _fail(path, key, "a finite number", config.get(key))
        if not config["y_std"] > 0:
            raise _fail(path, "y_std", "> 0", config["y_std"])
    else:
        _check_kernel_config(config, path)


def _check_kernel_config(config: dict, path: Path) -> None:
    b = config.get("fixed_effects")
    if not (isinstance(b, list) and b and all(_number(v) for v in b)):
        raise _fail(path, "fixed_effects", "a non-empty list of finite numbers", b)
    if not _number(config.get("mean_fixed")):
        raise _fail(path, "mean_fixed", "a finite number", config.get("mean_fixed"))
    if config["model"] == "kblup":
        return
    delta = config.get("delta")
    if not (_number(delta) and delta > 0):  # type: ignore[operator]
        raise _fail(path, "delta", "a finite number > 0", delta)
    if config["model"] == "rkhs":
        h = config.get("bandwidth")
        if not (_number(h) and h > 0):  # type: ignore[operator]
            raise _fail(path, "bandwidth", "a finite number > 0", h)


def _array(state: dict, key: str, path: Path, ndim: int, dtype_kind: str) -> np.ndarray:
    if key not in state:
        raise RunFolderError(f"{path}: array {key!r} is missing")
    a = state[key]
    if a.ndim != ndim or a.dtype.kind not in dtype_kind:
        raise RunFolderError(
            f"{path}: array {key!r} must be {ndim}-D of kind {dtype_kind!r}. "
            f"Received: shape {a.shape}, dtype {a.dtype}"
        )
    return a


def check_preprocessor(state: dict, n_snps: int, path: Path) -> None:
    """``keep`` sorted unique indices below ``n_input == n_snps``; finite ``means`` alongside.

    Raises:
        RunFolderError: naming the array and the problem.
    """
    keep = _array(state, "keep", path, 1, "iu")
    means = _array(state, "means", path, 1, "f")
    n_input = _array(state, "n_input", path, 1, "iu")
    if n_input.shape != (1,) or int(n_input[0]) != n_snps:
        raise RunFolderError(
            f"{path}: n_input must equal the {n_snps} snp_ids of config.json. "
            f"Received: {n_input.tolist()}"
        )
    if keep.size == 0 or keep.size != means.size:
        raise RunFolderError(
            f"{path}: keep and means must be non-empty and of the same length. "
            f"Received: {keep.size} and {means.size}"
        )
    if keep.min() < 0 or keep.max() >= n_snps or np.any(np.diff(keep) <= 0):
        raise RunFolderError(f"{path}: keep must be increasing SNP indices in [0, {n_snps})")
    if not np.isfinite(means).all():
        raise RunFolderError(f"{path}: means must be finite")


def check_kernel_arrays(arrays: dict, n_snps: int, n_fixed: int, run: Path) -> None:
    """A kernel model's training genotypes ``z`` ``(n, L)``, ``y`` ``(n,)``, ``design``
    ``(n, q)``, all finite and consistent with the config.

    Raises:
        RunFolderError: naming the array and the problem.
    """
    path = run / "model.safetensors"
    z = _array(arrays, "z", path, 2, "f")
    y = _array(arrays, "y", path, 1, "f")
    design = _array(arrays, "design", path, 2, "f")
    n = y.shape[0]
    if z.shape != (n, n_snps) or design.shape != (n, n_fixed) or n < n_fixed + 2:
        raise RunFolderError(
            f"{path}: z {z.shape}, y {y.shape} and design {design.shape} do not fit "
            f"{n_snps} kept SNPs and {n_fixed} fixed effects"
        )
    for name, a in (("z", z), ("y", y), ("design", design)):
        if not np.isfinite(a).all():
            raise RunFolderError(f"{path}: array {name!r} must be finite")
