"""SpecDec++: a draft model drafts a chain and stops when a trained head predicts a rejection is likely
(Huang et al., "SpecDec++: Boosting Speculative Decoding via Adaptive Candidate Lengths", 2024).

After drafting the i-th token the acceptance head (specdec_pp_head.py) predicts a_i, the probability that the
target accepts it given that tokens 1..i-1 were accepted, so the probability that at least one of tokens 1..i is
rejected is
    r_i = 1 - prod_{j <= i} a_j = 1 - prod_{j <= i} (1 - p_reject_j).
Drafting stops at the first i with r_i > threshold (token i is kept: it is verified with the others), or at
`max_draft` tokens / the step's budget (`stop_length` is this rule on given probabilities). threshold = 1 never
stops early; threshold = 0 stops after the first token (its predicted rejection probability is > 0).

Drafting reuses draft_model.py's machinery (DraftState: the draft's KV cache kept in step with the target, the
vocabulary check naming both tokenizers, logits aligned to the target's width): every token is the argmax
(temperature 0) or a draw from the draft distribution processed with the target's temperature / top-k / top-p,
with draft_probs attached: verify with 'greedy' (temperature 0) or 'speculative_sampling'. The head needs the
draft's last hidden state at the predicting position: the drafter routes the draft's forward passes through a
small proxy that asks for hidden states and keeps the last one (draft_state.py is not changed).

`head` is an AcceptanceHead or a path saved with `head.save`; without one the drafter cannot run (train it with
`train_acceptance_head(draft_lm, target_lm, prompts)`). Its input size must be the draft's hidden size + 2.

Simplifications against the paper: the paper trains the head on draft/target pairs over a large dataset with a
residual MLP on the hidden state; here the head is an MLP of chosen widths (default logistic regression) on the
hidden state plus two draft-probability features, trained on a project calibration run (teacher-forced target
continuations, see specdec_pp_head.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..sampling import SamplingConfig
from ..tree import DraftTree
from .base import Drafter, check_budget
from .draft_model import check_positive_int, load_draft
from .draft_state import DraftState
from .registry import register_drafter
from .specdec_pp_head import NUM_PROB_FEATURES, AcceptanceHead, head_features

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult


def check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1] (the stop probability h), got {threshold!r}")
    return float(threshold)


def stop_length(p_reject: Sequence[float], threshold: float) -> int:
    """Tokens kept: the first i (1-based) with 1 - prod_{j <= i}(1 - p_reject[j]) > threshold, else len(p_reject)."""
    threshold = check_threshold(threshold)
    all_accepted = 1.0
    for i, p in enumerate(p_reject):
        if not 0 <= float(p) <= 1:
            raise ValueError(f"p_reject[{i}] must be a probability in [0, 1], got {p!r}")
        all_accepted *= 1.0 - float(p)
        if 1.0 - all_accepted > threshold:
            return i + 1
    return len(p_reject)


class _HiddenCapture:
    """Stands in for the draft LM inside DraftState: every forward also returns hidden states; keeps the last."""

    def __init__(self, lm: LM):
        self.lm = lm
        self.last: torch.Tensor | None = None  # normed last-layer hidden states of the last forward [T, H]

    def forward(self, *args, **kwargs):
        out = self.lm.forward(*args, output_hidden_states=True, **kwargs)
        with torch.no_grad():
            self.last = self.lm._base.norm(out.hidden_states[-1][0]).detach().to("cpu", torch.float32)
        return out

    def __getattr__(self, name: str):
        return getattr(self.lm, name)


@register_drafter
@dataclass
class SpecDecPPDrafter(Drafter):
    name = "specdec_pp"
    deterministic = False

    draft: Any = "qwen2.5-coder-0.5b"
    head: Any = None
    threshold: float = 0.5
    max_draft: int = 8
    state: DraftState | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.threshold = check_threshold(self.threshold)
        check_positive_int(self.max_draft, "max_draft")
        if isinstance(self.head, (str, Path)):
            if not Path(self.head).is_file():
                raise ValueError(f"head must be an AcceptanceHead or the path of a saved one, got missing file {self.head!r}")
            self.head = AcceptanceHead.load(self.head)
        if not isinstance(self.head, AcceptanceHead):
            kind = type(self.head).__name__
            raise ValueError(f"head must be an AcceptanceHead (train one with train_acceptance_head) or the path of a saved one, got {kind}")  # noqa: TRY004
        self._loaded: LM | None = None
        self.sampling = SamplingConfig(0.0)
        self.generator: torch.Generator | None = None
        self.history: list[list[float]] = []  # per step: predicted rejection probability of every drafted token

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if lm is None:
            raise ValueError("specdec_pp needs the target LM in begin() (to check the vocabularies)")
        if self._loaded is None or (not isinstance(self.draft, str) and self._loaded is not self.draft):
            self._loaded = load_draft(self.draft, lm)
        want = self._loaded.hidden_size + NUM_PROB_FEATURES
        if self.head.in_features != want:
            raise ValueError(f"head takes {self.head.in_features} features but this draft model gives {want} "
                             f"(hidden size {self._loaded.hidden_size} + {NUM_PROB_FEATURES}); train the head on this draft")
        self.capture = _HiddenCapture(self._loaded)
        self.state = DraftState(self._loaded, lm)
        self.state.lm = self.capture
        self.sampling = sampling
        self.generator = generator
        self.history = []

    def _p_reject(self, logits: torch.Tensor, token: int) -> float:
        features = head_features(self.capture.last[-1:], logits[None], torch.tensor([token]))
        return float(1.0 - self.head.accept_prob(features)[0])

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        if self.state is None:
            raise RuntimeError("call begin(lm, prompt_ids, sampling, generator) before propose()")
        state = self.state
        logits = state.root_logits(context_ids)
        rows: list[torch.Tensor] = []
        p_reject: list[float] = []
        parent = -1
        limit = min(self.max_draft, budget)
        all_accepted = 1.0
        for i in range(limit):
            probs = self.sampling.probs(logits)
            if self.sampling.greedy:
                token = int(probs.argmax())
            else:
                token = int(torch.multinomial(probs, 1, generator=self.generator).item())
            parent = state.add_node(token, parent)
            rows.append(probs)
            p_reject.append(self._p_reject(logits, token))
            all_accepted *= 1.0 - p_reject[-1]
            if 1.0 - all_accepted > self.threshold or i == limit - 1:  # the rule of stop_length
                break
            logits = state.feed([parent])[0]
        self.history.append(p_reject)
        return state.tree(torch.stack(rows))

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        if self.state is not None:
            self.state.commit(tree, result)
