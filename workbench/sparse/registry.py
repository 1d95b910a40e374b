"""Selectors by name: `get_selector("h2o", budget=64)`, `SELECTORS` (name -> class)."""
from __future__ import annotations

from workbench.registry import Registry
from workbench.sparse.selector import Selector

SELECTOR_REGISTRY: Registry[type[Selector]] = Registry("sparse attention policy", "workbench.sparse.policies")
SELECTORS = SELECTOR_REGISTRY.entries
register_selector = SELECTOR_REGISTRY.register


def get_selector(name: str, budget=None, **params) -> Selector:
    """Build the policy registered as `name` with a budget (int tokens, float ratio, or Budget) and parameters."""
    return SELECTOR_REGISTRY.build(name, budget=budget, **params)
