import json

import pytest

from cnnkit.errors import RunFolderError
from cnnkit.train import TrainConfig, resume_run


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


def _folder(root, per_class=6, size=12, name=None):
    import numpy as np
    from PIL import Image

    for c, value in (("dark", 40), ("light", 210)):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.full((size, size), value + i, np.uint8)
            Image.fromarray(pixels).save(root / c / (name or f"{i:02d}.png").format(i=i))
    return root


def _tiny(data, **kw):
    settings = dict(data=str(data), model="lenet5", epochs=1, batch_size=4, image_size=(12, 12))
    return TrainConfig(**{**settings, **kw})


def test_one_image_per_class_is_refused_before_training(tmp_path):
    data = _folder(tmp_path / "data", per_class=1)
    from cnnkit.train import train_run

    with pytest.raises(ValueError, match="leaves no validation images") as e:
        train_run(_tiny(data), tmp_path / "run", progress=False)
    assert "dark: 1, light: 1" in str(e.value)
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_a_run_that_fails_to_start_leaves_no_folder(tmp_path, monkeypatch):
    from cnnkit.train import run as run_module
    from cnnkit.train import train_run

    def broken_fit(*a, **k):
        raise RuntimeError("model failed")

    monkeypatch.setattr(run_module, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="model failed"):
        train_run(_tiny(_folder(tmp_path / "data")), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_killed_before_its_first_checkpoint_resumes(tmp_path, monkeypatch):
    """config.json and split.csv come first, so a kill in epoch 1 leaves a resumable run."""
    import shutil

    from cnnkit.train import train_run

    data = _folder(tmp_path / "data")
    run = train_run(_tiny(data, epochs=2), tmp_path / "run", progress=False).run_dir
    for name in ("checkpoint", "model.safetensors", "history.csv", "metrics.json"):
        p = run / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (run / ".model.safetensors.k1ll.tmp").write_bytes(b"partial")  # a kill mid-write
    res = resume_run(run, progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert (run / "model.safetensors").is_file()
    assert not list(run.glob(".*.tmp"))  # the stale temporary is gone


def test_a_run_killed_before_its_config_says_to_train_again_not_resume(tmp_path, capsys):
    from cnnkit.cli.main import main
    from cnnkit.runs.layout import create_run_dir

    run = create_run_dir(tmp_path / "run").path
    (run / "split.csv").write_text("path,label,subset\n")  # killed before config.json
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run} stopped before it wrote its config.json: there is nothing to resume" in err
    assert "train into the same folder again" in err and "no overwrite needed" in err


def test_non_utf8_file_names_train_and_round_trip(tmp_path):
    import os

    from cnnkit.train import train_run

    name = os.fsdecode(b"caf\xe9-{i}.png")  # a Latin-1 name, as old cameras and Windows write
    data = _folder(tmp_path / "data", name=name)
    res = train_run(_tiny(data), tmp_path / "run", progress=False)
    rows = (res.run_dir / "split.csv").read_bytes().splitlines()[1:]
    assert len(rows) == 12 and all(b"caf\xe9-" in r for r in rows)
    from cnnkit.runs import read_split
    from cnnkit.train.data_source import load_run_data

    train, val = read_split(res.run_dir / "split.csv", load_run_data(_tiny(data)).arrays)
    assert len(train) + len(val) == 12  # the saved names match the files on disk


def test_resume_with_more_epochs_trains_further(tmp_path):
    """Like a second Keras fit: the history holds both parts; the run records the extension."""
    import json

    from cnnkit.train import train_run

    data = _folder(tmp_path / "data")
    run = train_run(_tiny(data, epochs=2), tmp_path / "run", progress=False).run_dir
    res = resume_run(run, overrides={"epochs": 4}, progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["epochs"] == 4 and cfg["training"]["continued"] == [2]
    assert [p["name"] for p in cfg["training"]["phases"]] == ["train", "continued"]
    assert len((run / "history.csv").read_text().splitlines()) == 5
    with pytest.raises(RunFolderError, match="trained all its 4 epochs"):
        resume_run(run, progress=False)
    with pytest.raises(RunFolderError, match="epochs can only grow"):
        resume_run(run, overrides={"epochs": 3}, progress=False)
    res = resume_run(run, overrides={"epochs": 5}, progress=False)  # and again
    assert len(res.history) == 5


def test_ctrl_c_names_the_epoch_and_how_to_continue(tmp_path, monkeypatch):
    from cnnkit.train import run as run_module
    from cnnkit.train import train_run
    from cnnkit.train.run import RunInterrupted

    real_fit = run_module.fit

    def interrupted(*a, **k):
        k["callbacks"].append(_InterruptAt(2))
        return real_fit(*a, **k)

    monkeypatch.setattr(run_module, "fit", interrupted)
    with pytest.raises(RunInterrupted) as e:
        train_run(_tiny(_folder(tmp_path / "data"), epochs=4), tmp_path / "run", progress=False)
    assert e.value.cli_message() == (
        f"interrupted at epoch 2 of 4; continue with: cnnkit train --resume {tmp_path / 'run'}"
    )
    monkeypatch.setattr(run_module, "fit", real_fit)
    res = resume_run(tmp_path / "run", progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]


class _InterruptAt:
    """A callback that presses Ctrl-C during epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __getattr__(self, hook):
        return lambda state: None

    def on_train_batch_end(self, state):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt
