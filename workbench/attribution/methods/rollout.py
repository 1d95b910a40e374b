"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Per layer l, the heads' attention is fused (mean by default, as in the paper; or max / min) into A_l [T, T],
the residual connection is modelled by A'_l = residual * I + (1 - residual) * A_l (the paper uses 0.5), rows
are renormalized to sum to 1, and the layers are composed: R = A'_L ... A'_2 A'_1. Row r of the attribution
is R at the row's query position (see attention.py) over the source token columns; the rollout runs over the
whole input (prefix, prompt and teacher-forced continuation), so mass that flows to the prefix or to earlier
target tokens is not in the source columns.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.attribution.methods.attention import attention_maps, query_positions
from workbench.attribution.methods.base import Attributor, MethodOutput, check_choice
from workbench.attribution.methods.registry import register_method
from workbench.attribution.problem import Problem

FUSIONS = ("mean", "max", "min")


def rollout(maps: torch.Tensor, residual: float = 0.5, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout of per-layer maps [L, H, T, T] -> [T, T] (rows: output positions, cols: inputs)."""
    fused = {"mean": maps.mean(1), "max": maps.amax(1), "min": maps.amin(1)}[head_fusion].double()
    eye = torch.eye(maps.shape[-1], dtype=fused.dtype, device=fused.device)
    out = eye
    for layer in fused:
        step = residual * eye + (1 - residual) * layer
        step = step / step.sum(-1, keepdim=True)
        out = step @ out
    return out


@register_method("rollout")
@dataclass
class Rollout(Attributor):
    """Attention rollout with `residual` weight on the identity and `head_fusion` over heads."""

    residual: float = 0.5
    head_fusion: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.residual, bool) or not isinstance(self.residual, (int, float)) \
                or not 0.0 <= self.residual <= 1.0:
            raise ValueError(f"residual must be a number in [0, 1], got {self.residual!r}")
        self.residual = float(self.residual)
        check_choice(self.head_fusion, "head_fusion", FUSIONS)

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        maps, values = attention_maps(problem)
        flow = rollout(maps, self.residual, self.head_fusion)
        matrix = flow[query_positions(problem), problem.n_prefix:problem.prompt_len]
        return MethodOutput(matrix.cpu().numpy(), values, evaluations=1)
