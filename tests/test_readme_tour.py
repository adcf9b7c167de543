"""The README's five-minute tour, run verbatim as a newcomer runs it.

The shell block and the Python snippet after it are taken from README.md, not copied here,
and run in that order in an empty folder through the virtual environment's real ``cnnkit``
entry point (``source .venv/bin/activate`` before every line, as in one terminal session).
The one liberty: ``cnnkit serve`` gets ``--port`` with a free port (8000 may be taken), is
asked for ``/health``, ``/predict`` and ``/explain``, then stopped with Ctrl-C.

Real Fashion-MNIST is needed (Debian ``dataset-fashion-mnist``): missing, the test fails in CI.
A dozen commands, each starting Python and importing torch, and two trainings: 3-4 minutes on
this project's shared 2-core machines, so it is ``slow``: ``make tour`` runs it, and CI runs
``make tour`` after ``make test``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ACTIVATE = "source .venv/bin/activate"


def _tour_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _fenced(section: str, lang: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"the tour must have exactly one ```{lang} block"
    return blocks[0]


def tour_commands() -> list[str]:
    """The shell block's commands, comments and blank lines dropped."""
    commands = []
    for line in _fenced(_tour_section(), "bash").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shell(command: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"{ACTIVATE} && {command}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _request(port: int, method: str, path: str, body: bytes = b"", ctype: str = ""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": ctype} if ctype else {}
    conn.request(method, path, body=body or None, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.getheader("Content-Type") or "", resp.read()


def _multipart(field: str, path: Path) -> tuple[bytes, str]:
    head = f'--tour\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"'
    body = head.encode() + b"\r\n\r\n" + path.read_bytes() + b"\r\n--tour--\r\n"
    return body, "multipart/form-data; boundary=tour"


def _serve(command: str, cwd: Path) -> None:
    """Start the server line, use it as the web page does, stop it with Ctrl-C."""
    port = _free_port()
    proc = subprocess.Popen(
        ["bash", "-c", f"{ACTIVATE} && exec {command} --port {port}"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as in a terminal, also when the suite itself runs as a background job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"{command} exited: {proc.communicate()[1]}"
            try:
                status, _, body = _request(port, "GET", "/health")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{command}: no /health within 120 s"
            time.sleep(0.5)
        assert json.loads(body)["status"] == "ok"
        image = cwd / "fm" / "Bag" / "0000.png"
        status, _, body = _request(port, "POST", "/predict", *_multipart("files", image))
        assert status == 200, body
        assert json.loads(body)[0]["label"] in os.listdir(cwd / "fm")
        status, ctype, body = _request(port, "POST", "/explain", *_multipart("file", image))
        assert status == 200 and ctype == "image/png", body[:200]
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as the README says
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err


@pytest.mark.slow
def test_the_readme_tour_runs_verbatim(tmp_path, require):
    from cnnkit.data.datasets import list_datasets

    fashion = {r["name"]: r for r in list_datasets()}["fashion-mnist"]
    require(fashion["available"], "Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    venv = Path(sys.prefix)
    require((venv / "bin" / "activate").is_file() and (venv / "bin" / "cnnkit").is_file(),
            f"a virtual environment with cnnkit installed (running from {venv})")  # fmt: skip
    (tmp_path / ".venv").symlink_to(venv)

    commands = tour_commands()
    assert commands[0] == ACTIVATE
    for command in commands[1:]:
        if shlex.split(command)[:2] == ["cnnkit", "serve"]:
            _serve(command, tmp_path)
            continue
        done = _shell(command, tmp_path)
        assert done.returncode == 0, f"$ {command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"$ {command}\n{done.stderr[-3000:]}"
    made_files = ("aug.png", "cam.png", "act.png", "predictions.csv", "runs/fm/report.html")
    for made in (*made_files, "runs/fm/model.onnx"):
        assert (tmp_path / made).is_file(), f"the tour did not write {made}"

    (tmp_path / "tour.py").write_text(_fenced(_tour_section(), "python"), encoding="utf-8")
    done = _shell("python tour.py", tmp_path)
    assert done.returncode == 0, f"README's Python snippet failed:\n{done.stderr[-3000:]}"
    accuracy = float(done.stdout.split()[0])
    assert 0.3 < accuracy <= 1.0, done.stdout  # 10 classes: chance is 0.1
    assert "'label': " in done.stdout and "error" not in done.stdout
