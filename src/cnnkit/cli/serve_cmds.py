"""``cnnkit export`` (ONNX, checked against PyTorch) and ``cnnkit serve`` (HTTP API + page)."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import typer

from cnnkit.cli._common import JSON_OPTION, emit, log


def export_cmd(
    run: Path = typer.Argument(..., help="Run folder."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Path | None = typer.Option(None, "--out", help="File to write (default RUN/model.onnx)."),
    tolerance: float = typer.Option(
        1e-4, "--tolerance", help="Largest allowed |onnxruntime - PyTorch| of probabilities."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Export RUN's model to ONNX and check it against PyTorch on the run's own images.

    Example: cnnkit export runs/fm
    """
    if fmt.lower() != "onnx":
        raise ValueError(f"--format must be onnx. Received: --format={fmt!r}")
    from cnnkit.serve.export import export_onnx

    log(f"exporting {run} to ONNX (torch.onnx.export, dynamo=True)...")
    result = export_onnx(run, out, tolerance=tolerance)
    emit(result.to_dict(), as_json, _export_text)


def _export_text(r: dict) -> str:
    return (
        f"checked {r['n_images']} images from the {r['images_from']} with onnxruntime: "
        f"max abs difference {r['max_abs_diff']:.2e} (probabilities), "
        f"{r['max_abs_diff_logits']:.2e} (logits), tolerance {r['tolerance']:g}\n"
        f"wrote {r['path']} (opset {r['opset']}, {r['bytes'] / 1e6:.2f} MB, "
        f"{r['seconds']:.1f} s)"
    )


def serve_cmd(
    run: Path = typer.Argument(..., help="Run folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (localhost by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_upload_mb: float = typer.Option(10.0, "--max-upload-mb", help="Largest request, MiB."),
    backend: str = typer.Option("auto", "--backend", help="auto | torch | onnx."),
    threads: int | None = typer.Option(None, "--threads", help="Inference threads (default: all)."),
) -> None:
    """Serve RUN over HTTP: POST /predict, POST /explain, GET /health and a web page at /.

    Example: cnnkit serve runs/fm --port 8000
    """
    import uvicorn

    from cnnkit.serve.app import ServeOptions, create_app
    from cnnkit.serve.protocol import HEADER_TIMEOUT_S, protocol_class

    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be in 0..65535. Received: --port={port}")
    # python-multipart logs every malformed upload at WARNING; the client gets a 400 already.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    hosts = ("127.0.0.1", "localhost", "::1", host) if _is_loopback(host) else None
    opts = ServeOptions(
        backend=backend, max_upload_mb=max_upload_mb, threads=threads, allowed_hosts=hosts
    )
    app = create_app(run, opts)
    health = app.state.cnnkit.health()
    if not _is_loopback(host):
        log(f"warning: --host {host} is reachable from other machines; there is no authentication")
    log(
        f"serving {run} ({health['model']}, backend {health['backend']}: "
        f"{health['backend_reason']}) on http://{_url_host(host)}:{port}/"
    )
    # The concurrency limit is the app's (requests, not connections: ServeOptions); the
    # protocol closes connections that do not send a complete header in time (slowloris).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=5,
        http=protocol_class(HEADER_TIMEOUT_S),
        h11_max_incomplete_event_size=16 * 1024,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``serve`` to the ``cnnkit`` app."""
    app.command("export")(export_cmd)
    app.command("serve")(serve_cmd)
