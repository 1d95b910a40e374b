import pytest

from workbench.sparse import Budget, get_selector


def test_tokens_ratio_and_coercion():
    assert Budget.of(64) == Budget(tokens=64)
    assert Budget.of(0.25) == Budget(ratio=0.25)
    assert Budget(tokens=10).resolve(50, 3) == [10, 10, 10]
    assert Budget(ratio=0.25).resolve(50, 2) == [13, 13]  # ceil(12.5)
    assert Budget(ratio=0.25).resolve(48, 1) == [12]
    assert Budget(ratio=0.001).resolve(50, 1) == [1]  # at least one token
    assert Budget(ratio=1.0).resolve(7, 1) == [7]


def test_budget_above_context_is_clipped_or_refused():
    assert Budget(tokens=100).resolve(30, 2) == [30, 30]
    with pytest.raises(ValueError, match="budget.*larger than the context"):
        Budget(tokens=31).resolve(30, 2, clip=False)
    Budget(tokens=30).resolve(30, 2, clip=False)  # equal is fine


def test_per_layer_and_per_head_budgets():
    b = Budget(tokens=8, layers={1: Budget(tokens=20), 2: 0.5})
    assert b.resolve(40, 2, layer_idx=0) == [8, 8]
    assert b.resolve(40, 2, layer_idx=1) == [20, 20]
    assert b.resolve(40, 2, layer_idx=2) == [20, 20]
    h = Budget(heads=(4, 0.5, 9))
    assert h.resolve(10, 3) == [4, 5, 9]
    with pytest.raises(ValueError, match="budget.heads has 3 entries but the layer has 2 KV heads"):
        h.resolve(10, 2)
    with pytest.raises(ValueError, match="budget.layers names layer 5"):
        Budget(tokens=4, layers={5: 8}).check(10, 1, num_layers=2)


@pytest.mark.parametrize("bad", [0, -3, 0.0, -0.5, 1.5, float("nan"), True, "64", None])
def test_bad_budgets_name_the_parameter(bad):
    with pytest.raises(ValueError, match="budget"):
        get_selector("h2o", budget=bad)


def test_bad_budget_fields():
    with pytest.raises(ValueError, match="tokens or ratio, not both"):
        Budget(tokens=3, ratio=0.5)
    with pytest.raises(ValueError, match="budget.heads"):
        Budget(heads=())
    with pytest.raises(ValueError, match="budget.layers keys"):
        Budget(tokens=3, layers={-1: 4})


def test_to_dict_is_json_safe():
    import json

    d = Budget(tokens=8, layers={1: 0.5}, heads=(2, 3)).to_dict()
    assert json.loads(json.dumps(d)) == {"tokens": 8, "layers": {"1": {"ratio": 0.5}}, "heads": [{"tokens": 2}, {"tokens": 3}]}
