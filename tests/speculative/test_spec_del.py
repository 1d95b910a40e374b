"""The DEL drafter (self-speculation from the target's first layers, exit layer and length by tokens-per-layer):
greedy output token-identical to LM.generate, a model whose last layers are the identity accepts every draft and
the rule settles on the exit before them, tracked acceptance statistics equal a brute-force recomputation through
lm.forward(exit_layer=...), draft distributions equal the early-exit distributions recomputed from scratch,
the selection rule on hand-made tables, bad input."""
import pytest
import torch

from workbench.models import LM
from workbench.models.tiny import WEIGHT_STD, tiny_config, tiny_tokenizer
from workbench.speculative import (
    SamplingConfig,
    probs_from_logits,
    speculative_generate,
)
from workbench.speculative.drafters import get_drafter
from workbench.speculative.drafters.del_drafter import DELDrafter, select_exit

ARCHS = ["llama", "qwen2", "gemma3"]
PROMPT = [1, 2, 3, 4, 5, 1, 2, 3]


def deep_tiny(arch: str, layers: int = 4, seed: int = 0, identity_from: int | None = None) -> LM:
    """A tiny seeded model with `layers` layers; layers identity_from.. (0-based) made the identity (their
    attention output and MLP down projections zeroed), so an exit after layer identity_from equals the full model."""
    from transformers import AutoModelForCausalLM

    config = tiny_config(arch)
    config.num_hidden_layers = layers
    if arch == "gemma3":
        config.layer_types = (["sliding_attention", "full_attention"] * layers)[:layers]
    elif getattr(config, "layer_types", None):
        config.layer_types = ["full_attention"] * layers
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.ndim >= 2 or name.endswith(".bias"):
                param.copy_(torch.randn(param.shape, generator=gen) * WEIGHT_STD)
        if identity_from is not None:
            for layer in model.model.layers[identity_from:]:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
    return LM(model.eval(), tiny_tokenizer())


