"""Scoring perturbed prompts: the value function of occlusion, Shapley sampling and KernelSHAP.

`PerturbationValue(problem, ...)` maps keep-masks over source units [M, F] (True = present) to target scores
[M, R]. A removed unit's tokens are replaced by a baseline embedding (`baseline`: "pad", "zero" or a token id,
see `baseline_embedding`), so every perturbed input has the prompt's length and a batch needs no padding.

Cost savings, all exact (no approximation):
- memo: each distinct coalition is run once per value function; repeats (frequent in Shapley sampling with few
  features) are answered from the memo. `evaluations` counts coalitions actually run through the model.
- batching: coalitions are run `batch_size` at a time, every target token scored from one teacher-forced pass
  (prompt suffix and continuation fed together).
- KV-cache reuse (`reuse_prefix=True`): one forward of the unperturbed prompt (prefix + source tokens) is run
  once and its KV cache kept. Coalitions are sorted by the position of their first removed token; a batch whose
  earliest removed token is at position p (prefix included) starts from that cache expanded to the batch and
  cropped to p (`KVCache.expand(b).crop(p)`: views of the same tensors, no copy), and feeds only positions
  p .. prompt_len - 1 plus the continuation.
  A batch with nothing removed feeds from the last prompt token (its logits predict the first target token).
  What is reused is exactly the keys and values of the unperturbed tokens before p in every layer; since
  attention is causal these equal what a full recompute gives. With several continuations (contrastive
  targets) the perturbed prompt is fed once; each continuation is fed after it and cropped off again.
  `reused_tokens` counts the (input, position) pairs served from the shared cache instead of recomputed.
- logits only where scored: each forward computes logits at the positions that predict target tokens
  (`LM.forward(logits_to_keep=...)`), not at every prompt position ([B, T, V] floats for a long prompt).

Memory: batches are split so that rows x the estimated bytes of one row stays under `memory_budget`
(workbench.attribution.chunking; default max(1 GiB, 2 x the model's parameter bytes)), at most `batch_size`
rows. Chunks follow the sorted order, so early chunks (short suffixes to feed) are larger than late ones.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workbench.attribution.chunking import plan_chunks, resolve_budget, row_bytes
from workbench.attribution.problem import Problem

BASELINES = ("pad", "zero")


def check_baseline(baseline: object, param: str = "baseline") -> str | int:
    """Validate a baseline's form: "pad", "zero" or a non-negative int token id."""
    if isinstance(baseline, str) and baseline in BASELINES:
        return baseline
    if not isinstance(baseline, bool) and isinstance(baseline, (int, np.integer)) and baseline >= 0:
        return int(baseline)
    raise ValueError(f"{param} must be one of {list(BASELINES)} or a token id (int >= 0), got {baseline!r}")


def pad_id(lm: Any) -> int:
    """The token used by the "pad" baseline: the model config's pad_token_id, else the tokenizer's EOS."""
    config = getattr(lm, "text_config", None) or getattr(lm, "config", None)
    pad = getattr(config, "pad_token_id", None)
    if isinstance(pad, (list, tuple)):
        pad = pad[0] if pad else None
    if pad is None:
        pad = getattr(lm.tokenizer, "eos_id", None)
    if pad is None:
        raise ValueError("baseline='pad' needs a pad token (config.pad_token_id) or an EOS token; this model has "
                         "neither: use baseline='zero' or a token id")
    return int(pad)


def check_baseline_for(problem: Problem, baseline: str | int, param: str = "baseline") -> None:
    """Problem-dependent baseline checks (before work): a token id must be in the vocabulary."""
    if baseline == "pad":
        token = pad_id(problem.lm)
    elif isinstance(baseline, int):
        token = baseline
    else:
        return
    if not 0 <= token < problem.lm.vocab_size:
        raise ValueError(f"{param} token id {token} is outside the model's vocabulary [0, {problem.lm.vocab_size})")


def baseline_embedding(problem: Problem, baseline: str | int) -> torch.Tensor:
    """[hidden] embedding that stands for a removed token: zeros, or the embedding of the pad / given token."""
    if baseline == "zero":
        return torch.zeros_like(problem.source_embeds()[0, 0])
    token = pad_id(problem.lm) if baseline == "pad" else int(baseline)
    return problem.embed([token])[0, 0]


