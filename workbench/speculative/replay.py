"""Exact offline replay of greedy speculative decoding with a model-free drafter, and its cost estimate.

With the greedy verifier the target's argmax after a correct prefix is the next token of the autoregressive
greedy continuation, so a draft's accepted path is its longest common prefix with that continuation (the
`GreedyVerifier` walk, run here on the true tokens) and every step emits that path plus the bonus token. Given a
prompt and its greedy continuation (the ground truth), the decode loop of `speculative_generate` can therefore be
replayed without the model, step by step: the same step budget (min(budget, max_new_tokens - emitted - 1)), the
same drafter calls (`begin`, `draft_key`, `propose`, `update`), the same accepted lengths.

Drafters: only those whose drafts depend on the tokens seen and nothing else (REPLAYABLE: prompt lookup and
Lookahead's trie); drafters that read the target's logits (Token Recycling, STAND, Goose) or run a model cannot
be replayed from tokens. `update` gets `logits=None`.

Draft-length policies (`DraftLengthPolicy`): `FixedLength(k)`; `CostAware(times, table)`, the rule of
`speculative_generate(cost_aware=True)` through its own code (`decode._best_draft_size` on the
`acceptance.AcceptanceTable` estimates, recording each verified draft the same way); `replay_oracle`, the ceiling:
with hindsight, the draft length of every step chosen to minimise the total forward cost of the generation (a
dynamic programme over the number of tokens emitted so far, exact because a replayable drafter's state is a
function of the tokens seen). It is at least as good as every fixed k and every other policy on the same costs.

Cost estimate: with c(n) the target's forward time for n fed tokens (root + draft nodes) after the prompt, and
c_ar the time of one autoregressive decode forward, estimated speedup = n_tokens * c_ar / (sum over steps of
c(fed) [+ drafting seconds]) (+ a shared prefill time on both sides when given). Simplifications: c(n) does not
grow with the context over the 64 generated tokens, and a tree is costed by its node count like a chain.
"""
from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .acceptance import AcceptanceTable
from .decode import _best_draft_size, _interpolate
from .drafters import Drafter, check_budget, get_drafter
from .sampling import SamplingConfig
from .tree import DraftTree
from .verifiers import GreedyVerifier

REPLAYABLE = ("prompt_lookup", "lookahead")  # drafters whose drafts are a function of the tokens seen


@dataclass
class ReplayStep:
    """One replayed step: tokens emitted before it, draft key, nodes drafted, tokens accepted and emitted."""

    position: int
    key: Hashable
    drafted: int
    accepted: int
    emitted: int
    draft_seconds: float = 0.0

    @property
    def fed(self) -> int:
        """Tokens fed to the target in this step: the root and the draft nodes."""
        return self.drafted + 1


@dataclass
class ReplayResult:
    """The steps of one replayed generation under one policy."""

    policy: str
    n_tokens: int
    steps: list[ReplayStep] = field(default_factory=list)

    @property
    def tau(self) -> float:
        return sum(s.emitted for s in self.steps) / len(self.steps) if self.steps else 0.0

    def forward_seconds(self, costs: Mapping[int, float]) -> float:
        """Sum of c(fed tokens) over the steps."""
        return sum(forward_cost(costs, s.fed) for s in self.steps)

    def draft_seconds(self) -> float:
        return sum(s.draft_seconds for s in self.steps)

    def speedup(self, costs: Mapping[int, float], ar_cost: float | None = None, prefill: float = 0.0,
                drafting: bool = False) -> float:
        """n_tokens * c_ar / sum c(fed) (see the module docstring); c_ar defaults to c(1)."""
        ar = costs[1] if ar_cost is None else ar_cost
        spent = self.forward_seconds(costs) + (self.draft_seconds() if drafting else 0.0)
        return (prefill + self.n_tokens * ar) / (prefill + spent)

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "n_tokens": self.n_tokens, "tau": self.tau,
                "steps": [{**asdict(s), "key": _json_key(s.key)} for s in self.steps]}


