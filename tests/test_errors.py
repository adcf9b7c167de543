"""One message, two spellings: Python arguments in the library, flags on the command line."""

import pytest

from cnnkit.cli.main import main
from cnnkit.errors import OVERWRITE, Arg, RunFolderError, user_error


def test_user_error_spells_arguments_for_each_caller():
    e = user_error(
        FileExistsError, "{out} exists; pass {ow} or {go}", out="runs/a", ow=OVERWRITE,
        go=Arg("resume_run('runs/a')", "`cnnkit train --resume runs/a`"),
    )  # fmt: skip
    assert isinstance(e, FileExistsError)
    assert str(e) == "runs/a exists; pass overwrite=True or resume_run('runs/a')"
    assert e.cli_message() == "runs/a exists; pass --overwrite or `cnnkit train --resume runs/a`"


def test_the_cli_prints_the_cli_spelling(monkeypatch, capsys, tmp_path):
    def refuse(*_args, **_kwargs):
        raise user_error(RunFolderError, "run exists; pass {ow}", ow=OVERWRITE)

    monkeypatch.setattr("cnnkit.cli.report_cmds.render_report", refuse)
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: run exists; pass --overwrite\n"
    with pytest.raises(RunFolderError, match="pass overwrite=True"):
        refuse()
