"""The Quest and TokenSelect policies, which call the dispatched selection ops, choose exactly what the formulas
of their docstrings give when written out with plain torch and `ranking.top_k_lex` (ties included)."""
import math

import pytest
import torch

from workbench.sparse.policies.quest import Quest, page_upper_bound
from workbench.sparse.policies.tokenselect import TokenSelect
from workbench.sparse.ranking import group_max, group_sum, top_k_lex
from workbench.sparse.selector import LayerState


def quest_by_hand(state: LayerState, policy: Quest) -> torch.Tensor:
    b, h_kv, s, d = state.keys.shape
    ps = policy.page_size
    pages = math.ceil(s / ps)
    k = state.keys.float()
    pad = pages * ps - s
    kmin = torch.cat([k, k.new_full((b, h_kv, pad, d), math.inf)], 2).reshape(b, h_kv, pages, ps, d).amin(3)
    kmax = torch.cat([k, k.new_full((b, h_kv, pad, d), -math.inf)], 2).reshape(b, h_kv, pages, ps, d).amax(3)
    score = group_max(page_upper_bound(state.query, kmin, kmax), h_kv)
    pos = torch.arange(s)
    current_page = (pos // ps == (s - 1) // ps).view(1, 1, -1)
    return top_k_lex(policy.k_per_head(state), state.kv_shape, current_page, score[..., pos // ps], pos.view(1, 1, -1))


def _state(seed: int, seq: int, dtype: torch.dtype, ties: bool) -> LayerState:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 6, 16, generator=gen)
    k = torch.randn(2, 2, seq, 16, generator=gen)
    return LayerState(query=q.to(dtype), keys=(k.round() if ties else k).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("seed,seq,ties", [(0, 61, False), (1, 27, True), (2, 200, True)])
def test_quest_selection(seed, seq, dtype, ties):
    state = _state(seed, seq, dtype, ties)
    for page_size in (1, 4, 16):
        for budget in (1, 0.3, 0.9, seq):
            policy = Quest(budget=budget, page_size=page_size, dense_layers=0)
            assert torch.equal(policy.select(state), quest_by_hand(state, policy)), (page_size, budget)


@pytest.mark.parametrize("vote_over", ["group", "layer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("seed,seq,ties", [(3, 61, False), (4, 40, True)])
def test_tokenselect_votes_and_selection(seed, seq, dtype, ties, vote_over):
    state = _state(seed, seq, dtype, ties)
    policy = TokenSelect(budget=0.3, sinks=2, recent=3, vote_over=vote_over)
    probs = state.logits().softmax(-1)
    votes = probs.sum(1, keepdim=True).expand(state.kv_shape) if vote_over == "layer" else group_sum(probs, 2)
    assert torch.equal(policy.votes(state), votes)
    ks = policy.k_per_head(state)
    pos = torch.arange(seq).view(1, 1, -1)
    fixed = (pos < 2) | (pos >= seq - 3)
    voted = top_k_lex([k - 5 for k in ks], state.kv_shape, ~fixed, votes)
    expected = torch.zeros(state.kv_shape, dtype=torch.bool).scatter_(-1, voted, True) | fixed
    chosen = policy.select(state)
    assert torch.equal(torch.zeros(state.kv_shape, dtype=torch.bool).scatter_(-1, chosen, True), expected)
