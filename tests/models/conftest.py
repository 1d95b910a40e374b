"""Shared fixtures: tiny seeded models of each architecture, and the real default model for slow tests."""
from __future__ import annotations

import pytest
import torch

from workbench.models.tiny import ARCHS, tiny_lm


@pytest.fixture(params=ARCHS)
def lm(request):
    """A fresh tiny LM of each architecture (fresh so that tests may edit weights or switch attention)."""
    return tiny_lm(request.param, seed=0)


@pytest.fixture
def llama():
    return tiny_lm("llama", seed=0)


@pytest.fixture(scope="session")
def real_lm():
    """The real default model (fetched and converted on first use)."""
    from workbench.models import LM

    return LM.load("smollm2-135m")


def random_ids(n: int, seed: int = 0, vocab: int = 256) -> list[int]:
    """n pseudo-random token ids in [0, vocab) (the tiny models' bytes: no <eos>)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n,), generator=g).tolist()


@pytest.fixture
def ids_of():
    """The `random_ids` function."""
    return random_ids
