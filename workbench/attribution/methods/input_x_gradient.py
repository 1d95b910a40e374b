"""Input x gradient (Shrikumar et al. 2016, "Not Just a Black Box"; Denil et al. 2014 for text).

attribution[r, i] = sum_h e_i[h] * d score_r / d e_i[h]: the first-order Taylor term of token i's embedding.
Signed. For a score that is linear in the embeddings (f = sum_i w_i . e_i + c) it equals each token's exact
contribution w_i . e_i. Cost: one forward, one backward per target row. Coarser units sum their tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.attribution.methods.base import Attributor, MethodOutput
from workbench.attribution.methods.gradients import row_gradients
from workbench.attribution.methods.registry import register_method
from workbench.attribution.problem import Problem


@register_method("input_x_gradient")
@dataclass
class InputXGradient(Attributor):
    """Gradient times input embedding, summed over the hidden dimension (no options)."""

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        embeds = problem.source_embeds().requires_grad_(True)
        scores, _ = problem.scores(embeds)
        grads = row_gradients(scores, embeds)[:, 0]  # [R, n, hidden]
        matrix = (grads * embeds.detach()[0]).sum(-1)
        return MethodOutput(matrix.double().cpu().numpy(), scores[0].detach().double().cpu().numpy(),
                            backward_passes=scores.shape[1], evaluations=1)
