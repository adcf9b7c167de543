"""cnnkit.explain: what a convnet looks at.

- :func:`activations` / :func:`activation_grid_png`: intermediate activations (forward hooks).
- :func:`filter_patterns` / :func:`raw_kernels`: the input each filter responds to most.
- :func:`gradcam` / :func:`overlay_png` / :func:`cam_figure_png`: Grad-CAM, Grad-CAM++ and
  HiResCAM heatmaps; :func:`cam_note` says when a map has nothing to show.
- :func:`gradcam_gallery`: the report's gallery of correct and wrong predictions.
- :func:`peak_in_box`: the pointing game (does the heatmap peak lie on the object?).

>>> from cnnkit.explain import gradcam
>>> res = gradcam(model, x)  # doctest: +SKIP
>>> res.upsampled.shape  # (B, H, W), 0..1  # doctest: +SKIP
"""

from cnnkit.explain.activations import activations, auto_layers
from cnnkit.explain.filters import (
    PatternOptions,
    filter_patterns,
    mean_filter_activation,
    raw_kernels,
)
from cnnkit.explain.gallery import gradcam_gallery
from cnnkit.explain.gradcam import METHODS, CamResult, cam_note, gradcam
from cnnkit.explain.metrics import peak_in_box
from cnnkit.explain.plots import (
    activation_grid_png,
    cam_figure_png,
    image_grid_png,
    overlay,
    overlay_png,
)

__all__ = [
    "METHODS",
    "CamResult",
    "PatternOptions",
    "activation_grid_png",
    "activations",
    "auto_layers",
    "cam_figure_png",
    "cam_note",
    "filter_patterns",
    "gradcam",
    "gradcam_gallery",
    "image_grid_png",
    "mean_filter_activation",
    "overlay",
    "overlay_png",
    "peak_in_box",
    "raw_kernels",
]
