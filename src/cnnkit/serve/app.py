"""The HTTP prediction server: FastAPI app with a JSON API and a small web page.

Routes:

- ``POST /predict`` (multipart field ``files``, one or more images; ``?top_k=3``): the same
  JSON as ``cnnkit predict --json``. When every upload fails to decode the answer is 422
  ``{"error": ..., "results": [...]}``.
- ``POST /explain`` (multipart field ``file``; ``?method=gradcam&class_name=...``): a Grad-CAM
  overlay PNG of the image as the model sees it; the prediction is in ``X-Cnnkit-*`` headers.
- ``GET /health``: status, backend (``onnx`` or ``torch``) and the run's preprocessing.
- ``GET /`` and ``GET /static/NAME``: the page, from an allow-list of the files shipped in
  ``cnnkit/serve/static`` (read once at start; no path ever reaches the file system).

Every error is ``{"error": "..."}`` with a 4xx status. Uploads stay in memory (see
:mod:`cnnkit.serve.multipart`); the body limit is :class:`cnnkit.serve.middleware.BodyLimit`.
"""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import threading
import urllib.parse
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cnnkit import __version__
from cnnkit.errors import CnnkitError, ModelOutputError
from cnnkit.explain import METHODS, cam_note, gradcam, overlay_png
from cnnkit.runs import LoadedRun, load_run
from cnnkit.serve.middleware import (
    BodyLimit,
    ConcurrencyLimit,
    HostAllowList,
    InternalErrors,
    SecurityHeaders,
)
from cnnkit.serve.multipart import MultipartError, Part, read_parts
from cnnkit.serve.onnx_backend import onnxruntime_available
from cnnkit.serve.predictor import Predictor

log = logging.getLogger("cnnkit.serve")

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """Limits and choices of the server.

    Attributes:
        backend: ``auto`` (onnxruntime when ``RUN/model.onnx`` exists and onnxruntime
            imports, else PyTorch), ``torch`` or ``onnx``.
        max_upload_mb: largest request body, MiB (``--max-upload-mb``).
        max_files: most images in one ``/predict`` request.
        max_pixels: larger images are refused as decompression bombs (width x height).
        max_parts: most multipart parts in one request.
        threads: inference threads (None = the library defaults); also sets PyTorch's
            process-wide thread count.
        body_timeout_s: a request body not received within this time is answered 408
            (clients that trickle bytes cannot hold a worker forever).
        max_concurrent: most requests handled at once; more are answered 503 (idle
            connections do not count; ``/health`` always answers).
        allowed_hosts: accepted ``Host`` header names (None = any); ``cnnkit serve`` on a
            loopback address allows only the local names (against DNS rebinding).
    """

    backend: str = "auto"
    max_upload_mb: float = 10.0
    max_files: int = 32
    max_pixels: int = 40_000_000
    max_parts: int = 64
    threads: int | None = None
    body_timeout_s: float = 60.0
    max_concurrent: int = 256
    allowed_hosts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"backend must be auto, torch or onnx. Received: {self.backend!r}")
        if not self.max_upload_mb > 0:
            raise ValueError(f"max_upload_mb must be > 0. Received: {self.max_upload_mb}")
        if not self.body_timeout_s > 0:
            raise ValueError(f"body_timeout_s must be > 0. Received: {self.body_timeout_s}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1. Received: {self.threads}")
        for name in ("max_files", "max_pixels", "max_parts", "max_concurrent"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1. Received: {getattr(self, name)}")

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * (1 << 20))


class BodyTimeout(Exception):
    """The request body did not arrive in time (answered with 408)."""


def choose_backend(run_dir: Path, requested: str) -> tuple[str, str]:
    """``(backend, reason)`` for a run folder and ``auto``/``torch``/``onnx``."""
    if requested != "auto":
        return requested, f"asked for {requested}"
    if not (run_dir / "model.onnx").is_file():
        return "torch", "no model.onnx in the run folder (cnnkit export RUN makes one)"
    if not onnxruntime_available():
        return "torch", "onnxruntime is not installed"
    return "onnx", "model.onnx found and onnxruntime installed"


