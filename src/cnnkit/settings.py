"""Settings declared once: a dataclass field carries its help, choices, label and CLI form.

cnnkit's settings objects (:class:`cnnkit.train.TrainConfig`, :class:`cnnkit.data.Augment`)
are frozen dataclasses whose fields are declared with :func:`setting`. The command line
(``cnnkit train``'s options), the report's settings table and its reproduce command are all
generated from these fields, so adding a setting means adding one field.

>>> @dataclass(frozen=True, kw_only=True)
... class Example:
...     epochs: int = setting(10, "Passes over the training set.", label="Epochs")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

MISSING = dataclasses.MISSING


def setting(
    default: Any = MISSING,
    help: str = "",  # noqa: A002 - the word every CLI library uses
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    choices: Sequence[str] | None = None,
    label: str | None = None,
    cli: bool = True,
    argument: bool = False,
    identity: bool = False,
    parser: Callable[[str], Any] | None = None,
    cli_type: Any = None,
    metavar: str | None = None,
    expand: bool = False,
) -> Any:
    """A dataclass field with what the CLI and the report need to know about it.

    Args:
        default, default_factory: as :func:`dataclasses.field`.
        help: one line for ``--help`` and the docs.
        choices: the allowed values (checked by the dataclass; shown in ``--help``).
        label: the name in the report's settings table (default: from the field name).
        cli: whether the command line has an option for it.
        argument: a positional argument instead of an option.
        identity: part of what a run *is*; resuming with it changed is refused.
        parser: turns the command-line text into the value (when the type alone cannot).
        cli_type: the type the command line parses (when the field's own type is a union).
        metavar: how ``--help`` shows the value.
        expand: the field is itself a settings dataclass whose fields become options.
    """
    meta = {
        "help": help,
        "choices": tuple(choices) if choices else None,
        "label": label,
        "cli": cli,
        "argument": argument,
        "identity": identity,
        "parser": parser,
        "cli_type": cli_type,
        "metavar": metavar,
        "expand": expand,
    }
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def meta(f: dataclasses.Field) -> dict[str, Any]:
    """The :func:`setting` metadata of a field (defaults for a plain field)."""
    out = dict(_PLAIN)
    out.update(f.metadata)
    return out


_PLAIN = {
    "help": "",
    "choices": None,
    "label": None,
    "cli": True,
    "argument": False,
    "identity": False,
    "parser": None,
    "cli_type": None,
    "metavar": None,
    "expand": False,
}


def flag(name: str) -> str:
    """The command-line flag of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def label(f: dataclasses.Field) -> str:
    """The report's name of a field: its ``label``, else the field name in words."""
    return meta(f)["label"] or f.name.replace("_", " ").capitalize()


def default_of(f: dataclasses.Field) -> Any:
    """The default value of a field (calling its factory)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING
