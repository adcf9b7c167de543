"""Optional dependencies, imported when a feature needs them, through one door.

cnnkit imports everything at the top of its modules except the packages that only some
features need and a base install does not have (``pip install cnnkit`` has neither
onnxruntime nor bed-reader). Those are imported where they are used, inside
:func:`needs`, which turns a missing package into one line saying what to install (the import
statement stays visible to tools such as deptry)::

    with needs("ONNX export"):
        import onnx
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

from cnnkit.errors import CnnkitError

EXTRAS = {
    "onnx": "serve",
    "onnxruntime": "serve",
    "fastapi": "serve",
    "uvicorn": "serve",
    "h5py": "keras",
    "timm": "timm",
    "bed_reader": "genomics",
    "msprime": "genomics",
    "tstrait": "genomics",
}
"""Optional module -> the cnnkit extra that installs it."""

_PACKAGES = {"bed_reader": "bed-reader"}


class MissingDependency(CnnkitError):
    """An optional package is not installed; the message says which extra installs it."""


@contextlib.contextmanager
def needs(what: str) -> Iterator[None]:
    """Run the optional imports in the body; a missing package is one clear error.

    Args:
        what: what needs the package, for the message (``"ONNX export"``).

    Raises:
        MissingDependency: a package is not installed (names it and the extra with it).
    """
    try:
        yield
    except ImportError as e:
        top = (e.name or "").split(".")[0]
        if not top:
            raise
        package = _PACKAGES.get(top, top)
        extra = EXTRAS.get(top)
        how = f"pip install {package}" + (f" (or pip install 'cnnkit[{extra}]')" if extra else "")
        raise MissingDependency(f"{what} needs the optional package {package}: {how}") from None


def available(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    return importlib.util.find_spec(module) is not None