def _load_predictor(run: Any, requested: str, threads: int | None) -> tuple[Predictor, str]:
    if threads:
        torch.set_num_threads(int(threads))
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    backend, reason = choose_backend(loaded.path, requested)
    try:
        return Predictor(loaded, backend=backend, threads=threads), reason
    except CnnkitError as e:
        if requested != "auto":
            raise
        log.warning("falling back to PyTorch: %s", e)
        return Predictor(loaded, backend="torch"), f"model.onnx not used: {e}"


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The shipped page files, read once: name -> (bytes, content type)."""
    folder = resources.files("cnnkit.serve") / "static"
    out = {}
    for entry in folder.iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in STATIC_TYPES:
            out[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return out


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """The API's error answer: ``{"error": message}`` with ``status``."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(run: Any, options: ServeOptions | None = None) -> FastAPI:
    """The server for a run folder (or :class:`cnnkit.runs.LoadedRun`).

    Args:
        run: the run to serve.
        options: limits and backend (default :class:`ServeOptions`).

    Returns:
        A FastAPI (ASGI) app; serve it with uvicorn or test it with TestClient.

    Raises:
        RunFolderError: ``run`` is not a usable run folder.
        CnnkitError: ``backend="onnx"`` and ``model.onnx`` cannot be used.
    """
    opts = options or ServeOptions()
    predictor, reason = _load_predictor(run, opts.backend, opts.threads)
    state = _State(predictor, reason, opts)
    app = FastAPI(title="cnnkit", version=_version(), docs_url=None, redoc_url=None)
    app.state.cnnkit = state
    _add_error_handlers(app)
    _add_routes(app, state)
    # Added innermost first: SecurityHeaders wraps every answer, InternalErrors' 500 too.
    app.add_middleware(BodyLimit, max_bytes=opts.max_bytes)
    app.add_middleware(ConcurrencyLimit, limit=opts.max_concurrent)
    if opts.allowed_hosts is not None:
        app.add_middleware(HostAllowList, hosts=tuple(opts.allowed_hosts))
    app.add_middleware(InternalErrors)
    app.add_middleware(SecurityHeaders)
    return app


def _version() -> str:
    return __version__


class _State:
    """What the routes share: the predictor, a private model copy for Grad-CAM, the page."""

    def __init__(self, predictor: Predictor, reason: str, opts: ServeOptions) -> None:
        self.predictor = predictor
        self.reason = reason
        self.opts = opts
        self.static = _static_files()
        # Grad-CAM hooks the model it runs on; its own copy keeps /predict unaffected.
        self.cam_model = copy.deepcopy(predictor.run.model).eval()
        self.cam_lock = threading.Lock()

    def health(self) -> dict[str, Any]:
        run = self.predictor.run
        return {
            "status": "ok",
            "backend": self.predictor.backend,
            "backend_reason": self.reason,
            "model": run.config.get("model"),
            "run": run.path.name,
            "class_names": run.class_names,
            "image_size": list(run.image_size),
            "color_mode": run.color_mode,
            "max_upload_mb": self.opts.max_upload_mb,
            "max_files": self.opts.max_files,
            "threads": self.opts.threads,
            "cnnkit_version": _version(),
        }


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error(exc.status_code, "not found" if exc.status_code == 404 else message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "query")
        return error(422, f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(MultipartError)
    async def _multipart(_: Request, exc: MultipartError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(BodyTimeout)
    async def _slow(_: Request, exc: BodyTimeout) -> JSONResponse:
        return error(408, str(exc))


UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            }
        },
    }
}
EXPLAIN_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    },
    "responses": {"200": {"description": "Grad-CAM overlay", "content": {"image/png": {}}}},
}


