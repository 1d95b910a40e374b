"""One registry-by-name type shared by every family (attribution methods, sparse policies, drafters, verifiers).

A registry maps a name to a class. `register("name")` is a class decorator; `build("name", **options)` makes an
instance after checking the options against the class's dataclass fields, so a typo fails before any work.
The built-in entries live in the submodules of one package, which the registry imports on first lookup: a new
policy or method is one new file in that package with the decorator on its class, nothing else to edit.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes by name for one `kind` of component ("drafter", "sparse attention policy", ...).

    `package` is the dotted name of the package whose submodules define the built-in entries.
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self.entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Class decorator: register `cls` under `name` (or its existing `name` attribute) and set `cls.name`."""

        def deco(cls: T) -> T:
            key = name if name is not None else getattr(cls, "name", "")
            if not isinstance(key, str) or not key:
                raise ValueError(f"a {self.kind} needs a non-empty string name, {cls.__name__} has {key!r}")
            if key in self.entries and self.entries[key] is not cls:
                raise ValueError(f"{self.kind} name {key!r} is already registered by {self.entries[key].__name__}")
            cls.name = key
            self.entries[key] = cls
            return cls

        return deco

    def load_builtins(self) -> None:
        """Import every submodule of the registry's package once (their decorators fill the registry)."""
        if self._loaded:
            return
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
        self._loaded = True

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self.load_builtins()
        return sorted(self.entries)

    def get(self, name: str) -> T:
        """The class registered as `name`; an unknown name raises ValueError listing the known ones."""
        self.load_builtins()
        if not isinstance(name, str) or name not in self.entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self.entries))}")
        return self.entries[name]

    def build(self, name: str, **options: Any) -> Any:
        """An instance of the class registered as `name`; options that are not dataclass fields raise ValueError."""
        cls = self.get(name)
        if is_dataclass(cls):
            allowed = {f.name for f in fields(cls) if f.init}
            unknown = set(options) - allowed
            if unknown:
                raise ValueError(
                    f"{self.kind} {name!r} has no option(s) {', '.join(sorted(unknown))}; "
                    f"its options: {', '.join(sorted(allowed)) or '(none)'}"
                )
        return cls(**options)
