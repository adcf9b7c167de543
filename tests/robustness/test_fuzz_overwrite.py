"""Fuzzing what ``overwrite`` may delete, and config files nested without end.

Each overwrite example lays out a folder: a drawn mix of cnnkit's own file names and a user's
(files, folders, symbolic links into a folder outside), with or without cnnkit's run marker,
and a ``config.json`` that is cnnkit's, a web project's or absent. ``create_run_dir`` (what
``train`` and ``genomics train`` call) is asked for it, with and without ``overwrite``. The
drawn layout alone decides what may go: only a marked run folder (or one with a config cnnkit
wrote) is ever touched, then only cnnkit's own names, never what a link points at.

Each nesting example writes a ``config.json`` (image or genomics run) or a ``metrics.json``
nested up to 200,000 levels in a drawn mix of brackets and braces: loading is a one-line
error naming the file, never a RecursionError.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import fuzz_settings
from rb_helpers import record

from cnnkit.errors import CnnkitError
from cnnkit.runs import layout
from cnnkit.runs.layout import MARKER, create_run_dir, owned_names

pytestmark = pytest.mark.fuzz
COUNT = {"examples": 0, "refused": 0, "replaced": 0, "nested": 0}
OWNED = sorted(owned_names("genomics") | {"fold-1", "fold-12", ".model.safetensors.x1.tmp"})
OWNED.remove(MARKER)
USERS = ["notes.txt", "src", "data.csv", "index.html", "my-fold", ".env", "fold-x"]
CONFIGS = {
    "cnnkit": {"cnnkit_version": "0.1", "model": "basic_convnet", "class_names": ["a"]},
    "web": {"port": 80, "model": "gpt"},  # a web project's config.json, "model" and all
}


@st.composite
def layouts(draw) -> dict:
    """A folder to overwrite: entries ``{name: "file" | "dir" | "link"}``, marker, config."""
    names = draw(st.lists(st.sampled_from(OWNED + USERS), max_size=8, unique=True))
    kinds = st.sampled_from(["file", "dir", "link"])
    return {
        "entries": {n: draw(kinds) for n in names if n != "config.json"},
        "marker": draw(st.booleans()),
        "config": draw(st.sampled_from([None, "cnnkit", "web"])),
        "kind": draw(st.sampled_from(["image", "genomics"])),
        "overwrite": draw(st.booleans()),
    }


def _lay_out(base: Path, p: dict) -> Path:
    folder, outside = base / "run", base / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("outside")
    folder.mkdir()
    for name, kind in p["entries"].items():
        entry = folder / name
        if kind == "dir":
            entry.mkdir()
            (entry / "inside.txt").write_text(name)
        elif kind == "link":
            entry.symlink_to(outside, target_is_directory=True)
        else:
            entry.write_text(name)
    if p["marker"]:
        (folder / MARKER).write_text(f"cnnkit run folder\nkind: {p['kind']}\n")
    if p["config"]:
        (folder / "config.json").write_text(json.dumps(CONFIGS[p["config"]]))
    return folder


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (links not followed) -> its content or kind."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link"
            elif path.is_file():
                out[rel] = path.read_text()
            else:
                out[rel] = "dir"
    return out


def _is_run(p: dict) -> bool:
    return p["marker"] or p["config"] == "cnnkit"


def _is_empty(p: dict) -> bool:
    return not (p["entries"] or p["marker"] or p["config"])


@fuzz_settings(default=60)
@given(p=layouts())
def test_fuzz_overwrite_deletes_only_cnnkits_files_of_a_run(p):
    COUNT["examples"] += 1
    base = Path(tempfile.mkdtemp(prefix="cnnkit-fuzz-overwrite-"))
    try:
        folder = _lay_out(base, p)
        before = _snapshot(base)
        try:
            run = create_run_dir(folder, overwrite=p["overwrite"], kind=p["kind"])
        except FileExistsError as e:
            assert _snapshot(base) == before, p  # refused: nothing changed
            assert str(folder) in str(e)
            started = p["config"] is not None
            assert not _is_run(p) or (started and not p["overwrite"]), (p, str(e))
            COUNT["refused"] += 1
            return
        assert _is_run(p) or _is_empty(p), p  # a folder that is not a run is never replaced
        after = _snapshot(base)
        for rel, content in before.items():
            if not rel.startswith("run/"):  # the folder itself, and what links point at
                assert after.get(rel) == content, (p, rel)
                continue
            name = rel.split("/")[1]
            if name not in OWNED and name not in (MARKER, "config.json"):
                assert after.get(rel) == content, (p, rel)  # the user's, kept
                assert name in run.kept
        COUNT["replaced"] += 1
    finally:
        shutil.rmtree(base)


DEPTHS = st.one_of(st.integers(60, 70), st.integers(70, 200_000))  # the limit is 64
NESTED = st.tuples(DEPTHS, st.lists(st.sampled_from("[{"), min_size=1, max_size=4))


def _nested(depth: int, opens: list[str]) -> str:
    """``depth`` levels cycling through ``opens`` (``{`` as ``{"k": ...}``), closed again."""
    head = "".join('{"k":' if opens[i % len(opens)] == "{" else "[" for i in range(depth))
    tail = "".join("}" if opens[i % len(opens)] == "{" else "]" for i in reversed(range(depth)))
    return head + "1" + tail


@fuzz_settings()
@given(shape=NESTED, target=st.sampled_from(["config.json", "metrics.json", "genomics"]))
def test_fuzz_nested_json_is_one_error_naming_the_file(tiny_run, shape, target):
    from cnnkit.genomics.run import load_run as load_genomics_run
    from cnnkit.report import render_report
    from cnnkit.runs import load_run

    COUNT["nested"] += 1
    text = _nested(*shape)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoint"))
        name = "metrics.json" if target == "metrics.json" else "config.json"
        (run / name).write_text(text)
        call = {
            "config.json": lambda: load_run(run),
            "metrics.json": lambda: render_report(run),
            "genomics": lambda: load_genomics_run(run),
        }[target]
        try:
            call()
        except (CnnkitError, ValueError) as e:
            message = str(e)
            assert "\n" not in message and str(run) in message, message
            return
        raise AssertionError(f"{target} nested {shape[0]} deep was taken")


def test_fuzz_overwrite_counted():
    assert COUNT["examples"] > 0 and COUNT["nested"] > 0
    assert COUNT["refused"] and COUNT["replaced"], COUNT  # both outcomes were reached
    assert layout.MARKER == MARKER
    record("fuzz", overwrite_examples=COUNT["examples"], nested_json_examples=COUNT["nested"])
