"""Landmark-style block retrieval: one representative key per block, the top blocks by q.landmark are read.

Paper: "Landmark Attention: Random-Access Infinite Context Length for Transformers" (Mohtashami and Jaggi,
2023). The context is cut into blocks; each block ends with a landmark token whose key the model learns to
make a summary of the block. A query attends to the landmarks, and the blocks whose landmarks score highest
are retrieved and attended token by token.

Here (training-free simplification): no landmark token is learned or inserted; a block's representative key
is the mean of its keys, so q.landmark is exactly the block's mean q.k logit. Blocks are scored per query head
by softmax over the block logits (as the paper's landmark softmax) and summed over the KV head's query heads.
The budget is in tokens, filled with whole blocks in score order after the `local_blocks` most recent blocks
(always read, like the paper's local window); the last chosen block is cut to its most recent tokens.
How it differs from Quest: Quest keeps per-page channel-wise min/max keys and ranks pages by an upper bound of
q.k (2 vectors per page, never misses a page whose best key is high); a landmark is one vector per block and
ranks by the average logit, half the metadata but a block with one strong key among weak ones can be missed.
Metadata read per step: one landmark (D values) per block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.sparse.ranking import group_sum, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


def block_landmarks(keys: Tensor, block_size: int) -> Tensor:
    """Mean key of each block of `block_size` positions (the last block over its valid keys): [B, H_kv, n, D]."""
    b, h_kv, s, d = keys.shape
    blocks = math.ceil(s / block_size)
    pad = blocks * block_size - s
    k = torch.cat([keys.float(), keys.new_zeros(b, h_kv, pad, d, dtype=torch.float32)], 2)
    sums = k.reshape(b, h_kv, blocks, block_size, d).sum(3)
    counts = torch.full((blocks,), float(block_size), device=keys.device)
    counts[-1] = s - (blocks - 1) * block_size
    return sums / counts.view(1, 1, -1, 1)


@register_selector("landmark")
@dataclass
class Landmark(Selector):
    """Top blocks by softmax(q.mean-key), the most recent `local_blocks` blocks always read."""

    block_size: int = 16
    local_blocks: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size must be an int >= 1, got {self.block_size!r}")
        if isinstance(self.local_blocks, bool) or not isinstance(self.local_blocks, int) or self.local_blocks < 0:
            raise ValueError(f"local_blocks must be an int >= 0, got {self.local_blocks!r}")

    def block_scores(self, state: LayerState) -> Tensor:
        """Per KV head, the group's summed softmax over the blocks' landmark logits: [B, H_kv, blocks]."""
        lm = block_landmarks(state.keys, self.block_size)
        q = state.query.float().reshape(state.batch, state.num_kv_heads, state.group_size, state.head_dim)
        logits = torch.einsum("bgqd,bgnd->bgqn", q, lm) * state.scale
        return group_sum(logits.softmax(-1).reshape(state.batch, state.num_heads, -1), state.num_kv_heads)

    def select(self, state: LayerState) -> Tensor:
        score = self.block_scores(state)
        pos = torch.arange(state.context_len, device=score.device)
        block = pos // self.block_size
        local = (block >= score.shape[-1] - self.local_blocks).view(1, 1, -1)
        return top_k_lex(self.k_per_head(state), state.kv_shape, local, score[..., block], pos.view(1, 1, -1))

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        blocks = math.ceil(state.context_len / self.block_size)
        return state.batch * state.num_kv_heads * blocks * state.head_dim * elem_bytes
