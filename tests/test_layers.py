"""Every supported layer type: found as prunable, pruned to the exact count, kept at zero by fit,
and saved/loaded with its mask."""

import keras
import numpy as np
import pytest

import snip_tf

L = keras.layers


def seq(input_shape, *layers, dtype="float32"):
    inputs = keras.Input(input_shape, dtype=dtype)
    h = inputs
    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, h)


def mha_model():
    inputs = keras.Input((5, 6))
    h = L.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    return keras.Model(inputs, L.Dense(3)(L.Flatten()(h)))


CASES = {
    "dense": (lambda: seq((6,), L.Dense(8), L.Dense(3)), (6,), ["kernel", "kernel"]),
    "einsum_dense": (lambda: seq((6,), L.EinsumDense("ab,bc->ac", 8), L.Dense(3)), (6,),
                     ["kernel", "kernel"]),
    "conv1d": (lambda: seq((8, 2), L.Conv1D(3, 3), L.Flatten(), L.Dense(3)), (8, 2), None),
    "conv2d": (lambda: seq((6, 6, 2), L.Conv2D(3, 3), L.Flatten(), L.Dense(3)), (6, 6, 2), None),
    "conv3d": (lambda: seq((4, 4, 4, 1), L.Conv3D(2, 2), L.Flatten(), L.Dense(3)), (4, 4, 4, 1),
               None),
    "conv2d_transpose": (lambda: seq((4, 4, 2), L.Conv2DTranspose(2, 3), L.Flatten(), L.Dense(3)),
                         (4, 4, 2), None),
    "conv1d_transpose": (lambda: seq((5, 2), L.Conv1DTranspose(2, 3), L.Flatten(), L.Dense(3)),
                         (5, 2), None),
    "depthwise_conv2d": (lambda: seq((6, 6, 2), L.DepthwiseConv2D(3), L.Flatten(), L.Dense(3)),
                         (6, 6, 2), None),
    "separable_conv2d": (lambda: seq((6, 6, 2), L.SeparableConv2D(4, 3), L.Flatten(), L.Dense(3)),
                         (6, 6, 2), ["depthwise_kernel", "pointwise_kernel", "kernel"]),
    "separable_conv1d": (lambda: seq((8, 2), L.SeparableConv1D(4, 3), L.Flatten(), L.Dense(3)),
                         (8, 2), ["depthwise_kernel", "pointwise_kernel", "kernel"]),
    "embedding": (lambda: seq((5,), L.Embedding(20, 4), L.Flatten(), L.Dense(3), dtype="int32"),
                  "tokens", ["embeddings", "kernel"]),
    "simple_rnn": (lambda: seq((7, 3), L.SimpleRNN(6), L.Dense(3)), (7, 3),
                   ["kernel", "recurrent_kernel", "kernel"]),
    "lstm": (lambda: seq((7, 3), L.LSTM(6), L.Dense(3)), (7, 3),
             ["kernel", "recurrent_kernel", "kernel"]),
    "gru": (lambda: seq((7, 3), L.GRU(6), L.Dense(3)), (7, 3),
            ["kernel", "recurrent_kernel", "kernel"]),
    "bidirectional_lstm": (lambda: seq((7, 3), L.Bidirectional(L.LSTM(4)), L.Dense(3)), (7, 3),
                           ["kernel", "recurrent_kernel"] * 2 + ["kernel"]),
    "rnn_of_cells": (lambda: seq((7, 3), L.RNN([L.LSTMCell(4), L.GRUCell(4)]), L.Dense(3)),
                     (7, 3), ["kernel", "recurrent_kernel"] * 2 + ["kernel"]),
    "multi_head_attention": (mha_model, (5, 6), ["kernel"] * 5),
}


def make_data(spec, n=24):
    rng = np.random.default_rng(1)
    if spec == "tokens":
        x = rng.integers(0, 20, (n, 5)).astype("int32")
    else:
        x = rng.normal(size=(n,) + spec).astype("float32")
    return x, rng.integers(0, 3, n)


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_is_pruned_exactly_and_stays_pruned(name, tmp_path):
    build, spec, names = CASES[name]
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = make_data(spec)
    variables = snip_tf.prunable_weights(model)
    if names is not None:
        assert [v.name for v in variables] == names
    total = sum(int(np.prod(v.shape)) for v in variables)
    masks = snip_tf.snip(model, (x, y), 0.7)
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == int(np.floor(0.3 * total + 0.5))
    assert snip_tf.sparsity_report(model).kept <= kept  # zeros: pruned ones + any exact-zero kept

    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for v, m in zip(variables, masks.values()):
        assert (v.numpy()[~m] == 0.0).all(), v.path
        assert (v.numpy()[m] != 0.0).any(), v.path

    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for v, m in zip(snip_tf.prunable_weights(loaded), masks.values()):
        assert (v.numpy()[~m] == 0.0).all(), v.path
