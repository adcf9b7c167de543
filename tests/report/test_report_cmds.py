"""`cnnkit report RUN` through the real entry point (tests src/cnnkit/cli/report_cmds.py)."""

from __future__ import annotations

import json

from cnnkit.cli.main import main


def test_report_command_prints_the_report_path(make_run, capsys):
    run = make_run(optional=False)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"report: {(run / 'report.html').resolve()}"
    assert (run / "report.html").is_file()


def test_report_command_json(make_run, capsys):
    run = make_run(optional=False)
    assert main(["report", str(run), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["report"] == str((run / "report.html").resolve())
    assert payload["plots"] == [str((run / "confusion.png").resolve())]


def test_report_command_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run_dir must be a run folder") and err.count("\n") == 1
    (tmp_path / "run").mkdir()
    assert main(["report", str(tmp_path / "run")]) == 2
    assert "metrics.json is missing" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "run"), "--top-losses", "0"]) == 2
    assert "--top-losses must be a positive int" in capsys.readouterr().err
