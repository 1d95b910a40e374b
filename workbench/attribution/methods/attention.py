"""Raw attention weights as attribution (e.g. Clark et al. 2019, "What Does BERT Look At?"; with the caveats
of Jain & Wallace 2019, "Attention is not Explanation").

Row r reads the attention probabilities of the query at the position that predicts the row's token (the last
prompt position for scalar targets: contrastive, functions) over the source tokens, from one unperturbed
forward with `output_attentions` (the first continuation's forward for contrastive targets).
`layer` / `head`: an index (negative counts from the end) selects one; None averages over all. The full
per-layer, per-head weights [layers, heads, R, n_tokens] are kept in `extras["per_layer_head"]`.
Attention to the prefix (BOS) and to earlier target tokens is not a source column, so rows need not sum to 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from workbench.attribution.methods.base import Attributor, MethodOutput
from workbench.attribution.methods.registry import register_method
from workbench.attribution.problem import Problem
from workbench.tokenization.protocol import InputTypeError


def check_index(value: object, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{param} must be None (average) or an int index, got {value!r}")
    return int(value)


def check_range(value: int | None, size: int, param: str) -> None:
    if value is not None and not -size <= value < size:
        raise ValueError(f"{param} must be None or an int in [{-size}, {size}), got {value}")


def attention_maps(problem: Problem) -> tuple[torch.Tensor, np.ndarray]:
    """Per-layer attention [L, H, T, T] of the unperturbed input (batch 1) and the target scores [R]."""
    scores, attentions = problem.scores(problem.source_embeds(), output_attentions=True)
    if attentions is None:
        raise ValueError("this model returned no attention weights (output_attentions is unsupported)")
    maps = torch.stack([a[0].float() for a in attentions])  # [L, H, T, T]
    return maps, scores[0].detach().double().cpu().numpy()


def query_positions(problem: Problem) -> list[int]:
    return [problem.prompt_len - 1 + off for off in problem.target.query_offsets]


@register_method("attention")
@dataclass
class Attention(Attributor):
    """Raw attention from each target row's query position to the source tokens."""

    layer: int | None = None
    head: int | None = None

    def __post_init__(self) -> None:
        self.layer = check_index(self.layer, "layer")
        self.head = check_index(self.head, "head")

    def check(self, problem: Problem) -> None:
        check_range(self.layer, problem.lm.num_layers, "layer")
        check_range(self.head, problem.lm.num_heads, "head")

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        maps, values = attention_maps(problem)
        cols = slice(problem.n_prefix, problem.prompt_len)
        per = maps[:, :, query_positions(problem), cols].double()  # [L, H, R, n]
        chosen = per if self.layer is None else per[self.layer:self.layer + 1 or None]
        chosen = chosen if self.head is None else chosen[:, self.head:self.head + 1 or None]
        matrix = chosen.mean(dim=(0, 1))
        return MethodOutput(matrix.cpu().numpy(), values, {"per_layer_head": per.cpu().numpy()}, evaluations=1)
