"""SpecDec++ (draft model + trained acceptance head deciding the draft length) on tiny seeded models: the stop
rule on hand-given probabilities, weighted BCE values, the head fit on separable data, calibration labels equal
a brute-force recomputation, greedy output token-identical to LM.generate, threshold extremes, a constant head
stopping where the product rule says, sampling draft distributions, save / load, bad input.

No slow test on real models: the project's pair qwen2.5-coder-0.5b -> qwen2.5-coder-1.5b needs a calibration run
of the 1.5B target on CPU (minutes on the shared 2-core machine) before any drafting can be checked."""
import copy
import math

import pytest
import torch
from spec_draft_helpers import brute_force_row

from workbench.models import LM, tiny_lm
from workbench.models.tiny import tiny_model
from workbench.speculative import SamplingConfig, speculative_generate
from workbench.speculative.drafters import VocabularyMismatchError, get_drafter
from workbench.speculative.drafters.specdec_pp import SpecDecPPDrafter, stop_length
from workbench.speculative.drafters.specdec_pp_head import (
    AcceptanceHead,
    calibration_data,
    fit_acceptance_head,
    train_acceptance_head,
    weighted_bce,
)
from workbench.tokenization.bytes import ByteTokenizer

ARCHS = ["llama", "qwen2", "gemma3"]
PROMPT = [1, 2, 3, 4, 5, 1, 2, 3]
CALIBRATION = [PROMPT, [9, 8, 7, 6], [40, 41, 42, 43, 44], [100, 101]]


