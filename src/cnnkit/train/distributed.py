"""Data-parallel training with PyTorch's own engine (DistributedDataParallel).

``cnnkit train ... --devices N`` relaunches itself under ``torch.distributed.run`` (the
engine behind ``torchrun``) with N local processes; ``torchrun --nnodes M
--nproc-per-node N -m cnnkit train ...`` works unchanged across machines. Inside a
process group (``WORLD_SIZE`` > 1 in the environment) the trainer:

- uses gloo on CPU and nccl on CUDA (one GPU per local rank);
- keeps the *global* batch size: each rank takes every ``world``-th image of the same
  seeded batch, DDP averages the gradients, so one step equals a single-process step on
  the whole batch (within fp32 rounding);
- builds the decode cache once (rank 0 first, then the others memory-map it);
- lets only rank 0 write the run folder, logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def env_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


def init_from_env() -> torch.device:
    """Join the process group torchrun described in the environment; returns this rank's device."""
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def shutdown(clean: bool = True) -> None:
    """Leave the process group.

    After a clean run the ranks meet at a barrier first: a rank that tears down gloo while
    another still talks to it can abort the other ("terminate called without an active
    exception"). A rank leaving on an error skips the barrier (the others may be inside a
    collective that will never match it, and would wait for the 30-minute timeout); its
    closed connections make their pending collectives fail at once instead.
    """
    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (identity in one process)."""
    if rank_world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if rank_world()[1] == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.broadcast(t, src=0)
    return bool(t.item())


def all_true(flag: bool) -> bool:
    """True only if ``flag`` holds on every rank."""
    if rank_world()[1] == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def wrap(model: torch.nn.Module, device: torch.device, sync_bn: bool = False) -> torch.nn.Module:
    """DDP-wrap ``model`` inside a process group (unchanged in one process).

    Raises:
        ValueError: ``sync_bn`` on CPU (PyTorch's SyncBatchNorm needs CUDA).
    """
    if rank_world()[1] == 1:
        return model
    if sync_bn:
        if device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA devices (SyncBatchNorm has no CPU kernel)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def launch_command(spec: Path, nproc: int) -> list[str]:
    """The ``torch.distributed.run`` command that runs the job in ``spec`` on ``nproc``
    local processes (:mod:`cnnkit.train.worker`)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "cnnkit.train.worker",
        str(spec),
    ]


def launch(job: dict[str, Any], nproc: int) -> int:
    """Run ``job`` (a train or resume, see :mod:`cnnkit.train.worker`) data-parallel on
    ``nproc`` local processes; returns the exit code.

    Each process gets ``cores / nproc`` threads unless ``OMP_NUM_THREADS`` says otherwise.
    """
    if nproc < 1:
        raise ValueError(f"devices must be a positive int. Received: devices={nproc}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    with tempfile.TemporaryDirectory(prefix="cnnkit-ddp-") as tmp:
        spec = Path(tmp) / "job.json"
        spec.write_text(json.dumps(job), encoding="utf-8")
        return subprocess.run(launch_command(spec, nproc), env=env).returncode


@contextlib.contextmanager
def process_group() -> Iterator[torch.device | None]:
    """Inside ``torchrun`` (``WORLD_SIZE`` > 1): join the group for the body and leave it
    after (at once on an error, see :func:`shutdown`); yields this rank's device. Elsewhere
    a no-op yielding None."""
    if env_world_size() == 1:
        yield None
        return
    device = init_from_env()
    try:
        yield device
    except BaseException:
        shutdown(clean=False)
        raise
    shutdown()


def run_dir_ready(path: Path) -> None:
    """Wait until rank 0 has prepared the run folder."""
    barrier()
    if not Path(path).is_dir():
        raise RuntimeError(
            f"rank {rank_world()[0]}: run folder {path} missing after rank 0 set it up"
        )


def local_batch(idx: torch.Tensor) -> torch.Tensor:
    """This rank's share of a global batch of indices (every ``world``-th one)."""
    rank, world = rank_world()
    return idx if world == 1 else idx[rank::world]


def sum_metrics(loss_sum: float, correct: float, seen: float) -> tuple[float, float, float]:
    s = all_sum([loss_sum, correct, seen])
    return s[0], s[1], s[2]


def describe() -> dict[str, Any]:
    rank, world = rank_world()
    return {"world_size": world, "backend": dist.get_backend() if world > 1 else None}
