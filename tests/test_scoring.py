import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from conftest import assert_weights_equal, classification_data, mlp, weights_of


def weight_gradient_scores(model, x, y, loss_fn):
    """|w * dL/dw| / sum: what dL/dc at c = 1 must equal."""
    variables = snip_tf.prunable_weights(model)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=False))
    grads = tape.gradient(loss, variables)
    raw = [np.abs(v.numpy() * g.numpy()) for v, g in zip(variables, grads)]
    total = sum(r.sum() for r in raw)
    return [r / total for r in raw]


def test_mask_gradient_equals_weight_times_weight_gradient():
    x, y = classification_data()
    model = mlp()
    scores = snip_tf.connection_sensitivity(model, (x, y))
    expected = weight_gradient_scores(
        model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert list(scores) == [v.path for v in snip_tf.prunable_weights(model)]
    for got, want in zip(scores.values(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-8)
    assert abs(sum(float(s.sum()) for s in scores.values()) - 1.0) < 1e-5


def test_gradients_of_several_batches_are_summed_before_the_absolute_value():
    x, y = classification_data(n=64)
    model = mlp()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    scores = snip_tf.connection_sensitivity(model, ds, num_batches=2)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = snip_tf.prunable_weights(model)
    summed = [0.0] * len(variables)
    for xb, yb in [(x[:16], y[:16]), (x[16:32], y[16:32])]:
        with tf.GradientTape() as tape:
            l = loss(yb, model(xb))
        summed = [s + g.numpy() * v.numpy() for s, g, v in
                  zip(summed, tape.gradient(l, variables), variables)]
    total = sum(np.abs(s).sum() for s in summed)
    for got, want in zip(scores.values(), summed):
        np.testing.assert_allclose(got, np.abs(want) / total, rtol=1e-4, atol=1e-8)


def test_explicit_loss_and_bias_option():
    x, y = classification_data()
    model = mlp(compile=False)
    scores = snip_tf.connection_sensitivity(
        model, (x, y), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        include_bias=True)
    assert [p.split("/")[-1] for p in scores] == ["kernel", "bias", "kernel", "bias"]


def test_batchnorm_runs_in_inference_mode_unless_asked():
    x, y = classification_data()
    model = keras.Sequential([keras.Input((6, 5)), keras.layers.Flatten(), keras.layers.Dense(8),
                              keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = weights_of(model)
    inference = snip_tf.connection_sensitivity(model, (x, y))
    training = snip_tf.connection_sensitivity(model, (x, y), training=True)
    expected = weight_gradient_scores(
        model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    np.testing.assert_allclose(list(inference.values())[0], expected[0], rtol=1e-4, atol=1e-8)
    assert not np.allclose(list(inference.values())[0], list(training.values())[0])
    assert_weights_equal(model, before)   # moving statistics untouched, even in training mode


def test_missing_loss_is_an_error():
    x, y = classification_data()
    model = mlp(compile=False)
    with pytest.raises(ValueError, match="not compiled with a loss"):
        snip_tf.connection_sensitivity(model, (x, y))


def test_data_that_does_not_fit_the_model_changes_nothing():
    model = mlp()
    before = weights_of(model)
    with pytest.raises(ValueError, match="does not fit the model"):
        snip_tf.snip(model, (np.ones((4, 7, 5), "float32"), np.zeros(4)), 0.5)
    assert_weights_equal(model, before)
    assert not snip_tf.is_pruned(model)


@pytest.mark.parametrize("poison", ["nan_input", "nan_loss"])
def test_non_finite_scores_change_nothing(poison):
    x, y = classification_data()
    model = mlp()
    loss = None
    if poison == "nan_input":
        x = x.copy()
        x[3, 2, 1] = np.nan
    else:
        def loss(y_true, y_pred):
            return tf.reduce_mean(y_pred) * np.float32("nan")
    before = weights_of(model)
    with pytest.raises(ValueError, match="not finite") as raised:
        snip_tf.snip(model, (x, y), 0.5, loss=loss)
    assert not isinstance(raised.value, snip_tf.ScoresError)  # the batch's problem
    assert_weights_equal(model, before)


def test_scores_that_cannot_rank_the_model_are_a_scores_error():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x, y = np.ones((8, 4), "float32"), np.zeros((8,), "int32")
    before = weights_of(model)
    with pytest.raises(snip_tf.ScoresError, match="Every snip score is zero"):
        snip_tf.snip(model, (x, y), 0.5, loss=lambda y_true, y_pred: 0.0 * tf.reduce_sum(y_pred))
    assert_weights_equal(model, before)


def test_model_without_prunable_weights():
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="prunable"):
        snip_tf.snip(model, (np.ones((2, 4)), np.ones((2, 4))), 0.5)


def test_bad_data_types():
    model = mlp()
    for bad in (None, "data", np.ones((2, 6, 5))):
        with pytest.raises(ValueError, match="data must be"):
            snip_tf.snip(model, bad, 0.5)
    x, y = classification_data()
    with pytest.raises(ValueError, match="num_batches"):
        snip_tf.snip(model, (x, y), 0.5, num_batches=2)
    with pytest.raises(ValueError, match="fewer than num_batches"):
        snip_tf.snip(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(32), 0.5,
                     num_batches=3)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    x, y = classification_data()
    model = mlp()
    scores = snip_tf.connection_sensitivity(model, (x, y))
    assert all(s.dtype == np.float32 for s in scores.values())
    assert abs(sum(float(s.sum()) for s in scores.values()) - 1.0) < 1e-4
    keras.mixed_precision.set_global_policy("float32")
    reference = mlp()
    reference.set_weights(model.get_weights())
    want = snip_tf.connection_sensitivity(reference, (x, y))
    for got, exp in zip(scores.values(), want.values()):
        # the half-precision forward pass ranks like the float32 one
        assert np.corrcoef(got.ravel(), exp.ravel())[0, 1] > 0.95
    keras.mixed_precision.set_global_policy(policy)
    masks = snip_tf.snip(model, (x, y), 0.9)
    model.fit(x, y, epochs=1, verbose=0)
    for v, m in zip(snip_tf.prunable_weights(model), masks.values()):
        assert (v.numpy()[~m] == 0).all()
