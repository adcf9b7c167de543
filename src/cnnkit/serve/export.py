"""Export a run's model to ONNX and prove the file predicts what PyTorch predicts.

:func:`export_onnx` uses the current exporter (``torch.onnx.export(..., dynamo=True)``) with
a dynamic batch dimension, records the preprocessing in the file's ``metadata_props``,
then runs the *written* file with onnxruntime on real images from the run (its validation
split, else any file it predicted; random pixels only when none is readable) and compares
with PyTorch. The file replaces ``out`` only when the check passes (temporary file +
``os.replace``), so a failed export never leaves a half-written or wrong model behind.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit import __version__
from cnnkit.data.lookup import ImageLookup
from cnnkit.errors import CnnkitError
from cnnkit.optional import needs
from cnnkit.runs import LoadedRun, load_run
from cnnkit.serve.onnx_backend import (
    INPUT_NAME,
    META_PREFIX,
    OUTPUT_NAME,
    OnnxSession,
    file_sha256,
)

TOLERANCE = 1e-4
"""Largest allowed absolute difference between onnxruntime and PyTorch probabilities."""


class ExportMismatchError(CnnkitError):
    """The exported file does not reproduce PyTorch's outputs within the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` did.

    Attributes:
        path: the written ``.onnx`` file.
        max_abs_diff: largest |onnxruntime - PyTorch| over the checked probabilities.
        max_abs_diff_logits: the same over the logits.
        n_images: how many images were checked.
        images_from: ``validation split``, ``run predictions`` or ``random pixels``.
        opset: the ONNX opset of the file.
        bytes: size of the file.
        seconds: wall time of export + check.
    """

    path: Path
    max_abs_diff: float
    max_abs_diff_logits: float
    n_images: int
    images_from: str
    opset: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path), "tolerance": TOLERANCE}


def export_onnx(
    run: Any,
    out: str | Path | None = None,
    *,
    tolerance: float = TOLERANCE,
    n_check: int = 16,
) -> ExportResult:
    """Write ``run``'s model as ONNX and check it against PyTorch.

    Args:
        run: a run folder or a :class:`cnnkit.runs.LoadedRun`.
        out: the ``.onnx`` path (default ``RUN/model.onnx``).
        tolerance: largest allowed absolute difference of the probabilities.
        n_check: at most this many images are compared.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ExportMismatchError: onnxruntime and PyTorch differ by more than ``tolerance``
            (nothing is written).
        ValueError: ``tolerance`` or ``n_check`` is not positive.
        CnnkitError: the exporter or onnxruntime failed, or ``run`` is not a run folder.
    """
    if not tolerance > 0 or n_check < 1:
        raise ValueError(
            "tolerance and n_check must be positive. "
            f"Received: tolerance={tolerance}, n_check={n_check}"
        )
    t0 = time.perf_counter()
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    dest = Path(out) if out is not None else loaded.path / "model.onnx"
    dest.parent.mkdir(parents=True, exist_ok=True)
    images, images_from = reference_images(loaded, n_check)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _export(loaded, images, tmp)
        opset = _write_metadata(tmp, export_metadata(loaded))
        diff_p, diff_l = compare(loaded, tmp, images)
        if not diff_p <= tolerance:
            raise ExportMismatchError(
                f"{dest}: onnxruntime differs from PyTorch by {diff_p:.3g} (probabilities; "
                f"logits {diff_l:.3g}) on {len(images)} images from the {images_from}, above "
                f"the tolerance {tolerance:g}; the file was not written"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(
        dest,
        diff_p,
        diff_l,
        len(images),
        images_from,
        opset,
        dest.stat().st_size,
        time.perf_counter() - t0,
    )


def export_metadata(run: Any) -> dict[str, Any]:
    """The preprocessing and provenance stored in the ONNX file (``cnnkit.*`` keys)."""
    cfg = run.config
    return {
        "model": cfg.get("model"),
        "class_names": run.class_names,
        "image_size": list(run.image_size),
        "color_mode": run.color_mode,
        "in_chans": run.in_chans,
        "interpolation": cfg.get("interpolation", "bilinear"),
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "input": "float32 (N, C, H, W) = (uint8 pixels / 255 - mean) / std",
        "output": "float32 (N, K) logits; softmax gives probabilities",
        "weights_sha256": file_sha256(run.path / "model.safetensors"),
        "cnnkit_version": __version__,
    }


def reference_images(run: Any, n: int) -> tuple[np.ndarray, str]:
    """Up to ``n`` real images the run knows about, decoded as for prediction.

    The validation rows of ``split.csv`` come first, then ``predictions.csv``; entries are
    image files or named-dataset pseudo-paths (``mnist-5k:train/12``). When none can be
    read (the data moved), ``n`` seeded random images stand in.

    Returns:
        uint8 ``(N, C, H, W)`` images and where they came from.
    """
    reader = ImageLookup(
        run.image_size,
        run.color_mode,
        run.interpolation,
        crop_to_aspect_ratio=run.crop_to_aspect_ratio,
    )
    for csv_name, where in (
        ("split.csv", "validation split"),
        ("predictions.csv", "run predictions"),
    ):
        images = []
        for path in _csv_paths(run.path / csv_name):
            image = reader(path)
            if image is not None:
                images.append(image)
            if len(images) == n:
                break
        if images:
            return np.stack(images), where
    rng = np.random.default_rng(0)
    shape = (n, run.in_chans, *run.image_size)
    return rng.integers(0, 256, shape, dtype=np.uint8), "random pixels"


def _csv_paths(path: Path) -> list[str]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = list(csv.DictReader(f))
    val = [r for r in rows if r.get("subset") in ("validation", "val")]
    return [r["path"] for r in (val or rows) if r.get("path")]


def _export(run: Any, images: np.ndarray, tmp: Path) -> None:
    example = run.preprocess(images[:2] if len(images) >= 2 else np.concatenate([images] * 2))
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.onnx.export(
            run.model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
        if program is None:  # only when the exporter is asked not to return one
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(tmp))
    except Exception as e:  # the exporter raises many types; name the model and the cause
        raise CnnkitError(
            f"ONNX export of model {run.config.get('model')!r} failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e


def _write_metadata(path: Path, meta: dict[str, Any]) -> int:
    """Add ``cnnkit.*`` metadata_props to the file in place; returns its default-domain opset."""
    with needs("ONNX export"):
        import onnx

    proto = onnx.load(str(path))
    keep = [p for p in proto.metadata_props if not p.key.startswith(META_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = META_PREFIX + key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    proto.doc_string = f"cnnkit {meta.get('model')} classifier; preprocessing in metadata_props"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def compare(run: Any, onnx_path: Path, images: np.ndarray) -> tuple[float, float]:
    """Max |onnxruntime - PyTorch| of probabilities and of logits, one image and the batch.

    Shape:
        images: uint8 ``(N, C, H, W)``.
    """
    session = OnnxSession(onnx_path)
    x = run.preprocess(images)
    with torch.inference_mode():
        ref = run.model(x).float()
    got = torch.from_numpy(
        np.concatenate([session(x[:1].numpy()), session(x[1:].numpy())])
        if len(x) > 1
        else session(x.numpy())
    ).float()
    diff_logits = float((got - ref).abs().max())
    diff_probs = float((got.softmax(1) - ref.softmax(1)).abs().max())
    return diff_probs, diff_logits
