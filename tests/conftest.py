"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def torch_one_thread():
    """Single-threaded torch: tiny models on a shared 2-core machine stall on OpenMP spinning."""
    import torch  # here, not at module level: the causal tests never need torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
