"""Fixtures for the attribution tests: tiny seeded models, the linear test model, one CPU thread per test."""
from __future__ import annotations

import pytest
import torch

from workbench.models.tiny import tiny_lm

from .linear_lm import LinearLM


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and the machine is shared); restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def llama():
    return tiny_lm("llama", seed=0)


@pytest.fixture
def linear():
    return LinearLM(seed=0)


@pytest.fixture(scope="session")
def real_lm():
    from workbench.models import LM

    return LM.load("smollm2-135m")
