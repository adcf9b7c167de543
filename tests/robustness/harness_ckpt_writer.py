"""Write checkpoints in a loop until killed: ``python harness_ckpt_writer.py PATH START``.

Each checkpoint (about 1 MB, fsynced, via ``cnnkit.train.checkpoint.save_checkpoint``) holds
its number ``i`` in three places; after each one is complete a line ``i`` goes to stdout.
"""

from __future__ import annotations

import sys

import torch

from cnnkit.train.checkpoint import save_checkpoint


def main(path: str, start: str) -> None:
    i = int(start)
    while True:
        i += 1
        save_checkpoint(path, {"i": i, "w": torch.full((250_000,), float(i)), "tail": i})
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:3])
