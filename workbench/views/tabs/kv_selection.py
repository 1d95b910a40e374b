"""Explorer tab "sparse" (KV selection): run one prefill and a few decode steps of `sparse_generate` under a
policy and budget, and show which cached tokens the policy keeps at a chosen layer, query head and decode step,
overlaid on the text (kept tokens coloured by that head's true attention probability, dropped tokens blank),
with the mass recall of the selection against the oracle at the same size, and the KV bytes per step."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from workbench.views.explorer import Control, ExplorerTab, Progress, register_tab
from workbench.views.table import Table
from workbench.views.token_strip import TokenStrip


@dataclass
class StepSelection:
    """What one layer's selector chose at one decode step, with the dense attention it approximates."""

    layer: int
    step: int
    indices: torch.Tensor  # [H_kv, K] (batch 0), PAD = -1
    probs: torch.Tensor  # [H, S] true (dense) attention probabilities of each query head
    recall: torch.Tensor  # [H] attention mass on the selection
    oracle_recall: torch.Tensor  # [H] the oracle's mass at the same count per KV head


def record_selections(selector: Any) -> dict[tuple[int, int], StepSelection]:
    """Wrap `selector.select` (on this instance) to keep every decode step's choice per (layer, step)."""
    from workbench.sparse import PAD, attention_probs, mass_recall, oracle_mass_recall

    log: dict[tuple[int, int], StepSelection] = {}
    steps: dict[int, int] = {}
    inner = selector.select

    def select(state: Any) -> torch.Tensor:
        indices = inner(state)
        layer = state.layer_idx
        step = steps.get(layer, 0)
        steps[layer] = step + 1
        counts = (indices != PAD).sum(-1)
        log[(layer, step)] = StepSelection(
            layer, step, indices[0].cpu(), attention_probs(state.query, state.keys, state.scaling)[0].cpu(),
            mass_recall(state.query, state.keys, indices, state.scaling)[0].cpu(),
            oracle_mass_recall(state.query, state.keys, counts, state.scaling)[0].cpu())
        return indices

    selector.select = select
    return log


@register_tab("sparse", title="KV selection")
class KVSelectionTab(ExplorerTab):
    """Controls: policy (the sparse registry), budget (tokens), layer, query head, decode step, new tokens."""

    def controls(self, lm: Any) -> list[Control]:
        from workbench.sparse.registry import SELECTOR_REGISTRY

        names = SELECTOR_REGISTRY.names()
        return [
            Control("policy", "dropdown", "quest" if "quest" in names else names[0], options=names),
            Control("budget", "slider", 16, label="budget (tokens)", min=1, max=1024, step=1),
            Control("layer", "slider", 0, min=0, max=lm.num_layers - 1, step=1),
            Control("head", "slider", 0, label="query head", min=0, max=lm.num_heads - 1, step=1),
            Control("step", "slider", 0, label="decode step", min=0, max=15, step=1),
            Control("max_new_tokens", "slider", 4, label="new tokens", min=2, max=17, step=1),
        ]

    def run(self, lm: Any, text: str, values: dict[str, Any], progress: Progress) -> list[Any]:
        from workbench.sparse import PAD, get_selector, sparse_generate
        from workbench.sparse.view import generation_view

        if not text:
            raise ValueError("text: is empty; type some text to run the policy on")
        new = values["max_new_tokens"]
        if values["step"] > new - 2:
            raise ValueError(f"step: {new} new tokens give decode steps 0..{new - 2}, got {values['step']}")
        prompt = [int(i) for i in lm.tokenizer.encode(text, add_special_tokens=True)]
        longest = min(len(prompt) + new, lm.max_context)
        budget = min(values["budget"], longest)
        selector = get_selector(values["policy"], budget=budget)
        log = record_selections(selector)
        progress(None, f"prefill + {new - 1} decode steps under {values['policy']}")
        gen = sparse_generate(lm, prompt, selector, max_new_tokens=new)
        key = (values["layer"], values["step"])
        if key not in log:
            done = sorted({s for (layer, s) in log if layer == values["layer"]})
            raise ValueError(f"layer {values['layer']} made no selection at decode step {values['step']} "
                             f"(steps it selected at: {done}; a sliding-window layer attends its window densely, "
                             "and generation may stop early)")
        sel, head = log[key], values["head"]
        group = lm.num_heads // lm.num_kv_heads
        kv_head = head // group
        kept = sorted(i for i in sel.indices[kv_head].tolist() if i != PAD)
        ids = prompt + [int(i) for i in gen.generation.new_ids[: sel.step + 1]]
        scores: list[float | None] = [None] * len(ids)
        for i in kept:
            scores[i] = float(sel.probs[head, i])
        clipped = f" (clipped from {values['budget']})" if budget != values["budget"] else ""
        strip = TokenStrip.from_ids(
            lm.tokenizer, ids, scores=scores, score_label="attention probability",
            title=(f"{values['policy']}, budget {budget}{clipped}: layer {sel.layer}, query head {head} "
                   f"(KV head {kv_head}), decode step {sel.step}: {len(kept)} of {len(ids)} tokens kept"))
        recall, oracle = float(sel.recall[head]), float(sel.oracle_recall[head])
        summary = Table([{
            "policy": values["policy"], "budget": budget, "layer": sel.layer, "query head": head,
            "KV head": kv_head, "step": sel.step, "context": len(ids), "kept": len(kept), "recall": recall,
            "oracle recall": oracle, "recall / oracle": recall / oracle if oracle else None,
            "layer mean recall": float(sel.recall.mean()),
            "layer mean oracle recall": float(sel.oracle_recall.mean()),
        }], title="attention mass on the kept tokens, against the oracle top-k of the same size")
        return [strip, summary, generation_view(gen)]
