"""Drafters registered by name: `DRAFTERS[name]` is the class, `get_drafter(name, **options)` an instance."""
from __future__ import annotations

from .base import Drafter

DRAFTERS: dict[str, type[Drafter]] = {}


def register_drafter(cls: type[Drafter]) -> type[Drafter]:
    """Class decorator: register a Drafter subclass under its `name`."""
    if not cls.name or cls.name in DRAFTERS:
        raise ValueError(f"drafter name must be non-empty and unique, got {cls.name!r}")
    DRAFTERS[cls.name] = cls
    return cls


def get_drafter(name: str | Drafter, **options) -> Drafter:
    """The drafter registered as `name` (an existing Drafter instance is returned as is)."""
    if isinstance(name, Drafter):
        if options:
            raise ValueError("options can only be given with a drafter name, not with a Drafter instance")
        return name
    if name not in DRAFTERS:
        raise ValueError(f"unknown drafter {name!r}; known drafters: {', '.join(sorted(DRAFTERS))}")
    return DRAFTERS[name](**options)
