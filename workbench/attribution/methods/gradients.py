"""Shared by the gradient methods: per-row gradients of the target scores w.r.t. source embeddings."""
from __future__ import annotations

import torch


def row_gradients(scores: torch.Tensor, inputs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gradients of each row of `scores` [B, R] w.r.t. `inputs` [B, n, hidden] -> [R, B, n, hidden].

    One backward pass per row r of sum_b weights[b] * scores[b, r] (weights default to 1): input b only affects
    score b, so the gradient at input b is weights[b] * d scores[b, r] / d inputs[b]. Only `inputs` receive
    gradients (model parameters are left untouched).
    """
    rows = scores.shape[1]
    if weights is None:
        weights = torch.ones(scores.shape[0], dtype=scores.dtype, device=scores.device)
    grads = []
    for r in range(rows):
        (grad,) = torch.autograd.grad((scores[:, r] * weights).sum(), inputs, retain_graph=r < rows - 1)
        grads.append(grad)
    return torch.stack(grads)
