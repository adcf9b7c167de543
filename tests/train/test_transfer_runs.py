"""Transfer runs end to end on a tiny folder; the feature cache's hits, misses and invalidation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.models import create_model
from cnnkit.runs import load_run
from cnnkit.train import TrainConfig, train_run
from cnnkit.train.transfer import cached_features, feature_cache_key

SIZE = 16
RUN_FILES = {"config.json", "split.csv", "model.safetensors", "history.csv", "metrics.json",
             "predictions.csv", "summary.txt"}  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three classes of 8 tiny RGB images, told apart by brightness."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "mid", "light")):
        (root / name).mkdir()
        for i in range(8):
            arr = rng.integers(0, 60, (SIZE, SIZE, 3)) + 90 * k
            Image.fromarray(arr.astype("uint8")).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A 'pretrained' resnet18 with a 3-class head (as many as the new task), torchvision-style."""
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3, input_size=(3, SIZE, SIZE))
    path = tmp_path_factory.mktemp("w") / "resnet18-source.pth"
    torch.save(model.state_dict(), path)
    return path


def _config(folder: Path, weights: Path, strategy: str, **kw) -> TrainConfig:
    base = dict(data=str(folder), model="resnet18", image_size=(SIZE, SIZE), epochs=2,
                batch_size=8, precision="fp32", pretrained=str(weights), strategy=strategy,
                validation_split=0.25)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _check_run(out: Path, strategy: str) -> dict:
    assert {p.name for p in out.iterdir()} >= RUN_FILES
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["strategy"] == strategy and cfg["pretrained"].endswith("resnet18-source.pth")
    assert cfg["transfer"]["frozen_changed"] == []  # frozen part bit-identical
    assert cfg["transfer"]["weights"]["fresh_head"] is True  # a new task: a new head
    assert "classifier replaced for the new task" in cfg["transfer"]["weights"]["notes"]
    run = load_run(out)  # strict safetensors load into create_model(...)
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "predictions.csv") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == metrics["n"] == 6
    files = [Path(p["path"]) for p in preds]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1) for p in files])
    probs = run.predict_proba(images)  # the saved model (base + head) reproduces the run's output
    assert np.allclose(
        probs.max(1).values.numpy(), [float(p["probability"]) for p in preds], atol=1e-4
    )
    assert "transfer: " + strategy in (out / "summary.txt").read_text()
    return cfg


def test_features_strategy_end_to_end_and_cache_hit_on_rerun(folder, weights, tmp_path):
    cfg = _config(folder, weights, "features", epochs=3)
    res = train_run(cfg, tmp_path / "a", progress=False)
    saved = _check_run(tmp_path / "a", "features")
    assert saved["transfer"]["feature_cache"]["hit"] is False
    assert saved["transfer"]["feature_cache"]["shape"] == [512, 1, 1]
    assert len(res.history) == 3
    assert res.history[0]["loss"] < np.log(3) + 0.1  # a zero head: uniform at the start
    train_run(cfg, tmp_path / "b", progress=False)
    again = json.loads((tmp_path / "b" / "config.json").read_text())
    assert again["transfer"]["feature_cache"]["hit"] is True
    base = {k: v for k, v in load_run(tmp_path / "a").model.state_dict().items() if "fc." not in k}
    src = torch.load(weights, weights_only=True)
    assert all(torch.equal(v, src[k]) for k, v in base.items())  # saved base = pretrained


def test_frozen_strategy_end_to_end_with_augmentation(folder, weights, tmp_path):
    cfg = _config(folder, weights, "frozen", augment={"horizontal_flip": True, "zoom_range": 0.1})
    train_run(cfg, tmp_path / "r", progress=False)
    saved = _check_run(tmp_path / "r", "frozen")
    assert (tmp_path / "r" / "augment.png").is_file()
    assert saved["transfer"]["trainable_params"] == 512 * 3 + 3
    assert saved["bn"] == "frozen"


def test_finetune_strategy_unfreezes_the_top_blocks(folder, weights, tmp_path):
    cfg = _config(folder, weights, "finetune", epochs=2, unfreeze=2, lr=None)
    res = train_run(cfg, tmp_path / "r", progress=False)
    saved = _check_run(tmp_path / "r", "finetune")
    t = saved["transfer"]
    assert t["unfrozen_blocks"] == ["layer3", "layer4"] and t["bn"] == "frozen"
    assert t["phases"]["head_epochs"] == 1 and t["phases"]["finetune_epochs"] == 1
    assert t["phases"]["base_lr"] < t["phases"]["head_lr"]  # discriminative rates
    assert saved["lr"] == pytest.approx(1e-2)  # lr=None: 10x Adam's usual rate for the head
    assert t["phases"]["base_lr"] == pytest.approx(1e-4)
    assert [r["epoch"] for r in res.history] == [1, 2]
    src = torch.load(weights, weights_only=True)
    state = load_run(tmp_path / "r").model.state_dict()
    assert torch.equal(state["layer2.0.conv1.weight"], src["layer2.0.conv1.weight"])
    assert not torch.equal(state["layer4.0.conv1.weight"], src["layer4.0.conv1.weight"])
    assert torch.equal(state["layer4.0.bn1.running_var"], src["layer4.0.bn1.running_var"])


