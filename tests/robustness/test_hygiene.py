"""Source hygiene: no unpickling of untrusted files, and dependency floors with security fixes."""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from rb_helpers import record

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "cnnkit"
UNSAFE = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
          "cPickle.load", "dill.load", "dill.loads", "joblib.load", "cloudpickle.load",
          "cloudpickle.loads", "pandas.read_pickle", "shelve.open"}  # fmt: skip
FLOORS = {"torch": "2.10", "pillow": "12.3", "python-multipart": "0.0.27"}


class _Finder(ast.NodeVisitor):
    """Calls of unsafe loaders, through any import alias; ``torch.load`` needs weights_only=True."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.found: list[tuple[int, str]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.names[a.asname or a.name.split(".")[0]] = (
                a.name if a.asname else a.name.split(".")[0]
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.names[a.asname or a.name] = f"{node.module}.{a.name}"

    def _qualified(self, func: ast.expr) -> str:
        parts = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return ""
        parts.append(self.names.get(func.id, func.id))
        return ".".join(reversed(parts))

    def visit_Call(self, node: ast.Call) -> None:
        name = self._qualified(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        if name in UNSAFE:
            self.found.append((node.lineno, name))
        elif name == "torch.load":
            safe = kw.get("weights_only")
            if not (isinstance(safe, ast.Constant) and safe.value is True):
                self.found.append((node.lineno, "torch.load without weights_only=True"))
        elif name in ("numpy.load", "np.load"):
            pickle = kw.get("allow_pickle")
            if isinstance(pickle, ast.Constant) and pickle.value:
                self.found.append((node.lineno, "numpy.load(allow_pickle=True)"))
        self.generic_visit(node)


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    finder = _Finder()
    finder.visit(ast.parse(source))
    return finder.found


@pytest.mark.parametrize(
    "snippet",
    ["import pickle\npickle.load(f)", "import pickle as p\np.loads(b)",
     "from pickle import load\nload(f)",
     "import joblib\njoblib.load('m')", "import torch\ntorch.load('x')",
     "import torch\ntorch.load('x', weights_only=False)", "from torch import load as tl\ntl('x')",
     "import numpy as np\nnp.load('a', allow_pickle=True)", "import _pickle\n_pickle.loads(b)"],
)  # fmt: skip
def test_finder_catches(snippet):
    assert unsafe_calls(snippet)


def test_finder_allows_safe_calls():
    src = "import torch, json\ntorch.load(p, map_location='cpu', weights_only=True)\njson.load(f)"
    assert unsafe_calls(src) == []


def test_package_never_unpickles_untrusted_files():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    found = [
        f"{p.relative_to(ROOT)}:{line}: {what}"
        for p in files
        for line, what in unsafe_calls(p.read_text(encoding="utf-8"))
    ]
    assert found == []
    record("hygiene", source_files_scanned=len(files), unsafe_loads=len(found))


NETWORK = ("urllib.request", "http.client", "requests", "httpx", "aiohttp", "ftplib",
           "huggingface_hub", "torchvision.datasets.utils")  # fmt: skip
DOWNLOADS = ("urlopen", "urlretrieve", "load_state_dict_from_url", "download_url_to_file",
             "download_url", "download_and_extract_archive", "hf_hub_download",
             "snapshot_download")  # fmt: skip
FETCHES = SRC / "models" / "fetch.py"  # `cnnkit weights fetch`: downloads when asked to


def network_uses(source: str) -> list[tuple[int, str]]:
    """Imports of a downloading module (``NETWORK``) and uses of a downloading function
    (``DOWNLOADS``, under any module), with their lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        modules: list[str] = []
        names: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.Name):
            names = [node.id]
        found += [(node.lineno, m) for m in modules
                  if any(m == n or m.startswith(n + ".") for n in NETWORK)]  # fmt: skip
        found += [(node.lineno, n) for n in names if n in DOWNLOADS]
    return found


@pytest.mark.parametrize(
    "snippet",
    ["import urllib.request", "from urllib.request import urlopen", "import requests",
     "from torch.hub import load_state_dict_from_url", "torch.hub.download_url_to_file(u, p)",
     "from huggingface_hub import hf_hub_download", "import http.client as h"],
)  # fmt: skip
def test_network_finder_catches(snippet):
    assert network_uses(snippet)


def test_only_weights_fetch_can_download():
    """cnnkit never downloads at run time: only ``cnnkit weights fetch`` (asked by a person)
    may import or call a downloading API; urllib.parse and a server's sockets are no download."""
    assert network_uses("import urllib.parse\nurllib.parse.quote(x)") == []
    found = [
        f"{p.relative_to(ROOT)}:{line}: {what}"
        for p in sorted(SRC.rglob("*.py"))
        if p != FETCHES
        for line, what in network_uses(p.read_text(encoding="utf-8"))
    ]
    assert found == []
    assert network_uses(FETCHES.read_text(encoding="utf-8"))  # the finder sees the one that does


def _requirements() -> list[Requirement]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_dependency_floor_has_the_security_fix(name):
    floor = Version(FLOORS[name])
    reqs = [r for r in _requirements() if r.name.lower() == name]
    assert reqs, f"{name} is not a dependency in pyproject.toml"
    for r in reqs:
        lows = [Version(s.version) for s in r.specifier if s.operator in (">=", "==", "~=", ">")]
        assert lows and max(lows) >= floor, f"{r} allows versions below {floor}"
        rel = floor.release
        below = ".".join(map(str, (*rel[:-1], rel[-1] - 1)))  # the release just under the fix
        assert not r.specifier.contains(below, prereleases=True), f"{r} allows {below}"
    installed = Version(metadata.version(name))
    assert installed >= floor, f"installed {name} {installed} < {floor}"
