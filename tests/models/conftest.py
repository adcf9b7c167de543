"""Model tests run single-threaded: on a shared 2-core machine, two intra-op threads per
process oversubscribe the CPU and make small forward passes up to 50x slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
