"""Data-parallel training: two gloo processes equal one process on the whole batch."""

import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from cnnkit.train import TrainConfig, fit
from cnnkit.train.distributed import launch_command, shutdown


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 255, (16, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(
        16
    ) % 3


CFG = dict(
    data="toy",
    epochs=1,
    batch_size=8,
    max_steps_per_epoch=2,
    precision="fp32",
    schedule="none",
    optimizer="adam",
    lr=0.05,
)


def _worker(rank, world, rdzv, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdzv}", rank=rank, world_size=world)
    try:
        model = _net()
        fit(model, _data(), None, TrainConfig(**CFG), device="cpu")
        torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
    finally:
        shutdown()


def test_two_ranks_match_one_process(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(2, str(tmp_path / "rdzv"), str(tmp_path)), nprocs=2, join=True)
    single = _net()
    fit(single, _data(), None, TrainConfig(**CFG), device="cpu")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    moved = False
    for k, v in single.state_dict().items():
        assert torch.equal(r0[k], r1[k]), f"ranks differ at {k}"
        torch.testing.assert_close(r0[k], v, rtol=1e-5, atol=1e-6)
        moved |= not torch.equal(v, _net().state_dict()[k])
    assert moved  # the step really changed the weights


def _failing_worker(rank, rdzv, q):
    from datetime import timedelta

    dist.init_process_group(
        "gloo", init_method=f"file://{rdzv}", rank=rank, world_size=2,
        timeout=timedelta(seconds=120),
    )  # fmt: skip
    t0 = time.monotonic()
    try:
        if rank == 1:
            time.sleep(0.5)
            raise RuntimeError("rank 1 failed")
        dist.all_reduce(torch.ones(3))  # never matched by rank 1
        q.put((rank, "finished", time.monotonic() - t0))
    except RuntimeError as e:
        q.put((rank, str(e)[:40], time.monotonic() - t0))
        shutdown(clean=False)


def test_a_failing_rank_releases_the_others_at_once(tmp_path):
    """A rank leaving on an error must not leave the others waiting for the timeout."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_failing_worker, args=(r, str(tmp_path / "rdzv"), q)) for r in (0, 1)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    results = {}
    while not q.empty():
        rank, what, seconds = q.get()
        results[rank] = (what, seconds)
    assert results[1][0] == "rank 1 failed"
    assert results[0][0] != "finished" and results[0][1] < 30, results


def test_launch_command_runs_the_worker_on_n_processes(tmp_path):
    cmd = launch_command(tmp_path / "job.json", 2)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc-per-node=2" in cmd
    assert cmd[-3:] == ["-m", "cnnkit.train.worker", str(tmp_path / "job.json")]


@pytest.mark.slow
def test_devices_2_writes_a_normal_run_folder(tmp_path):
    import numpy as np
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(8):
            v = 40 if c == "a" else 200
            Image.fromarray(np.full((28, 28), v, np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    run = tmp_path / "run"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnkit",
            "train",
            str(tmp_path / "data"),
            "--out",
            str(run),
            "--devices",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--no-report",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    import json

    cfg = json.loads((run / "config.json").read_text())
    assert cfg["distributed"] == {"world_size": 2, "backend": "gloo"}
    for name in ("model.safetensors", "metrics.json", "history.csv", "split.csv"):
        assert (run / name).is_file()


@pytest.mark.slow
def test_devices_2_from_python_writes_the_same_run_folder(tmp_path):
    """The library launches the processes itself: Python users get data-parallel runs too."""
    import numpy as np
    from PIL import Image

    from cnnkit.train import train_run

    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(8):
            v = 40 if c == "a" else 200
            Image.fromarray(np.full((28, 28), v, np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    config = TrainConfig(data=str(tmp_path / "data"), devices=2, epochs=1, batch_size=4)
    res = train_run(config, tmp_path / "run", progress=False)
    assert res.metrics["n"] == 3 and len(res.history) == 1  # round(0.2 * 16) validate
    import json

    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["distributed"] == {"world_size": 2, "backend": "gloo"}
