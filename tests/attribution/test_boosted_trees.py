"""Boosted regression trees on keep-masks: hand-worked fits, and their Shapley values against enumeration."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.attribution.methods.boosted_trees import (
    BoostedTrees,
    Leaf,
    fit_boosted_trees,
    grow,
)

from .exact import all_coalitions, exact_shapley


@pytest.mark.parametrize("present, absent", [((0,), ()), ((), (3,)), ((1, 4), (2,)), ((0, 2), (1, 3, 5)), ((), ())])
def test_leaf_shapley_matches_enumeration(present, absent):
    leaf = Leaf(1.7, present, absent)
    exact = exact_shapley(lambda m: (1.7 * leaf.reached(m))[:, None], 6)[0]
    np.testing.assert_allclose(leaf.shapley(6), exact, atol=1e-12)


def test_ensemble_shapley_matches_enumeration():
    rng = np.random.default_rng(0)
    f = 7
    masks = rng.random((200, f)) < 0.5
    y = masks @ rng.normal(size=f) + 2.0 * masks[:, 0] * masks[:, 1] * ~masks[:, 4] + 0.1 * rng.normal(size=200)
    model = fit_boosted_trees(masks, y, rng.random(200) + 0.5, trees=20, depth=3)
    np.testing.assert_allclose(model.shapley(f), exact_shapley(lambda m: model.predict(m)[:, None], f)[0],
                               atol=1e-12)


def test_one_tree_by_hand():
    # y = 3 when players 0 and 1 are both kept, else 0; one depth-2 tree at learning rate 1 fits it exactly.
    # Root (residuals 2.25 on 2 rows, -0.75 on 6): splitting on player 0 or on 1 gains 3^2 / 4 + 3^2 / 4 = 4.5,
    # on player 2 nothing, so the tie goes to player 0; then player 1 splits the kept-0 half.
    masks = all_coalitions(3)
    y = 3.0 * (masks[:, 0] & masks[:, 1])
    model = fit_boosted_trees(masks, y, trees=1, depth=2, learning_rate=1.0)
    assert model.base == pytest.approx(0.75)
    leaves = {(leaf.present, leaf.absent): leaf.value for leaf in model.trees[0]}
    assert set(leaves) == {((), (0,)), ((0,), (1,)), ((0, 1), ())}  # the kept-0-dropped branch has no gain left
    assert leaves[((), (0,))] == pytest.approx(-0.75)
    assert leaves[((0,), (1,))] == pytest.approx(-0.75)
    assert leaves[((0, 1), ())] == pytest.approx(2.25)
    np.testing.assert_allclose(model.predict(masks), y, atol=1e-12)
    # its Shapley values: a unanimity game on {0, 1} worth 3 gives 1.5 each
    np.testing.assert_allclose(model.shapley(3), [1.5, 1.5, 0.0], atol=1e-12)


def test_weights_and_shrinkage():
    masks = np.array([[True], [False], [False]])
    y = np.array([4.0, 1.0, 3.0])
    w = np.array([1.0, 3.0, 1.0])
    leaves = grow(masks, y, w, np.arange(3), depth=1)
    assert {leaf.present: leaf.value for leaf in leaves} == {(0,): 4.0, (): pytest.approx(1.5)}  # weighted means
    model = fit_boosted_trees(masks, y, w, trees=2, depth=1, learning_rate=0.5)
    # base = 10 / 5 = 2; residuals: kept 2, dropped -0.5 (weighted mean); each tree closes half of what is left
    np.testing.assert_allclose(model.predict(np.array([[True], [False]])), [2 + 2 * 0.75, 2 - 0.5 * 0.75])


def test_constant_target_grows_no_split():
    masks = all_coalitions(4)
    model = fit_boosted_trees(masks, np.full(16, 2.5), trees=3)
    assert all(len(tree) == 1 and tree[0].present == tree[0].absent == () for tree in model.trees)
    np.testing.assert_allclose(model.predict(masks), 2.5)
    np.testing.assert_allclose(model.shapley(4), 0.0)


def test_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.ensemble")
    rng = np.random.default_rng(3)
    masks = rng.random((300, 10)) < 0.5
    y = masks @ rng.normal(size=10) + 2.0 * masks[:, 0] * masks[:, 1] * masks[:, 2] + 0.1 * rng.normal(size=300)
    w = rng.random(300) + 0.5
    ours = fit_boosted_trees(masks, y, w)
    theirs = sklearn.GradientBoostingRegressor(n_estimators=100, max_depth=4, learning_rate=0.1, random_state=0)
    theirs.fit(masks.astype(float), y, sample_weight=w)
    grid = all_coalitions(10)
    np.testing.assert_allclose(ours.predict(grid), theirs.predict(grid.astype(float)), atol=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="must agree"):
        fit_boosted_trees(np.zeros((3, 2), dtype=bool), np.zeros(2))
    with pytest.raises(ValueError, match="M > 0"):
        fit_boosted_trees(np.zeros((0, 2), dtype=bool), np.zeros(0))
    assert isinstance(fit_boosted_trees(np.zeros((2, 2), dtype=bool), np.zeros(2), trees=0), BoostedTrees)
