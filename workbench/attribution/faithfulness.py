"""Faithfulness of an attribution: does removing what it ranks highest change the target most?

Every metric works per target row r (row r of the matrix ranks the F source units for that row) and is also
averaged over rows ("aggregated"). Units are ranked by decreasing attribution (ties: lower index first).
A unit is *removed* exactly as occlusion removes it (workbench.attribution.perturb): its tokens' input
embeddings are replaced by the baseline embedding ("pad" by default: the pad token, else EOS; or "zero", or a
token id), so the prompt keeps its length and positions; the BOS prefix is never removed. Scores g(x) are the
target's probability (exp of the token log-probability; `scale="prob"`, the default for token targets) or the
raw target score (`scale="score"`, required for contrastive / function targets).

With fractions q_1..q_K (default 10%, 20%, ..., 100%) and top(q) the ceil(q F) highest-ranked units:

- comprehensiveness (DeYoung et al. 2020, ERASER): AOPC_comp = 1/K sum_k [g(x) - g(x without top(q_k))];
  higher = more faithful.
- sufficiency (ERASER): AOPC_suff = 1/K sum_k [g(x) - g(x with only top(q_k) kept)]; lower = more faithful.
  (ERASER averages over its bins with 1/(|B|+1); here the plain mean over the K fractions is used.)
- soft comprehensiveness / sufficiency (after Zhao & Aletras 2023, "Incorporating Attribution Importance for
  Improving Faithfulness Metrics"): the row's attributions are min-max normalised to s_u in [0, 1] (all equal:
  s_u = 0.5). Every embedding dimension of every token of unit u is kept independently with probability s_u
  (sufficiency) or 1 - s_u (comprehensiveness), a dropped dimension set to 0 (no 1/p rescaling); the prefix is
  untouched. soft_comp = g(x) - mean_j g(x~_j), soft_suff = g(x) - mean_j g(x~_j) over `soft_samples` masks
  drawn from a torch.Generator seeded with `seed`. These are the un-normalised drops, with the same signs as
  the hard metrics; the paper reports 1 - max(0, drop) for sufficiency and divides both by the value of an
  all-removed input, which can be computed from `empty`.
- deletion / insertion curves (Petsiuk et al. 2018, RISE): g after removing the top 0, 1, ..., F units
  (deletion, starts at g(x)) or keeping only them (insertion, starts at the all-removed input), with the area
  under each curve by the trapezoid rule over the fraction removed/inserted in [0, 1] (deletion: lower is
  better; insertion: higher is better).

Rank agreement between two attributions of the same sources (`rank_agreement`): per row Spearman's rho
(Pearson correlation of average ranks), Kendall's tau-b (ties corrected), and the top-k overlap
|top_k(a) & top_k(b)| / k.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.attribution.perturb import (
    PerturbationValue,
    check_baseline,
    check_baseline_for,
)
from workbench.attribution.problem import Problem
from workbench.attribution.rebuild import problem_from
from workbench.attribution.result import Attribution, _json

FRACTIONS = tuple(k / 10 for k in range(1, 11))
SCALES = ("auto", "prob", "score")


# ---- pure pieces (numpy; a value function maps keep-masks [M, F] to scores [M, R]) -------------------------
def rank_order(row: np.ndarray) -> np.ndarray:
    """Unit indices by decreasing attribution; NaN ranks last; ties keep the lower index first."""
    row = np.asarray(row, dtype=np.float64)
    key = np.where(np.isnan(row), -np.inf, row)
    return np.argsort(-key, kind="stable")


def counts_for(fractions: Sequence[float], n: int) -> list[int]:
    """ceil(q * n) units for each fraction q (computed without float round-up: 0.3 * 10 gives 3)."""
    return [min(n, max(0, math.ceil(round(q * n, 9)))) for q in fractions]


def top_masks(order: np.ndarray, counts: Sequence[int], n: int) -> np.ndarray:
    """[len(counts), n] bool: True where the unit is among the first `count` of `order`."""
    masks = np.zeros((len(counts), n), dtype=bool)
    for k, c in enumerate(counts):
        masks[k, order[:c]] = True
    return masks


def erasure(value: Callable[[np.ndarray], np.ndarray], matrix: np.ndarray, fractions: Sequence[float],
            transform: Callable[[np.ndarray], np.ndarray] = lambda v: v) -> dict[str, np.ndarray]:
    """Comprehensiveness / sufficiency drops per row and fraction [R, K], their AOPC [R], and g(x) [R]."""
    rows, n = matrix.shape
    counts = counts_for(fractions, n)
    full = transform(value(np.ones((1, n), dtype=bool))[0])
    comp = np.zeros((rows, len(counts)))
    suff = np.zeros((rows, len(counts)))
    for r in range(rows):
        top = top_masks(rank_order(matrix[r]), counts, n)
        comp[r] = full[r] - transform(value(~top))[:, r]
        suff[r] = full[r] - transform(value(top))[:, r]
    return {"full": full, "comprehensiveness_curve": comp, "sufficiency_curve": suff,
            "comprehensiveness": comp.mean(1), "sufficiency": suff.mean(1)}


def curves(value: Callable[[np.ndarray], np.ndarray], matrix: np.ndarray,
           transform: Callable[[np.ndarray], np.ndarray] = lambda v: v) -> dict[str, np.ndarray]:
    """Deletion and insertion curves [R, F + 1] in rank order, and their trapezoid areas [R] over [0, 1]."""
    rows, n = matrix.shape
    deletion = np.zeros((rows, n + 1))
    insertion = np.zeros((rows, n + 1))
    for r in range(rows):
        top = top_masks(rank_order(matrix[r]), list(range(n + 1)), n)
        deletion[r] = transform(value(~top))[:, r]
        insertion[r] = transform(value(top))[:, r]
    x = np.linspace(0.0, 1.0, n + 1)
    return {"deletion": deletion, "insertion": insertion,
            "deletion_auc": np.trapezoid(deletion, x, axis=1), "insertion_auc": np.trapezoid(insertion, x, axis=1)}


def normalised_importance(row: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1] (all equal or non-finite spread: 0.5 everywhere; NaN -> 0)."""
    row = np.where(np.isfinite(row), row, np.nan)
    lo, hi = np.nanmin(row), np.nanmax(row)
    if not np.isfinite(hi - lo) or hi == lo:
        return np.where(np.isnan(row), 0.0, 0.5)
    return np.nan_to_num((row - lo) / (hi - lo), nan=0.0)


