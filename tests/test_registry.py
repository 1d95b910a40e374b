"""The shared registry: decorator, lookup errors, option checking, discovery of built-ins by package."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from workbench.registry import Registry


def make_registry() -> Registry:
    return Registry("widget", "workbench.views.tabs")


def test_register_by_name_sets_the_name_and_builds_with_options():
    reg = make_registry()

    @reg.register("small")
    @dataclass
    class Small:
        size: int = 1

    assert Small.name == "small" and reg.entries == {"small": Small}
    assert reg.build("small", size=3).size == 3


def test_register_without_a_name_uses_the_class_attribute_and_refuses_an_empty_one():
    reg = make_registry()

    class Named:
        name = "named"

    assert reg.register()(Named) is Named and reg.get("named") is Named

    class Anonymous:
        name = ""

    with pytest.raises(ValueError, match="widget needs a non-empty string name, Anonymous has ''"):
        reg.register()(Anonymous)


def test_a_second_class_under_a_taken_name_is_refused_but_re_registering_the_same_is_not():
    reg = make_registry()

    @reg.register("a")
    class First:
        pass

    reg.register("a")(First)
    with pytest.raises(ValueError, match="widget name 'a' is already registered by First"):
        @reg.register("a")
        class Second:
            pass


def test_unknown_names_and_options_are_refused_with_what_is_allowed():
    reg = make_registry()

    @reg.register("b")
    @dataclass
    class B:
        alpha: float = 0.5
        beta: int = 2

    with pytest.raises(ValueError, match=r"unknown widget 'c'; known: b"):
        reg.get("c")
    with pytest.raises(ValueError, match=r"unknown widget 3"):
        reg.get(3)
    with pytest.raises(ValueError, match=r"widget 'b' has no option\(s\) gamma; its options: alpha, beta"):
        reg.build("b", gamma=1)


def test_builtins_are_discovered_from_the_package_without_being_listed():
    # The four family registries find their built-ins by importing their package's submodules.
    from workbench.attribution.methods.registry import METHOD_REGISTRY
    from workbench.sparse.registry import SELECTOR_REGISTRY
    from workbench.speculative.drafters.registry import DRAFTER_REGISTRY
    from workbench.speculative.verifiers.registry import VERIFIER_REGISTRY

    assert {"occlusion", "shapley", "integrated_gradients"} <= set(METHOD_REGISTRY.names())
    assert {"full", "oracle", "quest", "h2o"} <= set(SELECTOR_REGISTRY.names())
    assert {"prompt_lookup", "token_recycling"} <= set(DRAFTER_REGISTRY.names())
    assert {"greedy", "rsd"} <= set(VERIFIER_REGISTRY.names())
