"""``cnnkit export`` and ``cnnkit serve`` through the real entry point."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["left", "right"]):
        (root / name).mkdir(parents=True)
        for i in range(8):
            img = rng.integers(0, 50, (20, 20), dtype=np.uint8)
            img[:, c * 10 : (c + 1) * 10] = 220
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve-cmds")
    data = _folder(root / "data")
    out = root / "run"
    assert (
        main(
            [
                "train",
                str(data),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--batch-size",
                "4",
                "--image-size",
                "20",
                "20",
                "--no-report",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def exported(run) -> tuple[Path, dict]:
    """``run`` after ``cnnkit export RUN --json``, with the JSON it printed."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["export", str(run), "--json"]) == 0
    return run, json.loads(out.getvalue())


def test_export_json_then_predict_with_onnx(exported, capsys):
    run, out = exported
    assert Path(out["path"]) == run / "model.onnx" and (run / "model.onnx").is_file()
    assert out["max_abs_diff"] <= 1e-4 and out["images_from"] == "validation split"
    assert out["opset"] >= 18
    image = str(run.parent / "data" / "right" / "0.png")
    assert main(["predict", str(run), image, "--backend", "onnx", "--json"]) == 0
    by_onnx = json.loads(capsys.readouterr().out)
    assert main(["predict", str(run), image, "--json"]) == 0
    by_torch = json.loads(capsys.readouterr().out)
    assert by_onnx[0]["label"] == by_torch[0]["label"]
    assert by_onnx[0]["probability"] == pytest.approx(by_torch[0]["probability"], abs=1e-4)


@pytest.mark.slow
def test_export_human_text_and_out(run, tmp_path, capsys):
    target = tmp_path / "sub" / "m.onnx"
    assert main(["export", str(run), "--out", str(target)]) == 0
    text = capsys.readouterr().out
    assert "max abs difference" in text and str(target) in text and target.is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["export", "RUN", "--format", "tflite"], "--format must be onnx"),
        (["export", "/no/such/run"], "run folder not found"),
        (["export", "RUN", "--tolerance", "0"], "tolerance"),
        (["serve", "RUN", "--backend", "tf"], "backend must be auto, torch or onnx"),
        (["serve", "RUN", "--max-upload-mb", "0"], "max_upload_mb"),
        (["serve", "RUN", "--port", "70000"], "--port"),
        (["serve", "/no/such/run"], "run folder not found"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(run, capsys, args, words):
    args = [str(run) if a == "RUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_health(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            return json.loads(conn.getresponse().read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError("server did not answer /health in time")


def _raw(port: int, request: bytes) -> bytes:
    """Send raw bytes; return the answer: its headers and its Content-Length body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        with contextlib.suppress(OSError):  # the server may stop reading once it answered 413
            s.sendall(request)
        data = b""
        while (chunk := s.recv(65536)) and not _complete(data := data + chunk):
            pass
    return data


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    head = f'--bb\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n\r\n'
    return head.encode() + data + b"\r\n--bb--\r\n", "multipart/form-data; boundary=bb"


@pytest.mark.slow
def test_real_server_on_localhost(exported):
    run, _ = exported
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "cnnkit",
        "serve",
        str(run),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-upload-mb",
        "1",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        health = _wait_for_health(port, proc)
        assert health["backend"] == "onnx" and health["max_upload_mb"] == 1
        body, ctype = _multipart("r.png", (run.parent / "data" / "right" / "1.png").read_bytes())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("X-Content-Type-Options") == "nosniff"
        (entry,) = json.loads(resp.read())
        assert entry["file"] == "r.png" and entry["label"] == "right"
        # A chunked upload without Content-Length, 3 MiB, is cut off at 1 MiB with 413.
        chunk = b"10000\r\n" + b"\0" * 0x10000 + b"\r\n"
        part = b'--bb\r\nContent-Disposition: form-data; name="files"; filename="z"\r\n\r\n'
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ctype}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        first = f"{len(part):x}\r\n".encode() + part + b"\r\n"
        answer = _raw(port, head + first + chunk * 48 + b"0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"error"' in answer
        for path in (
            "/static/../config.json",
            "/static/..%2fconfig.json",
            "/static/%2e%2e/config.json",
        ):
            answer = _raw(
                port,
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
            )
            assert answer.startswith(b"HTTP/1.1 404"), (path, answer[:200])
            assert b"class_names" not in answer
        rebound = _raw(port, b"GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        assert rebound.startswith(b"HTTP/1.1 400"), rebound[:200]  # DNS rebinding refused
        assert _wait_for_health(port, proc, timeout=10)["status"] == "ok"  # fine after abuse
    finally:
        proc.terminate()
        proc.wait(timeout=20)