def forward_cost(costs: Mapping[int, float], fed: int) -> float:
    """c(fed) from a table of measured sizes (linear interpolation / extrapolation as in the cost-aware rule)."""
    return costs[fed] if fed in costs else _interpolate(dict(costs), fed)


class DraftLengthPolicy:
    """Chooses each step's draft size; `observe` sees every verified draft (as the decode loop's table does)."""

    name = "policy"

    def choose(self, key: Hashable, step_budget: int) -> int:
        raise NotImplementedError

    def observe(self, key: Hashable, depth: int, accepted: int) -> None:
        """Called after every non-empty draft (default: nothing to learn)."""


class FixedLength(DraftLengthPolicy):
    """Always k nodes (capped by the step budget): `speculative_generate(budget=k, cost_aware=False)`."""

    def __init__(self, k: int):
        check_budget(k)
        self.k = k
        self.name = f"fixed_{k}"

    def choose(self, key: Hashable, step_budget: int) -> int:
        return min(self.k, step_budget)


class CostAware(DraftLengthPolicy):
    """The cost-aware budget of decode.py on given forward times and an acceptance table (shared across prompts
    as the decode loop shares `table_for(lm, drafter)`; pass one in to continue from its counts)."""

    name = "cost_aware"

    def __init__(self, times: Mapping[int, float], table: AcceptanceTable | None = None):
        self.times = dict(times)
        self.table = AcceptanceTable() if table is None else table

    def choose(self, key: Hashable, step_budget: int) -> int:
        return min(step_budget, _best_draft_size(self.table.estimate(key, step_budget), self.times))

    def observe(self, key: Hashable, depth: int, accepted: int) -> None:
        self.table.record(key, depth, accepted)


def check_replayable(drafter: str | Drafter) -> Drafter:
    """The drafter instance; ValueError unless its drafts depend only on the tokens seen (REPLAYABLE)."""
    drafter = get_drafter(drafter)
    if drafter.name not in REPLAYABLE:
        raise ValueError(f"drafter {drafter.name!r} cannot be replayed from tokens (its drafts depend on the "
                         f"target's logits or a model); replayable drafters: {', '.join(REPLAYABLE)}")
    return drafter


def _check_inputs(prompt_ids: Sequence[int], truth: Sequence[int], max_new_tokens: int | None,
                  budget: int) -> int:
    check_budget(budget)
    if len(prompt_ids) < 1:
        raise ValueError("prompt_ids must hold at least one token")
    if len(truth) < 1:
        raise ValueError("truth (the greedy continuation) must hold at least one token")
    if max_new_tokens is None:
        return len(truth)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < len(truth):
        raise ValueError(f"max_new_tokens must be an int >= len(truth) = {len(truth)}, got {max_new_tokens!r}")
    return max_new_tokens


def accepted_on_truth(tree: DraftTree, truth: Sequence[int], position: int) -> list[int]:
    """Accepted node indices of `tree` drafted after `position` emitted tokens: the greedy walk with the target's
    argmax taken from the true continuation (a node off the true path gets -1, which no token equals; so does a
    position beyond the end of `truth`)."""
    best = []
    for node in [-1, *range(len(tree))]:
        path = tree.path(node) if node >= 0 else []
        on_truth = all(position + d < len(truth) and tree.token(i) == truth[position + d]
                       for d, i in enumerate(path))
        after = position + len(path)
        best.append(int(truth[after]) if on_truth and after < len(truth) else -1)
    return GreedyVerifier().verify_argmax(tree, best).accepted_nodes


