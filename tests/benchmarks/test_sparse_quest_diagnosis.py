"""benchmarks/sparse_quest_diagnosis.py's Quest variants are the package's Quest options: the script's copies of
the rankings select exactly what `Quest(group_reduce=..., sink_pages=...)` selects, so its perplexity figures
for the variants hold for the options."""
import pytest
import torch

from workbench.sparse import LayerState, get_selector

from .loader import load_benchmark


@pytest.fixture(scope="module")
def diagnosis():
    return load_benchmark("sparse_quest_diagnosis")


def make_qkv(seed: int, context: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 6, 8, generator=g), torch.randn(1, 2, context, 8, generator=g)


@pytest.mark.parametrize("variant, options", [
    ("quest", {}),
    ("quest_sink", {"sink_pages": 1}),
    ("quest_softmax_sum", {"group_reduce": "softmax_sum"}),
    ("quest_softmax_sink", {"group_reduce": "softmax_sum", "sink_pages": 1}),
])
@pytest.mark.parametrize("seed, context, budget", [(0, 61, 16), (1, 130, 40), (2, 97, 33)])
def test_script_variants_equal_the_package_options(diagnosis, variant, options, seed, context, budget):
    q, k = make_qkv(seed, context)
    state = LayerState(q, k, layer_idx=3)
    ours = get_selector("quest", budget=budget, page_size=8, **options).select(state)
    script = diagnosis.selections((variant, budget), q, k, 3, state.scale, 8, {})
    assert ours.sort(-1).values.tolist() == script.sort(-1).values.tolist()
