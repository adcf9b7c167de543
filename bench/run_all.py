"""Run every benchmark in turn (``make bench``); each writes bench/results/NAME.md."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = [
    "train.py",
    "tta.py",
    "pipeline.py",
    "warp.py",
    "prefetch.py",
    "accuracy.py",
    "ddp.py",
    "transfer.py",
    "explain.py",
    "genomics.py",
    "serve.py",
]

if __name__ == "__main__":
    failed = []
    for name in SCRIPTS:
        if not (HERE / name).is_file():
            continue
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
