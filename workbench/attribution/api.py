"""`attribute(lm, prompt, target, method, granularity, **options) -> Attribution`: the one entry point.

    a = attribute(lm, "The capital of France is", " Paris", method="occlusion")
    a = attribute(lm, prompt, None, method="integrated_gradients", max_new_tokens=8, steps=16)
    a = attribute(lm, prompt, Contrastive(" Paris", " Rome"), method="shapley", granularity="word")

Every input is checked before any model work (method and its options, granularity, prompt, target, context
length, the method's problem-dependent checks such as enough samples for the number of features); then the
greedy generation runs (target=None), then the method. Token-level methods' columns are summed into the
requested units; perturbation methods perturb the units themselves (see workbench.attribution.units).

Long prompts: every forward computes logits only at the positions the target reads, and occlusion, shapley,
kernel_shap and integrated_gradients split their batches to stay within `memory_budget` bytes (an option of
each; default max(1 GiB, 2 x the model's parameter bytes); see workbench.attribution.chunking). The cost
includes the KV-cache bytes the method's forwards wrote and read (Cost.kv_bytes_written / kv_bytes_read).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from workbench.attribution.methods.registry import get_method
from workbench.attribution.problem import Problem, check_prompt
from workbench.attribution.result import Attribution, Cost
from workbench.attribution.targets import check_target, resolve
from workbench.attribution.units import build_units, check_granularity


def attribute(lm: Any, prompt: str, target: Any = None, method: str = "saliency",
              granularity: str | list[tuple[int, int]] = "token", *, max_new_tokens: int = 16,
              progress: bool = True, **options: Any) -> Attribution:
    """Attribute `target` (see workbench.attribution.targets) to the units of `prompt` with `method`.

    method: a name in workbench.attribution.METHODS; options are that method's options.
    granularity: "token", "word", "sentence", or a list of (start, end) byte spans of the prompt.
    max_new_tokens: length of the greedy generation explained when target is None.
    progress: show a tqdm bar for work with several batches.
    """
    start = time.perf_counter()
    attributor = get_method(method, **options)
    spans = check_granularity(granularity)
    text = check_prompt(lm, prompt)
    spec = check_target(lm, target, max_new_tokens)
    longest = max([len(c[0]) for c in spec.continuations] + [spec.max_new_tokens])
    total = len(text.prefix_ids) + len(text.ids) + longest
    if total > lm.max_context:
        raise ValueError(f"prompt ({len(text.prefix_ids) + len(text.ids)} tokens) plus target ({longest} tokens) "
                         f"exceed the model's context of {lm.max_context} tokens")
    units = build_units(spans, text.ids, text.offsets, text.data)
    placeholder = Problem(lm, text, units, None)  # type: ignore[arg-type]
    attributor.check(placeholder)

    before = lm.counters.snapshot()
    traffic = getattr(lm, "kv_traffic", None)  # duck-typed models may not count KV bytes
    kv_before = traffic.snapshot() if traffic is not None else None
    resolved = resolve(lm, spec, text.prefix_ids + text.ids)
    problem = Problem(lm, text, units, resolved)
    output = attributor.run(problem, progress=progress)
    matrix = np.asarray(output.matrix, dtype=np.float64)
    if attributor.level == "token" and spans != "token":
        matrix = matrix @ problem.aggregation()
    spent = lm.counters.snapshot() - before
    kv = traffic.snapshot() - kv_before if traffic is not None else None
    cost = Cost(
        forward_passes=spent.forward_calls,
        backward_passes=output.backward_passes,
        tokens_processed=spent.tokens_processed,
        evaluations=output.evaluations,
        seconds=time.perf_counter() - start,
        device=str(lm.device),
        kv_bytes_written=kv.written if kv is not None else 0,
        kv_bytes_read=kv.read if kv is not None else 0,
    )
    extras = dict(output.extras)
    if resolved.generation:
        extras["generation"] = resolved.generation
    return Attribution(
        matrix=matrix,
        sources=units,
        targets=resolved.rows,
        method=attributor.name,
        options=attributor.options(),
        granularity=spans,
        prompt=prompt,
        target_kind=resolved.kind,
        target_text=resolved.text,
        cost=cost,
        target_values=None if output.values is None else np.asarray(output.values, dtype=np.float64),
        prefix_ids=list(text.prefix_ids),
        extras=extras,
    )
