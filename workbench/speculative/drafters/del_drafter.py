"""DEL: self-speculation from the target's own first layers, exit layer and draft length chosen per step
(Entezari Zarch et al., "DEL: Context-Aware Dynamic Exit Layer for Efficient Self-Speculative Decoding", 2025).

Drafting. The draft is the target itself cut after layer l (the exit layer): tokens run through layers 1..l,
then the final norm and the LM head (`LM.unembed`, i.e. what `lm.forward(exit_layer=l)` returns, but here the
layers after l are really skipped). A chain of g tokens is drafted, each the argmax (temperature 0) or a draw
from the early-exit distribution processed with the SAME temperature / top-k / top-p as the target;
draft_probs are attached, so verify with 'greedy' (temperature 0) or 'speculative_sampling'.

Statistics (the paper's "shadow tokens"). For every candidate exit layer l the drafter tracks the acceptance
rate alpha_l of a token drafted at l. At every committed position j (every output position; prompt positions
are skipped) it compares the early-exit distribution q_l(. | x_<=j) of every candidate with the target
distribution p(. | x_<=j) that verification computed there (the target logits handed to `update`, rows of the
root and the accepted nodes), both processed with the run's sampling settings:
    a_l(j) = sum_x min(p(x), q_l(x))       (the probability that speculative sampling accepts a token drafted
                                             from q_l; at temperature 0: 1 iff argmax q_l == argmax p)
and keeps an exponentially decayed mean: S_l <- decay * S_l + a_l(j), W_l <- decay * W_l + 1,
alpha_l = (S_l + prior_weight * prior) / (W_l + prior_weight). Statistics restart with every generation
(context-aware) unless `reset_each_generation=False`.

The rule (the paper's tokens-per-layer criterion). With L target layers, a chain of g tokens drafted at exit l
is expected to emit E(l, g) = 1 + alpha + ... + alpha^g = (1 - alpha^(g+1)) / (1 - alpha) tokens (accepted +
bonus, acceptance treated as i.i.d. per position as in Leviathan et al. 2023) at a cost of g * l + L layer
passes (g drafted tokens through l layers, one verification pass through L layers). The step uses
    (l*, g*) = argmax over candidate l and g in 0..min(max_draft, budget) of  TPL(l, g) = E(l, g) / (g * l + L)
(g = 0 is plain decoding, TPL = 1 / L; ties go to the smaller l, then the smaller g). `draft_length` fixes g
instead. `select_exit` is that rule as a pure function.

KV cache and costs (our choice, documented because they are real extra work on this code base). The drafter keeps
its own KV cache for layers 1..k_max (k_max = the largest candidate). The decode loop does not hand drafters the
target's KV cache or hidden states, although for every committed token the target's first k_max layers computed
exactly the keys, values and hidden states needed. So each step first runs the newly committed tokens (accepted
+ bonus, m + 1 of them) through layers 1..k_max in one pass ("catch-up": (m + 1) * k_max layer-tokens, a second
copy of work the target already did), capturing the hidden state after every candidate layer and unembedding it
(one LM-head product per candidate per token: on CPU with a 49k vocabulary this is the dominant extra cost).
Drafted tokens then run through layers 1..l* only and are cropped from the cache after the step. Passing the
target's per-layer hidden states (or its KV cache) to `update` in decode.py would remove the catch-up pass and
leave only the unembedding; that change is not made here. Draft passes are not counted in the target's
`lm.counters` / `lm.kv_traffic` (the drafter restores them); the drafter's own costs are in `self.cost`.

Dynamic draft exiting (simplified). The paper also stops a draft mid-round when the draft's confidence drops
(a threshold it adapts from its statistics). Here `min_confidence` (default None: off) is a FIXED threshold: after
the first token, drafting stops before a token whose early-exit distribution (raw softmax, temperature 1) has a
top probability below it; the TPL choice of g is then an upper bound.

Other simplifications against the paper: the candidate set is a fixed list (default: every layer in
1..max(1, L // 2)), not all layers; alpha_l is a decayed mean over committed positions rather than the paper's
per-round count of matched shadow tokens up to the first mismatch (both measure agreement on the accepted context).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..sampling import SamplingConfig
from ..tree import DraftTree
from .base import Drafter, check_budget
from .registry import register_drafter

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult


def expected_tokens(alpha: float, length: int) -> float:
    """1 + alpha + ... + alpha^length: tokens one step emits (accepted + bonus) with i.i.d. acceptance alpha."""
    return float(sum(alpha ** i for i in range(length + 1)))


def select_exit(alphas: Mapping[int, float], num_layers: int, max_draft: int) -> tuple[int, int, float]:
    """(exit layer, draft length, TPL) maximising E(l, g) / (g * l + num_layers) (see the module docstring).

    alphas: candidate exit layer -> acceptance rate in [0, 1]. g ranges over 0..max_draft; g = 0 (no draft)
    returns the smallest candidate layer. Ties go to the smaller layer, then the shorter draft.
    """
    if not alphas:
        raise ValueError("alphas must hold at least one candidate exit layer")
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
    if isinstance(max_draft, bool) or not isinstance(max_draft, int) or max_draft < 0:
        raise ValueError(f"max_draft must be an int >= 0, got {max_draft!r}")
    for layer, alpha in alphas.items():
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alphas[{layer}] must be an acceptance rate in [0, 1], got {alpha!r}")
    best = (min(alphas), 0, 1.0 / num_layers)
    for layer in sorted(alphas):
        for length in range(1, max_draft + 1):
            tpl = expected_tokens(float(alphas[layer]), length) / (length * layer + num_layers)
            if tpl > best[2] * (1 + 1e-12):
                best = (layer, length, tpl)
    return best


@contextlib.contextmanager
def first_layers(lm: LM, k: int) -> Iterator[None]:
    """Within the block the model runs only its first k decoder layers (then the final norm and head)."""
    base = lm._base
    full = base.layers
    base.layers = torch.nn.ModuleList(list(full)[:k])
    try:
        yield
    finally:
        base.layers = full


@contextlib.contextmanager
def uncounted(lm: LM) -> Iterator[None]:
    """Forward passes inside the block leave lm.counters and lm.kv_traffic as they were."""
    calls, tokens = lm.counters.forward_calls, lm.counters.tokens_processed
    written, read = lm.kv_traffic.written, lm.kv_traffic.read
    try:
        yield
    finally:
        lm.counters.forward_calls, lm.counters.tokens_processed = calls, tokens
        lm.kv_traffic.written, lm.kv_traffic.read = written, read


def _check_fraction(value: Any, name: str, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            (0 < value if low_open else 0 <= value) and value <= 1):
        raise ValueError(f"{name} must be a number in {'(0' if low_open else '[0'}, 1], got {value!r}")


@register_drafter
@dataclass
class DELDrafter(Drafter):
    name = "del"
    deterministic = False

    exit_layers: Sequence[int] | None = None
    max_draft: int = 8
    draft_length: int | None = None
    prior: float = 0.5
    prior_weight: float = 2.0
    decay: float = 0.95
    min_confidence: float | None = None
    reset_each_generation: bool = True
    history: list[tuple[int, int]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.exit_layers is not None:
            if isinstance(self.exit_layers, (str, bytes)) or not isinstance(self.exit_layers, Sequence) \
                    or not self.exit_layers:
                raise ValueError(f"exit_layers must be None or a non-empty sequence of ints, got {self.exit_layers!r}")
            for i, layer in enumerate(self.exit_layers):
                if isinstance(layer, bool) or not isinstance(layer, int) or layer < 1:
                    raise ValueError(f"exit_layers[{i}] must be an int >= 1 (a layer count), got {layer!r}")
            self.exit_layers = tuple(sorted(set(self.exit_layers)))
        for value, pname in ((self.max_draft, "max_draft"), (self.draft_length, "draft_length")):
            if value is None and pname == "draft_length":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{pname} must be an int >= 1, got {value!r}")
        _check_fraction(self.prior, "prior")
        _check_fraction(self.decay, "decay", low_open=True)
        if self.min_confidence is not None:
            _check_fraction(self.min_confidence, "min_confidence")
        if isinstance(self.prior_weight, bool) or not isinstance(self.prior_weight, (int, float)) \
                or not self.prior_weight > 0:
            raise ValueError(f"prior_weight must be a number > 0, got {self.prior_weight!r}")
        self.lm: LM | None = None
        self.sampling = SamplingConfig(0.0)
        self.generator: torch.Generator | None = None
        self.candidates: tuple[int, ...] = ()
        self._sums: dict[int, float] = {}
        self._weights: dict[int, float] = {}
        self.accepted_total: dict[int, float] = {}  # undecayed sums of a_l(j), for reporting
        self.observations = 0
        self.observed: list[int] = []  # positions whose statistics were recorded, in order
        self.cost = {"catchup_layer_tokens": 0, "draft_layer_tokens": 0, "unembed_rows": 0, "forward_calls": 0}

    # ---- statistics ------------------------------------------------------------------------------------------
    def alpha(self, layer: int) -> float:
        """The current acceptance-rate estimate of exit layer `layer` (prior-smoothed decayed mean)."""
        return (self._sums.get(layer, 0.0) + self.prior_weight * self.prior) / (
            self._weights.get(layer, 0.0) + self.prior_weight)

    def _observe(self, rates: torch.Tensor) -> None:
        for layer, rate in zip(self.candidates, rates.tolist()):
            self._sums[layer] = self.decay * self._sums.get(layer, 0.0) + rate
            self._weights[layer] = self.decay * self._weights.get(layer, 0.0) + 1.0
            self.accepted_total[layer] = self.accepted_total.get(layer, 0.0) + rate
        self.observations += 1

    def _resolve(self) -> None:
        for pos in sorted(set(self._p) & set(self._q)):
            p = self._p.pop(pos)
            q = self.sampling.probs(self._q.pop(pos))  # [candidates, V]
            self._observe(torch.minimum(q, p[None]).sum(-1))
            self.observed.append(pos)

    # ---- the interface ---------------------------------------------------------------------------------------
    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if lm is None:
            raise ValueError("del needs the target LM in begin() (it drafts with the target's first layers)")
        if lm.num_layers < 2:
            raise ValueError(f"del needs a target with at least 2 layers to exit early, got {lm.num_layers}")
        candidates = self.exit_layers or tuple(range(1, max(1, lm.num_layers // 2) + 1))
        for layer in candidates:
            if not 1 <= layer <= lm.num_layers - 1:
                raise ValueError(f"exit_layers must lie in 1..{lm.num_layers - 1} (num_layers - 1) for this "
                                 f"{lm.num_layers}-layer target, got {layer}")
        self.lm = lm
        self.sampling = sampling
        self.generator = generator
        if self.reset_each_generation or tuple(candidates) != self.candidates:
            self._sums, self._weights, self.accepted_total, self.observations = {}, {}, {}, 0
        self.history, self.observed = [], []  # per generation: (exit layer, length) per step; observed positions
        self.cost = {key: 0 for key in self.cost}  # per generation
        self.candidates = tuple(candidates)
        self.cache = lm.new_cache()
        self.tokens: list[int] = []  # what the cache holds (all layers 1..k_max)
        self.first_stat = max(len(prompt_ids) - 1, 0)  # first position whose target distribution we will see
        self._p: dict[int, torch.Tensor] = {}  # position -> processed target distribution [V]
        self._q: dict[int, torch.Tensor] = {}  # position -> early-exit logits of every candidate [C, V]
        self.root = -1

    def _forward(self, ids: Sequence[int], layers: int, exit_layer: int, hidden: bool = False):
        lm = self.lm
        with torch.no_grad(), first_layers(lm, layers), uncounted(lm):
            out = lm.forward(list(ids), cache=self.cache, exit_layer=exit_layer, logits_to_keep=1,
                             output_hidden_states=hidden)
        self.cost["forward_calls"] += 1
        return out

    def _catch_up(self, context: list[int]) -> torch.Tensor:
        """Feed the committed tokens the cache lacks through layers 1..k_max; early-exit logits [C, V] at the end."""
        common = 0
        limit = min(len(self.tokens), len(context) - 1)
        while common < limit and self.tokens[common] == context[common]:
            common += 1
        self.cache.crop(min(common, self.cache.length))
        new = context[common:]
        k_max = self.candidates[-1]
        out = self._forward(new, k_max, k_max, hidden=True)
        self.cost["catchup_layer_tokens"] += len(new) * k_max
        first = max(common, min(self.first_stat, len(context) - 1))
        rows = list(range(first - common, len(new)))
        with torch.no_grad():
            states = torch.stack([out.hidden_states[layer][0, rows] for layer in self.candidates])  # [C, R, H]
            logits = self.lm.unembed(states).detach().to("cpu", torch.float32)  # [C, R, V]
        self.cost["unembed_rows"] += len(self.candidates) * len(rows)
        for r, pos in enumerate(range(first, len(context))):
            self._q[pos] = logits[:, r]
        self.tokens = list(context)
        return logits[:, -1]

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        if self.lm is None:
            raise RuntimeError("call begin(lm, prompt_ids, sampling, generator) before propose()")
        context = [int(t) for t in context_ids]
        root_logits = self._catch_up(context)
        self._resolve()
        for pos in [p for p in self._q if p < len(context) - 1]:  # positions no target row will come for
            del self._q[pos]
        self.root = len(context) - 1
        alphas = {layer: self.alpha(layer) for layer in self.candidates}
        if self.draft_length is None:
            layer, length, _ = select_exit(alphas, self.lm.num_layers, min(self.max_draft, budget))
        else:
            layer = max(self.candidates, key=lambda c: (alphas[c], -c))
            length = min(self.draft_length, budget)
        self.history.append((layer, length))
        if length == 0:
            return DraftTree.empty()
        logits = root_logits[self.candidates.index(layer)]
        tokens: list[int] = []
        rows: list[torch.Tensor] = []
        for i in range(length):
            if i and self.min_confidence is not None and float(torch.softmax(logits, -1).max()) < self.min_confidence:
                break
            probs = self.sampling.probs(logits)
            if self.sampling.greedy:
                token = int(probs.argmax())
            else:
                token = int(torch.multinomial(probs, 1, generator=self.generator).item())
            tokens.append(token)
            rows.append(probs)
            if i < length - 1:
                logits = self._forward([token], layer, layer).logits[0, -1].detach().to("cpu", torch.float32)
                self.cost["draft_layer_tokens"] += layer
        self.cache.crop(len(context))  # drafted tokens only filled layers 1..layer: drop them
        return DraftTree.chain(tokens, torch.stack(rows))

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        if self.lm is None or self.root < 0:
            return
        rows = [0] + [node + 1 for node in result.accepted_nodes]
        processed = self.sampling.probs(logits[rows].detach().to("cpu", torch.float32))
        for i, row in enumerate(processed):
            self._p[self.root + i] = row
        self.root = -1  # a step the decode loop runs without propose() (budget 0) tells us nothing
        self._resolve()
