"""Critical tokens: per-token contrastive log-likelihood of a trajectory under two models (Lin et al. 2024,
"Critical Tokens Matter: Token-Level Contrastive Estimation Enhances LLM's Reasoning Capability").

    from workbench.attribution import Scorer, critical_tokens
    ct = critical_tokens(good_lm, bad_lm, prompt, continuation)             # two models
    ct = critical_tokens(lm, Scorer(lm, prefix="Answer carelessly. "), prompt, continuation)   # a prompt variant
    ct = critical_tokens(lm, Scorer(lm, exit_layer=12), prompt, continuation)                  # an early exit
    ct.table()          # pandas DataFrame, one row per continuation token, most critical first
    ct.top(5), ct.to_dict()

What the paper does: a "critical token" is a token of an incorrect reasoning trajectory that drives the wrong
outcome (in their example, forcing another token in its place makes sampled continuations reach the right
answer). To find them at scale the authors fine-tune two copies of a model, a positive one on correct
trajectories and a negative one on incorrect trajectories, and score every token y_t of an incorrect
trajectory by contrasting the two models' likelihoods of it, a beta-weighted difference of log-likelihoods,
(1 + beta) log p_pos(y_t | x, y_<t) - beta log p_neg(y_t | x, y_<t), normalized; tokens the negative model
explains much better than the positive one are the critical ones. The scores then weight a token-level DPO
(their cDPO).

What is here (simplified): no fine-tuning. The two sides of the contrast are whatever the caller has: two
models sharing a vocabulary, or one model and a variant of it (another context prefix before the prompt, e.g.
a different system prompt, or an early exit through `LM.forward(exit_layer=...)`), each a `Scorer`. For every
continuation token (the trajectory's steps; the prompt is context only) this computes both log-probabilities
from one teacher-forced forward per side (logits only at the scored positions) and

    contrast_t = log p_pos(y_t) - log p_neg(y_t)
    score_t    = (1 + beta) log p_pos(y_t) - beta log p_neg(y_t)     (the paper's form, without its normalizer)

Tokens are ranked by `rank_by` ("contrast", default, or "score"), lowest first: the tokens whose likelihood
the negative side raises most relative to the positive side. Nothing here decides an outcome (no rollouts,
no answer checking) and nothing is trained.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.tokenization.protocol import InputTypeError

RANK_BY = ("contrast", "score")
COLUMNS = ["rank", "position", "token_id", "token", "logp_positive", "logp_negative", "contrast", "score"]


@dataclass(frozen=True)
class Scorer:
    """One side of the contrast: a model, a context prefix placed before the prompt (text or token ids), and an
    optional early-exit layer (logits from layer k through the final norm and LM head)."""

    lm: Any
    prefix: str | Sequence[int] = ""
    exit_layer: int | None = None
    name: str = ""

    def label(self) -> str:
        if self.name:
            return self.name
        parts = [type(getattr(self.lm, "model", self.lm)).__name__]
        if self.prefix:
            parts.append(f"prefix={self.prefix!r:.40}")
        if self.exit_layer is not None:
            parts.append(f"exit_layer={self.exit_layer}")
        return " ".join(parts)


@dataclass
class CriticalTokens:
    """Per continuation token: both sides' log-probabilities, their contrast, the paper-form score, the rank.

    Arrays are indexed by continuation position t; `order` lists positions most critical first."""

    prompt: str
    token_ids: list[int]
    tokens: list[str]
    logp_positive: np.ndarray
    logp_negative: np.ndarray
    beta: float
    rank_by: str
    positive: str
    negative: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def contrast(self) -> np.ndarray:
        """log p_pos(y_t) - log p_neg(y_t)."""
        return self.logp_positive - self.logp_negative

    @property
    def score(self) -> np.ndarray:
        """(1 + beta) log p_pos(y_t) - beta log p_neg(y_t)."""
        return (1 + self.beta) * self.logp_positive - self.beta * self.logp_negative

    @property
    def order(self) -> np.ndarray:
        """Positions sorted most critical first (lowest `rank_by` value; ties keep trajectory order)."""
        values = self.contrast if self.rank_by == "contrast" else self.score
        return np.argsort(values, kind="stable")

    def rows(self) -> list[dict[str, Any]]:
        """One dict per token, most critical first (rank 1 = most critical)."""
        contrast, score = self.contrast, self.score
        return [{"rank": r + 1, "position": int(t), "token_id": int(self.token_ids[t]), "token": self.tokens[t],
                 "logp_positive": float(self.logp_positive[t]), "logp_negative": float(self.logp_negative[t]),
                 "contrast": float(contrast[t]), "score": float(score[t])} for r, t in enumerate(self.order)]

    def table(self):
        """A tidy pandas DataFrame of `rows()`."""
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=COLUMNS)

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The k most critical tokens as (position, text, ranking value)."""
        values = self.contrast if self.rank_by == "contrast" else self.score
        return [(int(t), self.tokens[t], float(values[t])) for t in self.order[:k]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (non-finite numbers as None)."""
        def clean(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {"prompt": self.prompt, "positive": self.positive, "negative": self.negative, "beta": self.beta,
                "rank_by": self.rank_by, "token_ids": [int(i) for i in self.token_ids], "tokens": list(self.tokens),
                "logp_positive": [clean(x) for x in self.logp_positive],
                "logp_negative": [clean(x) for x in self.logp_negative],
                "rows": [{k: clean(v) if isinstance(v, float) else v for k, v in row.items()} for row in self.rows()],
                "settings": dict(self.settings)}

    def __repr__(self) -> str:
        head = (f"CriticalTokens({len(self.token_ids)} tokens, positive={self.positive!r}, "
                f"negative={self.negative!r}, ranked by {self.rank_by}, beta={self.beta:g})")
        lines = [head]
        for row in self.rows()[:10]:
            lines.append(f"{row['rank']:>4}  t={row['position']:<4} {row['token']!r:<16} contrast={row['contrast']:+.4f}"
                         f"  log p+={row['logp_positive']:.4f}  log p-={row['logp_negative']:.4f}")
        return "\n".join(lines)


def critical_tokens(positive: Any, negative: Any, prompt: str | Sequence[int],
                    continuation: str | Sequence[int], *, beta: float = 1.0,
                    rank_by: str = "contrast") -> CriticalTokens:
    """Rank the continuation's tokens by how much more likely the negative side finds them than the positive.

    positive / negative: an LM or a `Scorer` (LM + context prefix + early exit); both must share the vocabulary.
    prompt: context (text or token ids; the tokenizer's leading special tokens, e.g. BOS, are added to text).
    continuation: the trajectory's tokens to score (text or token ids), non-empty.
    beta: > 0, the weight of the paper-form score; rank_by: "contrast" (default) or "score".
    All input is checked before any model work.
    """
    pos, neg = as_scorer(positive, "positive"), as_scorer(negative, "negative")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {list(RANK_BY)}, got {rank_by!r}")
    check_same_vocabulary(pos, neg)
    tok = pos.lm.tokenizer
    lead, prompt_ids = prompt_tokens(tok, prompt, pos.lm.vocab_size)
    cont = token_ids(tok, continuation, "continuation", pos.lm.vocab_size)
    if not cont:
        raise ValueError("continuation is empty: the trajectory needs at least one token to score")
    if isinstance(continuation, str) and neg.lm.tokenizer.encode(continuation) != cont:
        raise ValueError(f"the positive ({pos.label()}) and negative ({neg.label()}) tokenizers split the "
                         "continuation differently; give it as token ids")
    contexts = []
    for side, param in ((pos, "positive"), (neg, "negative")):
        context = lead + token_ids(side.lm.tokenizer, side.prefix, f"{param}.prefix", side.lm.vocab_size) + prompt_ids
        if not context:
            raise ValueError("prompt (with the prefix) is empty: the first continuation token needs a context "
                             "position to be predicted from")
        total = len(context) + len(cont) - 1
        if total > side.lm.max_context:
            raise ValueError(f"{param}: context and continuation ({total} tokens) exceed the model's context of "
                             f"{side.lm.max_context} tokens")
        contexts.append(context)
    logp = [token_logprobs(side, context, cont) for side, context in zip((pos, neg), contexts)]
    texts = [tok.token_bytes(i).decode("utf-8", errors="replace") for i in cont]
    text = prompt if isinstance(prompt, str) else tok.decode(list(prompt))
    return CriticalTokens(text, cont, texts, logp[0], logp[1], float(beta), rank_by, pos.label(), neg.label(),
                          settings={"positive_exit_layer": pos.exit_layer, "negative_exit_layer": neg.exit_layer})


def as_scorer(value: Any, param: str) -> Scorer:
    """An LM becomes Scorer(lm); a Scorer is checked (exit layer in range, prefix type)."""
    scorer = value if isinstance(value, Scorer) else Scorer(value)
    lm = scorer.lm
    if not all(hasattr(lm, a) for a in ("forward", "tokenizer", "vocab_size", "num_layers")):
        raise InputTypeError(f"{param} must be an LM (workbench.models.LM) or a Scorer, got {type(value).__name__}")
    k = scorer.exit_layer
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= lm.num_layers):
        raise ValueError(f"{param}.exit_layer must be None or an int in [0, {lm.num_layers}], got {k!r}")
    if not isinstance(scorer.prefix, (str, list, tuple)):
        raise InputTypeError(f"{param}.prefix must be a string or a list of token ids, got "
                             f"{type(scorer.prefix).__name__}")
    return scorer


def check_same_vocabulary(pos: Scorer, neg: Scorer) -> None:
    a, b = pos.lm, neg.lm
    ta, tb = a.tokenizer, b.tokenizer
    same = (a.vocab_size == b.vocab_size and ta.vocab_size == tb.vocab_size
            and getattr(ta, "name", None) == getattr(tb, "name", None))
    if not same:
        raise ValueError(
            f"positive ({pos.label()}: tokenizer {getattr(ta, 'name', '?')!r}, vocab {a.vocab_size}) and negative "
            f"({neg.label()}: tokenizer {getattr(tb, 'name', '?')!r}, vocab {b.vocab_size}) have different "
            "vocabularies; a per-token contrast needs the same tokens on both sides")


def prompt_tokens(tok: Any, prompt: object, vocab: int) -> tuple[list[int], list[int]]:
    """(leading special tokens the tokenizer adds, the prompt's own ids); ids given directly get no specials."""
    if isinstance(prompt, str):
        plain = list(tok.encode(prompt))
        special = list(tok.encode(prompt, add_special_tokens=True))
        lead = special[:len(special) - len(plain)] if special[len(special) - len(plain):] == plain else []
        return lead, plain
    return [], token_ids(tok, prompt, "prompt", vocab)


def token_ids(tok: Any, value: object, param: str, vocab: int) -> list[int]:
    if isinstance(value, str):
        return list(tok.encode(value)) if value else []
    if isinstance(value, torch.Tensor):
        value = value.reshape(-1).tolist()
    if not isinstance(value, (list, tuple)):
        raise InputTypeError(f"{param} must be a string or a list of token ids, got {type(value).__name__}")
    ids = []
    for k, i in enumerate(value):
        if isinstance(i, bool) or not hasattr(i, "__index__"):
            raise ValueError(f"{param}[{k}] must be an int token id, got {type(i).__name__}")
        if not 0 <= int(i) < vocab:
            raise ValueError(f"{param}[{k}] = {int(i)} is outside the vocabulary [0, {vocab})")
        ids.append(int(i))
    return ids


def token_logprobs(side: Scorer, context: list[int], continuation: list[int]) -> np.ndarray:
    """log p(continuation[t] | context, continuation[:t]) [n] from one teacher-forced forward (float64)."""
    n = len(continuation)
    ids = context + continuation[:-1]  # the last continuation token predicts nothing we score
    logits = side.lm.forward(ids, exit_layer=side.exit_layer, logits_to_keep=n).logits[0, -n:]
    logp = torch.log_softmax(logits.double(), dim=-1)
    index = torch.tensor(continuation, dtype=torch.long, device=logp.device)
    return logp[torch.arange(n, device=logp.device), index].cpu().numpy()
