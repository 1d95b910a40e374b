"""Attribution-guided prompt compression (FrugalPrompt, 2025: keep the most important prompt tokens).

For each keep fraction q (default 10%, 20%, ..., 100%) and each ranking of the prompt's source units, the
compressed prompt keeps the ceil(q U) (at least 1) units ranked highest, in their original order; the other units'
tokens are *dropped* (the prompt gets shorter, unlike occlusion's same-length replacement, because shortening
is the point of compression). A BOS prefix is always kept. The task metric is the target's score on the
compressed prompt summed over the target rows, e.g. the log-likelihood of a reference answer
sum_j log p(y_j | compressed prompt, y_<j) for a continuation target.

Rankings (`rankers`): an attribution method name (run with `attribute` on the same prompt and target at
`granularity`), an `Attribution` of the same prompt, or an array of per-unit scores. An Attribution's units are
ranked by the sum of its rows (for token-log-probability rows: the attribution of the whole reference's
log-likelihood for additive methods). Each ranker gives a "top" curve (keep the highest) and a "bottom" curve
(keep the lowest); "random" keeps uniformly random units, averaged over `random_repeats` draws from
numpy.random.default_rng(seed).
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.attribution.api import attribute
from workbench.attribution.faithfulness import FRACTIONS, counts_for, rank_order
from workbench.attribution.problem import check_prompt
from workbench.attribution.result import Attribution, _json
from workbench.attribution.targets import ResolvedTarget, check_target, resolve
from workbench.attribution.units import Unit, build_units, check_granularity


@dataclass
class CompressionCurves:
    """Task metric against the keep fraction: curves["top:<ranker>"], ["bottom:<ranker>"], ["random"] [K]."""

    fractions: list[float]
    kept_units: list[int]
    n_units: int
    full: float
    curves: dict[str, np.ndarray]
    random_std: np.ndarray
    metric: str
    evaluations: int = 0
    seconds: float = 0.0
    attribution_cost: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One record per fraction: kept units and every curve's value."""
        return [{"fraction": q, "kept_units": k, **{name: float(c[i]) for name, c in self.curves.items()}}
                for i, (q, k) in enumerate(zip(self.fractions, self.kept_units))]

    def to_dict(self) -> dict[str, Any]:
        return _json({k: getattr(self, k) for k in self.__dataclass_fields__})


def compressed_ids(units: Sequence[Unit], keep: np.ndarray, ids: Sequence[int]) -> list[int]:
    """The prompt's token ids of the kept units, in original order."""
    out: list[int] = []
    for unit, kept in zip(units, keep):
        if kept:
            out.extend(ids[i] for i in unit.token_indices)
    return out


def target_metric(lm: Any, target: ResolvedTarget, prompts: Sequence[Sequence[int]], batch_size: int = 16
                  ) -> np.ndarray:
    """Sum over target rows of the target's score after each prompt (token ids), batched by prompt length."""
    out = np.zeros(len(prompts))
    by_length: dict[int, list[int]] = {}
    for k, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(k)
    with torch.no_grad():
        for length, members in by_length.items():
            for i in range(0, len(members), batch_size):
                rows = members[i:i + batch_size]
                logits = []
                for cont in target.continuations:
                    ids = torch.tensor([list(prompts[k]) + list(cont) for k in rows], device=lm.device)
                    logits.append(lm.forward(ids).logits[:, length - 1:])
                out[rows] = target.score(logits).double().sum(-1).cpu().numpy()
    return out


