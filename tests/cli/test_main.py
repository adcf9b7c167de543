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


def test_the_command_table_matches_the_commands():
    """The root help lists each command from a table (so `cnnkit --help` loads nothing); the
    table must name every command its modules register, with the command's own help line."""
    import importlib

    import typer

    from cnnkit.cli.main import COMMANDS, load_command

    modules = {module for module, _ in COMMANDS.values()}
    registered = {}
    for module in modules:
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        for name in typer.main.get_group(sub).commands:
            registered[name] = module
    assert registered == {name: module for name, (module, _) in COMMANDS.items()}
    for name, (_, line) in COMMANDS.items():
        command = load_command(name)
        first = (command.short_help or command.help or "").strip().splitlines()[0]
        assert first == line, name


def test_help_starts_without_loading_the_library():
    import subprocess
    import sys

    code = (
        "import sys; from cnnkit.cli.main import main; main(['--help']);"
        "print(sorted(m for m in ('torch', 'cnnkit.train', 'cnnkit.data') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
