"""self_repeat_fraction: the share of tokens that end an n-gram seen earlier in the same sequence."""
import pytest

from workbench.speculative import self_repeat_fraction


def brute_force(ids, n):
    return sum(1 for end in range(n, len(ids) + 1)
               if any(ids[s:s + n] == ids[end - n:end] for s in range(end - n))) / len(ids) if ids else 0.0


def test_known_answers():
    assert self_repeat_fraction([1, 2, 3, 4, 5, 6], n=2) == 0.0
    # "1 2 1 2 1 2": the bigrams ending at positions 3, 4, 5 ((1,2), (2,1), (1,2)) were seen before at 1, 2, 1.
    assert self_repeat_fraction([1, 2, 1, 2, 1, 2], n=2) == pytest.approx(3 / 6)
    assert self_repeat_fraction([7] * 10, n=3) == pytest.approx(7 / 10)  # every trigram after the first
    assert self_repeat_fraction([1, 2, 3], n=10) == 0.0
    assert self_repeat_fraction([], n=4) == 0.0


def test_matches_brute_force():
    import random

    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(3) for _ in range(rng.randrange(0, 30))]
        n = rng.randrange(1, 5)
        assert self_repeat_fraction(ids, n) == pytest.approx(brute_force(ids, n))


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        self_repeat_fraction([1, 2, 3], n)
