"""Final weights: strict loading by name and shape, clear errors for damaged files."""

import pytest
import torch

from cnnkit.errors import RunFolderError
from cnnkit.runs.weights import load_state_strict, load_weights, save_weights


def test_weights_strict_loading_names_keys(tmp_path):
    m = torch.nn.Linear(3, 2)
    save_weights(tmp_path / "w.safetensors", m.state_dict())
    other = torch.nn.Linear(3, 4)
    with pytest.raises(RunFolderError, match=r"mis-shaped weight \(2, 3\) vs \(4, 3\)"):
        load_state_strict(other, load_weights(tmp_path / "w.safetensors"), "w.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 20)
    with pytest.raises(RunFolderError, match="not a valid safetensors"):
        load_weights(tmp_path / "bad.safetensors")
