"""Attribution: which prompt tokens drove which output tokens, and at what cost.

    from workbench.attribution import attribute, Contrastive, METHODS
    a = attribute(lm, "The capital of France is", " Paris", method="occlusion", granularity="word")
    a.matrix            # [targets, sources] numpy array
    a.sources, a.targets, a.cost, a.to_dict()

Methods (one file each in methods/, registered by name): saliency, input_x_gradient, integrated_gradients,
attention, rollout, occlusion, shapley, kernel_shap, hierarchical_shapley (TextGenSHAP), reagent (ReAGent).
"""
from workbench.attribution.api import attribute
from workbench.attribution.critical_tokens import (
    CriticalTokens,
    Scorer,
    critical_tokens,
)
from workbench.attribution.methods import (
    METHODS,
    Attributor,
    MethodOutput,
    get_method,
    register_method,
)
from workbench.attribution.perturb import PerturbationValue
from workbench.attribution.problem import Problem
from workbench.attribution.result import Attribution, Cost
from workbench.attribution.targets import (
    Contrastive,
    TargetFunction,
    kl_from_prompt,
    sequence_log_likelihood,
)
from workbench.attribution.units import GRANULARITIES, Unit

__all__ = [
    "GRANULARITIES", "METHODS", "Attribution", "Attributor", "Contrastive", "Cost", "CriticalTokens", "MethodOutput",
    "PerturbationValue", "Problem", "Scorer", "TargetFunction", "Unit", "attribute", "critical_tokens", "get_method",
    "kl_from_prompt", "register_method", "sequence_log_likelihood",
]
