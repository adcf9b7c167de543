"""Errors cnnkit raises for bad input.

Every user-facing error is a ``ValueError``/``TypeError``/``FileNotFoundError`` (or a
subclass of :class:`CnnkitError`, which is a ``ValueError``) whose message names the
argument or file, what was expected and what was received. The CLI prints these as one
line and exits non-zero; ``--debug`` shows the traceback.

A message that tells the user which argument to change names it as the caller spells it:
``overwrite=True`` for Python, ``--overwrite`` on the command line. Such an error has a
``cli_message()`` method, which the CLI prints instead of ``str(error)``; :func:`user_error`
makes one from a single template.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

E = TypeVar("E", bound=BaseException)


class CnnkitError(ValueError):
    """Base class for cnnkit's own user-facing errors."""


class ImageDecodeError(CnnkitError):
    """A file could not be decoded as an image.

    Attributes:
        path: the offending file.
        problem: one of ``empty``, ``truncated``, ``not-an-image``, ``too-large``,
            ``unreadable``.
    """

    def __init__(self, path: str, problem: str, detail: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.detail = detail
        msg = f"{self.path}: {problem}" + (f" ({detail})" if detail else "")
        super().__init__(msg)


class RunFolderError(CnnkitError):
    """A run folder is missing, incomplete or does not match what was asked."""


class Arg(NamedTuple):
    """An argument named in an error message, spelled for Python and for the command line.

    ``Arg("overwrite=True", "--overwrite")``: the library's message says
    ``pass overwrite=True``; ``cnnkit train`` prints ``pass --overwrite``.
    """

    python: str
    cli: str


OVERWRITE = Arg("overwrite=True", "--overwrite")
"""Replacing an existing run folder: ``train_run(..., overwrite=True)`` / ``--overwrite``."""


def user_error(kind: type[E], template: str, **names: Any) -> E:
    """``kind(message)`` naming arguments as Python spells them, with a ``cli_message()``
    that names them as the command line does (the CLI prints that one).

    One template, two spellings: each :class:`Arg` among ``names`` fills its ``{name}``
    field with ``.python`` in ``str(error)`` and with ``.cli`` in ``error.cli_message()``;
    any other value fills both the same way. (An error class of its own may define
    ``cli_message()`` instead, as :class:`cnnkit.runs.layout.RunExistsError` does.)

    >>> e = user_error(FileExistsError, "{out} exists; pass {ow}", out="runs/a", ow=OVERWRITE)
    >>> str(e), e.cli_message()
    ('runs/a exists; pass overwrite=True', 'runs/a exists; pass --overwrite')
    """

    def spelled(cli: bool) -> str:
        values = {
            k: (v.cli if cli else v.python) if isinstance(v, Arg) else v for k, v in names.items()
        }
        return template.format(**values)

    error = kind(spelled(cli=False))
    cli_text = spelled(cli=True)
    setattr(error, "cli_message", lambda: cli_text)  # noqa: B010 (an attribute of this instance)
    return error


class ModelOutputError(CnnkitError):
    """The model's output is not finite (NaN or infinity): damaged weights, not bad input."""
