"""cnnkit.serve: ship a trained run.

- :class:`Predictor` / :func:`predict`: one prediction path for the CLI, Python and HTTP.
- :func:`export_onnx` (``cnnkit export``): ONNX file checked against PyTorch (the ``serve``
  extra's onnx and onnxruntime).
- :func:`cnnkit.serve.app.create_app` (``cnnkit serve``): FastAPI app with ``/predict``,
  ``/explain``, ``/health`` and a web page (needs the ``serve`` extra).

>>> from cnnkit.serve import Predictor
>>> Predictor("runs/digits").predict_files(["seven.png"])  # doctest: +SKIP
"""

from cnnkit.serve.export import ExportResult, export_onnx
from cnnkit.serve.onnx_backend import OnnxSession
from cnnkit.serve.predictor import Predictor, predict

__all__ = ["ExportResult", "OnnxSession", "Predictor", "export_onnx", "predict"]
