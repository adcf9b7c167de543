"""cnnkit.serve: ship a trained run.

- :class:`Predictor` / :func:`predict`: one prediction path for the CLI, Python and HTTP.
- :func:`export_onnx` (``cnnkit export``): ONNX file checked against PyTorch.
- :func:`create_app` (``cnnkit serve``): FastAPI app with ``/predict``, ``/explain``,
  ``/health`` and a web page.

Names are imported lazily so ``import cnnkit.serve`` needs neither FastAPI nor onnx.

>>> from cnnkit.serve import Predictor
>>> Predictor("runs/digits").predict_files(["seven.png"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

_NAMES = {
    "Predictor": "cnnkit.serve.predictor",
    "predict": "cnnkit.serve.predictor",
    "export_onnx": "cnnkit.serve.export",
    "ExportResult": "cnnkit.serve.export",
    "OnnxSession": "cnnkit.serve.onnx_backend",
    "create_app": "cnnkit.serve.app",
    "ServeOptions": "cnnkit.serve.app",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'cnnkit.serve' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_NAMES[name]), name)
