"""The paper's models and SNIP masks against a re-implementation of the authors' TF1 code
(namhoonlee/snip-public: ``snip/network.py``'s forward passes, ``snip/model.py``'s scoring
graph), written here from the paper and that code's logic with ``tf.compat.v1`` and raw TF ops,
given identical weights and an identical batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from snip_tf import models

tf1 = tf.compat.v1


def _params(model):
    """The model's conv/dense kernels and biases as the authors name them: w1, b1, w2, ... in
    layer order (their ``construct_weights``)."""
    layers = [layer for layer in model._flatten_layers(include_self=False)
              if hasattr(layer, "kernel") and layer.__class__.__name__ in ("Dense", "Conv2D")]
    out = {}
    for i, layer in enumerate(layers, start=1):
        out[f"w{i}"] = layer.kernel
        out[f"b{i}"] = layer.bias
    return out


def _batch_norms(model):
    """The model's BatchNormalization layers in order: the authors' ``batch_normalization``
    calls, one after each hidden conv/dense layer."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if layer.__class__.__name__ == "BatchNormalization"]


def _bn(x, w, i):
    # tf.layers.batch_normalization at inference (epsilon 1e-3) with the i-th layer's statistics
    return (w[f"gamma{i}"] * (x - w[f"mean{i}"]) / tf.sqrt(w[f"variance{i}"] + 1e-3)
            + w[f"beta{i}"])


def _lenet300(w, x):
    x = tf.reshape(x, [-1, 784])
    x = tf.nn.relu(tf.matmul(x, w["w1"]) + w["b1"])
    x = tf.nn.relu(tf.matmul(x, w["w2"]) + w["b2"])
    return tf.matmul(x, w["w3"]) + w["b3"]


def _lenet5(w, x):
    x = tf.nn.conv2d(x, w["w1"], [1, 1, 1, 1], "VALID") + w["b1"]
    x = tf.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
    x = tf.nn.conv2d(x, w["w2"], [1, 1, 1, 1], "VALID") + w["b2"]
    x = tf.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
    x = tf.reshape(x, [-1, 800])
    x = tf.nn.relu(tf.matmul(x, w["w3"]) + w["b3"])
    return tf.matmul(x, w["w4"]) + w["b4"]


def _alexnet(w, x):
    for i in range(1, 6):  # CIFAR: stride 2 for every conv, SAME padding
        x = tf.nn.relu(_bn(tf.nn.conv2d(x, w[f"w{i}"], [1, 2, 2, 1], "SAME") + w[f"b{i}"], w, i))
    x = tf.reshape(x, [tf.shape(x)[0], -1])
    for i in (6, 7):
        x = tf.nn.relu(_bn(tf.matmul(x, w[f"w{i}"]) + w[f"b{i}"], w, i))
    return tf.matmul(x, w["w8"]) + w["b8"]


def _vgg(version):
    # conv layers per block, then a max-pool; 1x1 kernels where VGG-C has them
    blocks = [[1, 2], [3, 4], [5, 6, 7], [8, 9, 10], [11, 12, 13]]

    def forward(w, x):
        for block in blocks:
            for i in block:
                x = tf.nn.relu(_bn(tf.nn.conv2d(x, w[f"w{i}"], [1, 1, 1, 1], "SAME")
                                   + w[f"b{i}"], w, i))
            x = tf.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        x = tf.nn.relu(_bn(tf.matmul(x, w["w14"]) + w["b14"], w, 14))
        if version == "like":
            return tf.matmul(x, w["w15"]) + w["b15"]
        x = tf.nn.relu(_bn(tf.matmul(x, w["w15"]) + w["b15"], w, 15))
        return tf.matmul(x, w["w16"]) + w["b16"]
    return forward


AUTHORS = {"lenet-300-100": (_lenet300, (28, 28, 1)), "lenet-5-caffe": (_lenet5, (28, 28, 1)),
           "alexnet-s": (_alexnet, (32, 32, 3)), "alexnet-b": (_alexnet, (32, 32, 3)),
           "vgg-c": (_vgg("C"), (32, 32, 3)), "vgg-d": (_vgg("D"), (32, 32, 3)),
           "vgg-like": (_vgg("like"), (32, 32, 3))}
# Their weights' shapes (snip/network.py's construct_weights), for the layers that differ
# between the models: a check that the layer-by-layer mapping is the intended one.
SHAPES = {"lenet-300-100": {"w1": (784, 300), "w2": (300, 100), "w3": (100, 10)},
          "lenet-5-caffe": {"w1": (5, 5, 1, 20), "w2": (5, 5, 20, 50), "w3": (800, 500),
                            "w4": (500, 10)},
          "alexnet-s": {"w1": (11, 11, 3, 96), "w6": (256, 1024), "w8": (1024, 10)},
          "alexnet-b": {"w6": (256, 2048), "w7": (2048, 2048)},
          "vgg-c": {"w7": (1, 1, 256, 256), "w10": (1, 1, 512, 512), "w13": (1, 1, 512, 512),
                    "w16": (512, 10)},
          "vgg-d": {"w7": (3, 3, 256, 256), "w13": (3, 3, 512, 512), "w16": (512, 10)},
          "vgg-like": {"w13": (3, 3, 512, 512), "w15": (512, 10)}}


# the number of weight layers of each of the authors' networks, and of batch normalizations
LAYERS = {"lenet-300-100": 3, "lenet-5-caffe": 4, "alexnet-s": 8, "alexnet-b": 8, "vgg-c": 16,
          "vgg-d": 16, "vgg-like": 15}