@pytest.fixture(scope="module")
def models():
    return {arch: deep_tiny(arch) for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("options", [{}, {"exit_layers": (1, 2, 3), "draft_length": 3}])
def test_greedy_equals_autoregressive(models, arch, options):
    lm = models[arch]
    ref = lm.generate(PROMPT, max_new_tokens=16)
    drafter = DELDrafter(**options)
    spec = speculative_generate(lm, PROMPT, drafter, max_new_tokens=16, budget=5)
    assert spec.new_ids == ref.new_ids and spec.text == ref.text and spec.stop_reason == ref.stop_reason
    assert spec.forward_calls == 1 + len(spec.steps)  # draft passes are not counted as target passes
    if options:
        assert sum(s.drafted for s in spec.steps) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_identity_tail_accepts_everything_and_the_rule_finds_that_exit(arch):
    lm = deep_tiny(arch, layers=4, seed=3, identity_from=2)  # exit after layer 2 == the full model
    drafter = DELDrafter(exit_layers=(1, 2), max_draft=4)
    spec = speculative_generate(lm, PROMPT, drafter, max_new_tokens=26, budget=4)
    assert spec.new_ids == lm.generate(PROMPT, max_new_tokens=26).new_ids
    assert drafter.accepted_total[2] == drafter.observations > 10  # layer 2 predicts every target token
    # From the moment the rule picks layer 2, every drafted token is accepted.
    chosen = [layer for layer, length in drafter.history]
    assert chosen[-1] == 2 and drafter.history[-2] == (2, 4)
    for (layer, _), step in zip(drafter.history, spec.steps):
        if layer == 2:
            assert step.accepted == step.drafted


@pytest.mark.parametrize("arch", ARCHS)
def test_statistics_equal_brute_force(models, arch):
    lm = models[arch]
    drafter = DELDrafter(exit_layers=(1, 2, 3), draft_length=2)
    spec = speculative_generate(lm, PROMPT, drafter, max_new_tokens=16, budget=4)
    seq = PROMPT + spec.new_ids
    full = lm.forward(seq).logits[0]
    assert drafter.observed == sorted(set(drafter.observed)) and len(drafter.observed) == drafter.observations
    roots = [len(PROMPT) - 1 + sum(s.emitted for s in spec.steps[:i]) for i in range(len(drafter.history))]
    assert set(roots) <= set(drafter.observed)
    for layer in (1, 2, 3):
        early = lm.forward(seq, exit_layer=layer).logits[0]
        hits = sum(int(early[j].argmax() == full[j].argmax()) for j in drafter.observed)
        assert drafter.accepted_total[layer] == hits


@pytest.mark.parametrize("arch", ARCHS)
def test_sampling_draft_probs_are_the_early_exit_distributions(models, arch):
    lm = models[arch]
    sampling = SamplingConfig(0.8, top_k=50)
    drafter = DELDrafter(exit_layers=(2,), draft_length=3)
    gen = torch.Generator().manual_seed(0)
    drafter.begin(lm, PROMPT, sampling, gen)
    tree = drafter.propose(PROMPT, 3)
    assert len(tree) == 3 and tree.draft_probs is not None
    tokens = tree.tokens.tolist()
    for i in range(3):
        early = lm.forward(PROMPT + tokens[:i], exit_layer=2).logits[0, -1]
        ref = probs_from_logits(early, 0.8, 50)
        assert torch.allclose(tree.draft_probs[i], ref, atol=1e-5)
        assert tree.draft_probs[i, tokens[i]] > 0
    assert torch.allclose(tree.draft_probs.sum(-1), torch.ones(3, dtype=tree.draft_probs.dtype))


@pytest.mark.parametrize("arch", ARCHS)
def test_sampling_is_seeded_and_reproducible(models, arch):
    lm = models[arch]

    def run(seed):
        return speculative_generate(lm, PROMPT, DELDrafter(exit_layers=(1, 2), draft_length=3),
                                    verifier="speculative_sampling", max_new_tokens=16, temperature=1.0,
                                    seed=seed, budget=3).new_ids

    assert run(5) == run(5)
    assert len(run(6)) == 16


def test_eos_inside_a_draft():
    lm = deep_tiny("llama", layers=4, seed=3, identity_from=2)
    reference = lm.generate(PROMPT, max_new_tokens=40).new_ids
    k = next(i for i in range(10, 40) if reference[i] not in reference[:i] and i % 5 != 4)
    lm.model.generation_config.eos_token_id = reference[k]
    ref = lm.generate(PROMPT, max_new_tokens=40)
    assert ref.stop_reason == "eos" and len(ref.new_ids) == k + 1
    drafter = DELDrafter(exit_layers=(2,), draft_length=4)
    spec = speculative_generate(lm, PROMPT, drafter, max_new_tokens=40, budget=4)
    assert spec.new_ids == ref.new_ids and spec.stop_reason == "eos" and spec.text == ref.text
    assert spec.steps[-1].accepted > 0 or spec.steps[-1].drafted == 0


@pytest.mark.parametrize("confidence, expect_one", [(0.0, False), (1.0, True)])
def test_min_confidence_extremes(confidence, expect_one):
    lm = deep_tiny("qwen2", layers=4, seed=3, identity_from=2)
    drafter = DELDrafter(exit_layers=(2,), draft_length=4, min_confidence=confidence)
    spec = speculative_generate(lm, PROMPT, drafter, max_new_tokens=16, budget=4)
    assert spec.new_ids == lm.generate(PROMPT, max_new_tokens=16).new_ids
    drafted = [s.drafted for s in spec.steps[:-2]]
    assert all(d == 1 for d in drafted) if expect_one else all(d == 4 for d in drafted)


def test_select_exit_on_hand_made_tables():
    # L = 8, alpha_2 = 0.5, alpha_4 = 0.9, g <= 3. TPL = (1 + a + .. + a^g) / (g * l + 8):
    # l=2: 1.5/10 = .150, 1.75/12 = .1458, 1.875/14 = .1339;  l=4: 1.9/12 = .1583, 2.71/16 = .1694, 3.439/20 = .1720
    layer, length, tpl = select_exit({2: 0.5, 4: 0.9}, 8, 3)
    assert (layer, length) == (4, 3) and tpl == pytest.approx(3.439 / 20)
    # alpha_1 = 0.6, alpha_4 = 0.7, g <= 4: l=1: 1.6/9 = .1778, 1.96/10 = .196, 2.176/11 = .1978, 2.3056/12 = .1921;
    # l=4: 1.7/12 = .1417, 2.19/16 = .1369, ...
    assert select_exit({1: 0.6, 4: 0.7}, 8, 4)[:2] == (1, 3)
    # nothing beats plain decoding (1 / L = .125): alpha = 0 everywhere -> no draft
    assert select_exit({1: 0.0, 3: 0.0}, 8, 5)[:2] == (1, 0)
    # perfect acceptance: the longest draft at the cheapest perfect layer, (g + 1) / (2 g + 10) grows with g
    assert select_exit({1: 0.0, 2: 1.0, 3: 1.0}, 10, 4)[:2] == (2, 4)
    # the budget caps the length
    assert select_exit({2: 1.0}, 10, 1)[:2] == (2, 1)


def test_registered_by_name():
    assert isinstance(get_drafter("del", exit_layers=(1,)), DELDrafter)


@pytest.mark.parametrize("options, param", [
    ({"exit_layers": (0,)}, "exit_layers"), ({"exit_layers": ()}, "exit_layers"), ({"exit_layers": (1.5,)}, "exit_layers"),
    ({"max_draft": 0}, "max_draft"), ({"draft_length": 0}, "draft_length"), ({"prior": 1.5}, "prior"),
    ({"decay": 0.0}, "decay"), ({"prior_weight": 0}, "prior_weight"), ({"min_confidence": 1.5}, "min_confidence"),
])
def test_bad_options(options, param):
    with pytest.raises(ValueError, match=param):
        DELDrafter(**options)


def test_exit_layer_range_and_budget_checked_before_any_work(models):
    lm = models["llama"]
    lm.counters.reset()
    for layer in (4, 5):
        with pytest.raises(ValueError, match=r"exit_layers must lie in 1\.\.3"):
            DELDrafter(exit_layers=(1, layer)).begin(lm, PROMPT, SamplingConfig(0.0))
    drafter = DELDrafter(exit_layers=(1,))
    drafter.begin(lm, PROMPT, SamplingConfig(0.0))
    with pytest.raises(ValueError, match="budget"):
        drafter.propose(PROMPT, 0)
    assert lm.counters.forward_calls == 0 and drafter.cost["forward_calls"] == 0
    with pytest.raises(ValueError, match="at least 2 layers"):
        one = deep_tiny("llama", layers=1)
        DELDrafter().begin(one, PROMPT, SamplingConfig(0.0))


@pytest.mark.slow
def test_smollm2_greedy_equals_generate():
    lm = LM.load("smollm2-135m")
    prompt = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    ref = lm.generate(prompt, max_new_tokens=32)
    drafter = DELDrafter(exit_layers=(6, 12), max_draft=6)
    spec = speculative_generate(lm, prompt, drafter, max_new_tokens=32, budget=6)
    assert spec.new_ids == ref.new_ids
    alphas = {layer: round(drafter.alpha(layer), 3) for layer in drafter.candidates}
    print(f"\nDEL smollm2-135m: tau={spec.tau:.3f} steps={len(spec.steps)} (exit, length) per step={drafter.history} "
          f"alpha={alphas} cost={drafter.cost}")