# ---- the result --------------------------------------------------------------------------------------------
@dataclass
class Faithfulness:
    """Faithfulness metrics of one attribution (see the module docstring for the exact definitions).

    Arrays are per target row: [R] metrics, [R, K] drops per fraction, [R, F + 1] curves.
    """

    method: str
    scale: str
    baseline: str | int
    fractions: list[float]
    full: np.ndarray
    empty: np.ndarray
    comprehensiveness: np.ndarray
    sufficiency: np.ndarray
    comprehensiveness_curve: np.ndarray
    sufficiency_curve: np.ndarray
    soft_comprehensiveness: np.ndarray | None = None
    soft_sufficiency: np.ndarray | None = None
    deletion: np.ndarray | None = None
    insertion: np.ndarray | None = None
    deletion_auc: np.ndarray | None = None
    insertion_auc: np.ndarray | None = None
    evaluations: int = 0
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    METRICS = ("comprehensiveness", "sufficiency", "soft_comprehensiveness", "soft_sufficiency", "deletion_auc",
               "insertion_auc")

    def aggregated(self) -> dict[str, float]:
        """Each per-row metric averaged over the target rows (metrics not computed are left out)."""
        out = {}
        for name in self.METRICS:
            values = getattr(self, name)
            if values is not None:
                out[name] = float(np.mean(values))
        return out

    def row(self) -> dict[str, Any]:
        """One table row: method plus the aggregated metrics."""
        return {"method": self.method, **self.aggregated(), "evaluations": self.evaluations,
                "seconds": self.seconds}

    def to_dict(self) -> dict[str, Any]:
        return _json({k: getattr(self, k) for k in self.__dataclass_fields__} | {"aggregated": self.aggregated()})


