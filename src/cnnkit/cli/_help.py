"""Help text every command shares, applied to the whole command tree before it runs.

Typer describes each option by its Python type, which misleads on the command line: a flag
shows ``<bool>`` (``--json <bool>`` suggests ``--json true``, which fails), and a list of
choices written ``a|b|c`` is one word that the help table cuts at 80 columns. Rather than
fix each option, :class:`CnnkitGroup` (the root group's class) rewrites every option of every
command, including the help option and options a command generates from a dataclass:

- a flag shows no type (``--json``, not ``--json <bool>``); a pair shows ``<int> <int>``;
- choices (a ``Literal``/``Enum`` type, or ``a|b|c`` in the help) are written with spaces,
  ``a | b | c``, so they wrap instead of being cut;
- a required option is listed in the usage line (``Usage: cnnkit explain [OPTIONS] --out
  <path> ...``) as well as starred in the table.
"""

from __future__ import annotations

import re
from typing import Any, get_args

import typer
from typer.core import TyperGroup

# "none|step|cosine" (a word made of two or more |-separated names), not inside another word.
_CHOICES = re.compile(r"(?<![\w|/])[\w.+-]+(?:\|[\w.+-]+)+(?![\w|/])")


def spaced_choices(text: str) -> str:
    """``"sgd|adam|adamw"`` -> ``"sgd | adam | adamw"`` wherever choices are listed in ``text``."""
    return _CHOICES.sub(lambda m: " | ".join(m.group(0).split("|")), text)


def polish_option(param: Any) -> None:
    """Make one option's help read as the command line works (idempotent)."""
    if getattr(param, "param_type_name", "") != "option":
        return
    if getattr(param, "is_flag", False) and not getattr(param, "count", False):
        param.metavar = ""  # a flag takes no value: show none
    desc = getattr(param, "type_descriptor", None)
    if desc is not None and desc.is_tuple and param.metavar is None:
        param.metavar = " ".join(f"<{t.__name__}>" for t in get_args(desc.annotation))
    if desc is not None and desc.is_choice and desc.choices and param.metavar is None:
        choices = [str(getattr(c, "value", c)) for c in desc.choices]
        param.metavar = "<choice>"
        listed = "One of: " + " | ".join(choices) + "."
        if listed not in (param.help or ""):
            param.help = f"{param.help} {listed}" if param.help else listed
    if param.help:
        param.help = spaced_choices(param.help)


def _required_usage(command: Any, ctx: typer.Context) -> str:
    """``--out <path>`` for each required option: the usage line names what must be given."""
    pieces = []
    for param in command.get_params(ctx):
        if getattr(param, "param_type_name", "") == "option" and param.required and param.opts:
            kind = param.display_type_rich(ctx) or ""
            pieces.append(f"{param.opts[-1]} {kind}".strip())
    return " ".join(pieces)


def polish_command(command: Any, help_names: list[str]) -> None:
    """Polish ``command``'s options and usage line, then those of its sub-commands."""
    ctx = typer.Context(command, info_name=command.name, help_option_names=help_names)
    for param in command.get_params(ctx):  # includes the help option, made for this ctx
        polish_option(param)
    required = _required_usage(command, ctx)
    if required and command.options_metavar and required not in command.options_metavar:
        command.options_metavar = f"{command.options_metavar} {required}"
    for sub in getattr(command, "commands", {}).values():
        polish_command(sub, help_names)


class CnnkitGroup(TyperGroup):
    """The ``cnnkit`` group: polishes the help of the whole command tree before running."""

    _polished = False

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not self._polished:
            names = (self.context_settings or {}).get("help_option_names") or ["--help"]
            polish_command(self, list(names))
            self._polished = True
        return super().main(*args, **kwargs)
