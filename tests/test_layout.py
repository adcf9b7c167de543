"""The test tree mirrors the package, and test module names are unique (pytest collects
them without __init__.py files, so two test_x.py in different folders collide)."""

import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []


def test_every_package_stage_has_a_test_folder():
    stages = [
        p.name
        for p in (TESTS.parent / "src" / "cnnkit").iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    ]
    missing = [s for s in stages if not (TESTS / s).is_dir()]
    assert missing == []


def test_serving_does_not_load_the_trainer():
    import subprocess
    import sys

    code = (
        "import sys, cnnkit.serve.predictor, cnnkit.serve.export, cnnkit.serve.app;"
        "print(sorted(m for m in sys.modules if m.startswith('cnnkit.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_stage_arrows_hold(require):
    """import-linter checks the contracts in pyproject.toml: each stage imports only the
    stages to its left, and the shared utilities import none."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    require(exe is not None, "import-linter (dev extra)")
    res = subprocess.run([exe], cwd=TESTS.parent, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]


# Modules allowed to call an optimiser's step: the training loop, and the filter visualisation,
# which optimises an input image by gradient ascent (no model weight changes there).
OPTIMISER_STEPS = {"train/loop.py", "explain/filters.py"}


def _optimiser_steps(path: Path) -> list[int]:
    """Lines of ``path`` that build a ``torch.optim`` optimiser or call ``X.step()`` on an
    optimiser, scaler or schedule (``.step()`` without arguments, or on a name with ``opt``)."""

    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        target = ast.unparse(node.func.value)
        if node.func.attr == "step" and (not node.args or "opt" in target.lower()):
            lines.append(node.lineno)
        if target in ("torch.optim", "optim") and node.func.attr[0].isupper():
            lines.append(node.lineno)
    return lines


def test_only_the_training_loop_steps_an_optimiser():
    src = TESTS.parent / "src" / "cnnkit"
    found = {
        f"{p.relative_to(src).as_posix()}:{line}"
        for p in src.rglob("*.py")
        if p.relative_to(src).as_posix() not in OPTIMISER_STEPS
        for line in _optimiser_steps(p)
    }
    assert found == set(), "optimiser steps outside cnnkit.train.loop.fit"
    assert _optimiser_steps(src / "train" / "loop.py")  # the scan does see the loop's


def _pyplot_imports(path: Path) -> list[int]:
    """Lines of ``path`` that import pyplot (``import matplotlib.pyplot`` or ``from matplotlib
    import pyplot``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "matplotlib.pyplot" for a in node.names):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and (
            node.module == "matplotlib.pyplot"
            or (node.module == "matplotlib" and any(a.name == "pyplot" for a in node.names))
        ):
            lines.append(node.lineno)
    return lines


def test_figures_are_drawn_without_pyplot(tmp_path):
    """docs/architecture.md: figures use matplotlib's object API, so importing cnnkit never
    switches a notebook's backend or keeps figures in pyplot's global registry."""
    src = TESTS.parent / "src" / "cnnkit"
    found = [f"{p.relative_to(src)}:{n}" for p in src.rglob("*.py") for n in _pyplot_imports(p)]
    assert found == []
    probe = tmp_path / "probe.py"
    probe.write_text("import matplotlib.pyplot\n", encoding="utf-8")
    assert _pyplot_imports(probe) == [1]  # the scan does see one
