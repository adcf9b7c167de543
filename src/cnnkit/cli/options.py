"""Typer options generated from settings dataclasses (fields declared with
:func:`cnnkit.settings.setting`): one field, one option, with its help, choices and parser.

:func:`with_settings` adds a dataclass's options to a command; the command receives the
values the user typed (and only those) as one dict, so a config file can fill the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer

from cnnkit.settings import default_of, flag, meta


def _help(f: dataclasses.Field) -> str:
    m = meta(f)
    text = m["help"]
    if m["choices"]:
        text = (text + " " if text else "") + "One of: " + " | ".join(m["choices"]) + "."
    return text


def _parameter(f: dataclasses.Field, hint: Any) -> inspect.Parameter:
    m = meta(f)
    default = default_of(f)
    if m["argument"]:
        info = typer.Argument(None, help=_help(f), show_default=False)
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                                 annotation=str | None)  # fmt: skip
    annotation = m["cli_type"] or hint
    if default is None and type(None) not in typing.get_args(annotation):
        annotation = annotation | None
    info = typer.Option(
        default if not isinstance(default, (tuple, list)) else None,
        flag(f.name),
        help=_help(f),
        parser=m["parser"],
        metavar=m["metavar"],
        show_default=not (default is None or default is False),
    )
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=annotation)  # fmt: skip


def settings_parameters(cls: type) -> list[inspect.Parameter]:
    """One Typer parameter per CLI field of the dataclass ``cls`` (expanded fields inline)."""
    hints = typing.get_type_hints(cls)
    params: list[inspect.Parameter] = []
    for f in dataclasses.fields(cls):
        m = meta(f)
        if not m["cli"]:
            continue
        if m["expand"]:
            params += settings_parameters(hints[f.name])
        else:
            params.append(_parameter(f, hints[f.name]))
    return params


def settings_names(cls: type) -> dict[str, str | None]:
    """``{option name: name of the expanded field it belongs to, or None}`` of ``cls``."""
    hints = typing.get_type_hints(cls)
    names: dict[str, str | None] = {}
    for f in dataclasses.fields(cls):
        if not meta(f)["cli"]:
            continue
        if meta(f)["expand"]:
            names.update({n: f.name for n in settings_names(hints[f.name])})
        else:
            names[f.name] = None
    return names


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed the option ``name`` (not its default)."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def with_settings(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: add ``cls``'s options to a Typer command.

    The command must take ``ctx: typer.Context`` and a ``settings`` parameter; it receives
    ``settings`` as ``{field: value}`` of the options the user typed, expanded fields nested
    (``{"augment": {"rotation_range": 10.0}}``).
    """
    extra = settings_parameters(cls)
    nested = settings_names(cls)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for name, p in sig.parameters.items()
            if name != "settings"
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = kwargs["ctx"]
            settings: dict[str, Any] = {}
            for name, parent in nested.items():
                value = kwargs.pop(name, None)
                if not given(ctx, name):
                    continue
                value = list(value) if isinstance(value, tuple) else value
                target = settings.setdefault(parent, {}) if parent else settings
                target[name] = value
            return fn(*args, settings=settings, **kwargs)

        params = own + extra
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # so inspect and Typer see the new signature
        return wrapper

    return decorate
