import keras
import numpy as np
import pytest

import snip_tf
from conftest import classification_data, mlp


def tiny():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False),
                              keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(np.array([[0.5, -3.0], [0.1, 2.0]], np.float32))
    model.layers[1].kernel.assign(np.array([[1.0], [-0.2]], np.float32))
    model.compile(loss="mse")
    return model


def test_magnitude_keeps_the_largest_initial_weights():
    model = tiny()
    masks = snip_tf.prune(model, None, 0.5, criterion="magnitude")   # data-free
    first, second = masks.values()
    np.testing.assert_array_equal(first, [[False, True], [False, True]])
    np.testing.assert_array_equal(second, [[True], [False]])


def test_snip_on_a_hand_computed_example():
    # y = w2 . (W1 x) (linear), L = (y - t)^2; dL/dc_ij = w_ij * dL/dw_ij.
    model = tiny()
    x, t = np.array([[1.0, 2.0]], np.float32), np.array([[0.0]], np.float32)
    w1, w2 = model.layers[0].kernel.numpy(), model.layers[1].kernel.numpy()
    h = x @ w1
    y = h @ w2
    d_y = 2 * (y - t)
    g1 = w1 * (x.T @ (d_y @ w2.T))
    g2 = w2 * (h.T @ d_y)
    expected = np.abs(np.concatenate([g1.ravel(), g2.ravel()]))
    scores = snip_tf.connection_sensitivity(model, (x, t))
    got = np.concatenate([s.ravel() for s in scores.values()])
    np.testing.assert_allclose(got, expected / expected.sum(), rtol=1e-5)
    masks = snip_tf.prune(model, (x, t), 0.5)
    kept = np.concatenate([m.ravel() for m in masks.values()])
    assert set(np.flatnonzero(kept)) == set(np.argsort(-expected, kind="stable")[:3])


def test_random_is_seeded_and_exact():
    x, y = classification_data()
    a, b, c = mlp(), mlp(), mlp()
    ma = snip_tf.prune(a, None, 0.9, criterion="random", seed=3)
    mb = snip_tf.prune(b, None, 0.9, criterion="random", seed=3)
    mc = snip_tf.prune(c, None, 0.9, criterion="random", seed=4)
    assert all((p == q).all() for p, q in zip(ma.values(), mb.values()))
    assert not all((p == q).all() for p, q in zip(ma.values(), mc.values()))
    assert sum(int(m.sum()) for m in ma.values()) == snip_tf.selection.num_to_keep(0.9, 30 * 16 + 48)


def test_unknown_criterion_and_missing_data():
    with pytest.raises(ValueError, match="Unknown pruning criterion"):
        snip_tf.prune(mlp(), None, 0.5, criterion="oracle")
    with pytest.raises(ValueError, match="data must be"):
        snip_tf.prune(mlp(), None, 0.5)                 # SNIP needs data
    assert snip_tf.criteria.names() == ["magnitude", "random", "snip"]
