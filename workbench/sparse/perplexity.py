"""Perplexity of long real text under sparse attention policies, against full attention in the same run.

    res = policy_perplexity(lm, ids, prefix=4096, score=256, runs=[("full", None), ("h2o", 512), ("quest", 512)])
    res.rows[1].ppl, res.rows[1].delta, res.rows[1].recall, res.rows[1].kv_bytes_per_step

Protocol: the first `prefix` tokens of each text are prefilled densely once (`workbench.sparse.prefill`), and
every policy starts from that same state: SnapKV, Zero-TPrune and FASA make their prefill-time decision from the
prompt's queries, H2O / Keyformer / SpAtten observe the dense prefill attention, i.e. the policy's own prefill
behaviour with a dense prompt pass, as in `SparseAttention`. Then the next `score` tokens are fed one at a time
(teacher forcing), each decode step reading only the policy's selection (masked mode), and token t+1 is scored
from the logits after token t, so all `score` scored tokens come from decode steps under the policy. "full" is
computed the same way in the same run, and `delta` = ppl / ppl_full - 1.

Per policy: ppl = exp(mean NLL over all scored tokens of all texts); recall = mean over decode steps, layers,
batch and query heads of the attention mass on the selection (`metrics.mass_recall`), oracle_recall = the same
for the oracle top-k with the same count per KV head, normalized_recall = recall / oracle_recall; KV bytes read
per decode step (selected K/V + policy metadata + index lists, all layers, per text) against the dense bytes.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from workbench.sparse.integration import SparseAttention
from workbench.sparse.prefill import as_batch, decode, dense_prefill, start_policies
from workbench.sparse.registry import get_selector
from workbench.sparse.selector import Selector

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.lm import LM

Run = tuple  # (policy name, budget) or (policy name, budget, params dict) or a Selector


@dataclass
class PerplexityRow:
    """One policy at one budget."""

    policy: str
    budget: object
    params: dict
    tokens: int
    nll: float  # mean negative log-likelihood (nats per token)
    ppl: float
    delta: float  # ppl / ppl_full - 1 (0 for full itself)
    recall: float
    oracle_recall: float
    normalized_recall: float
    kv_bytes_per_step: float  # mean over decode steps, per text
    dense_kv_bytes_per_step: float
    bytes_ratio: float
    seconds: float


@dataclass
class PerplexityResult:
    """Perplexity of every run on the same texts; rows[0] is full attention."""

    prefix: int
    score: int
    texts: int
    prefill_seconds: float
    rows: list[PerplexityRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"prefix": self.prefix, "score": self.score, "texts": self.texts,
                "prefill_seconds": self.prefill_seconds, "rows": [asdict(r) for r in self.rows]}

    def __repr__(self) -> str:
        lines = [f"PerplexityResult(prefix={self.prefix}, score={self.score}, texts={self.texts})"]
        for r in self.rows:
            lines.append(f"  {r.policy:>14} budget={r.budget!s:>6} ppl={r.ppl:8.3f} delta={r.delta:+.2%} "
                         f"recall={r.recall:.3f} bytes={r.bytes_ratio:.3f}")
        return "\n".join(lines)


def make_selector(run: Run | Selector) -> Selector:
    """A Selector from (name, budget[, params]) or a Selector as is."""
    if isinstance(run, Selector):
        return run
    if not isinstance(run, (tuple, list)) or len(run) not in (2, 3) or not isinstance(run[0], str):
        raise ValueError(f"runs: each run must be (policy, budget), (policy, budget, params) or a Selector, got {run!r}")
    params = dict(run[2]) if len(run) == 3 else {}
    return get_selector(run[0], budget=run[1], **params)


def check_budgets(selectors: Sequence[Selector], context: int, num_kv_heads: int, num_layers: int) -> None:
    """Every budget must be > 0 (Budget checks that) and at most `context` tokens."""
    for sel in selectors:
        if sel.budget is not None:
            sel.budget.check(context, num_kv_heads, num_layers)


def policy_perplexity(lm: LM, ids: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor, prefix: int, score: int,
                      runs: Sequence[Run | Selector], group: int = 8, progress: bool = False) -> PerplexityResult:
    """Perplexity of `score` tokens after a dense `prefix` under each run (see the module docstring).

    ids: one text [T] or several of equal length [B, T] with T >= prefix + score + 1 (token prefix + i is fed
    at decode step i and token prefix + i + 1 is its target). A "full" run is added first
    when `runs` has none. Budgets larger than the longest context (prefix + score) are refused. `group` runs are
    decoded together as one batch (`prefill.decode`; memory: group x texts copies of the cache).
    """
    ids = as_batch(ids)
    for name, v in (("prefix", prefix), ("score", score), ("group", group)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if prefix + score > lm.max_context:
        raise ValueError(f"prefix + score = {prefix + score} tokens exceed the model's context of {lm.max_context}")
    if ids.shape[1] < prefix + score + 1:
        raise ValueError(f"ids: need prefix + score + 1 = {prefix + score + 1} tokens per text (the last one is only "
                         f"a target), got {ids.shape[1]}")
    selectors = [make_selector(r) for r in runs]
    if not any(s.name == "full" for s in selectors):
        selectors.insert(0, get_selector("full"))
    else:
        selectors.sort(key=lambda s: s.name != "full")
    check_budgets(selectors, prefix + score, lm.num_kv_heads, lm.num_layers)

    t0 = time.perf_counter()
    pre = dense_prefill(lm, ids[:, :prefix])
    fed = ids[:, prefix:prefix + score]
    target = ids[:, prefix + 1:prefix + score + 1]
    attns = [SparseAttention(s, track_recall=True) for s in selectors]
    start_policies(pre, attns)
    prefill_seconds = time.perf_counter() - t0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(attns) * score, desc="perplexity", unit="run-step")
    result = PerplexityResult(prefix=prefix, score=score, texts=ids.shape[0], prefill_seconds=prefill_seconds)
    nlls: list[float] = []
    for lo in range(0, len(attns), group):
        part = attns[lo:lo + group]
        t = time.perf_counter()
        _, logits = decode(lm, part, pre, score, tokens=fed, progress=bar)
        logp = torch.log_softmax(logits.float(), -1)
        nll = -logp.gather(-1, target.expand(len(part), -1, -1).unsqueeze(-1)).squeeze(-1).mean((1, 2))
        seconds = (time.perf_counter() - t) / len(part)
        for sel, attn, v in zip(selectors[lo:lo + group], part, nll.tolist()):
            nlls.append(v)
            result.rows.append(_row(sel, attn, v, nlls[0], target.numel(), seconds))
            attn.states.clear()  # drop this run's per-layer state (the prompt queries are shared, not copied)
    if bar is not None:
        bar.close()
    return result


def _row(sel: Selector, attn: SparseAttention, nll: float, full_nll: float, tokens: int, seconds: float) -> PerplexityRow:
    recall = [r.recall for r in attn.recalls]
    oracle = [r.oracle_recall for r in attn.recalls]
    mean_recall = sum(recall) / len(recall)
    mean_oracle = sum(oracle) / len(oracle)
    total = [s.total_bytes for s in attn.steps]
    dense = [s.dense_kv_bytes for s in attn.steps]
    budget = sel.budget.to_dict() if sel.budget is not None else None
    if isinstance(budget, dict) and set(budget) == {"tokens"}:
        budget = budget["tokens"]
    params = {k: v for k, v in sel.params().items() if k != "budget"}
    return PerplexityRow(
        policy=sel.name, budget=budget, params=params, tokens=tokens, nll=nll, ppl=math.exp(nll),
        delta=math.exp(nll - full_nll) - 1, recall=mean_recall, oracle_recall=mean_oracle,
        normalized_recall=mean_recall / mean_oracle if mean_oracle > 0 else float("nan"),
        kv_bytes_per_step=sum(total) / len(total), dense_kv_bytes_per_step=sum(dense) / len(dense),
        bytes_ratio=sum(total) / sum(dense), seconds=seconds)
