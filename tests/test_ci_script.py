"""CI runs what the README promises a newcomer: its two commands verbatim, each from a fresh
``.venv`` (``make demo``, then ``make test``), then the README tour."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(path: Path) -> list[str]:
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def test_ci_runs_the_readmes_two_commands_each_from_a_fresh_venv_then_the_tour():
    commands = _commands(ROOT / ".ci" / "run")
    tail = commands[commands.index("make demo") - 1 :]
    assert tail == ["rm -rf .venv", "make demo", "rm -rf .venv", "make test", "make tour"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme  # the commands CI runs, verbatim


def test_the_commands_exist_and_lint_checks_dependencies_and_stage_arrows():
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z-]+):", makefile, flags=re.M)
    assert {"demo", "test", "tour", "lint"} <= set(targets)
    lint = re.search(r"^lint:.*?\n((?:\t.*\n)+)", makefile, flags=re.M)
    assert lint and "deptry src" in lint.group(1) and "lint-imports" in lint.group(1)
