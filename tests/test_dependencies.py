"""Declared dependencies match what the code imports.

Two checks: deptry (every third-party import is declared, every declared package is used),
and a subprocess that emulates a base install (``pip install cnnkit``, no extras) by refusing
every third-party module outside the closure of cnnkit's base requirements, then imports each
base module and runs each command's ``--help``. A runtime import that only an extra (or a
dev tool) pulls in fails here instead of on a user's fresh venv.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Modules that belong to an optional extra: importing them needs that extra installed.
OPTIONAL_MODULES = {
    "cnnkit.serve.app": "serve",
    "cnnkit.serve.middleware": "serve",
    "cnnkit.serve.multipart": "serve",
    "cnnkit.serve.onnx_backend": "serve",
    "cnnkit.serve.protocol": "serve",
}


def test_deptry_finds_no_dependency_issues(require):
    exe = shutil.which("deptry", path=str(Path(sys.executable).parent))
    require(exe is not None, "deptry (dev extra)")
    res = subprocess.run([exe, "src"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


_BASE_INSTALL = textwrap.dedent(
    r"""
    import importlib, importlib.abc, importlib.machinery, importlib.metadata as md
    import json, pkgutil, re, sys

    def closure(dist):
        seen, todo = set(), [dist]
        while todo:
            name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
            if name in seen:
                continue
            seen.add(name)
            try:
                reqs = md.distribution(name).requires or []
            except md.PackageNotFoundError:
                continue
            for r in reqs:
                if "extra ==" in r:
                    continue
                todo.append(re.split(r"[<>=!~;\[ (]", r, maxsplit=1)[0])
        return seen

    allowed_dists = closure("cnnkit")
    allowed = {"cnnkit"}
    for mod, dists in md.packages_distributions().items():
        if any(re.sub(r"[-_.]+", "-", d).lower() in allowed_dists for d in dists):
            allowed.add(mod)
    stdlib = set(sys.stdlib_module_names)
    third_party = set(md.packages_distributions())

    class Hide(importlib.abc.MetaPathFinder):
        # the path finder, blind to packages a base install would not have

        def __init__(self, inner):
            self.inner = inner

        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in third_party and top not in allowed and top not in stdlib:
                return None  # as if not installed: importlib.util.find_spec sees None too
            return self.inner.find_spec(name, path, target)

    sys.meta_path[:] = [Hide(f) if f is importlib.machinery.PathFinder else f
                        for f in sys.meta_path]
    import cnnkit
    failures = {}
    for info in pkgutil.walk_packages(cnnkit.__path__, "cnnkit."):
        if info.name.endswith("__main__"):  # runs the CLI when imported
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as e:
            failures[info.name] = e.name
    from cnnkit.cli.main import app, main
    import typer.main
    helps = {}
    for cmd in [None, *typer.main.get_command(app).commands]:
        argv = [cmd, "--help"] if cmd else ["--help"]
        try:
            helps[cmd or ""] = main(argv)
        except SystemExit as e:
            helps[cmd or ""] = e.code
    print(json.dumps({"failures": failures, "helps": helps}))
    """
)


def test_base_install_imports_only_base_dependencies():
    res = subprocess.run(
        [sys.executable, "-c", _BASE_INSTALL], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    unexpected = {m: pkg for m, pkg in out["failures"].items() if m not in OPTIONAL_MODULES}
    assert unexpected == {}, f"base modules import packages a base install lacks: {unexpected}"
    assert set(out["helps"].values()) == {0}, out["helps"]


@pytest.mark.parametrize("module,extra", sorted(OPTIONAL_MODULES.items()))
def test_optional_modules_name_their_extra(module, extra):
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extra in meta["optional-dependencies"]
