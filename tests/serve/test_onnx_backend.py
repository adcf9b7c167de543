"""OnnxSession: loading, clear errors, metadata decoding."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.errors import CnnkitError
from cnnkit.serve.onnx_backend import OnnxSession, decode_metadata, file_sha256


def test_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cnnkit export"):
        OnnxSession(tmp_path / "model.onnx")


def test_not_a_model_is_a_cnnkit_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"definitely not protobuf")
    with pytest.raises(CnnkitError, match="not a loadable ONNX model"):
        OnnxSession(bad)


def test_call_checks_rank_and_returns_logits(onnx_run):
    sess = OnnxSession(onnx_run / "model.onnx", threads=1)
    assert sess(np.zeros((2, 1, 28, 28), np.float64)).shape == (2, 3)  # cast to float32
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        sess(np.zeros((1, 28, 28), np.float32))


def test_decode_metadata_keeps_only_cnnkit_keys():
    meta = decode_metadata({"cnnkit.mean": "[0.5]", "cnnkit.input": "float32 ...", "other": "1"})
    assert meta == {"mean": [0.5], "input": "float32 ..."}


def test_file_sha256(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    assert file_sha256(f).startswith("ba7816bf")
