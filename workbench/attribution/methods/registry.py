"""Attribution methods by name: `get_method("shapley", permutations=64)`, `METHODS` (name -> class)."""
from __future__ import annotations

from workbench.attribution.methods.base import Attributor
from workbench.registry import Registry

METHOD_REGISTRY: Registry[type[Attributor]] = Registry("attribution method", "workbench.attribution.methods")
METHODS = METHOD_REGISTRY.entries
register_method = METHOD_REGISTRY.register


def get_method(name: str, **options) -> Attributor:
    """Build the method registered as `name` with its options (unknown names and options raise ValueError)."""
    return METHOD_REGISTRY.build(name, **options)
