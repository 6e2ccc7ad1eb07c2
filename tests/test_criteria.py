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
    assert snip_tf.criteria.names() == ["grasp", "iterative_snip", "magnitude", "random", "snip",
                                        "synflow"]


def test_iterative_snip_with_one_round_is_snip():
    x, y = classification_data()
    a, b = mlp(), mlp()
    b.set_weights(a.get_weights())
    one = snip_tf.prune(a, (x, y), 0.9, criterion=snip_tf.criteria.iterative_snip.IterativeSNIP(1))
    ref = snip_tf.prune(b, (x, y), 0.9)
    assert all((p == q).all() for p, q in zip(one.values(), ref.values()))


def test_iterative_criteria_are_monotone_and_exact():
    x, y = classification_data()
    model = mlp()
    masks = snip_tf.prune(model, (x, y), 0.95, criterion="iterative_snip")
    assert sum(int(m.sum()) for m in masks.values()) == snip_tf.selection.num_to_keep(
        0.95, 30 * 16 + 16 * 3)
    assert snip_tf.criteria.base.exponential_schedule(1000, 10, 2) == [100, 10]


def test_synflow_on_a_hand_computed_linear_net():
    # R = sum_j |w2_j| * sum_i |w1_ij| (input ones); one round: score = |w| * dR/d|w|.
    model = tiny()
    w1, w2 = np.abs(model.layers[0].kernel.numpy()), np.abs(model.layers[1].kernel.numpy())
    expected = [w1 * w2[:, 0][None, :], w2[:, 0] * w1.sum(axis=0)]
    crit = snip_tf.criteria.synflow.SynFlow(rounds=1)
    entries = snip_tf.masking.prunable_entries(model)
    scores = crit.scores(model, entries, [], None, keep=6)
    np.testing.assert_allclose(scores[0], expected[0], rtol=1e-5)
    np.testing.assert_allclose(scores[1].ravel(), expected[1], rtol=1e-5)


def test_grasp_on_a_hand_computed_linear_regression():
    # L = mean((Xw - t)^2): g = 2/n X^T(Xw - t), H = 2/n X^T X; kept score w * Hg.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    t = rng.normal(size=(8, 1)).astype("float32")
    w = model.layers[0].kernel.numpy()
    g = 2 / 8 * x.T @ (x @ w - t)
    hg = 2 / 8 * x.T @ x @ g
    crit = snip_tf.criteria.grasp.GraSP(temperature=1.0, balanced=False)
    entries = snip_tf.masking.prunable_entries(model)
    loss_fn = snip_tf.scoring.resolve_loss(model)
    (score,) = crit.scores(model, entries, [(x, t, None)], loss_fn, keep=2)
    np.testing.assert_allclose(score, w * hg, rtol=1e-4)


def test_grasp_balances_classes():
    x, y = classification_data(n=40)
    y = np.array([0] * 30 + [1] * 6 + [2] * 4)
    (batch,) = snip_tf.criteria.grasp.class_balanced([(x, y, None)])
    assert np.bincount(batch[1]).tolist() == [4, 4, 4]


def test_layerwise_scopes_and_erk():
    from snip_tf import selection
    shapes = [(784, 300), (300, 100), (100, 10)]
    for scope in ("uniform", "erk"):
        counts = selection.layer_keep_counts(shapes, 26661, scope)
        assert counts.sum() == 26661 and (counts <= [235200, 30000, 1000]).all()
    uniform = selection.layer_keep_counts(shapes, 26661, "uniform")
    np.testing.assert_allclose(uniform / [235200, 30000, 1000], 26661 / 266200, atol=1e-3)
    density = selection.erk_densities(shapes, 26661)
    # ERK: density proportional to (n_in + n_out) / (n_in * n_out) below the cap of 1
    assert density[2] == 1.0
    assert density[0] / density[1] == pytest.approx((1084 / 235200) / (400 / 30000))
    x, y = classification_data()
    model = mlp()
    masks = snip_tf.prune(model, None, 0.9, criterion="random", scope="erk")
    counts = [int(m.sum()) for m in masks.values()]
    expected = selection.layer_keep_counts([(30, 16), (16, 3)], sum(counts), "erk")
    assert counts == expected.tolist()


def test_collapse_guard_keeps_a_minimum_per_layer_with_the_exact_total():
    from snip_tf import selection
    scores = [np.arange(100, dtype=np.float32).reshape(20, 5) + 1, np.full((3, 3), 1e-3)]
    plain = selection.select(scores, 10)
    assert plain[1].sum() == 0                      # collapse without the guard
    guarded = selection.select(scores, 10, min_per_layer=3)
    assert [int(m.sum()) for m in guarded] == [7, 3]
    assert guarded[0].reshape(-1)[-7:].all()        # the 7 best of the big layer stay
    with pytest.raises(ValueError, match="min_per_layer"):
        selection.select(scores, 4, min_per_layer=3)
    with pytest.raises(ValueError, match="scope"):
        selection.select(scores, 4, scope="nope")


def test_synflow_gives_recurrent_kernels_flow_on_open_length_sequences():
    """An open time axis gets several steps: with one, h0 = 0 makes every recurrent weight score 0."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              keras.layers.Embedding(5, 4), keras.layers.GRU(6),
                              keras.layers.Dense(2)])
    entries = snip_tf.masking.prunable_entries(model)
    recurrent = [i for i, e in enumerate(entries) if "recurrent" in e.variable.path][0]
    for open_dim, has_flow in [(1, False), (16, True)]:
        crit = snip_tf.criteria.synflow.SynFlow(rounds=1, open_dim=open_dim)
        scores = crit.scores(model, entries, [], None, keep=50)
        assert bool(np.any(scores[recurrent] > 0)) == has_flow
