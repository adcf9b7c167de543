"""Progress of long work on stderr, readable on a terminal and in a log.

On a terminal, a tqdm bar. Where stderr is not a terminal (Rscript, knitr, nohup, CI logs) a
bar's carriage returns make one unreadable line, so :class:`Progress` writes a plain line
instead, at the start, every ``every`` seconds and at the end::

    filters of features.conv2: 256/2048 steps (12%), 41.3 steps/s, about 43 s left

Any stage may use it (it imports nothing of cnnkit); the caller decides what is counted.
Training's own lines (:class:`cnnkit.train.callbacks.ProgressBar`) say time left the same way
(:func:`duration`).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm


def duration(seconds: float) -> str:
    """``42 s``, ``3 min``, ``1 h 05 min``: what a progress line says is left."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Progress:
    """Count ``total`` units of work: a tqdm bar on a terminal, plain timed lines elsewhere.

    Args:
        total: units of work in all.
        desc: what is being done (starts every line).
        unit: the unit's name, plural (``steps``, ``images``).
        every: seconds between plain lines when stderr is not a terminal.
        stream: where to write (default ``sys.stderr``).
        enabled: False = say nothing.

    Example:
        >>> with Progress(100, "filters", "steps") as p:  # doctest: +SKIP
        ...     for _ in range(100):
        ...         p.update()
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "steps",
        *,
        every: float = 30.0,
        stream: TextIO | None = None,
        enabled: bool = True,
    ) -> None:
        self.total, self.desc, self.unit, self.every = max(0, int(total)), desc, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._start = time.monotonic()
        self._last = self._start
        self._bar: Any = None
        self._plain = enabled and not _is_terminal(self.stream)
        if enabled and not self._plain:
            self._bar = tqdm(total=self.total, desc=desc, unit=unit.rstrip("s"), file=self.stream)
        elif self._plain:
            self._line()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._plain and time.monotonic() - self._last >= self.every:
            self._line()

    def close(self) -> None:
        """The closing line (plain) or the finished bar (terminal)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._plain:
            self._line()
            self._plain = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The plain line for where the work stands now."""
        elapsed = time.monotonic() - self._start
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        text = f"{self.desc}: {self.done}/{self.total} {self.unit}{share}"
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            text += f", {rate:.3g} {self.unit}/s"
            left = self.total - self.done
            if left > 0:
                text += f", about {duration(left / rate)} left"
            else:
                text += f", {duration(elapsed)}"
        return text

    def _line(self) -> None:
        self._last = time.monotonic()
        self.stream.write(self.line() + "\n")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