def test_missing_weights_leave_no_run_folder(folder, tmp_path):
    cfg = _config(folder, tmp_path / "nothere.pth", "frozen")
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        train_run(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_existing_run_folder_is_refused_without_overwrite(folder, weights, tmp_path):
    from cnnkit.runs import create_run_dir

    create_run_dir(tmp_path / "r")
    (tmp_path / "r" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds a run; pass overwrite=True"):
        train_run(_config(folder, weights, "frozen"), tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "config.json").read_text() == "{}"


def test_pretrained_without_a_strategy_trains_every_layer(folder, weights, tmp_path):
    """No strategy: the whole network starts from the weights and trains (a full fine-tune)."""
    cfg = TrainConfig(data=str(folder), model="resnet18", pretrained=str(weights), epochs=1,
                      batch_size=4, image_size=(32, 32))  # fmt: skip
    res = train_run(cfg, tmp_path / "r", progress=False)
    start = torch.load(weights, weights_only=True)
    trained = load_run(res.run_dir).model.state_dict()
    assert not torch.equal(trained["conv1.weight"], start["conv1.weight"])


# --- the feature cache ------------------------------------------------------------------------


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("resnet18", num_classes=2, input_size=(3, SIZE, SIZE)).eval()


def test_feature_cache_miss_then_hit_with_identical_features():
    model = _tiny_model()
    images = np.random.default_rng(0).integers(0, 255, (5, 3, SIZE, SIZE), dtype=np.uint8)
    f1, hit1, p1 = cached_features(model, images, torch.device("cpu"))
    f2, hit2, p2 = cached_features(model, images, torch.device("cpu"))
    assert (hit1, hit2) == (False, True) and p1 == p2 and p1.is_file()
    assert torch.equal(f1, f2) and f1.shape == (5, 512, 1, 1)


def test_feature_cache_key_follows_weights_data_and_preprocessing_not_the_head():
    model = _tiny_model()
    images = np.zeros((2, 3, SIZE, SIZE), dtype=np.uint8)
    key = feature_cache_key(model, images)
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    assert feature_cache_key(model, images) == key  # the head is not part of the features
    changed = images.copy()
    changed[1, 0, 0, 0] = 1
    assert feature_cache_key(model, changed) != key
    with torch.no_grad():
        model.layer4[1].bn2.running_mean.add_(1e-3)
    assert feature_cache_key(model, images) != key
    from dataclasses import replace

    other = _tiny_model()
    other.card = replace(other.card, mean=(0.5, 0.5, 0.5))
    assert feature_cache_key(other, images) != feature_cache_key(_tiny_model(), images)


def test_feature_cache_invalidated_when_weights_change():
    images = np.random.default_rng(1).integers(0, 255, (3, 3, SIZE, SIZE), dtype=np.uint8)
    f1, _, p1 = cached_features(_tiny_model(0), images, torch.device("cpu"))
    f2, hit, p2 = cached_features(_tiny_model(1), images, torch.device("cpu"))
    assert not hit and p1 != p2 and not torch.equal(f1, f2)


def test_a_finetune_run_resumes_in_its_second_phase(folder, weights, tmp_path):
    """Transfer runs checkpoint and resume like any run: killed after the head phase,
    resume trains the fine-tuning phase (new optimiser over the unfrozen blocks)."""
    import shutil

    from cnnkit.train import resume_run

    cfg = _config(folder, weights, "finetune", epochs=4)
    full = train_run(cfg, tmp_path / "full", progress=False)
    part = tmp_path / "part"
    shutil.copytree(full.run_dir, part)
    ckpt = torch.load(part / "checkpoint" / "last.pt", weights_only=True)
    assert ckpt["phase"] == 1 and ckpt["epoch"] == 4
    res = resume_run(part, overrides={"epochs": 5}, progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5]
    info = json.loads((part / "config.json").read_text())
    assert info["transfer"]["frozen_changed"] == []
    assert [p["name"] for p in info["training"]["phases"]] == ["head", "finetune", "continued"]


def test_kfold_with_a_transfer_strategy(folder, weights, tmp_path):
    from cnnkit.train.kfold import train_kfold

    res = train_kfold(_config(folder, weights, "frozen", folds=2, epochs=1), tmp_path / "cv",
                      progress=False)  # fmt: skip
    assert 0.0 <= res.metrics["accuracy_mean"] <= 1.0
    assert (tmp_path / "cv" / "fold-2" / "model.safetensors").is_file()
