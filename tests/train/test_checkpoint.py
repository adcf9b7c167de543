import os
import pickle

import pytest
import torch

from cnnkit.errors import RunFolderError
from cnnkit.fileio import atomic_write_bytes
from cnnkit.train.checkpoint import load_checkpoint, save_checkpoint


def test_checkpoint_round_trip(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.arange(4.0)}, "history": [{"loss": 0.5}]}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["epoch"] == 3 and torch.equal(back["model"]["w"], torch.arange(4.0))


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    def crash(f):
        f.write(b"partial bytes")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, crash)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickled_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(RunFolderError, match="not a loadable cnnkit checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()
