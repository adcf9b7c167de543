"""Data audit (placeholder until the full audit lands)."""

from __future__ import annotations


def audit(directory, **kwargs):  # pragma: no cover - replaced by the full audit
    """Audit a folder of images."""
    raise NotImplementedError("audit is not implemented yet")