def replay(drafter: str | Drafter, policy: DraftLengthPolicy, prompt_ids: Sequence[int], truth: Sequence[int],
           budget: int = 16, max_new_tokens: int | None = None) -> ReplayResult:
    """Replay `speculative_generate(lm, prompt_ids, drafter, budget=budget, max_new_tokens=...)` (greedy) with the
    draft size of each step from `policy`; `truth` is the greedy continuation (len(truth) tokens are emitted; an
    EOS-ended truth is shorter than max_new_tokens, default len(truth))."""
    limit = _check_inputs(prompt_ids, truth, max_new_tokens, budget)
    drafter = check_replayable(drafter)
    drafter.begin(None, list(prompt_ids), SamplingConfig(0.0))
    result = ReplayResult(policy.name, len(truth))
    emitted = 0
    while emitted < len(truth):
        context = list(prompt_ids) + list(truth[:emitted])
        step_budget = min(budget, limit - emitted - 1)
        tick = time.perf_counter()
        key = drafter.draft_key(context)
        k = policy.choose(key, step_budget) if step_budget > 0 else 0
        tree = drafter.propose(context, k) if k > 0 else DraftTree.empty()
        seconds = time.perf_counter() - tick
        kept = accepted_on_truth(tree, truth, emitted)
        tokens = [tree.token(i) for i in kept] + ([truth[emitted + len(kept)]]
                                                    if emitted + len(kept) < len(truth) else [])
        if len(tree):
            policy.observe(key, tree.max_depth, len(kept))
        drafter.update(tree, _Verified(kept, tokens), None)
        step = ReplayStep(emitted, key, len(tree), len(kept), min(len(tokens), len(truth) - emitted), seconds)
        result.steps.append(step)
        emitted += step.emitted
    return result


@dataclass
class _Verified:
    """What a replayable drafter's `update` reads of a VerifyResult: the accepted nodes and emitted tokens."""

    accepted_nodes: list[int]
    tokens: list[int]


def replay_oracle(drafter: str | Drafter, costs: Mapping[int, float], prompt_ids: Sequence[int],
                  truth: Sequence[int], budget: int = 16, max_new_tokens: int | None = None) -> ReplayResult:
    """The ceiling: the draft size of every step chosen with hindsight to minimise sum c(fed) over the generation
    (dynamic programme over tokens emitted; module docstring). The drafter sees every prefix of the truth in order,
    exactly the states a live run passes through."""
    limit = _check_inputs(prompt_ids, truth, max_new_tokens, budget)
    drafter = check_replayable(drafter)
    drafter.begin(None, list(prompt_ids), SamplingConfig(0.0))
    n = len(truth)
    options: list[list[tuple[int, int, Hashable]]] = []  # per position: (drafted, accepted, key) per choice
    for e in range(n):
        context = list(prompt_ids) + list(truth[:e])
        key = drafter.draft_key(context)
        choices = [(0, 0, key)]
        for k in range(1, min(budget, limit - e - 1) + 1):
            tree = drafter.propose(context, k)
            choices.append((len(tree), len(accepted_on_truth(tree, truth, e)), key))
            if len(tree) < k:  # the drafter has nothing more to add
                break
        options.append(choices)
        drafter.update(DraftTree.empty(), _Verified([], [truth[e]]), None)
    best = [0.0] * (n + 1)  # best[e]: least cost to emit truth[e:]
    pick: list[tuple[int, int, Hashable]] = [(0, 0, None)] * n
    for e in range(n - 1, -1, -1):
        best[e] = float("inf")
        for drafted, accepted, key in options[e]:
            after = min(n, e + accepted + 1)
            cost = forward_cost(costs, drafted + 1) + best[after]
            if cost < best[e] - 1e-15:
                best[e], pick[e] = cost, (drafted, accepted, key)
    result = ReplayResult("oracle", n)
    e = 0
    while e < n:
        drafted, accepted, key = pick[e]
        emitted = min(accepted + 1, n - e)
        result.steps.append(ReplayStep(e, key, drafted, accepted, emitted))
        e += emitted
    return result


def _json_key(key: Hashable) -> Any:
    return key if key is None or isinstance(key, (int, float, str, bool)) else repr(key)
