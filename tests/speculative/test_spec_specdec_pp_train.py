"""benchmarks/specdec_pp_train.py without models: its option checks (before any model loads), the prompt-overlap
check, the held-out metrics against hand-counted answers, and fit_acceptance_head's weight_decay."""
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from workbench.speculative.drafters.specdec_pp_head import fit_acceptance_head

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def train():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_specdec_pp_train", BENCHMARKS / "specdec_pp_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, message", [
    (["--prompts", "0"], "--prompts must be >= 1"),
    (["--prompts", "1"], "--prompts must be >= 2"),
    (["--new-tokens", "0"], "--new-tokens must be >= 1"),
    (["--heldout-every", "1"], "--heldout-every must be in"),
    (["--prompts", "4", "--heldout-every", "5"], "--heldout-every must be in"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--rejected-weight", "-1"], "--rejected-weight must be > 0"),
    (["--weight-decay", "-0.1"], "--weight-decay must be >= 0"),
    (["--calib-seed", "0", "--bench-seed", "0"], "--calib-seed must differ"),
    (["--hidden", "8,x"], "--hidden must be comma-separated"),
    (["--hidden", "8,0"], "--hidden widths must be >= 1"),
])
def test_bad_options_exit_before_loading(train, argv, message, capsys, monkeypatch):
    import workbench.models

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(workbench.models.LM, "load", no_load)
    with pytest.raises(SystemExit) as exc:
        train.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_source_keys_and_disjointness(train):
    assert train.source_keys("HumanEval/3+botchan#5") == {"HumanEval/3", "botchan#5"}
    bench = [{"name": "HumanEval/3+botchan#5", "ids": [1, 2]}, {"name": "lee#7", "ids": [3]}]
    train.check_disjoint([{"name": "HumanEval/4+botchan#6", "ids": [1, 2, 9]}, {"name": "lee#8", "ids": [4]}], bench)
    with pytest.raises(ValueError, match="botchan#5"):
        train.check_disjoint([{"name": "HumanEval/9+botchan#5", "ids": [5]}], bench)
    with pytest.raises(ValueError, match="overlaps"):
        train.check_disjoint([{"name": "calib-math#0", "ids": [3]}], bench)


def test_roc_auc_counts_pairs(train):
    # accepted scores 0.9, 0.4; rejected 0.5, 0.4: pairs (0.9>0.5, 0.9>0.4, 0.4<0.5, 0.4=0.4) -> (1+1+0+0.5)/4
    auc = train.roc_auc(torch.tensor([0.9, 0.4, 0.5, 0.4]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert auc == pytest.approx(2.5 / 4)
    assert train.roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1.0, 1.0])) is None


def test_split_metrics_by_hand(train):
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    m = train.split_metrics(lambda x: x, logits, labels, rejected_weight=2.0)
    sig = [1 / (1 + math.exp(-v)) for v in logits.tolist()]
    bce = -(math.log(sig[0]) + math.log(sig[1]) + math.log(1 - sig[2]) + math.log(1 - sig[3])) / 4
    wbce = -(math.log(sig[0]) + math.log(sig[1]) + 2 * math.log(1 - sig[2]) + 2 * math.log(1 - sig[3])) / 4
    assert m["positions"] == 4 and m["acceptance_rate"] == 0.5 and m["majority_rate"] == 0.5
    assert m["accuracy"] == 0.5  # right on 2.0 and -3.0, wrong on -1.0 and 0.5
    assert m["bce"] == pytest.approx(bce, rel=1e-6) and m["weighted_bce"] == pytest.approx(wbce, rel=1e-6)
    assert m["auc"] == pytest.approx(3 / 4)


def test_weight_decay_shrinks_the_fit_and_is_checked():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    y = (x[:, 0] > 0).float()  # separable: without a penalty the weights keep growing
    free = fit_acceptance_head(x, y, epochs=200, lr=0.1)
    tied = fit_acceptance_head(x, y, epochs=200, lr=0.1, weight_decay=1.0)
    assert tied.net[0].weight.norm() < 0.5 * free.net[0].weight.norm()
    with pytest.raises(ValueError, match="weight_decay must be a number >= 0"):
        fit_acceptance_head(x, y, weight_decay=-1.0)


def test_leave_one_prompt_out_pools_and_uses_the_other_prompts_rate(train):
    # three prompts; the stand-in "fit" ignores its data and scores by feature 0, so the pooled scores are known
    features = [torch.tensor([[1.0], [-1.0]]), torch.tensor([[2.0]]), torch.tensor([[-2.0], [0.5]])]
    labels = [torch.tensor([1.0, 0.0]), torch.tensor([1.0]), torch.tensor([1.0, 0.0])]
    seen = []

    def fit(x, y):
        seen.append(len(y))
        return lambda z: z[:, 0]

    m = train.leave_one_prompt_out(features, labels, fit)
    assert seen == [3, 4, 3] and m["prompts"] == 3 and m["positions"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)  # right on 1, -1, 2; wrong on -2 and 0.5
    # prior of each prompt = acceptance rate of the others: 2/3, 2/4, 2/3
    p = [2 / 3, 2 / 3, 1 / 2, 2 / 3, 2 / 3]
    y = [1, 0, 1, 1, 0]
    want = -sum(math.log(q) if t else math.log(1 - q) for q, t in zip(p, y)) / 5
    assert m["prior_bce"] == pytest.approx(want, rel=1e-6)


def test_several_calibration_seeds_pool_new_rows_only(train):
    from types import SimpleNamespace

    class Chat:  # what build_prompts uses of a tokenizer: the prompt ids of a chat, here its bytes
        def apply_chat_template(self, messages):
            return list("".join(m["content"] for m in messages).encode())

        def encode(self, text):
            return list(text.encode())

    lm = SimpleNamespace(tokenizer=Chat())
    one, bench = train.calibration_prompts(lm, 8, 1, 0)
    pooled, _ = train.calibration_prompts(lm, 16, [1, 2], 0)
    assert {p["name"] for p in one} <= {p["name"] for p in pooled}  # seed 1's come first in each category
    assert len(pooled) == 16
    rows = [r for p in pooled if p["category"] != "math" for r in train.source_keys(p["name"])]
    assert len(rows) == len(set(rows))  # no corpus row twice across seeds
    train.check_disjoint(pooled, bench)
    with pytest.raises(ValueError, match="--prompts must be <="):
        train.calibration_prompts(lm, 10_000, [1, 2], 0)
