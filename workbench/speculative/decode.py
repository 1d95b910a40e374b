"""The speculative decode loop: draft a tree, verify it with ONE target forward pass, keep what was accepted.

Invariant: the KV cache holds every token of the sequence except the last one (the root). A step
1. asks the drafter for a tree of at most `budget` nodes continuing the sequence;
2. feeds [root, nodes...] over the cached prefix with position ids root_position + depth and the tree mask
   (each node sees the prefix, the root, its ancestors and itself), giving target logits at the root and after
   every node: target_probs [n + 1, V] after the same temperature/top-k/top-p processing the drafts used;
3. lets the verifier pick the accepted path and the bonus token;
4. rolls the cache back to prefix + root + the accepted path (crop when the path is the first nodes in order,
   otherwise gather those slots: their keys already carry the right rotary positions); the bonus token becomes
   the new root.
Tokens are emitted one at a time with the same checks, in the same order, as `LM.generate` (EOS, stop strings,
max_new_tokens, context), so an EOS inside an accepted draft ends the generation right there, and greedy
speculative decoding returns exactly the tokens of greedy autoregressive decoding.

Fast paths (same outputs): the prefill keeps only the last position's logits; a chain draft (a single path) is
fed with the plain causal mask and default positions (equal to the tree's for a chain); with the 'greedy'
verifier at temperature 0 the walk runs on the argmax of the logits (`GreedyVerifier.verify_argmax`) instead of
one-hot float64 distributions over the vocabulary. On CPU the step forwards go through `TargetForward`
(target_forward.py): grouped-query attention without copying the repeated KV heads, and input-major Linear
weights for forwards of 4 or more tokens (`input_major`; by default for models with up to 1 GiB of Linear
weights). On CUDA (or with tree_attention=True) every non-empty tree is verified under
`with lm.attention(TreeAttention(tree, check_mask=False))` (the tree-attention kernel op).

Cost-aware budget (cost_aware=True; Chen et al., "Sequoia", 2024, and SpecDec++, Huang et al., 2024, choose
the draft size from measured costs in the same spirit): the target's forward time t(n) for n fed tokens after
the prompt is measured once per LM, forward path and process (median of CALIBRATION_REPS rounds over every n in
1..budget + 1, the sizes interleaved in each round (forward_costs.time_fed_forwards), on the prompt's cache,
then cropped away; these forwards count in the first generation's time and forward calls). The table is not
updated from the steps' own forwards: the rule depends only on the ratios t(n) / t(1), and lowering t(n) to the
fastest step seen at n (as an earlier version did) favours the sizes used most (more samples, lower minimum) and
mixes contexts of different lengths; on a loaded machine that collapsed the drafts to ~1 node per step (live:
tau 1.2-1.3 where the replay of speculative/replay.py, on costs measured with interleaved medians, gives 2.5).
Each step asks the drafter for its draft key (`Drafter.draft_key`, e.g. how far back the context agrees with
the occurrence prompt lookup copies from), estimates the conditional acceptance a_d at depth d for that key from the drafter's
acceptance table on this LM (acceptance.py: smoothed counts kept across generations, backed off to the pooled
estimate over keys; an unseen depth takes a_{d-1}, a_0 = 1/2) and caps the step's
draft at the k in [1, budget] that maximises the expected tokens per second of a chain,
(1 + sum_{d<=k} prod_{j<=d} a_j) / t(k + 1), the smallest such k on ties (at least one node, so that drafters
which learn from every step keep learning and deeper acceptance can still be observed). Trees are judged as if
chains (their level acceptance stands in for a_d). The cap only lowers the budget handed to the drafter, so any
verifier stays lossless; with sampling the drawn tokens then depend on timings, hence off by default.
"""
from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .drafters import Drafter, check_budget, get_drafter
from .forward_costs import time_fed_forwards
from .metrics import SpeculativeGeneration, StepRecord
from .acceptance import table_for
from .sampling import SamplingConfig, probs_from_logits
from .target_forward import INPUT_MAJOR_FROM, TargetForward, default_input_major
from .tree import DraftTree
from .verifiers import GreedyVerifier, Verifier, get_verifier

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM
    from workbench.models.cache import KVCache

CALIBRATION_REPS = 3  # interleaved rounds of the forward-time calibration (median per size)
_FORWARD_TIMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # lm -> {path: {n fed: seconds}}


def _resolve(drafter: str | Drafter, verifier: str | Verifier | None, sampling: SamplingConfig) -> tuple[Drafter, Verifier]:
    drafter = get_drafter(drafter)
    if verifier is None:
        if sampling.greedy:
            verifier = "greedy"
        elif drafter.deterministic:
            verifier = "deterministic_tree"
        else:
            raise ValueError(f"verifier is required for the sampling drafter {drafter.name!r}: one of "
                             "'speculative_sampling' (chains), 'rsd' (siblings without replacement), 'spectr' (i.i.d.)")
    verifier = get_verifier(verifier)
    if verifier.name == "greedy" and not sampling.greedy:
        raise ValueError(f"verifier 'greedy' reproduces greedy decoding and needs temperature 0, got "
                         f"temperature={sampling.temperature}; use 'deterministic_tree' or a sampling verifier")
    if verifier.needs_draft_probs and drafter.deterministic:
        raise ValueError(f"verifier {verifier.name!r} needs draft distributions, but drafter {drafter.name!r} "
                         "proposes deterministic drafts; use 'greedy' (temperature 0) or 'deterministic_tree'")
    return drafter, verifier