BATCH_NORMS = {"lenet-300-100": 0, "lenet-5-caffe": 0, "alexnet-s": 7, "alexnet-b": 7,
               "vgg-c": 15, "vgg-d": 15, "vgg-like": 14}


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_zoo_models_compute_the_authors_networks(name):
    forward, shape = AUTHORS[name]
    model = models.get(name, seed=0)
    params = _params(model)
    assert len(params) == 2 * LAYERS[name]
    for key, expected in SHAPES[name].items():
        assert tuple(params[key].shape) == expected, key
    rng = np.random.default_rng(0)
    for key, variable in params.items():  # non-zero biases, so that their wiring is checked
        if key.startswith("b"):
            variable.assign(rng.normal(0, 0.1, variable.shape).astype("float32"))
    # Random statistics for each BatchNormalization (a negative shift among them), so that its
    # place (before or after the ReLU) and its wiring are checked, not only its presence.
    norms = _batch_norms(model)
    assert len(norms) == BATCH_NORMS[name]
    bn = {}
    for i, layer in enumerate(norms, start=1):
        for field, value in (("gamma", rng.uniform(0.5, 1.5, layer.gamma.shape)),
                             ("beta", rng.normal(-0.2, 0.3, layer.beta.shape)),
                             ("mean", rng.normal(0.1, 0.3, layer.moving_mean.shape)),
                             ("variance", rng.uniform(0.5, 2.0, layer.moving_variance.shape))):
            variable = getattr(layer, "moving_" + field if field in ("mean", "variance") else field)
            variable.assign(value.astype("float32"))
            bn[f"{field}{i}"] = tf.constant(value.astype("float32"))
    x = rng.normal(size=(4, *shape)).astype("float32")
    weights = {**{k: tf.constant(v.numpy()) for k, v in params.items()}, **bn}
    np.testing.assert_allclose(model(x, training=False).numpy(), forward(weights, x).numpy(),
                               rtol=1e-4, atol=1e-4)


def _authors_masks(forward, weights: dict, x, y, sparsity: float, keys) -> dict:
    """The authors' scoring graph (snip/model.py, get_sparse_mask) in a TF1 graph: masks of ones
    on the ranked parameters, the mean softmax cross-entropy of the masked network, |dL/dc|
    normalized over all ranked parameters, the global top-kappa with
    kappa = round(n (1 - sparsity))."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf1.placeholder(tf.float32, [None, *x.shape[1:]])
        labels = tf1.placeholder(tf.int32, [None])
        variables = {k: tf1.Variable(v, trainable=False) for k, v in weights.items()}
        masks = {k: tf1.Variable(tf.ones(v.shape), trainable=False) for k, v in weights.items()
                 if k in keys}
        masked = {k: masks[k] * v if k in masks else v for k, v in variables.items()}
        logits = forward(masked, inputs)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
            labels=tf.one_hot(labels, logits.shape[-1]), logits=logits))
        order = sorted(masks)
        grads = tf1.gradients(loss, [masks[k] for k in order])
        scores = tf.concat([tf.reshape(tf.abs(g), [-1]) for g in grads], 0)
        scores = scores / tf.reduce_sum(scores)
        kappa = int(round(int(scores.shape[0]) * (1.0 - sparsity)))
        _, kept = tf.nn.top_k(scores, k=kappa, sorted=True)
        flat = tf1.sparse_to_dense(kept, tf.shape(scores), tf.ones_like(kept, tf.float32),
                                   validate_indices=False)
        sizes = [int(np.prod(weights[k].shape)) for k in order]
        parts = tf.split(flat, sizes)
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            values = session.run(parts, {inputs: x, labels: y})
    return {k: v.reshape(weights[k].shape).astype(bool) for k, v in zip(order, values)}


@pytest.mark.parametrize("name, sparsity", [("lenet-300-100", 0.95), ("lenet-300-100", 0.98),
                                            ("lenet-5-caffe", 0.98), ("lenet-5-caffe", 0.99)])
@pytest.mark.parametrize("include_bias", [False, True])
def test_snip_masks_equal_the_authors_scoring_graph(name, sparsity, include_bias):
    forward, shape = AUTHORS[name]
    model = models.get(name, seed=1)
    params = _params(model)
    rng = np.random.default_rng(1)
    for key, variable in params.items():  # the scored draw's biases are variance-scaled too
        if key.startswith("b"):
            variable.assign(rng.normal(0, 0.05, variable.shape).astype("float32"))
    weights = {k: v.numpy() for k, v in params.items()}
    x = rng.normal(size=(100, *shape)).astype("float32")
    y = rng.integers(0, 10, 100).astype("int32")
    keys = [k for k in weights if include_bias or k.startswith("w")]
    expected = _authors_masks(forward, weights, x, y, sparsity, keys)
    masks = snip_tf.prune(model, (x, y), sparsity, include_bias=include_bias,
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ours = {}
    for key, variable in params.items():
        mask = snip_tf.masking.mask_of(variable)
        if key in keys:
            assert mask is not None, key
            ours[key] = mask
    assert sorted(ours) == sorted(expected)
    kept = sum(int(m.sum()) for m in expected.values())
    assert kept == round(sum(m.size for m in expected.values()) * (1 - sparsity))
    differing = sum(int((ours[k] != expected[k]).sum()) for k in expected)
    assert differing == 0, f"{differing} of {kept} kept entries differ"
    assert len(masks) == len(keys)
