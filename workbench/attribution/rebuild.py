"""Rebuild the attribution `Problem` behind an `Attribution`, so it can be re-scored under perturbations
(faithfulness metrics, prompt compression) with the same units and target rows.

The prompt is re-tokenized and re-split at the attribution's granularity (checked to give the same units). The
target is rebuilt from the attribution's rows for token targets (given continuation or the model's own
generation: the rows' token ids are teacher-forced again, no new generation); contrastive and function targets
cannot be recovered from the result, so they must be passed again as `target`.
"""
from __future__ import annotations

from typing import Any

from workbench.attribution.problem import Problem, check_prompt
from workbench.attribution.result import Attribution
from workbench.attribution.targets import check_target, resolve
from workbench.attribution.units import build_units, check_granularity
from workbench.tokenization.protocol import InputTypeError


def problem_from(lm: Any, attribution: Attribution, target: Any = None) -> Problem:
    """The Problem of `attribution` on `lm`; `target` is required for contrastive / function targets."""
    if not isinstance(attribution, Attribution):
        raise InputTypeError(f"attribution must be an Attribution (from workbench.attribution.attribute), "
                         f"got {type(attribution).__name__}")
    if target is None:
        if attribution.target_kind not in ("continuation", "generation"):
            raise ValueError(f"target: an attribution of a {attribution.target_kind} target cannot be re-scored "
                             "from its rows; pass the same target again (target=...)")
        target = [i for row in attribution.targets for i in row.token_ids]
    text = check_prompt(lm, attribution.prompt)
    units = build_units(check_granularity(attribution.granularity), text.ids, text.offsets, text.data)
    if [(u.start, u.end) for u in units] != [(u.start, u.end) for u in attribution.sources]:
        raise ValueError("attribution: its source units do not match this model's tokenization of the prompt "
                         "(was it computed with another model or tokenizer?)")
    resolved = resolve(lm, check_target(lm, target), text.prefix_ids + text.ids)
    if resolved.num_rows != attribution.matrix.shape[0]:
        raise ValueError(f"target: gives {resolved.num_rows} rows but the attribution has "
                         f"{attribution.matrix.shape[0]}")
    return Problem(lm, text, units, resolved)