def noisy_copy(lm: LM, std: float, seed: int = 0) -> LM:
    """The target with N(0, std^2) noise on every weight matrix: a draft that agrees with it part of the time."""
    model = copy.deepcopy(lm.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            if param.ndim >= 2:
                param.add_(torch.randn(param.shape, generator=gen) * std)
    return LM(model, lm.tokenizer)


@pytest.fixture(scope="module")
def pairs():
    out = {}
    for arch in ARCHS:
        target = tiny_lm(arch, seed=0)
        draft = noisy_copy(target, 0.12)
        head = train_acceptance_head(draft, target, CALIBRATION, new_tokens=16, epochs=100, progress=False)
        out[arch] = (target, draft, head)
    return out


def constant_head(in_features: int, p_accept: float) -> AcceptanceHead:
    head = AcceptanceHead(in_features)
    with torch.no_grad():
        head.net[-1].weight.zero_()
        head.net[-1].bias.fill_(math.log(p_accept / (1 - p_accept)))
    return head


def test_stop_length_on_hand_given_probabilities():
    p = [0.1, 0.2, 0.5]  # P(some rejected) = 0.1, 1 - 0.9 * 0.8 = 0.28, 1 - 0.72 * 0.5 = 0.64
    assert stop_length(p, 0.05) == 1
    assert stop_length(p, 0.25) == 2
    assert stop_length(p, 0.28) == 3  # strictly greater
    assert stop_length(p, 0.3) == 3
    assert stop_length(p, 0.0) == 1
    assert stop_length(p, 1.0) == 3
    assert stop_length([0.2] * 6, 0.5) == 4  # 1 - 0.8^3 = 0.488, 1 - 0.8^4 = 0.5904


def test_weighted_bce_known_values():
    zero = torch.zeros(2)
    assert float(weighted_bce(zero, torch.tensor([1.0, 1.0]), 3.0)) == pytest.approx(math.log(2))
    assert float(weighted_bce(zero, torch.tensor([0.0, 0.0]), 3.0)) == pytest.approx(3 * math.log(2))
    assert float(weighted_bce(torch.tensor([math.log(3.0)]), torch.tensor([0.5]), 2.0)) == pytest.approx(
        -(0.5 * math.log(0.75) + 2.0 * 0.5 * math.log(0.25)))


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_fit_separates_separable_data(hidden):
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([1.0, -2.0, 0.5])
    x = torch.randn(600, 3, generator=gen) * 2 + torch.tensor([3.0, 0.0, -1.0])
    margin = x @ w - 1.0
    x = x[margin.abs() > 0.5]
    y = ((x @ w - 1.0) > 0).float()
    train, test = slice(0, len(x) // 2), slice(len(x) // 2, None)
    head = fit_acceptance_head(x[train], y[train], hidden=hidden, epochs=300, lr=0.05)
    for part in (train, test):
        predicted = (head.accept_prob(x[part]) > 0.5).float()
        assert torch.equal(predicted, y[part])


def test_rejected_weight_moves_the_decision_towards_rejection():
    x = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    y = torch.tensor([1.0, 0.0, 1.0, 1.0])  # at x = 0 half accepted: the unweighted optimum predicts 0.5 there
    plain = fit_acceptance_head(x, y, epochs=400, lr=0.1)
    weighted = fit_acceptance_head(x, y, rejected_weight=3.0, epochs=400, lr=0.1)
    assert float(plain.accept_prob(x[:1])) == pytest.approx(0.5, abs=0.05)
    assert float(weighted.accept_prob(x[:1])) == pytest.approx(0.25, abs=0.05)  # y / (y + 3 (1 - y)) = 1/4


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_calibration_labels_equal_brute_force(pairs, temperature):
    target, draft, _ = pairs["llama"]
    features, labels = calibration_data(draft, target, [PROMPT], new_tokens=8, temperature=temperature, seed=3)
    assert features.shape == (8, draft.hidden_size + 2) and labels.shape == (8,)
    assert bool(((labels >= 0) & (labels <= 1)).all())
    if temperature == 0.0:
        seq = PROMPT + target.generate(PROMPT, max_new_tokens=8).new_ids
        for r, j in enumerate(range(len(PROMPT) - 1, len(seq) - 1)):
            d = draft.forward(seq[: j + 1]).logits[0, -1].argmax()
            t = target.forward(seq[: j + 1]).logits[0, -1].argmax()
            assert float(labels[r]) == float(d == t)
            logq = torch.log_softmax(draft.forward(seq[: j + 1]).logits[0, -1], -1)
            assert float(features[r, -2]) == pytest.approx(float(logq[d]), abs=1e-4)
        assert 0 < float(labels.mean()) < 1  # the noisy draft agrees part of the time


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_autoregressive(pairs, arch):
    target, draft, head = pairs[arch]
    ref = target.generate(PROMPT, max_new_tokens=16)
    for threshold in (0.3, 0.9):
        drafter = SpecDecPPDrafter(draft=draft, head=head, threshold=threshold, max_draft=5)
        spec = speculative_generate(target, PROMPT, drafter, max_new_tokens=16, budget=5)
        assert spec.new_ids == ref.new_ids and spec.text == ref.text and spec.stop_reason == ref.stop_reason
        for risks, step in zip(drafter.history, spec.steps):  # stopped by the rule, by max_draft or by the budget
            assert len(risks) == step.drafted >= 1
            risk = [1 - math.prod(1 - r for r in risks[: i + 1]) for i in range(len(risks))]
            assert all(r <= threshold for r in risk[:-1])
            assert risk[-1] > threshold or len(risks) == 5 or step is spec.steps[-1] or step is spec.steps[-2]


@pytest.mark.parametrize("threshold, per_step", [(1.0, 4), (0.0, 1)])
def test_threshold_extremes(pairs, threshold, per_step):
    target, draft, head = pairs["qwen2"]
    drafter = SpecDecPPDrafter(draft=draft, head=head, threshold=threshold, max_draft=4)
    spec = speculative_generate(target, PROMPT, drafter, max_new_tokens=40, budget=6)
    room = [40 - sum(s.emitted for s in spec.steps[:i]) - 1 for i in range(len(spec.steps))]
    assert [s.drafted for s in spec.steps] == [min(per_step, r) for r in room]


def test_constant_head_stops_where_the_product_rule_says(pairs):
    target, draft, _ = pairs["llama"]
    head = constant_head(draft.hidden_size + 2, 0.8)  # p_reject = 0.2 for every token
    drafter = SpecDecPPDrafter(draft=draft, head=head, threshold=0.5, max_draft=8)
    drafter.begin(target, PROMPT, SamplingConfig(0.0))
    tree = drafter.propose(PROMPT, 8)
    assert len(tree) == 4  # 1 - 0.8^3 = 0.488 <= 0.5 < 1 - 0.8^4
    assert drafter.history[-1] == pytest.approx([0.2] * 4)


@pytest.mark.parametrize("arch", ARCHS)
def test_sampling_draft_probs_and_seeded_reproducibility(pairs, arch):
    target, draft, head = pairs[arch]
    sampling = SamplingConfig(0.9, top_p=0.95)
    drafter = SpecDecPPDrafter(draft=draft, head=constant_head(draft.hidden_size + 2, 0.9), threshold=0.9)
    drafter.begin(target, PROMPT, sampling, torch.Generator().manual_seed(1))
    tree = drafter.propose(PROMPT, 6)
    tokens = tree.tokens.tolist()
    for i in range(len(tree)):
        ref = brute_force_row(draft, PROMPT + tokens[:i], sampling, target.vocab_size)
        assert torch.allclose(tree.draft_probs[i], ref, atol=1e-5) and tree.draft_probs[i, tokens[i]] > 0

    def run(seed):
        d = SpecDecPPDrafter(draft=draft, head=head, threshold=0.8, max_draft=4)
        return speculative_generate(target, PROMPT, d, verifier="speculative_sampling", max_new_tokens=16,
                                    temperature=1.0, seed=seed, budget=4).new_ids

    assert run(4) == run(4) and len(run(5)) == 16


def test_eos_inside_a_draft():
    target = tiny_lm("llama", seed=2)
    reference = target.generate(PROMPT, max_new_tokens=40).new_ids
    k = next(i for i in range(10, 40) if reference[i] not in reference[:i] and i % 5 != 4)
    target.model.generation_config.eos_token_id = reference[k]
    ref = target.generate(PROMPT, max_new_tokens=40)
    assert ref.stop_reason == "eos"
    twin = tiny_lm("llama", seed=2)
    drafter = SpecDecPPDrafter(draft=twin, head=constant_head(twin.hidden_size + 2, 0.99), threshold=1.0, max_draft=4)
    spec = speculative_generate(target, PROMPT, drafter, max_new_tokens=40, budget=4)
    assert spec.new_ids == ref.new_ids and spec.stop_reason == "eos" and spec.text == ref.text
    assert all(s.accepted == s.drafted for s in spec.steps)


def test_save_load_roundtrip(pairs, tmp_path):
    _, draft, head = pairs["gemma3"]
    path = tmp_path / "head.pt"
    head.save(path)
    loaded = AcceptanceHead.load(path)
    x = torch.randn(5, draft.hidden_size + 2)
    assert torch.equal(loaded.accept_prob(x), head.accept_prob(x))
    assert isinstance(SpecDecPPDrafter(draft=draft, head=str(path)).head, AcceptanceHead)
    assert isinstance(get_drafter("specdec_pp", draft=draft, head=head), SpecDecPPDrafter)


@pytest.mark.parametrize("options, param", [
    ({"threshold": -0.1}, "threshold"), ({"threshold": 1.5}, "threshold"), ({"threshold": True}, "threshold"),
    ({"max_draft": 0}, "max_draft"), ({"head": None}, "head"), ({"head": "/nonexistent/head.pt"}, "head"),
])
def test_bad_options(options, param):
    head = AcceptanceHead(34)
    with pytest.raises(ValueError, match=param):
        SpecDecPPDrafter(**{"draft": "x", "head": head, **options})


def test_bad_input_before_any_work(pairs):
    target, draft, head = pairs["llama"]
    target.counters.reset()
    with pytest.raises(ValueError, match="head takes 10 features"):
        SpecDecPPDrafter(draft=draft, head=AcceptanceHead(10)).begin(target, PROMPT, SamplingConfig(0.0))
    drafter = SpecDecPPDrafter(draft=draft, head=head)
    drafter.begin(target, PROMPT, SamplingConfig(0.0))
    with pytest.raises(ValueError, match="budget"):
        drafter.propose(PROMPT, 0)
    other = LM(tiny_model("llama", seed=1), ByteTokenizer(("<eos>", "<pad>"), eos="<eos>", name="bytes-258"))
    with pytest.raises(VocabularyMismatchError, match=r"draft tokenizer 'bytes-258' has 258 tokens, target tokenizer "
                                                      r"'tiny-bytes' has 257"):
        SpecDecPPDrafter(draft=other, head=head).begin(target, PROMPT, SamplingConfig(0.0))
    with pytest.raises(VocabularyMismatchError, match="bytes-258.*tiny-bytes"):
        train_acceptance_head(other, target, CALIBRATION)
    for bad, param in (({"rejected_weight": 0}, "rejected_weight"), ({"epochs": 0}, "epochs"),
                       ({"hidden": (0,)}, r"hidden\[0\]"), ({"new_tokens": 0}, "new_tokens"),
                       ({"temperature": -1.0}, "temperature")):
        with pytest.raises(ValueError, match=param):
            train_acceptance_head(draft, target, CALIBRATION, **bad)
    with pytest.raises(ValueError, match="prompts"):
        train_acceptance_head(draft, target, [])
    assert target.counters.forward_calls == 0
