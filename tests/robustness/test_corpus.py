"""The tricky image corpus through ``cnnkit audit``, the dataset loaders and ``cnnkit predict``.

One subprocess per tool over the whole corpus: no traceback, no signal, every failure a
cnnkit error naming its file, hidden files never picked up, and the pixels of every good
file equal to the picture the corpus generator wrote (numpy reference, not a decoder).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rb_helpers import child_env, record

HERE = Path(__file__).parent
FAILURES = {"empty", "truncated", "not-an-image", "too-large"}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _visible(entries):
    return [e for e in entries if e.expect != "ignored"]


@pytest.fixture(scope="module")
def loaded(corpus, tmp_path_factory):
    root, entries = corpus
    out = tmp_path_factory.mktemp("loader")
    files = out / "files.json"
    files.write_text(json.dumps([str(e.path) for e in entries]))  # \udcXX for non-UTF-8 names
    _run([sys.executable, str(HERE / "harness_loader.py"), str(root), str(files), str(out / "r")])
    result = json.loads((out / "r.json").read_text(encoding="utf-8"))
    return result, dict(np.load(out / "r.npz"))


def test_corpus_is_big_and_varied(corpus):
    root, entries = corpus
    kinds = {e.expect for e in entries}
    assert len(entries) >= 200 and kinds == {"ok", "fail", "any", "ignored"}
    assert len({e.path.parent.relative_to(root).parts[0] for e in entries}) >= 10


def test_loaders_never_crash_and_name_the_file(corpus, loaded):
    _, entries = corpus
    result, _ = loaded
    single = result["single"]
    crashes = [(f, r["error"]) for f, r in single.items() if r["status"] == "crash"]
    assert crashes == []
    for e in _visible(entries):
        r = single[str(e.path)]
        if e.expect in ("ok", "fail"):
            assert r["status"] == e.expect, (e.note, r)
        if r["status"] == "fail":
            assert r["path"] == str(e.path) and str(e.path) in r["error"]
            assert r["problem"] in FAILURES | {"missing"}
    record("corpus", files=len(entries), loader_crashes=len(crashes),
           refused=sum(r["status"] == "fail" for r in single.values()))  # fmt: skip


def test_folder_loaders_agree_with_single_decodes(corpus, loaded):
    root, entries = corpus
    result, _ = loaded
    single = result["single"]
    good = sorted(str(e.path) for e in _visible(entries) if single[str(e.path)]["status"] == "ok")
    bad = sorted(str(e.path) for e in _visible(entries) if single[str(e.path)]["status"] == "fail")
    assert sorted(result["folder_files"]) == good
    assert sorted(p for p, *_ in result["folder_skipped"]) == bad
    assert sorted(result["dataset_files"]) == good and result["dataset_images"] == len(good)
    assert result["dataset_batch_shapes"] == [[3, 16, 16]]
    hidden = [e for e in entries if e.expect == "ignored"]
    assert not {str(e.path) for e in hidden} & set(result["folder_files"] + bad)
    assert not any(c.startswith(".") for c in result["class_names"])


def test_good_files_equal_the_numpy_reference(corpus, loaded):
    _, entries = corpus
    result, pixels = loaded
    files = result["files"]
    folder_row = {p: i for i, p in enumerate(result["folder_files"])}
    checked = 0
    for i, e in enumerate(entries):
        if e.expect != "ok" or e.ref is None:
            continue
        for got in (pixels[f"single{i}"], pixels[f"folder{folder_row[files[i]]}"]):
            diff = np.abs(got.astype(int) - e.ref.astype(int)).max()
            assert diff <= e.tol, f"{e.note}: max difference {diff} > {e.tol}"
        checked += 1
    assert checked >= 90
    record("corpus", reference_checked=checked)


def test_exif_orientation_by_content(corpus, loaded):
    """Each EXIF JPEG is closest to the upright picture among all 8 orientations."""
    from corpus import TRANSFORMS

    _, entries = corpus
    _, pixels = loaded
    exif = [(i, e) for i, e in enumerate(entries) if e.note.startswith("exif-jpeg-")]
    assert len(exif) == 8
    stored = entries[exif[0][0]].ref  # orientation 1: stored == shown
    for i, e in exif:
        got = pixels[f"single{i}"].astype(int)
        dist = {o: np.abs(got - f(stored).astype(int)).mean() for o, f in TRANSFORMS.items()}
        assert min(dist, key=dist.get) == int(e.note[-1]), (e.note, dist)


def test_audit_over_the_corpus(corpus):
    root, entries = corpus
    proc = _run([sys.executable, "-m", "cnnkit", "audit", str(root), "--json"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    visible = _visible(entries)
    assert result["files"] == len(visible)
    flagged: dict[str, set] = {}
    for p in result["problems"]:
        flagged.setdefault(p["path"], set()).add(p["problem"])
    for e in visible:
        if e.expect == "fail":
            assert flagged.get(str(e.path), set()) & FAILURES, f"audit missed {e.note}"
    hidden = {str(e.path) for e in entries if e.expect == "ignored"}
    assert not hidden & set(flagged)
    record("corpus", audit_rc=proc.returncode, audit_problems=len(result["problems"]))


def test_predict_over_the_corpus(corpus, loaded, tiny_run):
    _, entries = corpus
    result, _ = loaded
    visible = [str(e.path) for e in _visible(entries)]
    cmd = [sys.executable, "-m", "cnnkit", "predict", str(tiny_run), *visible, "--json"]
    proc = _run(cmd)
    assert proc.returncode == 1, proc.stderr[-2000:]  # some files fail: exit 1, not 2
    out = json.loads(proc.stdout)
    assert [r["file"] for r in out] == visible
    for r in out:
        expected = result["single"][r["file"]]["status"]
        if expected == "fail":
            assert set(r) == {"file", "error"} and r["file"] in r["error"], r
        else:
            assert set(r) >= {"label", "probability", "top_k"}, r
            assert 0.0 <= r["probability"] <= 1.0
    record("corpus", predict_rc=proc.returncode, predict_errors=sum("error" in r for r in out))


@pytest.mark.slow
def test_train_report_and_evaluate_on_the_corpus(corpus, tmp_path):
    """Training straight on the tricky folder: broken files skipped and reported, report made."""
    root, entries = corpus
    run = tmp_path / "run"
    proc = _run([sys.executable, "-m", "cnnkit", "train", str(root), "--out", str(run),
                 "--epochs", "1", "--batch-size", "8", "--json"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "files skipped" in proc.stderr
    assert (run / "report.html").is_file() and (run / "model.safetensors").is_file()
    split = (run / "split.csv").read_text(encoding="utf-8", errors="surrogateescape")
    refused = [e for e in entries if e.expect == "fail"]
    assert not any(str(e.path) in split for e in refused)
    proc = _run([sys.executable, "-m", "cnnkit", "evaluate", str(run), str(root), "--json"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(split)))  # a name holds a newline: parse, not count
    assert json.loads(proc.stdout)["n"] == len(rows)
    newline = {str(e.path) for e in entries if "\n" in e.path.name}
    assert newline and newline <= {r["path"] for r in rows}