def faithfulness(lm: Any, attribution: Attribution, target: Any = None, *, baseline: str | int = "pad",
                 fractions: Sequence[float] = FRACTIONS, scale: str = "auto", soft_samples: int = 8,
                 seed: int = 0, with_curves: bool = True, batch_size: int = 16, reuse_prefix: bool = True,
                 progress: bool = False) -> Faithfulness:
    """Comprehensiveness, sufficiency (AOPC), soft variants and deletion/insertion curves of `attribution`.

    target: needed again only for contrastive / function targets (see workbench.attribution.rebuild).
    soft_samples: Bernoulli masks per row for the soft metrics (0 skips them); seed: their generator's seed.
    with_curves: also compute the deletion/insertion curves (2 (F + 1) inputs per row before memo).
    """
    start = time.perf_counter()
    baseline = check_baseline(baseline)
    fractions = [float(q) for q in fractions]
    if not fractions or any(not 0.0 < q <= 1.0 for q in fractions):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1], got {fractions}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    if isinstance(soft_samples, bool) or not isinstance(soft_samples, int) or soft_samples < 0:
        raise ValueError(f"soft_samples must be an int >= 0, got {soft_samples!r}")
    token_target = isinstance(attribution, Attribution) and attribution.target_kind in ("continuation",
                                                                                       "generation")
    if scale == "auto":
        scale = "prob" if token_target else "score"
    if scale == "prob" and not token_target:
        raise ValueError(f"scale='prob' needs a token target (log-probability rows); this attribution's target is "
                         f"{attribution.target_kind}: use scale='score'")
    problem = problem_from(lm, attribution, target)
    check_baseline_for(problem, baseline)
    matrix = np.asarray(attribution.matrix, dtype=np.float64)
    transform = np.exp if scale == "prob" else (lambda v: v)
    value = PerturbationValue(problem, baseline, batch_size, reuse_prefix, progress)
    with torch.no_grad():
        hard = erasure(value, matrix, fractions, transform)
        empty = transform(value(np.zeros((1, problem.n_units), dtype=bool))[0])
        drawn = curves(value, matrix, transform) if with_curves else {}
        soft = soft_metrics(problem, matrix, soft_samples, seed, transform, batch_size) if soft_samples else {}
    evaluations = value.evaluations + (2 * soft_samples * matrix.shape[0] if soft_samples else 0)
    return Faithfulness(
        method=attribution.method, scale=scale, baseline=baseline, fractions=fractions, full=hard["full"],
        empty=empty, comprehensiveness=hard["comprehensiveness"], sufficiency=hard["sufficiency"],
        comprehensiveness_curve=hard["comprehensiveness_curve"], sufficiency_curve=hard["sufficiency_curve"],
        soft_comprehensiveness=soft.get("soft_comprehensiveness"), soft_sufficiency=soft.get("soft_sufficiency"),
        deletion=drawn.get("deletion"), insertion=drawn.get("insertion"),
        deletion_auc=drawn.get("deletion_auc"), insertion_auc=drawn.get("insertion_auc"),
        evaluations=evaluations, seconds=time.perf_counter() - start,
        options={"soft_samples": soft_samples, "seed": seed, "reuse_prefix": reuse_prefix})


def soft_metrics(problem: Problem, matrix: np.ndarray, samples: int, seed: int,
                 transform: Callable[[np.ndarray], np.ndarray], batch_size: int = 16) -> dict[str, np.ndarray]:
    """Soft comprehensiveness / sufficiency per row (Bernoulli dropout of embedding dimensions, see above)."""
    generator = torch.Generator().manual_seed(seed)
    source = problem.source_embeds()  # [1, n, hidden]
    n, hidden = source.shape[1:]
    full = transform(problem.scores(source)[0].double().cpu().numpy()[0])
    agg = problem.aggregation()  # [n, F]
    rows = matrix.shape[0]
    out = {"soft_comprehensiveness": np.zeros(rows), "soft_sufficiency": np.zeros(rows)}
    for r in range(rows):
        keep_token = torch.as_tensor(agg @ normalised_importance(matrix[r]), dtype=torch.float64)  # [n]
        for name, p in (("soft_sufficiency", keep_token), ("soft_comprehensiveness", 1.0 - keep_token)):
            probs = p[:, None].expand(n, hidden)
            masks = torch.bernoulli(probs.expand(samples, n, hidden), generator=generator).to(source.dtype)
            scores = []
            for i in range(0, samples, batch_size):
                batch = source * masks[i:i + batch_size].to(source.device)
                scores.append(problem.scores(batch)[0][:, r].double().cpu().numpy())
            out[name][r] = full[r] - float(np.mean(transform(np.concatenate(scores))))
    return out


