"""Classification metrics with honest uncertainty: accuracy with a Wilson 95% interval,
per-class precision/recall/F1, macro/weighted F1, log loss and the confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n
    successes, which small validation sets hit often.

    Example:
        >>> lo, hi = wilson_interval(97, 100)
        >>> round(lo, 4), round(hi, 4)
        (0.9155, 0.9897)
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n]. Received: successes={successes}, n={n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Everything ``cnnkit evaluate`` reports, as a JSON-ready dict.

    Args:
        y_true: true class indices, shape ``(N,)``.
        probs: predicted class probabilities, shape ``(N, K)``.
        class_names: the K class names, in index order.

    Returns:
        ``accuracy``, ``accuracy_ci``, ``n``, ``class_names``, ``per_class``, ``macro_f1``,
        ``weighted_f1``, ``log_loss``, ``confusion_matrix`` (rows = true class).
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    if p.ndim != 2 or p.shape != (len(y), k):
        raise ValueError(f"probs must have shape (N, K)=({len(y)}, {k}). Received: {p.shape}")
    pred = p.argmax(1)
    labels = list(range(k))
    correct = int((pred == y).sum())
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    per_class = {
        str(name): {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(sup[i]),
        }
        for i, name in enumerate(class_names)
    }
    total = max(int(sup.sum()), 1)
    clipped = np.clip(p, 1e-15, 1.0)
    clipped = clipped / clipped.sum(1, keepdims=True)
    return {
        "accuracy": correct / max(len(y), 1),
        "accuracy_ci": list(wilson_interval(correct, len(y))),
        "n": int(len(y)),
        "class_names": [str(c) for c in class_names],
        "per_class": per_class,
        "macro_f1": float(np.mean(f1)) if k else 0.0,
        "weighted_f1": float((f1 * sup).sum() / total),
        "log_loss": float(log_loss(y, clipped, labels=labels)) if len(y) else float("nan"),
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
    }


def _left_out(m: dict[str, Any]) -> list[str]:
    n = m.get("excluded_train") or 0
    if not n:
        return []
    return [f"left out {n} images the run trained on (--include-train to count them)"]


def format_metrics(m: dict[str, Any]) -> str:
    """Human-readable text for :func:`classification_metrics` output."""
    lo, hi = m["accuracy_ci"]
    names = m["class_names"]
    width = max([len(n) for n in names] + [5])
    lines = [
        f"accuracy {m['accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f}, n={m['n']})",
        f"macro F1 {m['macro_f1']:.4f}  weighted F1 {m['weighted_f1']:.4f}  "
        f"log loss {m['log_loss']:.4f}",
        *_left_out(m),
        "",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for name in names:
        c = m["per_class"][name]
        lines.append(
            f"{name:<{width}}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:5.3f}  "
            f"{c['support']:7d}"
        )
    lines += ["", "confusion matrix (rows = true class):"]
    cw = max(len(str(v)) for row in m["confusion_matrix"] for v in row) + 1 if names else 2
    for name, row in zip(names, m["confusion_matrix"], strict=True):
        lines.append(f"{name:<{width}} " + "".join(f"{v:>{cw}}" for v in row))
    return "\n".join(lines)
