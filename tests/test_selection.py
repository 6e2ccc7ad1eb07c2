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


def test_gate_scope_shares_each_gated_weights_count_among_its_gates():
    rng = np.random.default_rng(0)
    # a gated weight (3 gate blocks of 4 columns) whose first gate scores far higher, and an
    # ungated one
    gated = rng.random((5, 12)).astype(np.float32)
    gated[:, :4] += 10.0
    plain = rng.random((6, 3)).astype(np.float32) + 5.0
    keep = 24
    global_masks = selection.select([gated, plain], keep)
    masks = selection.select([gated, plain], keep, "gate", gates=[3, 1])
    # the same count per weight as the global ranking: 20 in the gated one, all in its first gate
    assert [int(m.sum()) for m in masks] == [int(m.sum()) for m in global_masks] == [20, 4]
    assert global_masks[0][:, :4].all() and global_masks[0][:, 4:].sum() == 0
    per_gate = [int(b.sum()) for b in np.split(masks[0], 3, axis=1)]
    assert per_gate == [7, 7, 6]
    np.testing.assert_array_equal(masks[1], global_masks[1])
    for block, kept in zip(np.split(gated, 3, axis=1), np.split(masks[0], 3, axis=1)):
        assert block[kept].min() >= block[~kept].max()  # each gate keeps its own best
    with pytest.raises(ValueError, match="needs the number of gate blocks"):
        selection.select([gated, plain], keep, "gate")
    with pytest.raises(ValueError, match="does not split into 5 gate blocks"):
        selection.select([gated, plain], keep, "gate", gates=[5, 1])


def test_gate_scope_on_an_lstm_and_a_gru():
    import keras

    import snip_tf
    from snip_tf import masking

    for cell, gates in ((keras.layers.LSTM, 4), (keras.layers.GRU, 3)):
        model = keras.Sequential([keras.Input((7, 5)), cell(8, seed=0), keras.layers.Dense(3)])
        x = np.random.default_rng(0).normal(size=(16, 7, 5)).astype("float32")
        y = np.arange(16) % 3
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        masks = snip_tf.prune(model, (x, y), 0.9, loss=loss, scope="gate")
        total = sum(int(m.size) for m in masks.values())
        assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * total)
        rnn_cell = model.layers[0].cell
        assert len(masking.gate_names(rnn_cell)) == gates
        for variable in (rnn_cell.kernel, rnn_cell.recurrent_kernel):
            counts = [int(b.sum()) for b in np.split(masks[variable.path], gates, axis=-1)]
            assert max(counts) - min(counts) <= 1, (variable.path, counts)
