"""Gradient-boosted regression trees on keep-masks, and the exact Shapley values of the game they define.

Boosting (Friedman, "Greedy Function Approximation: A Gradient Boosting Machine", 2001) with squared loss:
start from the weighted mean, then fit each tree to the current residuals and add it times a learning rate.
Inputs are binary (player i kept or not), so a tree splits a node on "z_i = 0 / z_i = 1" for the player whose
split most reduces the weighted squared error, down to a fixed depth; no subsampling, ties go to the lower player
index, so a fit is deterministic. This is the surrogate family Witter et al. 2025 ("Regression-adjusted Monte
Carlo Estimators for Shapley Values and Probabilistic Values") found best, used there through XGBoost and
TreeSHAP; this small implementation stands in for both (simplified: no second-order gain, no leaf penalty).

Exact Shapley values of a tree as a game g(S) = tree(1_S): the leaf whose path requires the players P in S and
the players A out of S adds value * 1[P in S, A out of S], and that game's Shapley values are
value (|P| - 1)! |A|! / (|P| + |A|)! for each i in P and -value |P|! (|A| - 1)! / (|P| + |A|)! for each j in A
(a leaf with no conditions is a constant: 0 for everyone). Sums over leaves and trees give the ensemble's values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Leaf:
    """One leaf: reached by the coalitions containing every player in `present` and none in `absent`."""

    value: float
    present: tuple[int, ...]
    absent: tuple[int, ...]

    def reached(self, z: np.ndarray) -> np.ndarray:
        """[M] bool: which keep-masks z [M, F] reach this leaf."""
        return z[:, list(self.present)].all(1) & ~z[:, list(self.absent)].any(1)

    def shapley(self, f: int) -> np.ndarray:
        """Exact Shapley values [F] of the game value * 1[present in S, absent out of S]."""
        phi = np.zeros(f)
        p, a = len(self.present), len(self.absent)
        if p:
            phi[list(self.present)] = self.value * math.factorial(p - 1) * math.factorial(a) / math.factorial(p + a)
        if a:
            phi[list(self.absent)] = -self.value * math.factorial(p) * math.factorial(a - 1) / math.factorial(p + a)
        return phi


@dataclass
class BoostedTrees:
    """base + the sum of every tree's leaf value at z; each tree is the list of its leaves (they partition
    the coalitions)."""

    base: float
    trees: list[list[Leaf]] = field(default_factory=list)

    def predict(self, masks: np.ndarray) -> np.ndarray:
        """Keep-masks [M, F] -> [M] surrogate values."""
        z = np.asarray(masks, dtype=bool)
        out = np.full(len(z), self.base)
        for tree in self.trees:
            for leaf in tree:
                out[leaf.reached(z)] += leaf.value
        return out

    def shapley(self, f: int) -> np.ndarray:
        """Exact Shapley values [F] of the game S -> predict(1_S) over F players."""
        phi = np.zeros(f)
        for tree in self.trees:
            for leaf in tree:
                phi += leaf.shapley(f)
        return phi


def grow(z: np.ndarray, r: np.ndarray, w: np.ndarray, rows: np.ndarray, depth: int,
         present: tuple[int, ...] = (), absent: tuple[int, ...] = ()) -> list[Leaf]:
    """Leaves of one weighted least-squares tree for residuals r on the rows `rows`, splitting while depth > 0."""
    wr, wn = w[rows] * r[rows], w[rows]
    total, weight = float(wr.sum()), float(wn.sum())
    if depth > 0 and len(rows) > 1:
        sum_in = z[rows].T.astype(float) @ wr  # per player: weighted residual sum over rows that keep it
        weight_in = z[rows].T.astype(float) @ wn
        sum_out, weight_out = total - sum_in, weight - weight_in
        valid = (weight_in > 1e-12 * weight) & (weight_out > 1e-12 * weight)
        valid[list(present + absent)] = False
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(valid, sum_in ** 2 / weight_in + sum_out ** 2 / weight_out, -np.inf) - total ** 2 / weight
        j = int(np.argmax(gain))
        if valid.any() and gain[j] > 1e-12 * max(float((wn * r[rows] ** 2).sum()), 1e-300):
            keep = z[rows, j]
            return (grow(z, r, w, rows[~keep], depth - 1, present, absent + (j,))
                    + grow(z, r, w, rows[keep], depth - 1, present + (j,), absent))
    return [Leaf(total / weight if weight > 0 else 0.0, present, absent)]


def fit_boosted_trees(masks: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, trees: int = 100,
                      depth: int = 4, learning_rate: float = 0.1) -> BoostedTrees:
    """Boosted trees fitted to y [M] on keep-masks [M, F] with row weights (default 1) -> BoostedTrees."""
    z = np.asarray(masks, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    if len(y) == 0 or z.shape[0] != len(y) or w.shape != y.shape:
        raise ValueError(f"masks [M, F], y [M] and weight [M] must agree and M > 0, got {z.shape}, {y.shape}, "
                         f"{w.shape}")
    model = BoostedTrees(float((w * y).sum() / w.sum()))
    fitted = np.full(len(y), model.base)
    rows = np.arange(len(y))
    for _ in range(trees):
        leaves = [Leaf(learning_rate * leaf.value, leaf.present, leaf.absent)
                  for leaf in grow(z, y - fitted, w, rows, depth)]
        model.trees.append(leaves)
        for leaf in leaves:
            fitted[leaf.reached(z)] += leaf.value
    return model
