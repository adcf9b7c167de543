"""Fuzzing the server's connections: idle, half-sent and garbled requests on many sockets.

Each example opens up to 40 sockets to a real uvicorn server (in this process, cnnkit's
protocol with short deadlines) and sends each a cut, garbled or complete request, or nothing.
While they wait, ``/health`` answers within a second; every answer any of them gets is an
HTTP response with cnnkit's security headers, and the server closes every one of them by
its deadlines.
"""

from __future__ import annotations

import http.client
import select
import socket
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import fuzz_settings
from rb_helpers import record, serve_in_thread

from cnnkit.serve.app import ServeOptions, create_app
from cnnkit.serve.middleware import SECURITY_HEADERS

pytestmark = pytest.mark.fuzz
DEADLINE_S = 0.4  # header deadline, body timeout and keep-alive of the fuzzed server
COUNT = {"examples": 0, "sockets": 0, "answers": 0}
REQUESTS = [
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /static/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
    b"boundary=bb\r\nContent-Length: 60\r\n\r\n--bb\r\nContent-Disposition: form-data; "
    b'name="files"\r\n\r\nx\r\n--bb--\r\n',
    b"POST /explain HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
]


@pytest.fixture(scope="module")
def server(tiny_run):
    opts = ServeOptions(backend="torch", body_timeout_s=DEADLINE_S)
    with serve_in_thread(create_app(tiny_run, opts), DEADLINE_S) as port:
        yield port


@st.composite
def _sends(draw) -> bytes:
    """What one socket sends: nothing, a cut request, a garbled one, noise, or all of one."""
    kind = draw(st.sampled_from(["nothing", "cut", "garbled", "noise", "whole"]))
    request = draw(st.sampled_from(REQUESTS))
    if kind == "nothing":
        return b""
    if kind == "cut":
        return request[: draw(st.integers(1, len(request) - 1))]
    if kind == "garbled":
        out = bytearray(request)
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    if kind == "noise":
        return draw(st.binary(min_size=1, max_size=300))
    return request


def _health_seconds(port: int) -> float:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    return time.monotonic() - t0


def _drain(socks: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    got = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        for s in select.select(list(open_), [], [], 0.2)[0]:
            try:
                chunk = s.recv(65536)
            except OSError:  # reset by the server: closed too
                chunk = b""
            got[s] += chunk
            if not chunk:
                open_.discard(s)
    assert not open_, f"{len(open_)} connections still open after {timeout} s"
    return got


def _check_answer(data: bytes) -> None:
    if not data:
        return
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    head = data.partition(b"\r\n\r\n")[0].lower()
    for name, value in SECURITY_HEADERS:
        assert name + b": " + value.lower() in head, (name, data[:400])


@fuzz_settings(default=10, most=200)
@given(sends=st.lists(_sends(), min_size=1, max_size=40))
def test_fuzz_idle_and_broken_connections(server, sends):
    COUNT["examples"] += 1
    socks = [socket.create_connection(("127.0.0.1", server), timeout=10) for _ in sends]
    try:
        for s, data in zip(socks, sends, strict=True):
            if data:
                s.sendall(data)
        assert _health_seconds(server) < 1.0
        answers = _drain(socks, 8 * DEADLINE_S + 5)
    finally:
        for s in socks:
            s.close()
    for data in answers.values():
        _check_answer(data)
    COUNT["sockets"] += len(socks)
    COUNT["answers"] += sum(bool(a) for a in answers.values())


def test_fuzz_idle_and_broken_connections_counted():
    assert COUNT["examples"] > 0 and COUNT["answers"] > 0, COUNT
    record("fuzz", http_connection_examples=COUNT["examples"], http_sockets=COUNT["sockets"])
