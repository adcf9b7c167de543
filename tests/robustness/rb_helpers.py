"""Helpers of the robustness tests (a module with a unique name: ``conftest`` is ambiguous)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image


def record(name: str, **values) -> None:
    """Add ``values`` under ``name`` to ``$CNNKIT_ROBUSTNESS_FIGURES`` (when it is set)."""
    target = os.environ.get("CNNKIT_ROBUSTNESS_FIGURES")
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = {**data.get(name, {}), **values}
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def band_folder(root: Path, per_class: int = 8, size: int = 28, seed: int = 0) -> Path:
    """Three classes of grey PNGs (a bright band on top, middle or bottom)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("top", "middle", "bottom")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size), dtype=np.uint8)
            band = slice(c * size // 3, (c + 1) * size // 3)
            img[band, :] = rng.integers(180, 255, img[band].shape, dtype=np.uint8)
            Image.fromarray(img).save(root / name / f"{i:02d}.png")
    return root


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a cnnkit subprocess: one thread, this interpreter's package."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("CNNKIT_DEBUG", None)
    env.update(extra)
    return env


def without_file_override() -> None:
    """``preexec_fn``: a child run as root loses the capabilities that let root read any file
    (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``), so ``chmod 000`` holds for it as for a
    user. A no-op for other users."""
    if os.getuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone from what exec grants
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_cnnkit(*args: str, unprivileged: bool = False, **env: str):
    """``python -m cnnkit ARGS`` in a child (``unprivileged``: file permissions hold even for
    root); returns the CompletedProcess with text stdout/stderr (file names kept as bytes
    escapes where they are not UTF-8)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args], env=child_env(**env), capture_output=True,
        text=True, errors="surrogateescape", timeout=600,
        preexec_fn=without_file_override if unprivileged else None,
    )  # fmt: skip


def serve_in_thread(app, deadline_s: float = 10.0):
    """Run ``app`` with uvicorn and cnnkit's protocol (header deadline and keep-alive
    ``deadline_s``) on a free port of 127.0.0.1 in a daemon thread; a context manager
    yielding the port."""
    import contextlib
    import threading
    import time

    import uvicorn

    from cnnkit.serve.protocol import protocol_class

    @contextlib.contextmanager
    def running():
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="critical", timeout_keep_alive=deadline_s,
            http=protocol_class(deadline_s), h11_max_incomplete_event_size=16 * 1024,
        )  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        try:
            yield server.servers[0].sockets[0].getsockname()[1]
        finally:
            server.should_exit = True
            thread.join(timeout=30)

    return running()
