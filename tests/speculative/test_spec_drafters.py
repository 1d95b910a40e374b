import pytest

from workbench.speculative import DRAFTERS, DraftTree, get_drafter
from workbench.speculative.drafters import PromptLookupDrafter


def test_registry():
    assert "prompt_lookup" in DRAFTERS
    drafter = get_drafter("prompt_lookup", max_ngram=2)
    assert isinstance(drafter, PromptLookupDrafter) and drafter.max_ngram == 2
    assert get_drafter(drafter) is drafter
    with pytest.raises(ValueError, match="unknown drafter 'ngram'; known: .*prompt_lookup"):
        get_drafter("ngram")
    with pytest.raises(ValueError, match="options can only be given with a drafter name"):
        get_drafter(drafter, max_ngram=3)


def test_longest_ngram_wins_and_the_most_recent_match_is_used():
    drafter = PromptLookupDrafter(max_ngram=3, num_tokens=3)
    #          0  1  2  3  4  5  6  7  8  9 10
    context = [1, 2, 3, 9, 9, 5, 2, 3, 7, 1, 2, 3]
    # the 3-gram [1, 2, 3] occurred at 0 (followed by 9, 9, 5); [2, 3] more recently at 6 but the 3-gram wins
    assert drafter.continuations(context) == [[9, 9, 5]]
    assert drafter.propose(context, 10).token_paths() == [[9, 9, 5]]
    # no 3-gram match: fall back to the most recent 2-gram match
    assert PromptLookupDrafter(num_tokens=2).continuations([4, 2, 3, 8, 6, 2, 3, 1, 2, 3]) == [[1, 2]]


def test_no_match_gives_an_empty_tree():
    drafter = PromptLookupDrafter(min_ngram=2)
    assert drafter.continuations([1, 2, 3, 4]) == []
    assert len(drafter.propose([1, 2, 3, 4], 5)) == 0
    assert len(PromptLookupDrafter().propose([7], 5)) == 0


def test_match_may_not_end_at_the_last_token():
    # [5, 5, 5]: the 2-gram [5, 5] matches at 0 (followed by 5) but not at 1 (that is the tail itself)
    assert PromptLookupDrafter(max_ngram=2).continuations([5, 5, 5]) == [[5]]


def test_budget_caps_the_draft():
    context = [1, 2, 3, 4, 5, 6, 7, 1, 2]
    assert PromptLookupDrafter().propose(context, 2).token_paths() == [[3, 4]]
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        PromptLookupDrafter().propose(context, 0)


def test_branches_form_a_trie_within_the_budget():
    drafter = PromptLookupDrafter(max_ngram=1, num_tokens=3, branches=3)
    #          0  1  2  3  4  5  6  7  8  9 10 11 12
    context = [1, 4, 5, 6, 1, 4, 7, 8, 1, 9, 9, 9, 1]
    assert drafter.continuations(context) == [[9, 9, 9], [4, 7, 8], [4, 5, 6]]
    tree = drafter.propose(context, 10)
    assert tree.token_paths() == [[9, 9, 9], [4, 7, 8], [4, 5, 6]]
    assert len(tree) == 8  # the two paths starting with 4 share their first node
    small = drafter.propose(context, 5)
    assert len(small) == 5 and small.token_paths() == [[9, 9, 9], [4, 7]]


@pytest.mark.parametrize("kwargs, match", [
    ({"max_ngram": 0}, "max_ngram must be an int >= 1"),
    ({"num_tokens": -1}, "num_tokens"),
    ({"branches": 1.5}, "branches"),
    ({"min_ngram": 3, "max_ngram": 2}, r"min_ngram \(3\) must be <= max_ngram \(2\)"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PromptLookupDrafter(**kwargs)


def test_propose_returns_a_tree():
    assert isinstance(PromptLookupDrafter().propose([1, 2, 1], 4), DraftTree)
