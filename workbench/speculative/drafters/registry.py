"""Drafters registered by name: `DRAFTERS[name]` is the class, `get_drafter(name, **options)` an instance."""
from __future__ import annotations

from workbench.registry import Registry

from .base import Drafter

DRAFTER_REGISTRY: Registry[type[Drafter]] = Registry("drafter", "workbench.speculative.drafters")
DRAFTERS = DRAFTER_REGISTRY.entries


def register_drafter(cls: type[Drafter]) -> type[Drafter]:
    """Class decorator: register a Drafter subclass under its `name` attribute."""
    return DRAFTER_REGISTRY.register()(cls)


def get_drafter(name: str | Drafter, **options) -> Drafter:
    """The drafter registered as `name` (an existing Drafter instance is returned as is)."""
    if isinstance(name, Drafter):
        if options:
            raise ValueError("options can only be given with a drafter name, not with a Drafter instance")
        return name
    return DRAFTER_REGISTRY.build(name, **options)
