"""Verifiers registered by name: `VERIFIERS[name]` is the class, `get_verifier(name, **options)` an instance."""
from __future__ import annotations

from workbench.registry import Registry

from .base import Verifier

VERIFIER_REGISTRY: Registry[type[Verifier]] = Registry("verifier", "workbench.speculative.verifiers")
VERIFIERS = VERIFIER_REGISTRY.entries


def register_verifier(cls: type[Verifier]) -> type[Verifier]:
    """Class decorator: register a Verifier subclass under its `name` attribute."""
    return VERIFIER_REGISTRY.register()(cls)


def get_verifier(name: str | Verifier, **options) -> Verifier:
    """The verifier registered as `name` (an existing Verifier instance is returned as is)."""
    if isinstance(name, Verifier):
        if options:
            raise ValueError("options can only be given with a verifier name, not with a Verifier instance")
        return name
    return VERIFIER_REGISTRY.build(name, **options)
