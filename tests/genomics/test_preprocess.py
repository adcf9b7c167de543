"""The per-fold preprocessor: monomorphic SNPs dropped, training means imputed."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.genomics.preprocess import SnpPreprocessor


def test_fit_on_train_rows_only_and_state_round_trip():
    x = np.array([[0, 1, 2, 1], [0, 2, np.nan, 1], [0, 0, 0, 1], [2, 1, 1, 0]], dtype=np.float32)
    pre = SnpPreprocessor().fit(x[:3])  # columns 0 and 3 are constant in the training rows
    np.testing.assert_array_equal(pre.keep, [1, 2])
    assert pre.n_dropped == 2
    np.testing.assert_allclose(pre.means, [1.0, 1.0])
    out = pre.transform(x, center=False)
    assert out[1, 1] == 1.0 and out.shape == (4, 2)  # NaN -> the training mean
    again = SnpPreprocessor.from_state(pre.state())
    np.testing.assert_array_equal(again.transform(x), pre.transform(x))
    with pytest.raises(ValueError, match="4 SNP columns"):
        pre.transform(x[:, :3])
