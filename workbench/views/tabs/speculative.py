"""Explorer tab "speculative" (speculative decoding): greedy-decode the text's continuation twice in the same run,
autoregressively with `lm.generate` and with `speculative_generate` under a drafter, verifier and node budget,
and show the speculative result's view (draft tree of a step, accepted tokens per step, tau, steps) plus a
comparison: forward calls, seconds, tokens/s, the measured speedup and whether the tokens are identical
(greedy speculative decoding must reproduce greedy decoding exactly).

Every registered drafter without a `draft` model option (model-free and self-speculative ones: prompt_lookup
first) is offered by default; drafters that need a draft model can be added as instances: `Explorer(lm, text, options={"speculative": {"drafters": {"draft": DraftModelDrafter(
draft_lm)}}})`."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.views.explorer import Control, ExplorerTab, Progress, register_tab
from workbench.views.table import Table



def model_free_drafters() -> list[str]:
    """Registered drafters with no `draft` (draft model) option, prompt_lookup first."""
    from dataclasses import fields

    from workbench.speculative.drafters.registry import DRAFTER_REGISTRY

    def model_free(cls: type) -> bool:
        return "draft" not in {f.name for f in fields(cls)}

    names = [name for name in DRAFTER_REGISTRY.names() if model_free(DRAFTER_REGISTRY.get(name))]
    return sorted(names, key=lambda name: (name != "prompt_lookup", name))


@register_tab("speculative", title="Speculative decoding")
class SpeculativeTab(ExplorerTab):
    """`drafters`: extra {label: Drafter instance or registered name} offered beside the model-free ones."""

    def __init__(self, drafters: Mapping[str, Any] | None = None) -> None:
        from workbench.speculative import Drafter
        from workbench.speculative.drafters.registry import DRAFTER_REGISTRY

        self.extra: dict[str, Any] = {}
        for label, drafter in dict(drafters or {}).items():
            if not isinstance(drafter, Drafter) and drafter not in DRAFTER_REGISTRY.names():
                raise ValueError(f"drafters[{label!r}]: must be a Drafter or one of {DRAFTER_REGISTRY.names()}, "
                                 f"got {drafter!r}")
            self.extra[str(label)] = drafter

    def controls(self, lm: Any) -> list[Control]:
        from workbench.speculative.verifiers.registry import VERIFIER_REGISTRY

        drafters = list(dict.fromkeys([*model_free_drafters(), *self.extra]))
        verifiers = VERIFIER_REGISTRY.names()
        return [
            Control("drafter", "dropdown", drafters[0], options=drafters),
            Control("verifier", "dropdown", "greedy" if "greedy" in verifiers else verifiers[0], options=verifiers),
            Control("budget", "slider", 16, label="budget (draft nodes per step)", min=1, max=64, step=1),
            Control("max_new_tokens", "slider", 32, label="new tokens", min=1, max=256, step=1),
        ]

    def run(self, lm: Any, text: str, values: dict[str, Any], progress: Progress) -> list[Any]:
        from workbench.models.generation import prompt_ids
        from workbench.speculative import speculative_generate
        from workbench.speculative.verifiers.registry import VERIFIER_REGISTRY
        from workbench.speculative.recorder import DraftRecorder
        from workbench.speculative.view import speculative_view

        if not text:
            raise ValueError("text: is empty; type a prompt to continue")
        ids = prompt_ids(lm, text)
        new, name = values["max_new_tokens"], values["drafter"]
        recorder = DraftRecorder(self.extra.get(name, name))
        if VERIFIER_REGISTRY.get(values["verifier"]).needs_draft_probs and recorder.deterministic:
            raise ValueError(f"verifier: {values['verifier']!r} needs draft distributions, but drafter {name!r} "
                             "proposes deterministic drafts; use 'greedy' or 'deterministic_tree'")
        progress(0.0, f"lm.generate: {new} tokens")
        reference = lm.generate(ids, max_new_tokens=new)
        progress(0.5, f"speculative_generate: {name} + {values['verifier']}")
        gen = speculative_generate(lm, ids, recorder, values["verifier"], max_new_tokens=new,
                                   budget=values["budget"])
        same = list(gen.new_ids) == list(reference.new_ids)
        rows = [
            {"decoding": "autoregressive (lm.generate)", "new tokens": len(reference.new_ids),
             "forward calls": reference.forward_calls, "seconds": reference.seconds,
             "tokens/s": reference.tokens_per_second, "speedup": 1.0, "same tokens": True},
            {"decoding": f"speculative ({gen.drafter} + {gen.verifier})", "new tokens": len(gen.new_ids),
             "forward calls": gen.forward_calls, "seconds": gen.seconds, "tokens/s": gen.tokens_per_second,
             "speedup": reference.seconds / gen.seconds if gen.seconds > 0 else None, "same tokens": same},
        ]
        verdict = "identical output" if same else "OUTPUT DIFFERS from lm.generate"
        comparison = Table(rows, title=f"greedy decoding, measured in this run: {verdict}; speedup = "
                                       "autoregressive seconds / speculative seconds")
        return [comparison, speculative_view(gen, drafts=recorder)]
