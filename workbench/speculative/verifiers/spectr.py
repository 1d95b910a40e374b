"""SpecTr's k-sequential draft selection, K-SEQ (Sun et al., "SpecTr: Fast Speculative Decoding via Optimal
Transport", 2023), for k i.i.d. drafts per level.

With X_1..X_k i.i.d. from q and a constant rho in [1, k], try i = 1..k: accept X_i with probability
min(1, p(X_i) / (rho q(X_i))). Let beta = sum_x min(q(x), p(x) / rho); if none is accepted, emit a token from
p_res(x) proportional to p(x) - min(q(x), p(x) / rho) (1 - (1 - beta)^k) / beta. This is exact whenever
rho beta >= 1 - (1 - beta)^k; we take the smallest such rho (the highest acceptance), found by bisection at each
node (rho = 1 when k = 1: speculative sampling). A tree of k sequences must keep duplicates (DraftTree.from_paths
(paths, merge=False)): after accepting token x, the next level's candidates are the continuations of EVERY
sequence that starts with the accepted prefix, which are again i.i.d. draws at that context.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..rng import RandomSource
from .base import Verifier
from .registry import register_verifier


def smallest_valid_rho(p: torch.Tensor, q: torch.Tensor, k: int) -> float:
    """The smallest rho in [1, k] with gap(rho) = rho * beta(rho) - (1 - (1 - beta(rho))^k) >= 0.

    gap increases with rho, is <= 0 at rho = 1 and >= 0 at rho = k. beta(rho) = sum_x min(q(x), p(x) / rho)
    equals a + b / rho between consecutive breakpoints r_x = p(x) / q(x), with a = the q-mass of tokens with
    r_x >= rho and b = the p-mass of those with r_x < rho: gap is evaluated at every breakpoint in [1, k] at once,
    then bisected in closed form inside the first bracket where it turns non-negative (the upper end is kept, so
    the returned rho is always valid).
    """
    if k <= 1:
        return 1.0
    p_np = p.detach().cpu().numpy().astype(np.float64)
    q_np = q.detach().cpu().numpy().astype(np.float64)
    support = q_np > 0
    p_s, q_s = p_np[support], q_np[support]
    ratio = p_s / q_s
    order = np.argsort(ratio, kind="stable")
    ratio = ratio[order]
    cum_p = np.concatenate([[0.0], np.cumsum(p_s[order])])
    cum_q = np.concatenate([[0.0], np.cumsum(q_s[order])])
    total_q = cum_q[-1]
    points = np.concatenate([[1.0], ratio[(ratio > 1) & (ratio < k)], [float(k)]])
    below = np.searchsorted(ratio, points, side="left")  # tokens with r_x < rho
    beta = (total_q - cum_q[below]) + cum_p[below] / points
    gap = points * beta - (1 - (1 - beta) ** k)
    valid = np.flatnonzero(gap >= 0)
    if len(valid) == 0:  # gap(k) >= 0 holds exactly; only rounding can get here
        return float(k)
    j = int(valid[0])
    if j == 0:
        return 1.0
    lo, hi = float(points[j - 1]), float(points[j])
    m = int(np.searchsorted(ratio, points[j - 1], side="right"))  # tokens with r_x < rho inside the bracket
    a, b = float(total_q - cum_q[m]), float(cum_p[m])
    while True:
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:  # converged to adjacent floats
            return hi
        beta_mid = a + b / mid
        if mid * beta_mid - (1 - (1 - beta_mid) ** k) >= 0:
            hi = mid
        else:
            lo = mid


@register_verifier
@dataclass
class SpecTrVerifier(Verifier):
    name = "spectr"
    needs_draft_probs = True

    def select(self, p: torch.Tensor, q: torch.Tensor | None, candidates: list[int],
               rng: RandomSource) -> tuple[int | None, int]:
        k = len(candidates)
        if k == 0:
            return None, rng.categorical(p)
        rho = smallest_valid_rho(p, q, k)
        for i, x in enumerate(candidates):
            if rng.bernoulli(float(p[x] / (rho * q[x]))):
                return i, x
        kept = torch.minimum(q, p / rho)
        beta = float(kept.sum())
        if beta <= 0:
            return None, rng.categorical(p)
        residual = (p - kept * ((1 - (1 - beta) ** k) / beta)).clamp_min(0)
        return None, rng.categorical(residual if float(residual.sum()) > 0 else p)
