"""Gradient saliency (Simonyan et al. 2014, "Deep Inside Convolutional Networks"; for text, Li et al. 2016,
"Visualizing and Understanding Neural Models in NLP").

attribution[r, i] = || d score_r / d e_i ||_p, the p-norm over the hidden dimension of the gradient of target
row r w.r.t. the input embedding e_i of source token i. Unsigned: it says how sensitive the score is to the
token, not in which direction. Cost: one forward, one backward per target row. Coarser units sum the norms.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.attribution.methods.base import Attributor, MethodOutput, check_choice
from workbench.attribution.methods.gradients import row_gradients
from workbench.attribution.methods.registry import register_method
from workbench.attribution.problem import Problem


@register_method("saliency")
@dataclass
class Saliency(Attributor):
    """Gradient norm w.r.t. input embeddings; `norm`: 2 (L2, default), 1 (L1) or "inf" (max abs)."""

    norm: int | str = 2

    def __post_init__(self) -> None:
        check_choice(self.norm, "norm", (1, 2, "inf"))

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        embeds = problem.source_embeds().requires_grad_(True)
        scores, _ = problem.scores(embeds)
        grads = row_gradients(scores, embeds)[:, 0]  # [R, n, hidden]
        order = float("inf") if self.norm == "inf" else float(self.norm)
        matrix = grads.norm(p=order, dim=-1)
        return MethodOutput(matrix.double().cpu().numpy(), scores[0].detach().double().cpu().numpy(),
                            backward_passes=scores.shape[1], evaluations=1)
