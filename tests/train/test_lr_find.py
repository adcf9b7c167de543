import json
import math

import numpy as np
import pytest
import torch

from cnnkit.train import TrainConfig
from cnnkit.train.lr_find import SPAN, find_lr, suggest


def _curve(lrs, drop_from, drop_to):
    """A loss flat at 2, falling between two rates, then diverging."""
    out = []
    for lr in lrs:
        if lr < drop_from:
            out.append(2.0)
        elif lr < drop_to:
            out.append(2.0 - 1.5 * math.log(lr / drop_from) / math.log(drop_to / drop_from))
        else:
            out.append(0.5 + 10 * math.log(lr / drop_to))
    return out


def test_the_suggestion_is_a_tenth_of_where_the_loss_leaves_its_minimum():
    lrs = list(np.geomspace(1e-6, 1, 100))
    lr, rule = suggest(lrs, _curve(lrs, 1e-4, 1e-2))
    assert rule == "edge / 10" and 1e-3 * 0.85 < lr <= 1e-3  # the minimum is the edge here
    # a loss that stays near its minimum up to 1e-1 (a batch-normalised net) allows 1e-2
    plateau = [
        min(v, 0.52) if 1e-2 <= r < 1e-1 else v
        for v, r in zip(_curve(lrs, 1e-4, 1e-2), lrs, strict=True)
    ]
    plateau = [
        0.5 + 10 * math.log(r / 1e-1) if r >= 1e-1 else v for v, r in zip(plateau, lrs, strict=True)
    ]
    lr, rule = suggest(lrs, plateau, usual=1e-3)
    assert rule == "edge / 10" and 1e-2 * 0.85 < lr <= 1e-2


def test_a_loss_that_never_falls_gives_the_usual_rate():
    lrs = list(np.geomspace(1e-6, 1, 60))
    rng = np.random.default_rng(0)
    flat = list(0.693 + 0.002 * rng.standard_normal(60))  # noise at chance, then nothing
    assert suggest(lrs, flat, usual=1e-3) == (1e-3, "no clear descent: the usual rate")
    assert suggest(lrs[:3], flat[:3], usual=1e-2)[0] == 1e-2  # too few steps


def test_a_suggestion_far_from_the_usual_rate_is_kept_within_span():
    lrs = list(np.geomspace(1e-9, 1e-3, 100))
    lr, rule = suggest(lrs, _curve(lrs, 1e-9, 1e-7), usual=1e-3)
    assert lr == pytest.approx(1e-3 / SPAN) and "kept within" in rule


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (torch.rand(n, 1, 12, 12, generator=g) * 60 + 60 + 100 * y[:, None, None, None]).to(
        torch.uint8
    )
    return x, y


def test_the_range_test_leaves_the_model_and_random_streams_as_they_were():
    from cnnkit.models import create_model

    torch.manual_seed(0)
    model = create_model("lenet5", input_size=(1, 12, 12), num_classes=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    cfg = TrainConfig(data="x", epochs=1, batch_size=16, precision="fp32")
    finding = find_lr(model, _data(), cfg, steps=40)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(state, torch.random.get_rng_state())
    assert 10 <= finding.steps <= 40 and len(finding.lrs) == len(finding.losses) == finding.steps
    assert 1e-4 <= finding.suggestion <= 1e-2 and finding.seconds > 0
    assert finding.lrs == sorted(finding.lrs)


def _folder(root, per_class=8, size=12):
    from PIL import Image

    for c, value in (("dark", 40), ("light", 210)):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(np.full((size, size), value + i, np.uint8)).save(root / c / f"{i}.png")
    return root


def test_a_default_run_finds_its_rate_sizes_its_length_and_records_both(tmp_path):
    from cnnkit.train import train_run

    config = TrainConfig(data=str(_folder(tmp_path / "data")), model="lenet5", batch_size=4,
                         image_size=(12, 12), max_steps_per_epoch=1)  # fmt: skip
    run = train_run(config, tmp_path / "run", progress=False).run_dir
    saved = json.loads((run / "config.json").read_text())
    found = json.loads((run / "lr_find.json").read_text())
    assert saved["requested_lr"] == "auto" and saved["lr"] == found["suggestion"]
    assert saved["training"]["lr_find"]["steps"] == found["steps"] == len(found["lrs"])
    assert saved["requested_epochs"] is None and saved["epochs"] == 60  # 1 step an epoch
    budget = saved["training"]["budget"]
    assert budget["patience"] == saved["early_stopping"] == 12
    stopping = saved["training"]["stopping"]
    assert stopping["epochs_run"] <= 60 and stopping["restored_epoch"] == stopping["best_epoch"]


def test_a_resumed_run_keeps_its_found_rate_and_a_stopped_one_is_finished(tmp_path):
    from cnnkit.errors import RunFolderError
    from cnnkit.train import resume_run, train_run

    config = TrainConfig(data=str(_folder(tmp_path / "data")), model="lenet5", batch_size=4,
                         image_size=(12, 12), max_steps_per_epoch=1, early_stopping=2,
                         seed=3)  # fmt: skip
    run = train_run(config, tmp_path / "run", progress=False).run_dir
    saved = json.loads((run / "config.json").read_text())
    done = saved["training"]["stopping"]["epochs_run"]
    if saved["training"]["stopping"]["stopped_epoch"]:
        with pytest.raises(RunFolderError, match=f"all its {done} epochs"):
            resume_run(run, progress=False)
    res = resume_run(run, overrides={"epochs": done + 2}, progress=False)
    again = json.loads((run / "config.json").read_text())
    assert again["lr"] == saved["lr"] and again["requested_lr"] == "auto"
    assert [r["epoch"] for r in res.history][-1] <= done + 2
    assert again["training"]["continued"] == [2]
