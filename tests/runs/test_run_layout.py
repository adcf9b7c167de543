"""Run folders: created with a marker, replaced only when they are runs, and then only
cnnkit's own files."""

from __future__ import annotations

import json

import pytest

from cnnkit.runs.layout import (
    MARKER,
    RunExistsError,
    check_run_dir,
    create_run_dir,
    discard_if_unstarted,
    is_run_dir,
)


def _finished_run(path):
    run = create_run_dir(path)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"w")
    (path / "fold-1").mkdir()
    (path / "checkpoint").mkdir()
    (path / "checkpoint" / "last.pt").write_bytes(b"c")
    return run


def test_new_folder_gets_the_marker(tmp_path):
    run = create_run_dir(tmp_path / "a" / "run")
    assert (run.path / MARKER).is_file() and is_run_dir(run.path)
    assert run.kept == ()


def test_a_folder_with_a_foreign_config_json_is_never_replaced(tmp_path):
    """A web project has a config.json too: --overwrite must not wipe it."""
    project = tmp_path / "site"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.js").write_text("code")
    (project / "config.json").write_text('{"port": 80}')
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not a cnnkit run folder"):
            create_run_dir(project, overwrite=overwrite)
    assert (project / "src" / "app.js").read_text() == "code"
    assert json.loads((project / "config.json").read_text()) == {"port": 80}


def test_overwrite_removes_only_what_cnnkit_wrote(tmp_path):
    path = tmp_path / "run"
    _finished_run(path)
    (path / "notes.txt").write_text("my notes")
    (path / "extra").mkdir()
    with pytest.raises(RunExistsError) as e:
        create_run_dir(path)
    assert "overwrite=True" in str(e.value) and "--overwrite" in e.value.cli_message()
    run = create_run_dir(path, overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "extra", "notes.txt"]
    assert run.kept == ("extra", "notes.txt")


def test_a_run_killed_before_its_config_is_reused_without_overwrite(tmp_path):
    path = tmp_path / "run"
    create_run_dir(path)
    (path / "split.csv").write_text("path,label,subset\n")
    (path / ".config.json.x1.tmp").write_text("{")  # a write the kill interrupted
    run = create_run_dir(path)  # nothing in it can resume: start again, no --overwrite needed
    assert sorted(p.name for p in run.path.iterdir()) == [MARKER]


def test_check_refuses_before_any_work(tmp_path):
    path = tmp_path / "run"
    _finished_run(path)
    with pytest.raises(RunExistsError):
        check_run_dir(path)
    check_run_dir(path, overwrite=True)
    assert (path / "model.safetensors").is_file()  # checking changes nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        check_run_dir(tmp_path / "file", overwrite=True)


def test_legacy_run_folders_without_a_marker_are_still_runs(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model": "lenet5", "cnnkit_version": "0.1.0"}))
    assert is_run_dir(path)
    create_run_dir(path, overwrite=True)
    assert not (path / "config.json").exists()


def test_a_failed_start_leaves_no_folder_but_a_trained_run_stays(tmp_path):
    path = tmp_path / "run"
    run = create_run_dir(path)
    (path / "config.json").write_text("{}")
    assert discard_if_unstarted(run) and not path.exists()
    run = create_run_dir(path)
    (path / "history.csv").write_text("epoch\n1\n")
    assert not discard_if_unstarted(run) and path.is_dir()