def _add_routes(app: FastAPI, state: _State) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return _static_response(state, "index.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return _static_response(state, name)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return state.health()

    @app.post("/predict", openapi_extra=UPLOAD_DOC)
    async def predict(request: Request, top_k: int = Query(3, ge=1, le=1000)) -> Response:
        uploads = await _uploads(request, state, "files", state.opts.max_files)
        results = await run_in_threadpool(
            state.predictor.predict_bytes, uploads, top_k, state.opts.max_pixels
        )
        if all("error" in r for r in results):
            return error(422, _failed_message(results), results=results)
        return JSONResponse(results)

    @app.post("/explain", openapi_extra=EXPLAIN_DOC)
    async def explain(
        request: Request, method: str = Query("gradcam"), class_name: str | None = Query(None)
    ) -> Response:
        if method not in METHODS:
            return error(422, f"method must be one of {list(METHODS)}. Received: {method!r}")
        target = _class_index(state, class_name)
        if isinstance(target, Response):
            return target
        ((name, data),) = await _uploads(request, state, "file", 1)
        return await run_in_threadpool(_explain, state, name, data, method, target)


def _static_response(state: _State, name: str) -> Response:
    entry = state.static.get(name)
    if entry is None:
        return error(404, "not found")
    body, media_type = entry
    return Response(body, media_type=media_type, headers={"cache-control": "no-cache"})


async def _uploads(
    request: Request, state: _State, field: str, most: int
) -> list[tuple[str, bytes]]:
    """The file parts named ``field`` (at least one, at most ``most``) as ``(name, bytes)``.

    Raises:
        MultipartError: not a multipart form, no such part, or too many.
    """
    reading = read_parts(
        request.headers.get("content-type"), request.stream(), state.opts.max_parts
    )
    try:
        parts = await asyncio.wait_for(reading, state.opts.body_timeout_s)
    except asyncio.TimeoutError:
        raise BodyTimeout(
            f"the request body did not arrive within {state.opts.body_timeout_s:g} s"
        ) from None
    files = [p for p in parts if p.name == field or (field == "file" and p.name == "files")]
    if not files:
        raise MultipartError(_no_file_message(parts, field))
    if len(files) > most:
        raise MultipartError(
            f"at most {most} file(s) per request in the field {field!r}. Received: {len(files)}"
        )
    return [(_upload_name(p, i), bytes(p.data)) for i, p in enumerate(files)]


def _upload_name(part: Part, index: int) -> str:
    return part.filename or f"upload-{index + 1}"


def _no_file_message(parts: list[Part], field: str) -> str:
    if not parts:
        return f"no file uploaded: send images in the multipart field {field!r}"
    names = sorted({p.name for p in parts})[:5]
    return f"no field {field!r} in the form. Received fields: {names}"


def _failed_message(results: list[dict[str, Any]]) -> str:
    head = "; ".join(r["error"] for r in results[:3])
    more = f" (and {len(results) - 3} more)" if len(results) > 3 else ""
    return f"no upload could be predicted: {head}{more}"


def _class_index(state: _State, class_name: str | None) -> int | None | Response:
    if class_name is None or class_name == "":
        return None
    names = state.predictor.class_names
    if class_name not in names:
        return error(422, f"class_name must be one of {names}. Received: {class_name!r}")
    return names.index(class_name)


def _explain(state: _State, name: str, data: bytes, method: str, target: int | None) -> Response:
    """Grad-CAM of one upload, drawn over the image at the model's input size (enlarged)."""
    predictor = state.predictor
    buf = io.BytesIO(data)
    buf.name = name
    try:
        if not data:
            raise CnnkitError(f"{name}: empty (0 bytes)")
        image = predictor.load(buf, max_pixels=state.opts.max_pixels)
    except (CnnkitError, OSError, ValueError) as e:
        return error(422, str(e).splitlines()[0])
    x = predictor.run.preprocess(np.array(image))
    try:
        with state.cam_lock:
            res = gradcam(state.cam_model, x, target, None, method)
    except ModelOutputError as e:  # damaged weights: the server's fault, said in one line
        return error(500, f"{name}: {e}")
    target_name = predictor.class_names[int(res.target_class[0])]
    note = cam_note(res.cam[0], target_name)
    shown = display_image(image)
    # A map that locates nothing would be one uniform colour: the image itself, and the note.
    png = _png(shown) if note else overlay_png(shown, res.cam[0].numpy())
    label = int(res.labels[0])
    headers = {
        "x-cnnkit-label": urllib.parse.quote(predictor.class_names[label]),
        "x-cnnkit-probability": f"{float(res.probabilities[0, label]):.6f}",
        "x-cnnkit-target-class": urllib.parse.quote(
            predictor.class_names[int(res.target_class[0])]
        ),
        "x-cnnkit-target-layer": urllib.parse.quote(res.target_layer),
    }
    if note:
        headers["x-cnnkit-note"] = urllib.parse.quote(note)
    return Response(png, media_type="image/png", headers=headers)


def _png(image: np.ndarray) -> bytes:
    """RGB PNG bytes (as the heatmaps are) of a uint8 ``(C, H, W)`` image, C = 1 or 3."""
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
    hwc = rgb.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc)).save(buf, format="PNG")
    return buf.getvalue()


def display_image(image: np.ndarray, side: int = 320) -> np.ndarray:
    """The model-size image enlarged so its long side is ``side`` pixels (RGB or grey).

    Shape:
        ``(C, H, W)`` uint8 -> ``(C', H', W')`` uint8 with ``C'`` 1 or 3 (alpha dropped).
    """
    chw = image[:3] if image.shape[0] == 4 else image
    h, w = chw.shape[1:]
    scale = max(1.0, side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    hwc = chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)  # (C, H, W) -> (H, W[, C])
    # Small inputs (digits) stay crisp; larger ones are enlarged smoothly.
    resample = Image.Resampling.NEAREST if max(h, w) <= 64 else Image.Resampling.BICUBIC
    big = np.asarray(Image.fromarray(np.ascontiguousarray(hwc)).resize(size, resample))
    return big[None] if big.ndim == 2 else big.transpose(2, 0, 1)  # back to (C, H, W)
