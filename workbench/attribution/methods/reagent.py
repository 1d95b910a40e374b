"""ReAGent, the Recursive Attribution Generator (Zhao & Shan 2024, "ReAGent: A Model-agnostic Feature Attribution
Method for Generative Language Models").

Gradient-free and model-agnostic: only forward passes on perturbed prompts. Our reading of the algorithm, per
target row r (all rows run together, each from the same forwards):

    s = 0 (importance per prompt token)
    repeat for step = 1, 2, ... max_steps:
        draw `probes` random subsets R of round(ratio x n) tokens; replace them with proposed tokens
        delta = p_r(original prompt) - p_r(perturbed prompt)          (one value per probe)
        s[R] += delta, s[not R] -= delta                                 (averaged over the probes)
        stopping check (from step `min_steps` on): keep the ceil(keep_ratio x n) most important tokens by s,
        replace all the others (the least important) with proposals; if the target prediction still holds
        (the target token is within the top `stop_rank` of the model's next-token distribution), the ranking
        has found a sufficient rationale and row r stops
    importance = s / (steps run): the mean signed probability drop

- Replaced tokens get +delta and kept ones -delta: a token whose replacement drops the target probability
  rises, tokens that were kept while it dropped fall (the paper's update, applied to raw scores rather than
  logits of a normalised distribution). The ranking is what the method estimates: with ratio < 0.5 a drop
  shared by every perturbation shifts all scores down alike. The paper starts from random scores; we start from zero, with ties in
  the stopping check broken by position (a random start only adds noise of the same size as early updates).
- Stopping: the paper stops when the top-n important tokens alone (the rest replaced) keep the target among
  the model's top-k predictions; equivalently, the least important tokens can be removed without the
  prediction changing. A row whose target does not satisfy the criterion on the unperturbed prompt (a
  teacher-forced token that is not the prediction) can never stop early and runs max_steps; so does every row of
  a target function (no "prediction" to check); a contrastive row's prediction holds while log p(a) > log p(b).
- `min_steps` (our addition, default 5; capped at max_steps): with one or two updates the scores of tokens
  replaced together tie, so the stopping check would accept a ranking that is mostly noise.
- delta is a probability difference for token rows (p = exp(log-probability)); for contrastive and function
  targets (not probabilities) it is the difference of the score itself.
- Replacement proposals (`replacement`): the paper uses RoBERTa's prediction for each masked token; no masked LM
  ships offline here, so the default "lm" proposes, for position i, the most likely next token of a causal LM
  given the unperturbed prefix x_<i, excluding x_i itself (one forward of the prompt, which also builds the KV
  cache reused below): a fluent in-distribution substitute, as the paper wants, computed once. The LM is the
  attributed model itself or `replacement_lm` (same vocabulary). The first token of a prompt without a BOS
  prefix has no context and gets a uniform draw. "uniform" draws every replacement uniformly from the
  vocabulary (excluding the original token), fresh each time.
Forwards: every perturbed prompt is scored from one teacher-forced pass, batched (`batch_size`, split to
`memory_budget`: workbench.attribution.chunking) and reusing the unperturbed prompt's KV cache before the
first replaced token (`reuse_prefix`, as in workbench.attribution.perturb). Per step: one batch of `probes`
inputs plus, once step >= min_steps, one batch of stopping checks (one input per running row), plus one initial
pass of the unperturbed prompt. `extras["forward_passes"]` splits them by stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.attribution.chunking import (
    plan_chunks,
    resolve_budget,
    row_bytes,
)
from workbench.attribution.methods.base import (
    Attributor,
    MethodOutput,
    check_choice,
    check_int,
    check_perturbation_options,
)
from workbench.attribution.methods.registry import register_method
from workbench.attribution.perturb import kept_logits
from workbench.attribution.problem import Problem
from workbench.tokenization.protocol import InputTypeError

REPLACEMENTS = ("lm", "uniform")
PROPOSAL_CHUNK = 256  # prompt positions per proposal forward (bounds the [chunk, V] logits)


def _check_fraction(value: object, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{param} must be a float in (0, 1), got {value!r}")
    return float(value)


@register_method("reagent")
@dataclass
class ReAGent(Attributor):
    """Recursive replacement-based token importance, stopped when the kept rationale preserves the prediction."""

    level = "token"

    ratio: float = 0.3
    keep_ratio: float = 0.3
    stop_rank: int = 1
    min_steps: int = 5
    max_steps: int = 100
    probes: int = 4
    replacement: str = "lm"
    replacement_lm: Any = None
    batch_size: int = 16
    seed: int = 0
    reuse_prefix: bool = True
    memory_budget: int | None = None

    def __post_init__(self) -> None:
        self.ratio = _check_fraction(self.ratio, "ratio")
        self.keep_ratio = _check_fraction(self.keep_ratio, "keep_ratio")
        check_int(self.stop_rank, "stop_rank", 1)
        check_int(self.max_steps, "max_steps", 1)
        check_int(self.min_steps, "min_steps", 1)
        check_int(self.probes, "probes", 1)
        check_choice(self.replacement, "replacement", REPLACEMENTS)
        if self.replacement_lm is not None:
            if self.replacement != "lm":
                raise ValueError(f"replacement_lm is only used with replacement='lm', got "
                                 f"replacement={self.replacement!r}")
            if not callable(getattr(self.replacement_lm, "forward", None)) or not hasattr(self.replacement_lm,
                                                                                          "vocab_size"):
                raise InputTypeError(f"replacement_lm must be an LM (with forward and vocab_size), got "
                                     f"{type(self.replacement_lm).__name__}")
        check_perturbation_options(self)

    def check(self, problem: Problem) -> None:
        other = self.replacement_lm
        if other is not None and int(other.vocab_size) != int(problem.lm.vocab_size):
            raise ValueError(f"replacement_lm has a vocabulary of {other.vocab_size} tokens, the attributed model "
                             f"{problem.lm.vocab_size}: the proposer must share the model's tokenizer")

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        return _Run(self, problem, progress).run()


class _Run:
    """One ReAGent run: proposals, the KV cache of the unperturbed prompt, batched scoring, the update loop."""

    def __init__(self, method: ReAGent, problem: Problem, progress: bool):
        self.m, self.p, self.progress = method, problem, progress
        self.rng = np.random.default_rng(method.seed)
        self.original = np.asarray(problem.prompt.ids, dtype=np.int64)
        self.budget = resolve_budget(problem.lm, method.memory_budget)
        self.forwards = {"prompt": 0, "proposals": 0, "probes": 0, "stop_checks": 0}
        self.stage = "probes"
        self.evaluations = 0  # prompts scored (batch rows)
        kind = problem.target.kind
        self.token_rows = kind in ("continuation", "generation")

    # ---- setup ---------------------------------------------------------------------------------------------
    def _prompt_pass(self) -> np.ndarray | None:
        """Build the unperturbed prompt's KV cache; with replacement='lm' and no replacement_lm, the same pass
        gives the proposals. Returns the proposals [n] (or None)."""
        p, lm = self.p, self.p.lm
        ids = list(p.prompt.prefix_ids) + list(p.prompt.ids)
        own = self.m.replacement == "lm" and self.m.replacement_lm is None
        self.cache = lm.new_cache()
        logits = []
        for s in range(0, len(ids), PROPOSAL_CHUNK if own else len(ids)):
            chunk = ids[s:s + (PROPOSAL_CHUNK if own else len(ids))]
            keep = len(chunk) if own else 1
            with torch.no_grad():
                out = lm.forward([chunk], cache=self.cache, logits_to_keep=keep).logits[:, -keep:]
            self.forwards["prompt"] += 1
            if own:
                logits.append(out[0].float())
        if self.m.replacement != "lm":
            return None
        if not own:
            other, cache = self.m.replacement_lm, self.m.replacement_lm.new_cache()
            for s in range(0, len(ids), PROPOSAL_CHUNK):
                chunk = ids[s:s + PROPOSAL_CHUNK]
                with torch.no_grad():
                    out = other.forward([chunk], cache=cache, logits_to_keep=len(chunk)).logits[:, -len(chunk):]
                logits.append(out[0].float())
                self.forwards["proposals"] += 1
        logits_all = torch.cat(logits, 0)  # [prefix + n, V]: row t predicts position t + 1
        proposals = np.empty(p.n_tokens, dtype=np.int64)
        for i in range(p.n_tokens):
            pos = p.n_prefix + i - 1
            if pos < 0:
                proposals[i] = self._uniform(self.original[i])
                continue
            row = logits_all[pos].clone()
            row[int(self.original[i])] = -math.inf
            proposals[i] = int(row.argmax())
        return proposals

    def _uniform(self, avoid: int) -> int:
        v = int(self.p.lm.vocab_size)
        t = int(self.rng.integers(v - 1))
        return t + (t >= avoid)

    def _replace(self, replaced: np.ndarray) -> np.ndarray:
        """Token ids [B, n] with the positions in `replaced` [B, n] (bool) replaced by proposals."""
        ids = np.broadcast_to(self.original, replaced.shape).copy()
        if self.proposals is not None:
            return np.where(replaced, self.proposals[None, :], ids)
        for b, i in zip(*np.nonzero(replaced)):
            ids[b, i] = self._uniform(int(self.original[i]))
        return ids

    # ---- scoring -------------------------------------------------------------------------------------------
    def _fits(self, rows: int, start: int) -> bool:
        p = self.p
        longest = max(len(c) for c in p.target.continuations)
        fed = p.prompt_len - start + longest
        return rows * row_bytes(p.lm, fed, p.prompt_len + longest, longest + 1) <= self.budget

    def score(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores [B, R] and whether each row's prediction holds [B, R] for prompts of token ids [B, n]."""
        p = self.p
        changed = ids != self.original[None, :]
        first = np.where(changed.any(1), changed.argmax(1), p.n_tokens) + p.n_prefix
        order = np.argsort(-first, kind="stable")
        starts = np.minimum(first[order], p.prompt_len - 1) if self.m.reuse_prefix else np.zeros(len(order), int)
        scores = np.empty((len(ids), p.num_rows))
        holds = np.zeros((len(ids), p.num_rows), dtype=bool)
        for chunk in plan_chunks(starts, self.m.batch_size, self._fits):
            rows = order[chunk]
            start = int(starts[chunk].min())
            logits = self._logits(ids[rows], start)
            with torch.no_grad():
                s = p.target.score(logits).double().cpu().numpy()
            scores[rows] = s
            self.evaluations += len(rows)
            holds[rows] = self._holds(logits, s)
        return scores, holds

    def _logits(self, ids: np.ndarray, start: int) -> list[torch.Tensor]:
        """Logits per continuation [b, len + 1, V] for prompts [b, n], fed from position `start` on."""
        p, lm = self.p, self.p.lm
        batch = len(ids)
        prefix = torch.tensor(p.prompt.prefix_ids, dtype=torch.long).view(1, -1).expand(batch, -1)
        full = torch.cat([prefix, torch.as_tensor(ids, dtype=torch.long)], 1).to(lm.device)[:, start:]
        cache = self.cache.expand(batch).crop(start) if start > 0 else lm.new_cache()
        with torch.no_grad():
            embeds = lm.embed(full).detach()
            conts, logits = p.target.continuations, []
            if len(conts) == 1:
                fed = torch.cat([embeds, p.embed(conts[0]).expand(batch, -1, -1)], 1) if conts[0] else embeds
                logits.append(kept_logits(lm, fed, cache, len(conts[0]) + 1))
                self.forwards[self.stage] += 1
            else:
                last = kept_logits(lm, embeds, cache, 1)
                self.forwards[self.stage] += 1
                for cont in conts:
                    if cont:
                        out = kept_logits(lm, p.embed(cont).expand(batch, -1, -1), cache, len(cont))
                        self.forwards[self.stage] += 1
                        cache.crop(p.prompt_len)
                        logits.append(torch.cat([last, out], 1))
                    else:
                        logits.append(last)
        return logits

    def _holds(self, logits: list[torch.Tensor], scores: np.ndarray) -> np.ndarray:
        """[b, R]: the target prediction holds (token rows: rank < stop_rank; contrastive: score > 0)."""
        kind = self.p.target.kind
        if self.token_rows:
            ids = torch.tensor(self.p.target.continuations[0], dtype=torch.long, device=logits[0].device)
            rows = logits[0][:, :len(ids)].float()
            own = rows.gather(-1, ids.view(1, -1, 1).expand(rows.shape[0], -1, 1))
            return ((rows > own).sum(-1) < self.m.stop_rank).cpu().numpy()
        if kind == "contrastive":
            return scores > 0
        return np.zeros_like(scores, dtype=bool)

    def _signal(self, scores: np.ndarray) -> np.ndarray:
        return np.exp(scores) if self.token_rows else scores

    # ---- the loop ------------------------------------------------------------------------------------------
    def run(self) -> MethodOutput:
        m, p = self.m, self.p
        n, rows = p.n_tokens, p.num_rows
        self.proposals = self._prompt_pass()
        self.stage = "prompt"
        (values,), (can_stop,) = self.score(self.original[None, :])
        base = self._signal(values)
        k = min(n, max(1, round(m.ratio * n)))
        kept = min(n, max(1, math.ceil(m.keep_ratio * n)))
        s = np.zeros((rows, n))
        steps = np.zeros(rows, dtype=int)
        active = np.ones(rows, dtype=bool)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=m.max_steps, desc="reagent", unit="step", leave=False)
        for step in range(1, m.max_steps + 1):
            self.stage = "probes"
            keys = self.rng.random((m.probes, n))
            replaced = keys <= np.sort(keys, 1)[:, k - 1:k]
            scores, _ = self.score(self._replace(replaced))
            delta = base[None, :] - self._signal(scores)  # [P, R]
            update = (np.where(replaced, 1.0, -1.0)[:, None, :] * delta[:, :, None]).mean(0)  # [R, n]
            s[active] += update[active]
            steps[active] += 1
            check = active & can_stop
            if step >= min(m.min_steps, m.max_steps) and check.any():
                self.stage = "stop_checks"
                which = np.flatnonzero(check)
                order = np.argsort(-s[which], axis=1, kind="stable")[:, :kept]
                removed = np.ones((len(which), n), dtype=bool)
                removed[np.arange(len(which))[:, None], order] = False
                _, holds = self.score(self._replace(removed))
                active[which[holds[np.arange(len(which)), which]]] = False
            if bar is not None:
                bar.update(1)
            if not active.any():
                break
        if bar is not None:
            bar.close()
        importance = s / np.maximum(steps, 1)[:, None]
        extras = {"steps": steps.tolist(), "stopped": (~active).tolist(), "replaced_per_probe": k,
                  "kept_in_check": kept, "forward_passes": dict(self.forwards),
                  "proposals": None if self.proposals is None else self.proposals.tolist()}
        return MethodOutput(importance, values, extras, evaluations=self.evaluations)
