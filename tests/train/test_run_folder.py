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


def test_precision_timed_where_flags_do_not_decide(tmp_path, monkeypatch):
    """The run records the timed choice, and training uses that same choice."""
    from cnnkit.train import precision as P
    from cnnkit.train import run as run_module
    from cnnkit.train import train_run

    monkeypatch.setattr(P, "flags_decide", lambda: False)
    monkeypatch.setattr(P, "_PROBED", {})
    used = []
    real_fit = run_module.fit

    def spy_fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        used.append(result.precision)
        return result

    monkeypatch.setattr(run_module, "fit", spy_fit)
    config = TrainConfig(data="digits", model="lenet5", epochs=1, batch_size=16,
                         max_steps_per_epoch=2, image_size=(28, 28))  # fmt: skip
    run = train_run(config, tmp_path / "run", progress=False).run_dir
    recorded = json.loads((run / "config.json").read_text())["precision"]
    assert "timed" in recorded["reason"] and recorded["value"] in ("fp32", "bf16")
    assert used[0].value == recorded["value"] and used[0].reason == recorded["reason"]
