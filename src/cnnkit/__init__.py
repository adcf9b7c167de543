"""cnnkit: convolutional neural networks on small, real data.

Folder of images (or a named dataset, or a SNP matrix) to a trained model, curves,
confusion matrix, Grad-CAM heatmaps and one HTML report.

``import cnnkit`` changes nothing in the process (the memory setting of
:mod:`cnnkit.allocator` is the CLI's and the training loop's to opt into) and imports no
library stage: ``cnnkit.predict`` loads the prediction stage when first used, so the
command line (``cnnkit --help``) starts at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from cnnkit.serve.predictor import predict as predict


def __getattr__(name: str) -> Any:
    if name == "predict":
        from cnnkit.serve.predictor import predict  # the package's one deferred name

        return predict
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
