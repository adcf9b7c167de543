"""cnnkit's HTTP protocol: the header deadline (also on kept-alive connections) and its answers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest

pytest.importorskip("uvicorn")
import uvicorn  # noqa: E402

from cnnkit.serve.middleware import SECURITY_HEADERS, SecurityHeaders  # noqa: E402
from cnnkit.serve.protocol import protocol_class, raw_error_response  # noqa: E402

DEADLINE = 0.5


async def _hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.contextmanager
def _server(app):
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical",
                            http=protocol_class(DEADLINE), timeout_keep_alive=5)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _recv_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := s.recv(4096):
            data += chunk
    return data


def test_raw_error_response_is_complete_json_with_the_security_headers():
    raw = raw_error_response(408, "Request Timeout", "too slow")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 408 Request Timeout"
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert int(headers[b"content-length"]) == len(body)
    assert json.loads(body) == {"error": "too slow"}
    assert all(headers[k] == v for k, v in SECURITY_HEADERS) and headers[b"connection"] == b"close"


def test_the_deadline_must_be_positive():
    with pytest.raises(ValueError, match="header_timeout_s must be > 0"):
        protocol_class(0)
    assert protocol_class(2.5).header_timeout_s == 2.5


def test_a_silent_connection_and_a_kept_alive_one_both_meet_the_deadline():
    with _server(SecurityHeaders(_hello)) as port:
        silent = socket.create_connection(("127.0.0.1", port))
        kept = socket.create_connection(("127.0.0.1", port))
        kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(DEADLINE * 0.6)
        kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half")  # the next request, half sent
        t0 = time.monotonic()
        first, second = _recv_all(silent, 5), _recv_all(kept, 5)
        assert time.monotonic() - t0 < 4
    assert first.startswith(b"HTTP/1.1 408 ")
    assert second.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in second  # re-armed
