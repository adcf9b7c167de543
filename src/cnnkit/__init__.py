"""cnnkit: convolutional neural networks on small, real data.

Folder of images (or a named dataset, or a SNP matrix) to a trained model, curves,
confusion matrix, Grad-CAM heatmaps and one HTML report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnkit.allocator import keep_freed_memory

__version__ = "0.1.0"

# Before any thread allocates: glibc fixes its arena limit when a second thread first needs
# an arena, and a prefetch thread in an arena of its own page-faults its batches in again.
keep_freed_memory()

if TYPE_CHECKING:  # pragma: no cover
    from cnnkit.serve.predictor import predict as predict


def __getattr__(name: str) -> Any:
    # Lazy: `import cnnkit` stays cheap (no torch import) so the CLI starts fast.
    if name == "predict":
        from cnnkit.serve.predictor import predict

        return predict
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
