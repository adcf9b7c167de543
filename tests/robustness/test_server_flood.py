"""A real ``cnnkit serve`` process under a flood of idle connections on 127.0.0.1.

260 sockets (half send part of a request header and wait, half send nothing) must not keep
anyone else out: ``/health`` answers within a second and ``/predict`` works while they wait;
each idle socket gets a ``408`` with the security headers at the header deadline, and a
request the HTTP parser refuses gets a ``400`` with them too. Requests whose bodies are still
arriving hold no place under the concurrency limit; requests being handled do.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import io
import json
import select
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from rb_helpers import child_env, record, serve_in_thread

from cnnkit.serve.app import ServeOptions, create_app
from cnnkit.serve.middleware import SECURITY_HEADERS

HEADER_TIMEOUT_S = 10.0  # cnnkit serve's documented header deadline (docs/serving.md)
FLOOD = 260
PARTIAL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Waiting: "


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run):
    port = _free_port()
    cmd = [sys.executable, "-m", "cnnkit", "serve", str(tiny_run), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=child_env(PYTHONUNBUFFERED="1"), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if _get(port, "/health", timeout=2)[0] == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        pytest.fail("the server did not answer /health within 120 s")
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _predict(port: int) -> int:
    buf = io.BytesIO()
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(buf, "PNG")
    head = b'--bb\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
    body = head + buf.getvalue() + b"\r\n--bb--\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/predict", body, {"Content-Type": "multipart/form-data; boundary=bb"})
        return conn.getresponse().status
    finally:
        conn.close()


def _read_until_closed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Everything each socket receives until the server closes it (or ``timeout`` passes)."""
    got = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_), [], [], 0.5)
        for s in ready:
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                got[s] += chunk
            else:
                open_.discard(s)
    return got


def _has_security_headers(answer: bytes) -> bool:
    head = answer.partition(b"\r\n\r\n")[0].lower()
    return all(name + b": " + value.lower() in head for name, value in SECURITY_HEADERS)


def test_idle_connections_do_not_keep_anyone_out(server):
    port = server
    socks = []
    try:
        for i in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2 == 0:
                s.sendall(PARTIAL)  # half a header, then nothing
            socks.append(s)
        time.sleep(0.5)  # the server has accepted them all
        seconds = []
        for _ in range(5):
            t0 = time.monotonic()
            status, headers, body = _get(port, "/health", timeout=5)
            seconds.append(time.monotonic() - t0)
            assert status == 200, (status, body[:200])
        assert max(seconds) < 1.0, seconds
        assert _predict(port) == 200
        answers = _read_until_closed(socks, HEADER_TIMEOUT_S + 15)
        late = [a for a in answers.values() if a.startswith(b"HTTP/1.1 408")]
        assert len(late) == FLOOD, f"{FLOOD - len(late)} idle sockets got no 408"
        assert all(_has_security_headers(a) and b'"error"' in a for a in late)
        record("server", idle_socket_flood=FLOOD, health_seconds_max=round(max(seconds), 3))
    finally:
        for s in socks:
            s.close()
    assert _get(port, "/health")[0] == 200


@pytest.mark.parametrize(
    "raw",
    [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40) + b"\r\n\r\n",  # TLS hello
     b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n",
     b"GET /\x00 HTTP/1.1\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"],
)  # fmt: skip
def test_a_request_the_parser_refuses_gets_a_400_with_the_security_headers(server, raw):
    with socket.create_connection(("127.0.0.1", server), timeout=30) as s:
        s.sendall(raw)
        answer = _read_until_closed([s], 30)[s]
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert _has_security_headers(answer), answer[:600]
    body = answer.partition(b"\r\n\r\n")[2]
    assert json.loads(body) == {"error": "invalid HTTP request"}


def test_bodies_still_arriving_hold_no_place_but_the_limit_holds(tiny_run, monkeypatch):
    app = create_app(tiny_run, ServeOptions(backend="torch", max_concurrent=2))
    predictor = app.state.cnnkit.predictor
    real = predictor.predict_bytes

    def slow(*args, **kwargs):
        time.sleep(1.5)  # long enough for the other requests to arrive meanwhile
        return real(*args, **kwargs)

    with serve_in_thread(app, deadline_s=5.0) as port:
        head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n"
                b"Content-Type: multipart/form-data; boundary=bb\r\n\r\n--bb\r\n")  # fmt: skip
        trickling = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(6)]
        for s in trickling:
            s.sendall(head)  # a complete header, then a body that never finishes
        time.sleep(0.3)
        assert _predict(port) == 200  # six requests waiting for their bodies hold no place
        monkeypatch.setattr(predictor, "predict_bytes", slow)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = sorted(pool.map(lambda _: _predict(port), range(4)))
        assert statuses == [200, 200, 503, 503], statuses  # two at a time, the others told
        for s in trickling:
            s.close()
