"""The CLI frame: usage errors, user errors and --debug, through the real entry point."""

import subprocess
import sys

import pytest

from cnnkit import __version__
from cnnkit.cli.main import main


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--epochs"], "'--epochs' requires an argument"),
        (["train", "x", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_usage_errors_are_short_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_user_error_is_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing-run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "missing-run" in err[0]


def test_debug_shows_the_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cnnkit", "evaluate", str(tmp_path / "nope"), "--debug"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_version_and_bare_command(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
    assert main([]) == 0
    assert "train" in capsys.readouterr().out
