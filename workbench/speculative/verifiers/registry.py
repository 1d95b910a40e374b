"""Verifiers registered by name: `VERIFIERS[name]` is the class, `get_verifier(name, **options)` an instance."""
from __future__ import annotations

from .base import Verifier

VERIFIERS: dict[str, type[Verifier]] = {}


def register_verifier(cls: type[Verifier]) -> type[Verifier]:
    """Class decorator: register a Verifier subclass under its `name`."""
    if not cls.name or cls.name in VERIFIERS:
        raise ValueError(f"verifier name must be non-empty and unique, got {cls.name!r}")
    VERIFIERS[cls.name] = cls
    return cls


def get_verifier(name: str | Verifier, **options) -> Verifier:
    """The verifier registered as `name` (an existing Verifier instance is returned as is)."""
    if isinstance(name, Verifier):
        return name
    if name not in VERIFIERS:
        raise ValueError(f"unknown verifier {name!r}; known verifiers: {', '.join(sorted(VERIFIERS))}")
    return VERIFIERS[name](**options)
