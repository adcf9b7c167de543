"""Checks that a heatmap points at the right place (the "pointing game")."""

from __future__ import annotations

import numpy as np
import torch


def peak_in_box(maps: torch.Tensor | np.ndarray, boxes: torch.Tensor | np.ndarray) -> np.ndarray:
    """Whether each map's peak pixel lies inside its box.

    Pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``; it is inside when its centre is
    (``x0 <= x + 0.5 < x1``, same for y), for boxes ``x0, y0, x1, y1`` with exclusive ends.

    Args:
        maps: heatmaps at the resolution the boxes are given in (e.g. ``CamResult.upsampled``).
        boxes: ``x0, y0, x1, y1`` in pixels.

    Returns:
        Boolean array, one per map.

    Shape:
        maps: (B, H, W). boxes: (B, 4). Returns: (B,).

    Raises:
        ValueError: shapes do not agree.
    """
    m = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps)
    b = np.asarray(boxes, dtype=np.float64)
    if m.dim() != 3 or b.shape != (m.shape[0], 4):
        raise ValueError(
            f"maps must be (B, H, W) and boxes (B, 4). Received: maps {tuple(m.shape)}, "
            f"boxes {b.shape}"
        )
    w = m.shape[2]
    flat = m.reshape(m.shape[0], -1).argmax(dim=1).cpu().numpy()  # (B, H*W) -> (B,)
    cx, cy = flat % w + 0.5, flat // w + 0.5
    return (b[:, 0] <= cx) & (cx < b[:, 2]) & (b[:, 1] <= cy) & (cy < b[:, 3])
