"""The test tree mirrors the package, and test module names are unique (pytest collects
them without __init__.py files, so two test_x.py in different folders collide)."""

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
