import json

import pytest

from cnnkit.errors import RunFolderError
from cnnkit.train import TrainConfig, resume_run
from cnnkit.train.kfold import train_kfold
from cnnkit.train.run import prepare_run_dir


def test_transfer_runs_are_not_resumed(tmp_path):
    cfg = TrainConfig(data="x", pretrained="w.pth", strategy="frozen").to_dict()
    cfg.update(class_names=["a", "b"], image_size=[32, 32], in_chans=3, mean=[0.5], std=[0.5])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunFolderError, match="transfer runs"):
        resume_run(tmp_path)


def test_kfold_refuses_a_transfer_strategy(tmp_path):
    cfg = TrainConfig(data="x", pretrained="w.pth", strategy="features", folds=2)
    with pytest.raises(ValueError, match="--folds with --strategy features"):
        train_kfold(cfg, tmp_path / "cv")
    assert not (tmp_path / "cv").exists()  # refused before anything was written


def test_prepare_run_dir_rules(tmp_path):
    assert prepare_run_dir(tmp_path / "new", overwrite=False).is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        prepare_run_dir(tmp_path / "file", overwrite=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_run_dir(run, overwrite=False)
    prepare_run_dir(run, overwrite=True)
    assert list(run.iterdir()) == []
