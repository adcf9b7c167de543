"""The learning rate, found rather than guessed: a short range test before training.

The range test (Smith 2015; fastai's ``lr_find``) trains a copy of the model for a few
dozen steps while the learning rate grows exponentially from ``start`` to ``end``, and
records the (smoothed) loss after each step. The loss falls, flattens and then shoots up;
the suggested peak rate is a tenth of the edge, the highest rate at which the loss is still
near its minimum (Smith's rule for one-cycle training). The model, its optimiser and the
random streams of the real run are left as they were.

>>> finding = find_lr(model, train, config)           # doctest: +SKIP
>>> finding.suggestion, finding.seconds                # doctest: +SKIP
(0.0028, 3.9)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from cnnkit.runs.inference import Precision
from cnnkit.train.config import USUAL_LR
from cnnkit.train.loop import Phase, range_test

MAX_STEPS = 100
"""Most optimiser steps a range test takes (it stops earlier once the loss diverges)."""
SPAN = 10.0
"""A suggestion is kept within this factor of the optimiser's usual rate."""
MIN_DROP = 0.1
"""The smoothed loss must fall this fraction below its start for the test to count."""
EDGE_TOLERANCE = 0.05
"""Past its minimum, the smoothed loss may rise this fraction before the edge is reached."""


@dataclass
class LRFinding:
    """What a range test found.

    Attributes:
        lrs, losses: the learning rate of each step and the smoothed loss after it.
        suggestion: the suggested (peak) learning rate.
        rule: how the suggestion was chosen (``edge / 10``, or the usual rate and why).
        steps, seconds: the test's cost.
    """

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    suggestion: float = math.nan
    rule: str = ""
    steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"learning rate {self.suggestion:.2g} (range test, {self.rule}: "
            f"{self.steps} steps, {self.seconds:.1f} s)"
        )


def find_lr(
    model: torch.nn.Module,
    train: Any,
    config: Any,
    *,
    phase: Phase | None = None,
    augment: Any = None,
    device: str | torch.device | None = None,
    precision: Precision | None = None,
    start: float | None = None,
    end: float | None = None,
    steps: int = MAX_STEPS,
    usual: float | None = None,
) -> LRFinding:
    """Run a learning-rate range test on a copy of ``model``.

    Args:
        model: the model as training would start it (not changed).
        train: the training set (as :func:`cnnkit.train.fit` takes it).
        config: the run's settings (optimiser, batch size, seed...).
        phase: the phase whose rate is wanted (its set-up freezes what it freezes; its
            ``forward`` says images or cached features); default: the whole model.
        augment, device, precision: as the run will use them.
        start, end: the range of rates, swept exponentially (default: the optimiser's usual
            rate / 1000 to x 1000).
        steps: optimiser steps (random batches, so a small set is seen several times).
        usual: the rate the phase would use without a test (default: the optimiser's usual;
            a transfer head's is 10x that).

    Returns:
        An :class:`LRFinding`; its suggestion stays within :data:`SPAN` of the usual rate.
    """
    usual = usual or usual_lr(config)
    t0 = time.perf_counter()
    lrs, raw = range_test(model, train, config, phase=phase, augment=augment, device=device,
                          precision=precision, start=start or usual / 1000,
                          end=end or usual * 1000, steps=steps)  # fmt: skip
    losses = _smooth(raw)
    suggestion, rule = suggest(lrs, losses, usual)
    return LRFinding(lrs, losses, suggestion, rule, len(lrs), time.perf_counter() - t0)


def usual_lr(config: Any) -> float:
    """The optimiser's usual rate (Adam 1e-3, SGD 1e-2) for ``config``."""
    return USUAL_LR.get(getattr(config, "optimizer", "adam"), 1e-3)


def _smooth(losses: list[float], beta: float = 0.9) -> list[float]:
    """Exponentially weighted moving average with bias correction (as fastai's)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def suggest(lrs: list[float], losses: list[float], usual: float = 1e-3) -> tuple[float, str]:
    """A tenth of the rate at the edge, kept within :data:`SPAN` of the optimiser's ``usual``
    rate; the usual rate itself when the loss never fell clearly (by :data:`MIN_DROP` of its
    start) before it diverged, which is what a test of a hundred steps sees on a task that
    needs more steps than that to leave chance.

    The edge is the highest rate past the loss's minimum at which the (smoothed) loss is still
    within :data:`EDGE_TOLERANCE` of that minimum: beyond it the steps are too large to keep
    learning. A one-cycle schedule peaking at a tenth of it (Smith's rule) trains fast and
    stays stable. Measured against a grid of 4 rates x 3 lengths (bench/defaults.py), the edge
    rule's rates sit near each task's best (5e-3 to 1e-2 on digits, 48x48 shapes, textures);
    fastai's "valley" rule, which cnnkit used first, chose 3-10x lower rates, 20 points below
    the grid's best on the shapes.
    """
    n = len(losses)
    if n < 5:
        return usual, "too few steps: the usual rate"
    if min(losses) > (1 - MIN_DROP) * losses[0]:
        return usual, "no clear descent: the usual rate"
    best = min(range(n), key=losses.__getitem__)
    edge = best
    while edge + 1 < n and losses[edge + 1] <= losses[best] * (1 + EDGE_TOLERANCE):
        edge += 1
    lr, rule = lrs[edge] / 10, "edge / 10"
    low, high = usual / SPAN, usual * SPAN
    if not low <= lr <= high:
        return min(max(lr, low), high), f"{rule}, kept within {SPAN:g}x of the usual rate"
    return lr, rule


__all__ = ["LRFinding", "find_lr", "suggest", "usual_lr"]
