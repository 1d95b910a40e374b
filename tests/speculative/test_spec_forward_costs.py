"""measure_forward_costs: every size measured reps times, medians taken from those runs, bad input refused."""
import statistics

import pytest

from workbench.models import tiny_lm
from workbench.speculative.forward_costs import measure_forward_costs


def test_costs_are_medians_of_every_size_and_leave_the_model_usable():
    lm = tiny_lm("llama", seed=0)
    prompt = list(b"the cat sat on the mat")
    before = lm.generate(prompt, max_new_tokens=6).new_ids
    costs = measure_forward_costs(lm, prompt, max_fed=5, reps=3)
    assert sorted(costs.fed) == [1, 2, 3, 4, 5]
    assert all(len(runs) == 3 for runs in costs.runs.values())
    for n in range(1, 6):
        assert costs.fed[n] == statistics.median(costs.runs[str(n)]) > 0
    assert costs.ar == statistics.median(costs.runs["ar"]) and costs.prefill > 0
    assert costs.relative()[2] == pytest.approx(costs.fed[2] / costs.ar)
    assert set(costs.to_dict()["fed"]) == {"1", "2", "3", "4", "5"}
    assert lm.generate(prompt, max_new_tokens=6).new_ids == before  # attention and weights switched back


@pytest.mark.parametrize("kwargs, match", [({"max_fed": 0}, "max_fed"), ({"reps": 0}, "reps"),
                                           ({"prompt_ids": [1]}, "at least 2 tokens")])
def test_bad_input_is_refused(kwargs, match):
    args = {"prompt_ids": [1, 2, 3], **kwargs}
    with pytest.raises(ValueError, match=match):
        measure_forward_costs(tiny_lm("llama", seed=0), **args)