# ---- rank agreement ----------------------------------------------------------------------------------------
def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of average ranks (NaN when either is constant)."""
    ra, rb = average_ranks(a) - (len(a) + 1) / 2, average_ranks(b) - (len(b) + 1) / 2
    denom = math.sqrt(float((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b over all pairs: (concordant - discordant) / sqrt((P - ties_a) (P - ties_b))."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    i, j = np.triu_indices(len(a), 1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    pairs = len(i)
    denom = math.sqrt(float((pairs - (sa == 0).sum()) * (pairs - (sb == 0).sum())))
    return float((sa * sb).sum() / denom) if denom > 0 else float("nan")


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """|top_k(a) & top_k(b)| / k (rank order as in rank_order)."""
    return len(set(rank_order(a)[:k].tolist()) & set(rank_order(b)[:k].tolist())) / k


@dataclass
class RankAgreement:
    """Per-row agreement between two attributions of the same sources, and the means over rows."""

    spearman: np.ndarray
    kendall: np.ndarray
    top_k_overlap: np.ndarray
    k: int

    def aggregated(self) -> dict[str, float]:
        return {"spearman": float(np.nanmean(self.spearman)) if np.isfinite(self.spearman).any() else float("nan"),
                "kendall": float(np.nanmean(self.kendall)) if np.isfinite(self.kendall).any() else float("nan"),
                f"top_{self.k}_overlap": float(np.mean(self.top_k_overlap))}

    def to_dict(self) -> dict[str, Any]:
        return _json({"spearman": self.spearman, "kendall": self.kendall, "top_k_overlap": self.top_k_overlap,
                      "k": self.k, "aggregated": self.aggregated()})


def _matrix(x: Attribution | np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(x.matrix if isinstance(x, Attribution) else x, dtype=np.float64)
    if m.ndim == 1:
        m = m[None]
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(f"{name} must be an Attribution or a [rows, sources] array with >= 2 sources, "
                         f"got shape {list(m.shape)}")
    return m


def rank_agreement(a: Attribution | np.ndarray, b: Attribution | np.ndarray, k: int = 3) -> RankAgreement:
    """Spearman, Kendall tau-b and top-k overlap between two attributions, row by row."""
    ma, mb = _matrix(a, "a"), _matrix(b, "b")
    if ma.shape != mb.shape:
        raise ValueError(f"a and b must attribute the same rows and sources, got shapes {list(ma.shape)} and "
                         f"{list(mb.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= ma.shape[1]:
        raise ValueError(f"k must be an int in [1, {ma.shape[1]}] (number of sources), got {k!r}")
    return RankAgreement(np.array([spearman(x, y) for x, y in zip(ma, mb)]),
                         np.array([kendall_tau(x, y) for x, y in zip(ma, mb)]),
                         np.array([top_k_overlap(x, y, k) for x, y in zip(ma, mb)]), k)


def agreement_table(attributions: dict[str, Attribution], k: int = 3, metric: str = "spearman"
                    ) -> dict[str, dict[str, float]]:
    """Pairwise mean agreement {method a: {method b: value}} over a dict of attributions of the same problem."""
    if metric not in ("spearman", "kendall", "top_k_overlap"):
        raise ValueError(f"metric must be one of ['spearman', 'kendall', 'top_k_overlap'], got {metric!r}")
    key = f"top_{k}_overlap" if metric == "top_k_overlap" else metric
    return {x: {y: rank_agreement(ax, ay, k).aggregated()[key] for y, ay in attributions.items()}
            for x, ax in attributions.items()}
