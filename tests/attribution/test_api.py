"""attribute(): bad input fails before any model work with a clear message; the result's forms."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.attribution import (
    METHODS,
    Contrastive,
    TargetFunction,
    attribute,
    get_method,
)
from workbench.models import LM
from workbench.models.tiny import tiny_model
from workbench.tokenization import ByteTokenizer


class NormalizingTokenizer(ByteTokenizer):
    """Lower-cases and drops spaces: some texts it cannot produce exactly, whitespace it drops entirely."""

    def encode_with_offsets(self, text):
        data = text.lower().replace(" ", "").encode("utf-8")
        return list(data), [(k, k + 1) for k in range(len(data))]


def no_work(lm, call, match):
    before = lm.counters.snapshot()
    with pytest.raises(ValueError, match=match):
        call()
    assert lm.counters.snapshot() - before == type(before)(), "work was done before the error"


BAD = {
    "empty prompt": ({"prompt": ""}, "prompt is empty"),
    "prompt not a string": ({"prompt": b"abc"}, "prompt must be a non-empty string, got bytes"),
    "empty target": ({"target": ""}, "target is empty"),
    "empty id list": ({"target": []}, "empty list of token ids"),
    "id outside vocabulary": ({"target": [3, 257]},
                              r"target\[1\] = 257 is outside the model's vocabulary \[0, 257\)"),
    "target of another type": ({"target": 3.5}, "target must be a string, a list of token ids, None"),
    "empty contrastive side": ({"target": Contrastive("", " b")}, "target.a is empty"),
    "identical contrast": ({"target": Contrastive(" b", [32, 98])}, "the contrast is always 0"),
    "unknown method": ({"method": "lime"}, "unknown attribution method 'lime'; known: attention, .*input_x_gradient"),
    "unknown option": ({"method": "saliency", "steps": 3}, "method 'saliency' has no option"),
    "unknown granularity": ({"granularity": "paragraph"},
                            r"granularity must be one of \['token', 'word', 'sentence'\] or a list"),
    "span past the prompt": ({"granularity": [(0, 99)]}, "ends after the prompt"),
    "too few kernel samples": ({"method": "kernel_shap", "samples": 9, "paired": False},
                               r"samples=9 is too few for 11 features .* features \+ 1 = 12 coalitions"),
    "too few paired samples": ({"method": "kernel_shap", "samples": 12},
                               r"10 pairs = 20 samples; use samples >= 20"),
    "too few permutations": ({"method": "shapley", "permutations": 2}, "permutations must be an int >= 4"),
    "odd antithetic permutations": ({"method": "shapley", "permutations": 5}, "must be even"),
    "ig steps": ({"method": "integrated_gradients", "steps": 0}, "steps must be an int >= 1"),
    "ig rule": ({"method": "integrated_gradients", "rule": "simpson"}, r"rule must be one of \['gauss_legendre'"),
    "baseline": ({"method": "occlusion", "baseline": "mask"},
                 r"baseline must be one of \['pad', 'zero'\] or a token id"),
    "baseline id": ({"method": "occlusion", "baseline": 999},
                    "baseline token id 999 is outside the model's vocabulary"),
    "saliency norm": ({"method": "saliency", "norm": 3}, r"norm must be one of \[1, 2, 'inf'\]"),
    "layer index": ({"method": "attention", "layer": 2}, r"layer must be None or an int in \[-2, 2\)"),
    "residual": ({"method": "rollout", "residual": 1.5}, r"residual must be a number in \[0, 1\]"),
    "batch size": ({"method": "occlusion", "batch_size": 0}, "batch_size must be an int >= 1"),
    "max_new_tokens": ({"target": None, "max_new_tokens": 0}, "max_new_tokens must be an int >= 1"),
    "too long": ({"target": "x" * 250}, r"exceed the model's context of 256 tokens"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_before_work(llama, case):
    changes, match = BAD[case]
    kwargs = {"prompt": "Hello world", "target": " ok", "method": "occlusion"} | changes
    no_work(llama, lambda: attribute(llama, **kwargs, progress=False), match)


def test_targets_the_tokenizer_cannot_produce():
    lm = LM(tiny_model("llama", seed=0), NormalizingTokenizer())
    no_work(lm, lambda: attribute(lm, "hello", "   "), "tokenizes to no tokens")
    no_work(lm, lambda: attribute(lm, "hello", " World"),
            "cannot produce target ' World' exactly: its tokens spell 'world'")
    no_work(lm, lambda: attribute(lm, "   ", " ok"), "prompt '   ' tokenizes to no tokens")
    big = LM(tiny_model("llama", seed=0), ByteTokenizer(("<eos>", "<sep>")))  # 258 ids, the model has 257
    no_work(big, lambda: attribute(big, "hello", " ok<sep>"), r"id\(s\) \[257\] outside the model's vocabulary")


def test_registry():
    assert set(METHODS) == {"saliency", "input_x_gradient", "integrated_gradients", "attention", "rollout",
                            "occlusion", "shapley", "kernel_shap", "hierarchical_shapley", "reagent",
                            "leverage_shap", "regression_adjusted_shap"}
    method = get_method("shapley", permutations=8)
    assert method.name == "shapley" and method.options()["permutations"] == 8 and method.level == "unit"
    assert get_method("saliency").level == "token"


def test_result_forms(llama):
    a = attribute(llama, "a <b> & c", " d", method="shapley", permutations=4, progress=False)
    assert a.shape == (2, 9) and a.matrix.dtype == np.float64
    assert np.all(np.isfinite(a.matrix)) and a.stderr().shape == (2, 9)
    d = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert d["method"] == "shapley" and d["options"]["permutations"] == 4 and d["granularity"] == "token"
    assert np.allclose(d["matrix"], a.matrix) and d["sources"][1]["text"] == " " and d["targets"][1]["text"] == "d"
    assert d["cost"]["forward_passes"] == a.cost.forward_passes > 0 and d["cost"]["device"] == "cpu"
    assert a.cost.evaluations == a.extras["coalitions"] and a.cost.seconds > 0
    text = repr(a)
    assert text.startswith("Attribution(method='shapley'") and "evaluations" in text
    page = a._repr_html_()
    table = page.split("<table")[1].split("</table>")[0]
    assert "&lt;" in table and "&amp;" in table and "<b>" not in table
    assert "<script" not in page and "http" not in page
    top = a.top(1, 3)
    assert len(top) == 3 and top[0][1] == a.matrix[1].max()


def test_nan_becomes_null_in_json(linear):
    target = TargetFunction(lambda logits, ids: logits[:, 0, 0] * 0, "", ("zero",))
    a = attribute(linear, "ab", target, method="integrated_gradients", baseline="zero", steps=2, progress=False)
    a.extras["nan"] = np.array([np.nan, 1.0])
    assert json.loads(json.dumps(a.to_dict(), allow_nan=False))["extras"]["nan"] == [None, 1.0]


def test_wide_matrices_print_each_rows_top_sources(llama):
    a = attribute(llama, "a fairly long prompt here", " x", method="attention", progress=False)
    lines = repr(a).splitlines()
    assert len(lines) == 3 and " top: " in lines[1]
