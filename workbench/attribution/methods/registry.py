"""Attribution methods by name: `get_method("shapley", permutations=64)`, `METHODS` (name -> class)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TypeVar

from workbench.attribution.methods.base import Attributor

METHODS: dict[str, type[Attributor]] = {}

A = TypeVar("A", bound=type[Attributor])


def register_method(name: str) -> Callable[[A], A]:
    """Class decorator: register an Attributor subclass under `name`."""

    def deco(cls: A) -> A:
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"attribution method name {name!r} is already registered by {METHODS[name].__name__}")
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


def get_method(name: str, **options) -> Attributor:
    """Build the method registered as `name` with its options (unknown names and options raise ValueError)."""
    import workbench.attribution.methods  # noqa: F401  (registers the built-in methods)

    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown attribution method {name!r}; known: {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    allowed = {f.name for f in fields(cls)}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"method {name!r} has no option(s) {', '.join(sorted(unknown))}; "
            f"its options: {', '.join(sorted(allowed)) or '(none)'}"
        )
    return cls(**options)
