"""The in-memory multipart reader: parts, names, limits and malformed bodies."""

from __future__ import annotations

import asyncio

import pytest

from cnnkit.serve.multipart import MultipartError, boundary_of, read_parts

CT = "multipart/form-data; boundary=XyZ"


def _read(body: bytes, ctype: str = CT, max_parts: int = 8, chunk: int = 7):
    async def chunks():
        for i in range(0, len(body), chunk):  # split anywhere, even inside a boundary
            yield body[i : i + chunk]

    return asyncio.run(read_parts(ctype, chunks(), max_parts))


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    fn = f'; filename="{filename}"' if filename is not None else ""
    return (
        (
            f'--XyZ\r\nContent-Disposition: form-data; name="{name}"{fn}\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )


def test_parts_are_read_whole_and_in_order():
    body = _part("files", b"\x00\x01--XyZ-not-a-boundary", "a.png") + _part("note", b"hi")
    parts = _read(body + b"--XyZ--\r\n")
    assert [(p.name, p.filename) for p in parts] == [("files", "a.png"), ("note", None)]
    assert bytes(parts[0].data) == b"\x00\x01--XyZ-not-a-boundary"
    assert parts[0].content_type == "image/png"


def test_long_and_odd_filenames_are_cut_and_cleaned():
    parts = _read(_part("files", b"x", "a\x00b" + "c" * 500) + b"--XyZ--\r\n")
    assert parts[0].filename.startswith("abc") and len(parts[0].filename) == 200


@pytest.mark.parametrize(
    "body, words",
    [
        (_part("files", b"x") * 9 + b"--XyZ--\r\n", "too many form parts"),
        (_part("files", b"x"), "closing boundary"),
        (b"--XyZ\r\nContent-Type: x\r\n\r\nabc\r\n--XyZ--\r\n", "Content-Disposition"),
        (b"no boundary here at all", "malformed"),
    ],
)
def test_bad_bodies_raise(body, words):
    with pytest.raises(MultipartError, match=words):
        _read(body)


@pytest.mark.parametrize(
    "ctype",
    [None, "application/json", "multipart/form-data", "multipart/form-data; boundary=" + "a" * 300],
)
def test_content_type_must_be_multipart_with_boundary(ctype):
    with pytest.raises(MultipartError):
        boundary_of(ctype)