def compression_curves(lm: Any, prompt: str, target: Any, rankers: Sequence[Any] | Mapping[str, Any], *,
                       granularity: str | list[tuple[int, int]] = "token", fractions: Sequence[float] = FRACTIONS,
                       random_repeats: int = 3, seed: int = 0, batch_size: int = 16, progress: bool = False,
                       method_options: Mapping[str, Mapping[str, Any]] | None = None) -> CompressionCurves:
    """Metric curves of top-k / bottom-k compression per ranker, and of random-k (see the module docstring).

    rankers: method names, or {label: method name | Attribution | per-unit scores}.
    target: the reference whose score is the metric (a continuation, Contrastive or TargetFunction; not None).
    method_options: extra options per method name when a ranker is a name.
    """
    start = time.perf_counter()
    fractions = [float(q) for q in fractions]
    if not fractions or any(not 0.0 < q <= 1.0 for q in fractions):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1], got {fractions}")
    if isinstance(random_repeats, bool) or not isinstance(random_repeats, int) or random_repeats < 0:
        raise ValueError(f"random_repeats must be an int >= 0, got {random_repeats!r}")
    if target is None:
        raise ValueError("target: give the reference to score (a continuation, Contrastive or TargetFunction); "
                         "None (the model's own generation) is not a fixed reference")
    named = dict(rankers) if isinstance(rankers, Mapping) else {str(r): r for r in rankers}
    if not named:
        raise ValueError("rankers: give at least one method name, Attribution or score array")
    from workbench.attribution.methods.registry import get_method

    options = dict(method_options or {})
    for label, ranker in named.items():
        if isinstance(ranker, str):
            get_method(ranker, **options.get(ranker, {}))  # unknown names / options fail before any work
    spans = check_granularity(granularity)
    text = check_prompt(lm, prompt)
    spec = check_target(lm, target)
    units = build_units(spans, text.ids, text.offsets, text.data)
    n = len(units)
    scores: dict[str, np.ndarray] = {}
    for label, ranker in named.items():
        if isinstance(ranker, (str, Attribution)):
            continue
        values = np.asarray(ranker, dtype=np.float64).reshape(-1)
        if values.shape != (n,):
            raise ValueError(f"rankers[{label!r}]: expected {n} scores (one per unit at granularity "
                             f"{granularity!r}), got {values.size}")
        scores[label] = values
    resolved = resolve(lm, spec, text.prefix_ids + text.ids)
    costs: dict[str, dict[str, Any]] = {}
    for label, ranker in named.items():
        if isinstance(ranker, str):
            ranker = attribute(lm, prompt, target, method=ranker, granularity=spans, progress=progress,
                               **options.get(ranker, {}))
        if isinstance(ranker, Attribution):
            if [(u.start, u.end) for u in ranker.sources] != [(u.start, u.end) for u in units]:
                raise ValueError(f"rankers[{label!r}]: its source units differ from the prompt's units at "
                                 f"granularity {granularity!r}")
            scores[label] = ranker.matrix.sum(0)
            costs[label] = ranker.cost.to_dict()
    counts = [max(1, c) for c in counts_for(fractions, n)]
    plans: dict[str, list[np.ndarray]] = {}
    for label, values in scores.items():
        order = rank_order(values)
        plans[f"top:{label}"] = [np.isin(np.arange(n), order[:c]) for c in counts]
        plans[f"bottom:{label}"] = [np.isin(np.arange(n), order[::-1][:c]) for c in counts]
    rng = np.random.default_rng(seed)
    draws = [rng.permutation(n) for _ in range(random_repeats)]
    for r, perm in enumerate(draws):
        plans[f"random#{r}"] = [np.isin(np.arange(n), perm[:c]) for c in counts]
    prompts: dict[bytes, list[int]] = {}
    for masks in plans.values():
        for mask in masks:
            prompts.setdefault(mask.tobytes(), text.prefix_ids + compressed_ids(units, mask, text.ids))
    full_key = np.ones(n, dtype=bool).tobytes()
    prompts.setdefault(full_key, text.prefix_ids + list(text.ids))
    keys = list(prompts)
    values = dict(zip(keys, target_metric(lm, resolved, [prompts[k] for k in keys], batch_size)))
    curves = {name: np.array([values[m.tobytes()] for m in masks]) for name, masks in plans.items()
              if not name.startswith("random#")}
    random = np.array([[values[m.tobytes()] for m in plans[f"random#{r}"]] for r in range(random_repeats)])
    if random_repeats:
        curves["random"] = random.mean(0)
    metric = ("log-likelihood of the reference" if resolved.kind == "continuation"
              else f"{resolved.kind} target score (sum of rows)")
    return CompressionCurves(
        fractions=fractions, kept_units=counts, n_units=n, full=float(values[full_key]), curves=curves,
        random_std=random.std(0) if random_repeats else np.zeros(len(counts)), metric=metric,
        evaluations=len(keys), seconds=time.perf_counter() - start, attribution_cost=costs)


def compress(attribution: Attribution, fraction: float) -> str:
    """The compressed prompt text: the top ceil(fraction U) units of `attribution` (rows summed), in order."""
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    n = len(attribution.sources)
    keep = rank_order(attribution.matrix.sum(0))[:max(1, math.ceil(round(fraction * n, 9)))]
    data = attribution.prompt.encode("utf-8")
    return b"".join(data[u.start:u.end] for i, u in enumerate(attribution.sources) if i in set(keep.tolist())
                    ).decode("utf-8", errors="replace")
