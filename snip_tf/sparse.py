"""Real sparse inference for pruned Dense layers.

``sparsify(model)`` returns a copy of a Sequential/Functional model in which each pruned ``Dense``
layer computes with its kernel stored as a sparse tensor (``tf.sparse.sparse_dense_matmul``) — but
only where that is measured to be faster for the layer's shape and non-zero count at the batch size
you serve. Outputs equal the dense path's up to float summation order.

>>> fast = snip_tf.sparse.sparsify(pruned_model, batch_size=1)      # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from snip_tf import wrappers


@keras.saving.register_keras_serializable(package="snip_tf")
class SparseDense(keras.layers.Layer):
    """``activation(x @ W + b)`` with ``W`` stored as its non-zeros (for inference).

    Args:
        units: output size.
        input_dim: input size.
        nnz: number of non-zeros of the kernel.
        activation, use_bias: as ``keras.layers.Dense``.
    The non-zero values and their (input, output) indices are the layer's weights, so
    ``set_weights`` / saving work as for any layer.
    """

    def __init__(self, units, input_dim, nnz, activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.input_dim, self.nnz = int(units), int(input_dim), int(nnz)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape=None):
        self.values = self.add_weight(name="values", shape=(self.nnz,), initializer="zeros",
                                      trainable=False)
        # (output, input) pairs: the transposed kernel, so W^T x^T is one sparse-dense matmul.
        self.indices = self.add_weight(name="indices", shape=(self.nnz, 2), dtype="int64",
                                       initializer="zeros", trainable=False)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros",
                                        trainable=False)
        self.built = True

    def call(self, inputs):
        kernel_t = tf.SparseTensor(tf.convert_to_tensor(self.indices),
                                   tf.convert_to_tensor(self.values),
                                   (self.units, self.input_dim))
        x = tf.reshape(inputs, (-1, self.input_dim))
        y = tf.transpose(tf.sparse.sparse_dense_matmul(kernel_t, x, adjoint_b=True))
        if inputs.shape.rank != 2:   # e.g. (batch, time, features): restore the leading axes
            y = tf.reshape(y, tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0))
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    @classmethod
    def from_dense(cls, layer: keras.layers.Dense) -> "SparseDense":
        kernel = layer.kernel.numpy()
        rows, cols = np.nonzero(kernel.T)        # sorted by output, then input: canonical order
        sparse = cls(layer.units, kernel.shape[0], len(rows), layer.activation, layer.use_bias,
                     name=layer.name)
        sparse.build()
        sparse.values.assign(kernel.T[rows, cols])
        sparse.indices.assign(np.stack([rows, cols], axis=1).astype(np.int64))
        if layer.use_bias:
            sparse.bias.assign(layer.bias.numpy())
        return sparse

    def get_config(self):
        return {**super().get_config(), "units": self.units, "input_dim": self.input_dim,
                "nnz": self.nnz, "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias}


def median_call_time(fn, x, repeats=30):
    """Median wall time of ``fn(x)`` over ``repeats`` calls, after one warm-up call."""
    fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sparse_is_faster(layer: keras.layers.Dense, batch_size: int) -> bool:
    """Time the layer's dense and sparse matmul at ``batch_size`` (interleaved medians)."""
    sparse = SparseDense.from_dense(layer)
    x = tf.random.normal((batch_size, layer.kernel.shape[0]))
    dense_fn = tf.function(lambda v: layer(v))
    sparse_fn = tf.function(lambda v: sparse(v))
    dense_t, sparse_t = [], []
    for _ in range(3):
        dense_t.append(median_call_time(dense_fn, x))
        sparse_t.append(median_call_time(sparse_fn, x))
    return statistics.median(sparse_t) < statistics.median(dense_t)


def sparsify(model, batch_size: int = 1, min_sparsity: float = 0.5, force=None) -> keras.Model:
    """A copy of ``model`` (stripped of pruning hooks) whose pruned Dense layers use
    :class:`SparseDense` where that is faster at ``batch_size``.

    Args:
        min_sparsity: layers sparser than this are candidates.
        force: True/False to convert every candidate / none, skipping the timing.
    Returns:
        The new model; ``model.sparse_layers`` lists the converted layer names.
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ValueError(f"sparsify: batch_size must be a positive integer; got {batch_size!r}.")
    if not 0.0 <= float(min_sparsity) <= 1.0:
        raise ValueError(f"sparsify: min_sparsity must be in [0, 1]; got {min_sparsity!r}.")
    if not wrappers._is_graph_model(model):
        raise ValueError(
            f"sparsify rebuilds a model layer by layer, which Keras can do for Sequential and "
            f"Functional models only; got the subclassed model {type(model).__name__!r}. The model "
            "was not changed.")
    plain = wrappers.strip(model)
    chosen = []

    def clone_function(layer):
        if isinstance(layer, keras.layers.Dense) and not isinstance(layer, SparseDense):
            kernel = layer.kernel.numpy()
            if 1.0 - np.count_nonzero(kernel) / kernel.size >= min_sparsity and (
                    force if force is not None else sparse_is_faster(layer, batch_size)):
                chosen.append(layer.name)
                return SparseDense.from_dense(layer)
        clone = layer.__class__.from_config(layer.get_config())
        return clone

    new = keras.models.clone_model(plain, clone_function=clone_function)
    for old_layer, new_layer in zip(plain.layers, new.layers):
        if not isinstance(new_layer, SparseDense):
            new_layer.set_weights(old_layer.get_weights())
    new.sparse_layers = chosen
    return new
