"""Run an exported ``model.onnx`` with onnxruntime.

The ONNX graph takes the *normalised* float batch (what :meth:`LoadedRun.preprocess`
returns) and gives logits; the preprocessing that produced its input (image size, colour
mode, mean/std, class names) is stored in the file's ``metadata_props`` under ``cnnkit.*``
keys, so a file that travels without its run folder still says how to feed it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import CnnkitError
from cnnkit.optional import available, needs

META_PREFIX = "cnnkit."
"""Prefix of cnnkit's keys in the ONNX ``metadata_props``."""

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported here."""
    return available("onnxruntime")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """``cnnkit.*`` metadata strings -> values (JSON-decoded where they are JSON)."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(META_PREFIX):
            continue
        try:
            out[key[len(META_PREFIX) :]] = json.loads(value)
        except json.JSONDecodeError:
            out[key[len(META_PREFIX) :]] = value
    return out


class OnnxSession:
    """An onnxruntime CPU session over a cnnkit ONNX file, callable on a float32 batch.

    Args:
        path: the ``.onnx`` file (usually ``RUN/model.onnx``).
        threads: intra-op threads (None = onnxruntime's default, all cores).

    Attributes:
        metadata: the preprocessing stored at export (``class_names``, ``image_size``,
            ``color_mode``, ``mean``, ``std``, ``weights_sha256``...).

    Shape:
        ``__call__``: ``(B, C, H, W)`` float32 normalised -> ``(B, K)`` float32 logits.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CnnkitError: onnxruntime is not installed, or the file is not a model it can load.

    Example:
        >>> sess = OnnxSession("runs/digits/model.onnx")  # doctest: +SKIP
        >>> sess(np.zeros((2, 1, 28, 28), np.float32)).shape  # doctest: +SKIP
        (2, 10)
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"ONNX model not found: {self.path} (make it with `cnnkit export RUN`)"
            )
        with needs("the onnx backend"):
            import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; warnings go to stderr otherwise
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise CnnkitError(f"{self.path}: not a loadable ONNX model ({e})") from None
        self._input = self._session.get_inputs()[0].name
        props = self._session.get_modelmeta().custom_metadata_map or {}
        self.metadata = decode_metadata(dict(props))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(B, K)`` for a normalised float32 batch ``(B, C, H, W)``."""
        batch = np.ascontiguousarray(x, dtype=np.float32)
        if batch.ndim != 4:
            raise ValueError(f"input must be (B, C, H, W). Received: shape={batch.shape}")
        return self._session.run(None, {self._input: batch})[0]
