import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from snip_tf import selection


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), float("inf"), "0.9", None, True])
def test_invalid_sparsity_is_a_value_error_that_says_what_is_allowed(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        selection.validate_sparsity(bad)


@pytest.mark.parametrize("sparsity,total,keep", [
    (0.0, 10, 10), (0.9, 100, 10), (0.99, 1000, 10), (0.95, 30, 2), (0.5, 5, 3), (0.25, 2, 2)])
def test_num_to_keep_is_rounded_one_minus_sparsity_times_m(sparsity, total, keep):
    assert selection.num_to_keep(sparsity, total) == keep


def test_keeping_nothing_is_an_error_not_an_empty_network():
    with pytest.raises(ValueError, match="keeps .* = 0"):
        selection.num_to_keep(0.99, 10)


def test_ties_are_broken_by_position_and_count_is_exact():
    scores = [np.array([1.0, 2.0, 2.0]), np.array([[2.0, 0.5], [2.0, 3.0]])]
    masks = selection.top_k_masks(scores, 3)
    # 3.0 first, then the two earliest 2.0s (positions 1 and 2 of the first array).
    np.testing.assert_array_equal(masks[0], [False, True, True])
    np.testing.assert_array_equal(masks[1], [[False, False], [False, True]])


def test_all_equal_scores_keep_the_first_k():
    masks = selection.top_k_masks([np.zeros(5), np.zeros(5)], 7)
    assert masks[0].all() and masks[1].tolist() == [True, True, False, False, False]


def test_single_huge_value():
    scores = [np.full(100, 1e-30, np.float32), np.array([3e38], np.float32)]
    masks = selection.top_k_masks(scores, 1)
    assert masks[1][0] and not masks[0].any()


score_arrays = st.lists(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
               elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, 7.0]) | st.floats(
                   0, 10, width=32, allow_nan=False)),
    min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(score_arrays, st.floats(0.0, 0.999))
def test_selection_property(scores, sparsity):
    total = sum(s.size for s in scores)
    keep = int(math.floor((1 - sparsity) * total + 0.5))
    if keep < 1:
        with pytest.raises(ValueError):
            selection.num_to_keep(sparsity, total)
        return
    assert selection.num_to_keep(sparsity, total) == keep
    masks = selection.top_k_masks(scores, keep)
    assert [m.shape for m in masks] == [s.shape for s in scores]
    flat = np.concatenate([s.ravel() for s in scores])
    kept = np.concatenate([m.ravel() for m in masks])
    assert kept.sum() == keep                                  # exact count
    if keep < total:
        assert flat[kept].min() >= flat[~kept].max()           # a top-k set
        threshold = flat[kept].min()
        tied = np.flatnonzero(flat == threshold)
        kept_tied = kept[tied]
        # ties: the kept ones are the earliest positions
        assert not (np.diff(kept_tied.astype(int)) > 0).any()
    again = selection.top_k_masks([s.copy() for s in scores], keep)
    assert all((a == b).all() for a, b in zip(masks, again))   # deterministic
