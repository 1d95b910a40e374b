"""benchmarks/sparse_quest_diagnosis.py's Quest variants are the package's Quest options: the script's copies of
the rankings select exactly what `Quest(group_reduce=..., sink_pages=...)` selects, so its perplexity figures
for the variants hold for the options."""
import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import make_qkv

from workbench.sparse import LayerState, get_selector

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def diagnosis():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_sparse_quest_diagnosis", BENCHMARKS / "sparse_quest_diagnosis.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant, options", [
    ("quest", {}),
    ("quest_sink", {"sink_pages": 1}),
    ("quest_softmax_sum", {"group_reduce": "softmax_sum"}),
    ("quest_softmax_sink", {"group_reduce": "softmax_sum", "sink_pages": 1}),
])
@pytest.mark.parametrize("seed, context, budget", [(0, 61, 16), (1, 130, 40), (2, 97, 33)])
def test_script_variants_equal_the_package_options(diagnosis, variant, options, seed, context, budget):
    q, k, _, _ = make_qkv(seed, batch=1, heads=6, kv_heads=2, context=context, dim=8)
    state = LayerState(q, k, layer_idx=3)
    ours = get_selector("quest", budget=budget, page_size=8, **options).select(state)
    script = diagnosis.selections((variant, budget), q, k, 3, state.scale, 8, {})
    assert ours.sort(-1).values.tolist() == script.sort(-1).values.tolist()
