"""The model zoo: every module in this package registers its builders on import.

Modules are discovered with :mod:`pkgutil`, so adding ``zoo/<family>.py`` is enough to
add models (no list to edit).
"""

from __future__ import annotations

import importlib
import pkgutil


def _import_all() -> list[str]:
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
            names.append(info.name)
    return names


MODULES = _import_all()
