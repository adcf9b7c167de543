"""Serving speed: PyTorch eager vs onnxruntime behind ``cnnkit serve``, same run, same machine.

Starts two real servers (``python -m cnnkit serve RUN --backend torch|onnx``) on 127.0.0.1
only, then, in alternating rounds so that load from other processes hits both alike:

1. model only: ``Predictor.predict_proba`` on one decoded image, in this process;
2. HTTP at batch 1: one client, one image per ``POST /predict``, latency p50/p99;
3. HTTP under load: 32 concurrent clients (keep-alive), throughput and latency p50/p99.

Every phase is bounded by a request count and a time limit. Results are the median over
rounds with the min-max spread, written as Markdown with the exact command and the CPU.

Usage:
    .venv/bin/python bench/serve.py RUN [--requests 300] [--clients 32] [--rounds 3]
        [--time-limit 60] [--out bench/results/serve.md]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("torch", "onnx")
HOST = "127.0.0.1"  # never anything else: this benchmark must not leave the machine


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="run folder (exported to model.onnx if needed)")
    p.add_argument("--requests", type=int, default=300, help="requests per phase and backend")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients in the load phase")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per phase at most")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.md")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="inference threads of each backend (1: robust on a busy machine)",
    )
    p.add_argument("--how", default="", help="how RUN was made (a command), for the results")
    return p.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start(run: Path, backend: str, threads: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "cnnkit",
        "serve",
        str(run),
        "--backend",
        backend,
        "--host",
        HOST,
        "--port",
        str(port),
        "--threads",
        str(threads),
    ]
    # A file, not a pipe: a full pipe would block the server. Closed with the process.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{backend} server exited: {log.read().decode()[-1500:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/health")
            health = json.loads(conn.getresponse().read())
            if health["backend"] != backend:
                raise RuntimeError(f"asked for {backend}, server runs {health['backend']}")
            return proc, port
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"{backend} server did not start in 120 s")


def _body(image: bytes) -> tuple[bytes, dict[str, str]]:
    head = b'--bench\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n\r\n'
    body = head + image + b"\r\n--bench--\r\n"
    return body, {"Content-Type": "multipart/form-data; boundary=bench"}


def _client(
    port: int, body: bytes, headers: dict, n: int, stop_at: float, out: list[float]
) -> None:
    """Send up to ``n`` requests on one keep-alive connection; append latencies (s) to out."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    for _ in range(n):
        if time.monotonic() > stop_at:
            break
        t = time.perf_counter()
        conn.request("POST", "/predict", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        out.append(time.perf_counter() - t)
    conn.close()


def http_phase(port: int, image: bytes, requests: int, clients: int, limit: float) -> dict:
    """``requests`` POST /predict split over ``clients`` threads: rate and latencies."""
    body, headers = _body(image)
    _client(port, body, headers, 10, time.monotonic() + limit, [])  # warm-up
    per, extra = divmod(requests, clients)
    lat: list[list[float]] = [[] for _ in range(clients)]
    stop_at = time.monotonic() + limit
    threads = [
        threading.Thread(
            target=_client, args=(port, body, headers, per + (i < extra), stop_at, lat[i])
        )
        for i in range(clients)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = np.array([x for chunk in lat for x in chunk]) * 1000
    return {
        "n": len(done),
        "rps": len(done) / wall,
        "p50_ms": float(np.percentile(done, 50)),
        "p99_ms": float(np.percentile(done, 99)),
    }


def model_phase(
    run: Path, backend: str, image: bytes, requests: int, limit: float, threads: int
) -> dict:
    """In-process latency of decode-free prediction on one image (no HTTP)."""
    import torch

    from cnnkit.serve.predictor import Predictor

    torch.set_num_threads(threads)
    pred = Predictor(run, backend=backend, threads=threads)
    x = pred.load(image)[None]
    for _ in range(10):
        pred.predict_proba(x)
    times = []
    stop_at = time.monotonic() + limit
    while len(times) < requests and time.monotonic() < stop_at:
        t = time.perf_counter()
        pred.predict_proba(x)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def _summary(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else f"{med:.2f}"


def _lscpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "lscpu not available"
    keep = (
        "Architecture",
        "Model name",
        "CPU(s):",
        "Thread(s) per core",
        "Core(s) per socket",
        "Socket(s)",
        "L3 cache",
        "Flags",
    )
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(keep)]
    return "\n".join(ln if not ln.startswith("Flags") else _short_flags(ln) for ln in lines)


def _short_flags(line: str) -> str:
    flags = line.split(":", 1)[1].split()
    wanted = [
        f
        for f in flags
        if f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    ]
    return f"Flags (speed-relevant):        {' '.join(wanted)}"


def run_bench(args: argparse.Namespace) -> dict:
    from cnnkit.runs import load_run
    from cnnkit.serve.export import export_onnx, reference_images

    run = args.run
    if not (run / "model.onnx").is_file():
        print(f"exporting {run} to ONNX first", flush=True)
        export_onnx(run)
    image = _image_bytes(run)
    servers = {b: _start(run, b, args.threads) for b in BACKENDS}
    rows: dict[str, dict[str, list[float]]] = {b: {} for b in BACKENDS}
    loads = [os.getloadavg()[0]]
    try:
        for r in range(args.rounds):
            for phase in ("model", "batch1", "load"):
                for b in BACKENDS if r % 2 == 0 else BACKENDS[::-1]:
                    res = _phase(phase, b, run, servers[b][1], image, args)
                    for k, v in res.items():
                        rows[b].setdefault(f"{phase}_{k}", []).append(v)
                    print(f"round {r + 1} {phase:6s} {b:5s} {res}", flush=True)
            loads.append(os.getloadavg()[0])
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    cfg = load_run(run).config
    _, where = reference_images(load_run(run), 1)
    return {
        "rows": rows,
        "loads": loads,
        "model": cfg["model"],
        "image_size": cfg["image_size"],
        "color_mode": cfg["color_mode"],
        "image_from": where,
    }


def _phase(phase: str, backend: str, run: Path, port: int, image: bytes, args) -> dict:
    if phase == "model":
        return model_phase(run, backend, image, args.requests, args.time_limit, args.threads)
    clients = 1 if phase == "batch1" else args.clients
    return http_phase(port, image, args.requests, clients, args.time_limit)


def _image_bytes(run: Path) -> bytes:
    """A real image of the run as uploaded bytes: its first validation image file, else its
    first validation image of a named dataset (``mnist-5k:train/9``) encoded as PNG."""
    import csv
    import io

    from PIL import Image

    from cnnkit.runs import load_run
    from cnnkit.serve.export import reference_images

    with open(run / "split.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["subset"] == "validation" and Path(row["path"]).is_file():
                return Path(row["path"]).read_bytes()
    images, where = reference_images(load_run(run), 1)
    if where == "random pixels":
        raise SystemExit(f"{run}: no readable validation image")
    chw = images[0]
    buf = io.BytesIO()
    Image.fromarray(chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)).save(buf, "PNG")
    return buf.getvalue()


def markdown(res: dict, args: argparse.Namespace, seconds: float) -> str:
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import machine, machine_line

    rows = res["rows"]
    h, w = res["image_size"]
    lines = [
        "# Serving: PyTorch eager vs onnxruntime",
        "",
        f"Model `{res['model']}` at {h}x{w} {res['color_mode']}, one real image file from the "
        "run's validation split per request. Two `cnnkit serve` processes on 127.0.0.1 (one per "
        f"backend), measured in {args.rounds} alternating rounds; each cell is the median over "
        "rounds (min-max in brackets).",
        "",
        "| backend | model only p50 ms | HTTP batch 1 p50 ms | p99 ms | req/s, 1 client "
        f"| req/s, {args.clients} clients | p50 ms under load | p99 ms under load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in BACKENDS:
        r = rows[b]
        name = "PyTorch eager" if b == "torch" else "onnxruntime"
        lines.append(
            f"| {name} | {_summary(r['model_p50_ms'])} "
            f"| {_summary(r['batch1_p50_ms'])} | {_summary(r['batch1_p99_ms'])} "
            f"| {_summary(r['batch1_rps'])} | {_summary(r['load_rps'])} "
            f"| {_summary(r['load_p50_ms'])} | {_summary(r['load_p99_ms'])} |"
        )
    speed = [
        t / o
        for t, o in zip(rows["torch"]["model_p50_ms"], rows["onnx"]["model_p50_ms"], strict=True)
    ]
    lines += [
        "",
        f"onnxruntime / PyTorch speed-up, model only at batch 1: {_summary(speed)}x.",
        "",
        "Requests per phase: "
        f"{args.requests} (bounded by {args.time_limit:g} s); {args.threads} inference "
        "thread(s) per backend (`cnnkit serve --threads`). The server runs one forward pass "
        "at a time and batches the requests that arrive meanwhile "
        "(`cnnkit.serve.batching.Coalescer`); decoding and HTTP overlap with it. Latency "
        "under load includes the time queued.",
        "",
        f"**The machine is shared**: {os.cpu_count()} CPU cores used by several engineers at "
        f"once; 1-minute load average during the run: "
        f"{', '.join(f'{x:.1f}' for x in res['loads'])}. Absolute numbers are noisy; the "
        "alternating rounds make the comparison between backends fairer, not the numbers "
        "exact.",
        "",
        f"Machine: {machine_line(machine())}; onnxruntime {_ort_version()}; "
        f"wall time {seconds:.0f} s.",
        "",
        "```",
        _lscpu(),
        "```",
        "",
        *([f"RUN was made with: `{args.how}`", ""] if args.how else []),
        "Command:",
        "",
        "```",
        " ".join([".venv/bin/python bench/serve.py", *map(shlex.quote, sys.argv[1:])]),
        "```",
        "",
    ]
    return "\n".join(lines)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    t0 = time.perf_counter()
    res = run_bench(args)
    text = markdown(res, args, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
