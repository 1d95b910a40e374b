"""Exact Shapley values by enumerating every coalition (the reference the samplers are tested against)."""
from __future__ import annotations

import itertools
import math

import numpy as np


def all_coalitions(n: int) -> np.ndarray:
    """[2^n, n] keep-masks of every coalition."""
    return np.array(list(itertools.product([False, True], repeat=n)), dtype=bool)


def exact_shapley(value, n: int) -> np.ndarray:
    """phi[r, i] = sum over S not containing i of |S|! (n - |S| - 1)! / n! * (v(S + i) - v(S)) -> [R, n]."""
    masks = all_coalitions(n)
    values = np.asarray(value(masks), dtype=float)
    index = {m.tobytes(): k for k, m in enumerate(masks)}
    phi = np.zeros((values.shape[1], n))
    for mask, v in zip(masks, values):
        size = int(mask.sum())
        for i in np.flatnonzero(~mask):
            with_i = mask.copy()
            with_i[i] = True
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            phi[:, i] += weight * (values[index[with_i.tobytes()]] - v)
    return phi
