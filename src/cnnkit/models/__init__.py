"""cnnkit.models: building blocks, the model zoo (one registry of cards) and summaries.

>>> from cnnkit.models import create_model, list_models, get_card
>>> model = create_model("resnet18", num_classes=5, input_size=(3, 32, 32))
"""

from __future__ import annotations

from cnnkit.models.base import CnnkitModel
from cnnkit.models.registry import (
    ModelCard,
    check_input_size,
    create_model,
    get_card,
    list_models,
    register_model,
)
from cnnkit.models.summaries import LayerSummary, Summary, summary

__all__ = [
    "CnnkitModel",
    "ModelCard",
    "check_input_size",
    "create_model",
    "get_card",
    "list_models",
    "register_model",
    "summary",
    "Summary",
    "LayerSummary",
]