class PerturbationValue:
    """v(keep-masks [M, F] over units) -> scores [M, R] (float64), with memo, batching and KV reuse."""

    def __init__(self, problem: Problem, baseline: str | int = "pad", batch_size: int = 16,
                 reuse_prefix: bool = True, progress: bool = False, memory_budget: int | None = None):
        self.problem = problem
        self.batch_size = batch_size
        self.memory_budget = resolve_budget(problem.lm, memory_budget)
        self.reuse_prefix = reuse_prefix
        self.progress = progress
        self.source = problem.source_embeds()
        self.fill = baseline_embedding(problem, baseline)
        self.memo: dict[bytes, np.ndarray] = {}
        self.evaluations = 0
        self.reused_tokens = 0  # positions served from the unperturbed prompt's KV cache instead of recomputed
        self._base_cache = None

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != self.problem.n_units:
            raise ValueError(f"masks must have shape [M, {self.problem.n_units}], got {list(masks.shape)}")
        keys = [m.tobytes() for m in masks]
        todo: dict[bytes, np.ndarray] = {}
        for key, mask in zip(keys, masks):
            if key not in self.memo and key not in todo:
                todo[key] = mask
        if todo:
            self._evaluate(list(todo.items()))
        return np.stack([self.memo[key] for key in keys])

    # ---- model work ----------------------------------------------------------------------------------------
    def _evaluate(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        p = self.problem
        token_keep = p.unit_token_mask(np.stack([mask for _, mask in items]))
        first = np.where(token_keep.all(1), p.n_tokens, (~token_keep).argmax(1)) + p.n_prefix
        order = np.argsort(-first, kind="stable")  # longest shared prefix first
        starts = np.minimum(first[order], p.prompt_len - 1) if self.reuse_prefix else np.zeros(len(order), int)
        chunks = [order[c] for c in plan_chunks(starts, self.batch_size, self._fits)]
        bar = None
        if self.progress and len(chunks) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc="perturbations", unit="input", leave=False)
        for rows in chunks:
            start = min(int(first[rows].min()), p.prompt_len - 1) if self.reuse_prefix else 0
            scores = self._run(token_keep[rows], start)
            self.reused_tokens += start * len(rows)
            for r, score in zip(rows, scores):
                self.memo[items[r][0]] = score
            self.evaluations += len(rows)
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.close()

    def _fits(self, rows: int, start: int) -> bool:
        """Whether `rows` inputs fed from position `start` stay within the memory budget."""
        p = self.problem
        longest = max(len(c) for c in p.target.continuations)
        fed = p.prompt_len - start + longest
        return rows * row_bytes(p.lm, fed, p.prompt_len + longest, longest + 1) <= self.memory_budget

    def _run(self, keep: np.ndarray, start: int) -> np.ndarray:
        """Scores of a batch of token keep-masks [b, n], feeding the model from position `start` on."""
        p, lm = self.problem, self.problem.lm
        batch = keep.shape[0]
        keep_t = torch.as_tensor(keep, device=self.source.device)[..., None]
        source = torch.where(keep_t, self.source, self.fill)  # [b, n, hidden]
        full = p.full_embeds(source, [])[:, start:]  # prefix + source from `start`
        cache = self._base().expand(batch).crop(start) if start > 0 else lm.new_cache()
        conts = p.target.continuations
        logits = []
        if len(conts) == 1:
            fed = torch.cat([full, p.embed(conts[0]).expand(batch, -1, -1)], 1) if conts[0] else full
            logits.append(kept_logits(lm, fed, cache, len(conts[0]) + 1))
        else:
            last = kept_logits(lm, full, cache, 1)  # predicts each continuation's first token
            for cont in conts:
                if cont:
                    out = kept_logits(lm, p.embed(cont).expand(batch, -1, -1), cache, len(cont))
                    cache.crop(p.prompt_len)  # back to the perturbed prompt for the next continuation
                    logits.append(torch.cat([last, out], 1))
                else:
                    logits.append(last)
        with torch.no_grad():
            return p.target.score(logits).double().cpu().numpy()

    def _base(self):
        """KV cache of the unperturbed prompt (prefix + source), computed once."""
        if self._base_cache is None:
            p = self.problem
            self._base_cache = p.lm.new_cache()
            p.lm.forward(inputs_embeds=p.full_embeds(self.source, []), cache=self._base_cache, logits_to_keep=1)
        return self._base_cache


def kept_logits(lm, embeds: torch.Tensor, cache, keep: int) -> torch.Tensor:
    """Logits [B, keep, V] of the last `keep` fed positions (sliced again for models that return them all)."""
    return lm.forward(inputs_embeds=embeds, cache=cache, logits_to_keep=keep).logits[:, -keep:]
