"""Bad uploads against the FastAPI app (in-process): never a 5xx, ``/health`` fine afterwards."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rb_helpers import record

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from cnnkit.serve.app import ServeOptions, create_app  # noqa: E402

BOUNDARY = "rb0undary"
LIMIT_MB = 1


def _png(side: int = 28) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = BOUNDARY) -> bytes:
    body = b""
    for field, filename, data in parts:
        disp = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        body += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def _raw_requests() -> list[tuple[str, str, dict, bytes]]:
    """Protocol-level abuse: ``(name, path, headers, body)``."""
    mp = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    good = _multipart([("files", "a.png", _png())])
    many = _multipart([("files", f"{i}.png", _png()) for i in range(40)])
    parts = _multipart([("x", None, b"1")] * 80)
    one = _multipart([("file", "a.png", _png())])
    long_boundary = "multipart/form-data; boundary=" + "b" * 200
    return [
        ("no body", "/predict", {}, b""),
        ("json body", "/predict", {"content-type": "application/json"}, b'{"files": []}'),
        ("urlencoded", "/predict", {"content-type": "application/x-www-form-urlencoded"}, b"a=1"),
        ("no boundary", "/predict", {"content-type": "multipart/form-data"}, good),
        ("wrong boundary", "/predict", {"content-type": "multipart/form-data; boundary=zz"}, good),
        ("cut body", "/predict", mp, good[: len(good) // 2]),
        ("no closing boundary", "/predict", mp, good[:-10]),
        ("garbage body", "/predict", mp, bytes(range(256)) * 8),
        ("empty multipart", "/predict", mp, f"--{BOUNDARY}--\r\n".encode()),
        ("wrong field", "/predict", mp, _multipart([("image", "a.png", _png())])),
        ("text field only", "/predict", mp, _multipart([("files", None, b"hello")])),
        ("too many files", "/predict", mp, many),
        ("too many parts", "/predict", mp, parts),
        ("bad header line", "/predict", mp, good.replace(b"Content-Disposition", b"Cont\x00ent")),
        ("huge boundary", "/predict", {"content-type": long_boundary}, good),
        ("top_k zero", "/predict?top_k=0", mp, good),
        ("top_k text", "/predict?top_k=abc", mp, good),
        ("top_k huge", "/predict?top_k=99999999999999999999", mp, good),
        ("explain bad method", "/explain?method=evil", mp, one),
        ("explain bad class", "/explain?class_name=%00", mp, one),
        (
            "explain two files",
            "/explain",
            mp,
            _multipart([("file", "a.png", _png()), ("file", "b.png", _png())]),
        ),  # fmt: skip
        ("content-length lies", "/predict", {**mp, "content-length": "999999999"}, good),
        ("bad content-length", "/predict", {**mp, "content-length": "abc"}, good),
        ("traversal filename", "/predict", mp, _multipart([("files", "../../etc/passwd", _png())])),
        ("long filename", "/predict", mp, _multipart([("files", "x" * 5000 + ".png", _png())])),
        ("static traversal", "/static/..%2f..%2fapp.py", {}, b""),
        ("static unknown", "/static/does-not-exist.js", {}, b""),
    ]


@pytest.fixture(scope="module")
def client(tiny_run):
    app = create_app(tiny_run, ServeOptions(backend="torch", max_upload_mb=LIMIT_MB, max_files=8))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _check(resp, name: str) -> None:
    assert resp.status_code < 500, f"{name}: {resp.status_code} {resp.text[:300]}"
    if resp.status_code >= 400 and resp.headers.get("content-type", "").startswith("application"):
        assert "error" in resp.json(), name


def test_bad_uploads_never_give_5xx(client, corpus):
    _, entries = corpus
    bad = [e for e in entries if e.expect in ("fail", "any") and e.path.is_file()]
    tried = 0
    for e in bad:
        data = e.path.read_bytes()
        files = {"files": (e.path.name, data, "application/octet-stream")}
        resp = client.post("/predict", files=files)
        _check(resp, e.note)
        if e.expect == "fail" and len(data) < LIMIT_MB << 20:
            assert resp.status_code == 422 and e.path.name in resp.json()["error"], e.note
        tried += 1
    explain = [e for e in bad if e.expect == "fail"][::4]
    for e in explain:
        resp = client.post("/explain", files={"file": (e.path.name, e.path.read_bytes())})
        _check(resp, f"explain {e.note}")
        assert resp.status_code == 422
        tried += 1
    mixed = [("files", (e.path.name, e.path.read_bytes())) for e in bad[:7]]
    resp = client.post("/predict", files=[*mixed, ("files", ("ok.png", _png()))])
    _check(resp, "mixed")
    assert resp.status_code == 200 and sum("error" in r for r in resp.json()) >= 6
    for name, path, headers, body in _raw_requests():
        resp = client.post(path, headers=headers, content=body) if body or headers else (
            client.get(path) if path.startswith("/static") else client.post(path))  # fmt: skip
        _check(resp, name)
        if "filename" not in name:  # an odd upload name is only echoed back, never opened
            assert resp.status_code >= 400, f"{name}: accepted with {resp.status_code}"
        tried += 1
    big = _multipart([("files", "big.png", b"\x00" * (LIMIT_MB << 21))])
    resp = client.post("/predict", headers={"content-type": f"multipart/form-data; boundary="
                       f"{BOUNDARY}"}, content=big)  # fmt: skip
    assert resp.status_code == 413
    tried += 1
    assert tried >= 50
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ok = client.post("/predict", files={"files": ("ok.png", _png())})
    assert ok.status_code == 200 and ok.json()[0]["label"] in health.json()["class_names"]
    record("server", bad_uploads=tried, responses_5xx=0)


def _asgi_post(app, path: str, content_type: str, chunks) -> tuple[int, int]:
    """POST a streamed body (no Content-Length) straight to the ASGI app.

    Returns:
        ``(status, bytes the app pulled from the body)``.
    """
    import asyncio

    pulled, status = [0], [0]
    source = iter(chunks)

    async def receive():
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled[0] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"content-type", content_type.encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return status[0], pulled[0]


def test_memory_is_bounded_by_the_body_limit(client):
    """A chunked upload 16x over the limit: 413, read no further than the limit, small peak."""
    import tracemalloc

    chunk = b"\x00" * (64 << 10)
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n\r\n'
    n_chunks = 16 * (LIMIT_MB << 20) // len(chunk)
    chunks = (head.encode() if i == 0 else chunk for i in range(n_chunks))
    tracemalloc.start()
    try:
        status, pulled = _asgi_post(client.app, "/predict", f"multipart/form-data; "
                                    f"boundary={BOUNDARY}", chunks)  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    limit = LIMIT_MB << 20
    assert status == 413
    assert pulled <= limit + len(chunk), f"read {pulled} bytes of a body over the {limit} limit"
    assert peak < 3 * limit, f"peak Python memory {peak} bytes for a {limit}-byte limit"
    record("server", oversize_bytes_read=pulled, oversize_peak_bytes=peak)


def test_odd_but_valid_uploads_are_answered(client, corpus):
    """Every decodable corpus file gets a prediction; a sample also gets a Grad-CAM PNG."""
    _, entries = corpus
    good = [e for e in entries if e.expect == "ok" and e.path.is_file()]
    for e in good:
        resp = client.post("/predict", files={"files": ("f" + e.path.suffix, e.path.read_bytes())})
        assert resp.status_code == 200, (e.note, resp.text[:300])
        assert 0.0 <= resp.json()[0]["probability"] <= 1.0
    for e in good[::10]:
        resp = client.post("/explain", files={"file": ("f" + e.path.suffix, e.path.read_bytes())})
        assert resp.status_code == 200 and resp.content[:8] == b"\x89PNG\r\n\x1a\n", e.note
    record("server", good_uploads=len(good))
