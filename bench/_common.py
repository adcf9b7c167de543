"""Shared benchmark helpers: the machine description and noise-aware timing windows.

Timing uses the peers' own helpers (``../shared/peers/common.py``: wait for a quiet
machine, count other processes' CPU use, median of clean windows) when they are present,
so cnnkit and the peers are measured the same way in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("CNNKIT_PEERS", ROOT.parent / "shared" / "peers"))
RESULTS = ROOT / "bench" / "results"
PEERS_PY = os.environ.get("CNNKIT_PEERS_PYTHON", str(ROOT / ".peers-venv" / "bin" / "python"))

if PEERS.is_dir():
    sys.path.insert(0, str(PEERS))
try:
    from common import Noise, timed_windows, wait_quiet  # type: ignore  # noqa: F401
except ImportError:  # peers folder missing: plain timing, no noise accounting
    Noise = None

    def wait_quiet(*a, **k):  # type: ignore[no-redef]
        return 0.0

    def timed_windows(run_window, n_clean=3, max_windows=6, thresh=0.15, label=""):  # type: ignore[no-redef]
        wins = []
        for _ in range(n_clean):
            t = time.perf_counter()
            n = run_window()
            dt = time.perf_counter() - t
            wins.append({"rate": n / dt, "secs": dt, "clean": True})
            print(f"  {label} window: {n / dt:9.1f} /s", flush=True)
        return statistics.median(w["rate"] for w in wins), wins


def machine() -> dict:
    """CPU model, flags that matter for speed choices, threads, torch version, load."""
    import torch

    from cnnkit.train.precision import cpu_flags, cpu_has_native_bf16, cpu_model, onednn_isa_cap

    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "avx512": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": "amx_bf16" in flags,
        "avx2": "avx2" in flags,
        "native_bf16": cpu_has_native_bf16(),
        "torch_isa": torch.backends.cpu.get_cpu_capability(),
        "onednn_cap": onednn_isa_cap(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def machine_line(m: dict) -> str:
    isa = (
        "AVX-512 + bf16"
        if m["avx512_bf16"]
        else ("AVX-512" if m["avx512"] else ("AVX2 only" if m["avx2"] else "no AVX2"))
    )
    if m.get("onednn_cap"):  # an AVX2-only machine reproduced with ONEDNN_MAX_CPU_ISA
        isa += f"; capped: oneDNN {m['onednn_cap']}, ATen {m.get('torch_isa')}"
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    torch = f"torch {m['torch']}, {m['torch_threads']} threads"
    return f"{m['cpu']} ({m['cores']} cores, {isa}){gpu}; {torch}"


def peers_python() -> str | None:
    """The Python of the peers' TensorFlow venv, if it exists and imports keras."""
    if not Path(PEERS_PY).is_file():
        return None
    ok = subprocess.run([PEERS_PY, "-c", "import keras, tensorflow"], capture_output=True)
    return PEERS_PY if ok.returncode == 0 else None


def run_peer(script: str, *args: str, env: dict | None = None, timeout: int = 1800) -> str:
    """Run a peer script with the peers' venv; returns its stdout (raises on failure)."""
    py = peers_python()
    if py is None:
        raise RuntimeError(
            "TensorFlow peers venv missing "
            "(python3 -m venv .peers-venv && .peers-venv/bin/pip install tensorflow)"
        )
    e = dict(os.environ, KERAS_BACKEND="tensorflow", **(env or {}))
    out = subprocess.run(
        [py, str(PEERS / script), *args],
        cwd=PEERS,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{script} failed: {out.stderr[-2000:]}")
    return out.stdout


def isa_env() -> str:
    """The ISA-capping environment in force (``"NAME=value ..."``), to put before a command."""
    return " ".join(
        f"{k}={os.environ[k]}"
        for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
        if k in os.environ
    )


def command_line() -> str:
    """This benchmark's command as typed, with any ISA-capping environment in front."""
    env = isa_env()
    cmd = " ".join([".venv/bin/python", *sys.argv])
    return f"{env} {cmd}" if env else cmd


def write_result(name: str, markdown: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    return path