def speculative_generate(lm: LM, prompt: str | Sequence[int], drafter: str | Drafter = "prompt_lookup",
                         verifier: str | Verifier | None = None, max_new_tokens: int = 32, temperature: float = 0.0,
                         top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                         stop: str | Sequence[str] | None = None, budget: int = 16,
                         progress: bool = False, cost_aware: bool = False,
                         tree_attention: bool | None = None, input_major: bool | None = None) -> SpeculativeGeneration:
    """Generate up to `max_new_tokens` tokens with speculative decoding (see the module docstring).

    drafter / verifier: registered names or instances; verifier None picks 'greedy' at temperature 0 and
    'deterministic_tree' for deterministic drafters otherwise. budget: the most draft nodes per step (>= 1).
    cost_aware: cap each step's draft where the expected tokens per second stop improving (module docstring);
    `budget` still bounds it. tree_attention: verify through `TreeAttention` (None: only on CUDA).
    input_major: run target forwards of INPUT_MAJOR_FROM or more tokens with input-major Linear weights (keeps one
    more copy of them; None: on CPU for models whose Linear weights take <= 1 GiB; see target_forward.py).
    """
    from workbench.models.generation import end_of_text, eos_ids
    from workbench.models.generation import prompt_ids as encode_prompt

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    sampling = SamplingConfig(temperature, top_k, top_p)
    check_budget(budget)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be None or an int, got {seed!r}")
    for flag, value in (("cost_aware", cost_aware), ("progress", progress)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag} must be True or False, got {value!r}")
    if tree_attention is not None and not isinstance(tree_attention, bool):
        raise ValueError(f"tree_attention must be None (CUDA only), True or False, got {tree_attention!r}")
    if input_major is not None and not isinstance(input_major, bool):
        raise ValueError(f"input_major must be None (CPU only), True or False, got {input_major!r}")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise ValueError(f"stop must be None, a non-empty string or a list of non-empty strings, got {stop!r}")
    prompt_ids = encode_prompt(lm, prompt)
    drafter, verifier = _resolve(drafter, verifier, sampling)
    fast_greedy = sampling.greedy and isinstance(verifier, GreedyVerifier)
    use_tree_attention = lm.device.type == "cuda" if tree_attention is None else tree_attention
    use_input_major = default_input_major(lm) if input_major is None else input_major
    if use_tree_attention:
        from .tree_attention import TreeAttention

    generator = None
    if not sampling.greedy:
        generator = torch.Generator(device=lm.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    ends = eos_ids(lm)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_new_tokens, desc=f"speculative ({drafter.name})", unit="tok")

    start_counters = lm.counters.snapshot()
    start = time.perf_counter()
    drafter.begin(lm, prompt_ids, sampling, generator)
    cache = lm.new_cache()
    if len(prompt_ids) > 1:
        lm.forward(prompt_ids[:-1], cache=cache, logits_to_keep=1)
    target = TargetForward(lm, gqa=lm.device.type == "cpu" and not use_tree_attention,
                           input_major_from=INPUT_MAJOR_FROM if use_input_major else None)
    with target:  # one attention switch per generation (target_forward.py)
        times = _forward_times(lm, target, cache, prompt_ids[-1], budget) if cost_aware else None
        table = table_for(lm, drafter.name)
        prefill_seconds = time.perf_counter() - start
        context = list(prompt_ids)
        new_ids: list[int] = []
        steps: list[StepRecord] = []
        draft_seconds = 0.0
        reason, text_end = "length", None
        done = False
        while not done:
            prefix = cache.length  # == len(context) - 1: the root sits at this position
            if prefix >= lm.max_context:
                reason = "context"
                break
            step_budget = min(budget, max_new_tokens - len(new_ids) - 1, lm.max_context - 1 - prefix)
            key = None
            if times is not None and step_budget > 0:
                key = drafter.draft_key(context)
                step_budget = min(step_budget, _best_draft_size(table.estimate(key, step_budget), times))
            tick = time.perf_counter()
            tree = drafter.propose(context, step_budget) if step_budget > 0 else DraftTree.empty()
            draft_seconds += time.perf_counter() - tick
            if not isinstance(tree, DraftTree) or len(tree) > max(step_budget, 0):
                size = len(tree) if isinstance(tree, DraftTree) else "?"
                raise RuntimeError(f"drafter {drafter.name!r} returned {type(tree).__name__} with {size} nodes for "
                                   f"a budget of {step_budget}")

            ids = [context[-1]] + tree.tokens.tolist()
            if len(tree) and use_tree_attention:
                with lm.attention(TreeAttention(tree, check_mask=False)):
                    out = lm.forward(ids, cache=cache, position_ids=tree.position_ids(prefix, include_root=True),
                                     attention_mask=tree.prefix_mask(prefix))
            elif len(tree) and not _is_chain(tree):
                out = target(ids, cache, tree.position_ids(prefix, include_root=True), tree.prefix_mask(prefix))
            else:  # no draft, or a chain: positions prefix + 0..n and the causal mask are the tree's own
                out = target(ids, cache)
            logits = out.logits[0]
            if fast_greedy:
                result = verifier.verify_argmax(tree, logits.argmax(-1).tolist())
            else:
                result = verifier.verify(tree, probs_from_logits(logits, *_settings(sampling)), tree.draft_probs,
                                         generator)

            kept = result.accepted_nodes
            if kept == list(range(len(kept))):
                cache.crop(prefix + 1 + len(kept))
            else:
                slots = list(range(prefix + 1)) + [prefix + 1 + i for i in kept]
                cache.gather(torch.tensor(slots, dtype=torch.long))
            drafter.update(tree, result, logits)
            if times is not None and len(tree):
                table.record(key, tree.max_depth, result.num_accepted)
            steps.append(StepRecord(len(tree), tree.max_depth, result.num_accepted, list(result.tokens)))

            for token in result.tokens:
                new_ids.append(token)
                context.append(token)
                if bar is not None:
                    bar.update(1)
                ended, text_end = end_of_text(lm, new_ids, ends, stops)
                if ended is not None:
                    reason, done = ended, True
                    break
                if len(new_ids) >= max_new_tokens:
                    reason, done = "length", True
                    break
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()

    text = lm.tokenizer.decode(new_ids[:-1] if reason == "eos" else new_ids)
    if text_end is not None:
        text = text[:text_end]
    cost = lm.counters.snapshot() - start_counters
    return SpeculativeGeneration(
        prompt_ids=prompt_ids, new_ids=new_ids, text=text, stop_reason=reason, seconds=seconds,
        prefill_seconds=prefill_seconds, draft_seconds=draft_seconds, forward_calls=cost.forward_calls,
        tokens_processed=cost.tokens_processed, steps=steps, drafter=drafter.name, verifier=verifier.name,
        settings={"max_new_tokens": max_new_tokens, **sampling.to_dict(), "seed": seed, "stop": stops,
                  "budget": budget, "cost_aware": cost_aware, "tree_attention": use_tree_attention,
                  "input_major": use_input_major},
    )


