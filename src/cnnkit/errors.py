"""Errors cnnkit raises for bad input.

Every user-facing error is a ``ValueError``/``TypeError``/``FileNotFoundError`` (or a
subclass of :class:`CnnkitError`, which is a ``ValueError``) whose message names the
argument or file, what was expected and what was received. The CLI prints these as one
line and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class CnnkitError(ValueError):
    """Base class for cnnkit's own user-facing errors."""


class ImageDecodeError(CnnkitError):
    """A file could not be decoded as an image.

    Attributes:
        path: the offending file.
        problem: one of ``empty``, ``truncated``, ``not-an-image``, ``too-large``.
    """

    def __init__(self, path: str, problem: str, detail: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.detail = detail
        msg = f"{self.path}: {problem}" + (f" ({detail})" if detail else "")
        super().__init__(msg)


class RunFolderError(CnnkitError):
    """A run folder is missing, incomplete or does not match what was asked."""
