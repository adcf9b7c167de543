"""ASGI middleware of the prediction server: limits, security headers, the last-resort 500.

Starlette and FastAPI put no limit on request bodies. :class:`BodyLimit` refuses a declared
``Content-Length`` above the limit before reading anything and counts the bytes actually
received, so a chunked upload without ``Content-Length`` (or one that lies about it) is
cut off as soon as it passes the limit. Both answer ``413`` with ``{"error": ...}``.

:class:`ConcurrencyLimit` answers ``503`` to requests beyond the ones being handled (idle
connections and bodies still arriving do not count; ``/health`` always answers).
:class:`InternalErrors` turns an exception no route handled into ``500 {"error": ...}``
inside :class:`SecurityHeaders` (Starlette's own 500 answer is made outside every
middleware, without their headers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("cnnkit.serve")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
)


class BodyTooLarge(Exception):
    """Raised inside the app's ``receive`` once the body passes the limit."""


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    """Send a complete JSON response straight to the ASGI server."""
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


class BodyLimit:
    """Answer 413 to any request whose body is, or turns out to be, over ``max_bytes``.

    Args:
        app: the ASGI app to protect.
        max_bytes: the largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    def _too_large(self) -> dict[str, str]:
        mib = self.max_bytes / (1 << 20)
        return {
            "error": f"request body is larger than the upload limit of {mib:g} MiB "
            "(--max-upload-mb)"
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared < 0:
            await send_json(send, 400, {"error": "Content-Length is not a number"})
            return
        if declared is not None and declared > self.max_bytes:
            await send_json(send, 413, self._too_large())
            return
        state = {"received": 0, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if state["started"]:
                raise
            await send_json(send, 413, self._too_large())


class SecurityHeaders:
    """Add ``X-Content-Type-Options: nosniff``, a strict CSP and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", []) if h[0] not in dict(SECURITY_HEADERS)
                ]
                headers.extend(SECURITY_HEADERS)
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_of(scope: Scope) -> str:
    """The Host header without its port (``[::1]:8000`` -> ``::1``), lower case."""
    raw = next((v for k, v in scope.get("headers", []) if k == b"host"), b"")
    host = raw.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostAllowList:
    """Refuse requests whose ``Host`` header is not one of ``hosts`` (400 JSON).

    A server on 127.0.0.1 is reachable from web pages the user opens through DNS
    rebinding (a hostile name that resolves to 127.0.0.1); such requests carry the hostile
    name in ``Host``, so an allow-list of the local names stops them.
    """

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _host_of(scope) not in self.hosts:
            await send_json(
                send, 400, {"error": f"Host header not allowed; use one of {sorted(self.hosts)}"}
            )
            return
        await self.app(scope, receive, send)


class _Busy(Exception):
    """Raised into a request whose turn comes while ``limit`` others are handled."""


def _has_body(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() != b"0"):
            return True
    return False


class ConcurrencyLimit:
    """Answer 503 to a request that is ready to be handled while ``limit`` others are.

    Only requests being handled count, never connections or clients still sending: a request
    with a body takes its place once the whole body has arrived, one without a body at once.
    Clients that open sockets and send nothing, half a header or a trickle of body hold no
    place (the header deadline and the body timeout end them). ``GET /health`` always answers.

    Args:
        app: the ASGI app to protect.
        limit: most requests handled at once.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if int(limit) < 1:
            raise ValueError(f"limit must be >= 1. Received: {limit}")
        self.app = app
        self.limit = int(limit)
        self.active = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/health":
            await self.app(scope, receive, send)
            return
        held = False
        started = False

        def take_place() -> None:
            nonlocal held
            if self.active >= self.limit:
                raise _Busy()
            self.active += 1
            held = True

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body") and not held:
                take_place()  # the body is complete: now the work starts
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if not _has_body(scope):
                take_place()
            await self.app(scope, counted_receive, tracking_send)
        except _Busy:
            if started:
                raise
            message = f"the server is busy with {self.limit} requests; try again shortly"
            await send_json(send, 503, {"error": message})
        finally:
            if held:
                self.active -= 1


class InternalErrors:
    """Answer ``500 {"error": "internal server error"}`` for an exception no route handled
    (logged with its traceback); inside :class:`SecurityHeaders`, so it carries them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # half an answer is out: only closing the connection is left
                raise
            await send_json(send, 500, {"error": "internal server error"})
