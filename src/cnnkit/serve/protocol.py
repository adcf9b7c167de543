"""The connection handler of ``cnnkit serve``: uvicorn's h11 protocol with a header deadline.

uvicorn's h11 protocol waits as long as a client likes for a request's headers, and its
``limit_concurrency`` counts open connections: a few hundred clients that send half a header
and wait (slowloris) made every other request ``503`` for as long as they waited. Here:

- a connection whose request line and headers are not complete within ``header_timeout_s``
  seconds (of its opening, or of the end of its previous response) is answered ``408`` and
  closed, whether it sent part of a header or nothing at all;
- the concurrency limit counts requests being handled, not connections
  (:class:`cnnkit.serve.middleware.ConcurrencyLimit`): an idle connection holds a socket until
  its deadline and nothing else;
- the answers made here, below the app (``400`` for a request h11 cannot parse, ``408``), are
  ``{"error": ...}`` JSON with the same security headers as every answer of the app.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cnnkit.serve.middleware import SECURITY_HEADERS

HEADER_TIMEOUT_S = 10.0
"""Default seconds a connection has to send a complete request line and headers."""


def raw_error_response(status: int, reason: str, message: str) -> bytes:
    """A complete ``HTTP/1.1`` JSON error answer that closes the connection, as bytes."""
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"cache-control", b"no-store"),
        *SECURITY_HEADERS,
    ]
    head = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return f"HTTP/1.1 {status} {reason}\r\n".encode() + head + b"\r\n" + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's :class:`H11Protocol` with a request-header deadline and JSON error answers.

    Subclass with another ``header_timeout_s`` to change the deadline (see
    :func:`protocol_class`).
    """

    header_timeout_s: float = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request's headers are complete
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()  # the next request's headers, on a kept-alive connection

    def send_400_response(self, msg: str) -> None:
        self._disarm_header_deadline()
        self.transport.write(raw_error_response(400, "Bad Request", "invalid HTTP request"))
        self.transport.close()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._header_too_late)

    def _disarm_header_deadline(self) -> None:
        if getattr(self, "_header_deadline", None) is not None:
            self._header_deadline.cancel()  # type: ignore[union-attr]
            self._header_deadline = None

    def _header_too_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        message = f"no complete request header within {self.header_timeout_s:g} s"
        self.transport.write(raw_error_response(408, "Request Timeout", message))
        self.transport.close()


def protocol_class(header_timeout_s: float = HEADER_TIMEOUT_S) -> type[GuardedH11Protocol]:
    """:class:`GuardedH11Protocol` with a header deadline of ``header_timeout_s`` seconds (the
    class to pass to ``uvicorn.run(http=...)``)."""
    if not header_timeout_s > 0:
        raise ValueError(f"header_timeout_s must be > 0. Received: {header_timeout_s}")
    attrs: dict[str, Any] = {"header_timeout_s": float(header_timeout_s)}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attrs)