def _settings(sampling: SamplingConfig) -> tuple[float, int | None, float | None]:
    return sampling.temperature, sampling.top_k, sampling.top_p


def _is_chain(tree: DraftTree) -> bool:
    return all(tree.parent(i) == i - 1 for i in range(len(tree)))


def _forward_times(lm: LM, target: TargetForward, cache: KVCache, root: int, budget: int) -> dict[int, float]:
    """Seconds of one target forward of n tokens after this cache, every n in 1..budget + 1, through `target` (the
    step's own forward path; measured once per LM and path: median of CALIBRATION_REPS interleaved rounds, the
    cache cropped back after each forward); cached, extended when a larger budget asks."""
    known = _FORWARD_TIMES.setdefault(lm, {}).setdefault((target.gqa, target.input_major_from), {})
    missing = [n for n in range(1, budget + 2) if n not in known]
    if missing:
        runs = time_fed_forwards(target, cache, root, missing, CALIBRATION_REPS)
        known.update({n: statistics.median(seconds) for n, seconds in runs.items()})
    return known


def _interpolate(times: dict[int, float], n: int) -> float:
    sizes = sorted(times)
    if n <= sizes[0]:
        return times[sizes[0]]
    for lo, hi in zip(sizes, sizes[1:]):
        if n <= hi:
            return times[lo] + (times[hi] - times[lo]) * (n - lo) / (hi - lo)
    lo, hi = sizes[-2:] if len(sizes) > 1 else (sizes[0], sizes[0])
    slope = (times[hi] - times[lo]) / (hi - lo) if hi > lo else 0.0
    return times[hi] + slope * (n - hi)


def _best_draft_size(acceptance: Sequence[float], times: dict[int, float]) -> int:
    """The k in [1, len(acceptance)] maximising (1 + sum_{d<=k} prod_{j<=d} a_j) / t(k + 1), smallest on ties."""
    best_k, best_rate = 0, 0.0
    expected, reach = 1.0, 1.0
    for k, a in enumerate(acceptance, start=1):
        reach *= a
        expected += reach
        rate = expected / _interpolate(times, k + 1)
        if rate > best_rate * (1 + 1e-9):
            best_k, best_rate = k, rate
    return best_k
