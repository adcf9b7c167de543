"""cnnkit: convolutional neural networks on small, real data.

Folder of images (or a named dataset, or a SNP matrix) to a trained model, curves,
confusion matrix, Grad-CAM heatmaps and one HTML report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from cnnkit.serve.predictor import predict as predict


def __getattr__(name: str) -> Any:
    # Lazy: `import cnnkit` stays cheap (no torch import) so the CLI starts fast.
    if name == "predict":
        from cnnkit.serve.predictor import predict

        return predict
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
