"""Selectors by name: `get_selector("h2o", budget=64)`, `SELECTORS` (name -> class)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from workbench.sparse.selector import Selector

SELECTORS: dict[str, type[Selector]] = {}

S = TypeVar("S", bound=type[Selector])


def register_selector(name: str) -> Callable[[S], S]:
    """Class decorator: register a Selector subclass under `name`."""

    def deco(cls: S) -> S:
        if name in SELECTORS and SELECTORS[name] is not cls:
            raise ValueError(f"selector name {name!r} is already registered by {SELECTORS[name].__name__}")
        cls.name = name
        SELECTORS[name] = cls
        return cls

    return deco


def get_selector(name: str, budget=None, **params) -> Selector:
    """Build the policy registered as `name` with a budget (int tokens, float ratio, or Budget) and parameters."""
    import workbench.sparse.policies  # noqa: F401  (registers the built-in policies)

    if name not in SELECTORS:
        raise ValueError(f"unknown sparse attention policy {name!r}; known: {', '.join(sorted(SELECTORS))}")
    cls = SELECTORS[name]
    allowed = set(cls.__dataclass_fields__) - {"budget"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"policy {name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
            f"its parameters: {', '.join(sorted(allowed)) or '(none)'}"
        )
    return cls(budget=budget, **params)
