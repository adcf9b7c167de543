"""The HTTP API in-process (TestClient): answers, limits and every error case as 4xx JSON."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cnnkit.serve.app import ServeOptions, create_app, display_image
from conftest import png_bytes


@pytest.fixture(scope="module")
def app(run_dir):
    return create_app(run_dir, ServeOptions(max_upload_mb=0.25, max_files=4))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _files(*items):
    return [("files", item) for item in items]


def assert_error(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_health_names_backend_and_preprocessing(client):
    r = client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["backend"] == "torch"
    assert "no model.onnx" in h["backend_reason"]
    assert h["class_names"] == ["bottom", "middle", "top"]
    assert h["image_size"] == [28, 28] and h["color_mode"] == "grayscale"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_predict_matches_predictor_on_real_images(client, run_dir, images):
    from cnnkit.serve.predictor import Predictor

    r = client.post(
        "/predict", files=_files(*[(f"{k}.png", v, "image/png") for k, v in images.items()])
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert [e["file"] for e in got] == ["top.png", "middle.png", "bottom.png"]
    want = Predictor(run_dir).predict_bytes([(f"{k}.png", v) for k, v in images.items()])
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w["label"] == g["file"][:-4]  # the trained net gets them right
        assert g["probability"] == pytest.approx(w["probability"], abs=1e-6)
        assert len(g["top_k"]) == 3 and g["top_k"][0]["label"] == g["label"]


def test_predict_top_k_and_mixed_failures(client, images):
    r = client.post(
        "/predict?top_k=1",
        files=_files(
            ("a.png", images["top"], "image/png"), ("b.png", b"not an image", "image/png")
        ),
    )
    assert r.status_code == 200
    good, bad = r.json()
    assert len(good["top_k"]) == 1 and good["label"] == "top"
    assert bad["file"] == "b.png" and "not-an-image" in bad["error"]


@pytest.mark.parametrize(
    "kwargs, status, words",
    [
        ({}, 400, "multipart"),  # no body at all
        ({"data": {"x": "1"}}, 400, "multipart"),  # url-encoded form
        ({"files": [("image", ("a.png", b"\x89PNG", "image/png"))]}, 400, "no field 'files'"),
        ({"files": _files(("a.png", b"", "image/png"))}, 422, "empty"),
        ({"files": _files(("a.png", b"GIF89a garbage" * 20, "image/png"))}, 422, "a.png"),
        ({"files": _files(*[(f"{i}.png", b"x", "image/png") for i in range(5)])}, 400, "at most 4"),
    ],
    ids=["no-body", "urlencoded", "wrong-field", "empty-file", "non-image", "too-many-files"],
)
def test_predict_bad_requests_are_4xx_json(client, kwargs, status, words):
    r = client.post("/predict", **kwargs)
    assert_error(r, status)
    assert words in r.json()["error"]


def test_thousands_of_empty_parts_are_refused(client):
    boundary = "b0undary"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="files"\r\n\r\n\r\n'
    body = (part * 3000 + f"--{boundary}--\r\n").encode()
    assert len(body) < 0.25 * 2**20  # under the body limit: the part limit must catch it
    r = client.post(
        "/predict",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(r, 400)
    assert "too many form parts" in r.json()["error"]


def test_malformed_and_truncated_multipart_are_400(client):
    ctype = {"content-type": "multipart/form-data; boundary=zz"}
    assert_error(client.post("/predict", content=b"garbage without boundary", headers=ctype), 400)
    cut = b'--zz\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\nabc'
    r = client.post("/predict", content=cut, headers=ctype)
    assert_error(r, 400)
    assert "closing boundary" in r.json()["error"]


def test_decompression_bomb_is_422(client):
    bomb = png_bytes(np.zeros((7000, 7000), np.uint8))  # 49 Mpx, tiny file
    assert len(bomb) < 200_000
    r = client.post("/predict", files=_files(("bomb.png", bomb, "image/png")))
    assert_error(r, 422)
    assert "too-large" in r.json()["error"]


def test_oversize_body_with_content_length_is_413(client, images):
    big = images["top"] + b"\0" * 300_000
    r = client.post("/predict", files=_files(("big.png", big, "image/png")))
    assert_error(r, 413)
    assert "0.25 MiB" in r.json()["error"]


def test_oversize_chunked_body_without_content_length_is_413(client):
    sent = []

    def chunks():
        yield b'--zz\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\n'
        for _ in range(100):  # 100 x 64 KiB = 6.4 MiB, far past the limit
            sent.append(1)
            yield b"\0" * 65536

    r = client.post(
        "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=zz"}
    )
    assert "content-length" not in r.request.headers
    assert_error(r, 413)
    assert client.get("/health").status_code == 200  # and the server is fine afterwards


def test_query_validation_is_json(client, images):
    r = client.post("/predict?top_k=0", files=_files(("a.png", images["top"], "image/png")))
    assert_error(r, 422)
    assert "top_k" in r.json()["error"]


def test_explain_returns_png_overlay_with_label(client, images):
    # ("top": the model finds positive evidence for it; for "middle" it finds none, see below)
    r = client.post("/explain", files={"file": ("t.png", images["top"], "image/png")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-cnnkit-label"] == "top" and "x-cnnkit-note" not in r.headers
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (320, 320) and img.mode == "RGB"
    assert np.asarray(img).std() > 5  # a real heatmap, not a flat colour


def test_explain_without_evidence_is_the_image_and_a_note(silent_run, images):
    """A map that is zero everywhere would blend into one uniform colour: the answer is the
    image itself, and ``x-cnnkit-note`` says why there is no heatmap (the page shows it)."""
    import urllib.parse

    with TestClient(create_app(silent_run), base_url="http://127.0.0.1") as c:
        r = c.post("/explain", files={"file": ("m.png", images["middle"], "image/png")})
    assert r.status_code == 200, r.text
    assert urllib.parse.unquote(r.headers["x-cnnkit-note"]) == "no positive evidence for bottom"
    shown = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
    assert shown.shape == (320, 320, 3)
    assert (shown[..., 0] == shown[..., 2]).all()  # the grey image, no colour wash over it


def test_explain_options_and_errors(client, images):
    f = {"file": ("m.png", images["middle"], "image/png")}
    r = client.post("/explain?class_name=top&method=gradcam%2B%2B", files=f)
    assert r.status_code == 200 and r.headers["x-cnnkit-target-class"] == "top"
    assert_error(client.post("/explain?class_name=nope", files=f), 422)
    assert_error(client.post("/explain?method=magic", files=f), 422)
    assert_error(client.post("/explain", files={"file": ("x.png", b"no", "image/png")}), 422)
    assert_error(client.post("/explain", files={"file": ("x.png", b"", "image/png")}), 422)
    two = [("file", ("a.png", images["top"], "image/png"))] * 2
    assert_error(client.post("/explain", files=two), 400)


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "text/javascript" in js.headers["content-type"]
    assert client.get("/static/style.css").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/../config.json",
        "/static/..%2fconfig.json",
        "/static/%2e%2e/config.json",
        "/static/%2e%2e%2fconfig.json",
        "/static/..%5cconfig.json",
        "/static/%252e%252e%252fconfig.json",
        "/static/",
        "/static/app.js/../../config.json",
        "/static//etc/passwd",
        "/config.json",
        "/static/__init__.py",
        "/model.safetensors",
    ],
)
def test_nothing_outside_the_static_folder_is_served(client, path):
    r = client.get(path)
    assert_error(r, 404)
    assert "class_names" not in r.text


def test_unknown_method_is_json(client):
    assert_error(client.delete("/predict"), 405)


def test_display_image_enlarges_and_drops_alpha():
    rgba = np.zeros((4, 10, 20), np.uint8)
    out = display_image(rgba, side=100)
    assert out.shape == (3, 50, 100)
    assert display_image(np.zeros((1, 400, 200), np.uint8)).shape == (1, 400, 200)


def test_options_are_validated():
    with pytest.raises(ValueError, match="backend"):
        ServeOptions(backend="tf")
    with pytest.raises(ValueError, match="max_upload_mb"):
        ServeOptions(max_upload_mb=0)
    with pytest.raises(ValueError, match="threads"):
        ServeOptions(threads=0)


def test_onnx_backend_is_chosen_and_agrees_with_torch(onnx_run, client, images):
    with TestClient(create_app(onnx_run), base_url="http://127.0.0.1") as onnx_client:
        health = onnx_client.get("/health").json()
        assert health["backend"] == "onnx" and "model.onnx found" in health["backend_reason"]
        files = _files(*[(f"{k}.png", v, "image/png") for k, v in images.items()])
        by_onnx = onnx_client.post("/predict", files=files).json()
    by_torch = client.post("/predict", files=files).json()
    for o, t in zip(by_onnx, by_torch, strict=True):
        assert o["label"] == t["label"]
        for a, b in zip(o["top_k"], t["top_k"], strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)


def test_backend_torch_can_be_forced_and_threads_set(onnx_run):
    import torch

    before = torch.get_num_threads()
    try:
        app = create_app(onnx_run, ServeOptions(backend="torch", threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    health = app.state.cnnkit.health()
    assert health["backend"] == "torch" and health["threads"] == 1


def test_host_allow_list_stops_dns_rebinding(run_dir):
    app = create_app(run_dir, ServeOptions(allowed_hosts=("127.0.0.1", "localhost", "::1")))
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/health").status_code == 200
        for host in ("localhost:8000", "[::1]:8000", "LOCALHOST"):
            assert c.get("/health", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""):
            r = c.get("/health", headers={"host": host})
            assert_error(r, 400)
            assert "Host header" in r.json()["error"]


def test_a_body_that_trickles_in_is_answered_408(run_dir):
    import asyncio

    app = create_app(run_dir, ServeOptions(body_timeout_s=0.3))
    sent: list[dict] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"multipart/form-data; boundary=zz"),
        ],
    }
    first = [b'--zz\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\nab']

    async def receive():
        if first:
            return {"type": "http.request", "body": first.pop(), "more_body": True}
        await asyncio.sleep(30)  # the rest never comes
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def call():
        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(call())
    assert sent[0]["status"] == 408
    assert b"did not arrive within 0.3 s" in sent[1]["body"]
