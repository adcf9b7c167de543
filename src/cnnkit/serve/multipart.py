"""Read a ``multipart/form-data`` request body into memory, with hard limits.

Starlette's own form parser spools file parts above 1 MiB to temporary files on disk; the
server must never write uploads to disk, so this module streams the body through
python-multipart's push parser and keeps every part in memory. The total body size is
bounded by :class:`cnnkit.serve.middleware.BodyLimit` before it gets here, and this parser
bounds the number of parts, so many tiny parts cannot exhaust memory or time either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_NAME_CHARS = 200
"""Longer field and file names are cut (they only label results)."""


class MultipartError(ValueError):
    """The request body is not a multipart form this server accepts (answered with 400)."""


@dataclass
class Part:
    """One form part: its field ``name``, ``filename`` (None for plain fields) and bytes."""

    name: str
    filename: str | None
    content_type: str
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """python-multipart callbacks that build :class:`Part` objects in memory."""

    def __init__(self, max_parts: int) -> None:
        self.max_parts = max_parts
        self.parts: list[Part] = []
        self.ended = False
        self._headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._current: Part | None = None

    def callbacks(self) -> Any:  # python-multipart's MultipartCallbacks TypedDict
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise MultipartError(f"too many form parts: at most {self.max_parts} are accepted")
        self._headers = {}

    def _header_end(self) -> None:
        key = self._field.decode("latin-1").strip().lower()
        self._headers[key] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or b"name" not in options:
            raise MultipartError("each form part needs 'Content-Disposition: form-data; name=...'")
        filename = options.get(b"filename")
        self._current = Part(
            name=_text(options[b"name"]),
            filename=None if filename is None else _text(filename),
            content_type=self._headers.get("content-type", ""),
        )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.data.extend(data[start:end])

    def _part_end(self) -> None:
        if self._current is not None:
            self.parts.append(self._current)
        self._current = None

    def _end(self) -> None:
        self.ended = True


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("\x00", "")[:MAX_NAME_CHARS]


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type.

    Raises:
        MultipartError: another content type, or no boundary.
    """
    ctype, options = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        raise MultipartError(
            "expected a multipart/form-data body with images in the field 'files'. "
            f"Received: Content-Type={(content_type or 'none')[:80]!r}"
        )
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise MultipartError("the multipart/form-data Content-Type has no valid boundary")
    return boundary


async def read_parts(
    content_type: str | None, chunks: AsyncIterator[bytes], max_parts: int = 256
) -> list[Part]:
    """Parse a whole multipart body from ``chunks`` into memory.

    Args:
        content_type: the request's Content-Type header.
        chunks: the body, streamed (e.g. ``request.stream()``).
        max_parts: refuse bodies with more parts than this.

    Returns:
        The complete parts, in order.

    Raises:
        MultipartError: wrong content type, a malformed body, a body cut before its
            closing boundary, or more than ``max_parts`` parts.
    """
    collector = _Collector(max_parts)
    parser = MultipartParser(boundary_of(content_type), collector.callbacks())
    try:
        async for chunk in chunks:
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except FormParserError as e:
        raise MultipartError(f"malformed multipart body ({e})") from None
    if not collector.ended:
        raise MultipartError("the multipart body ends before its closing boundary")
    return collector.parts
