"""Attribution methods, one file each, registered by name (`get_method`, `METHODS`)."""
from workbench.attribution.methods import (  # noqa: F401  (each module registers its method)
    attention,
    input_x_gradient,
    integrated_gradients,
    kernel_shap,
    occlusion,
    rollout,
    saliency,
    shapley,
)
from workbench.attribution.methods.base import Attributor, MethodOutput
from workbench.attribution.methods.registry import METHOD_REGISTRY, METHODS, get_method, register_method

METHOD_REGISTRY.load_builtins()  # the methods in files not imported above (each new file registers itself)

__all__ = ["METHODS", "Attributor", "MethodOutput", "get_method", "register_method"]
