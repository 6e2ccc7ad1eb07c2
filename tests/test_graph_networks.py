"""Graph networks as Keras models: the thesis's interface, skip cells, padding and initialization;
and the batches the study's trainers share (moved here with the bank trainer's retirement)."""

import networkx as nx
import numpy as np
import pytest
import tensorflow as tf

from snip_tf.studies import edge_trainer as edge
from snip_tf.studies import graph_networks as gn
from snip_tf.studies import reber_batches as rb

GRAPHS = [nx.Graph([(0, 1), (0, 2), (1, 3), (2, 3), (0, 3), (3, 4)]),
          gn.random_graph("barabasi_albert", 14, 1), gn.random_graph("watts_strogatz", 11, 2)]
TOKENS = np.array([[1, 2, 3, 4, 0, 0], [2, 2, 0, 0, 0, 0], [3, 1, 4, 1, 5, 6]], np.int32)
# Layer 3 of this graph has skip edges from layers 0 and 1 besides the main one from layer 2.
SKIPPY = nx.Graph([(0, 1), (1, 2), (2, 3), (0, 3), (1, 3), (0, 4), (3, 4)])


def _model(arch, variant, seed=0, init="keras", **options):
    """The Keras model of ``arch`` with the study's initial weights."""
    model = gn.build_model(arch, variant, 8, seed, **options)
    weights = gn.initial_weights(arch, variant, 8, seed, init=init,
                                 **{k: v for k, v in options.items() if k != "padding"})
    return gn.assign_weights(model, arch, weights, options.get("skips", "input")), weights


@pytest.mark.parametrize("variant", ["rnn-relu", "gru"])
def test_the_thesis_interface(variant):
    archs = [gn.architecture(g) for g in GRAPHS]
    for arch in archs:
        model, _ = _model(arch, variant, io="thesis")
        # the embedding is as wide as the first layer, and the classifier reads the last layer
        assert model.get_layer("embedding").embeddings.shape == (8, len(arch.layers[0]))
        head = model.get_layer("classifier").kernel.numpy()
        order = [n for layer in arch.layers for n in layer]
        read = np.isin(order, arch.layers[-1])
        assert np.all(head[~read] == 0) and np.all(head[read] != 0)
    # a Barabási–Albert graph has one source: its network reads a 1-wide embedding
    assert len(archs[1].layers[0]) == 1 and len(archs[1].sinks) > len(archs[1].layers[-1])
    with pytest.raises(ValueError, match="io must be one of"):
        gn.initial_weights(archs[0], variant, 8, 0, io="thesis-ish")


def test_the_thesis_skip_cells():
    arch = gn.architecture(SKIPPY)
    assert [len(l) for l in arch.layers] == [1, 1, 1, 1, 1]
    cells = gn.cells(arch, 3, "separate")
    assert [(c.name, c.sources) for c in cells] == [
        ("layer3", (2,)), ("skip0_to3", (0,)), ("skip1_to3", (1,))]
    assert [len(gn.cells(arch, l, "separate")) for l in range(5)] == [1, 1, 1, 3, 2]
    assert [len(gn.cells(arch, l, "input")) for l in range(5)] == [1] * 5
    with pytest.raises(ValueError, match="skips must be one of"):
        gn.cells(arch, 3, "sideways")


@pytest.mark.parametrize("variant", ["rnn-relu", "lstm", "gru"])
def test_the_thesis_network_takes_its_initial_weights(variant):
    """Separate skip cells with PyTorch's initialization: the model holds exactly the drawn
    weights, each skip cell with its own dense recurrent weights."""
    arch = gn.architecture(SKIPPY)
    options = dict(io="thesis", skips="separate", layout="thesis")
    model, weights = _model(arch, variant, init="torch", **options)
    read = gn.network_weights(model, arch, "separate")
    for layer, expected in zip(read["cells"], weights["cells"]):
        assert len(layer) == len(expected)
        for cell, values in zip(layer, expected):
            for key in ("kernel", "kernel_mask", "recurrent_kernel", "bias"):
                np.testing.assert_array_equal(cell[key], values[key])
    skip = model.get_layer("skip0_to3").cell
    assert np.all(skip.recurrent_kernel.numpy() != 0)  # its own, dense recurrent weights
    assert np.abs(skip.recurrent_kernel.numpy()).max() <= 1.0  # uniform(±1/sqrt(1))
    assert np.isfinite(model(TOKENS).numpy()).all()


def test_unmasked_padding_runs_to_the_longest_string_of_the_batch():
    arch = gn.architecture(GRAPHS[0])
    masked, weights = _model(arch, "gru", init="torch-embedding")  # a standard normal embedding
    unmasked, _ = _model(arch, "gru", init="torch-embedding", padding="unmasked")
    a, b = masked(TOKENS).numpy(), unmasked(TOKENS).numpy()
    np.testing.assert_allclose(a[2], b[2], atol=1e-6)  # the longest string has no padding
    assert np.abs(a[:2] - b[:2]).max() > 1e-3  # the others run through the padding symbol
    # and a string's result depends on its batch: the trainers cut a batch to its longest string
    shorter = rb.trim(tf.constant(TOKENS[:2]), multiple=1)
    assert shorter.shape == (2, 4)
    assert np.abs(unmasked(shorter).numpy() - b[:2]).max() > 1e-3
    np.testing.assert_allclose(masked(shorter).numpy(), a[:2], atol=1e-6)
    with pytest.raises(ValueError, match="padding must be one of"):
        gn.build_model(arch, "gru", 8, 0, padding="other")


def test_trailing_padding_does_not_change_the_outputs():
    model, _ = _model(gn.architecture(GRAPHS[1]), "lstm")
    padded = np.pad(TOKENS, [(0, 0), (0, 5)])
    np.testing.assert_allclose(model(padded).numpy(), model(TOKENS).numpy(), atol=1e-6)
    assert rb.trim(tf.constant(padded)).shape == (3, 8)


def test_the_parts_of_pytorchs_initialization_are_pytorchs_and_keras_elsewhere():
    arch = gn.architecture(GRAPHS[1])
    drawn = {init: gn.initial_weights(arch, "gru", 8, 3, io="thesis", init=init)
             for init in gn.INITS}

    def part(init, name):
        weights = drawn[init]
        if name == "embedding":
            return [weights["embedding"]]
        return [cell[k] for layer in weights["cells"] for cell in layer
                for k in ("kernel", "recurrent_kernel", "bias")] + [weights["head"],
                                                                   weights["head_bias"]]

    def same(init, other, name):
        return all(np.array_equal(a, b) for a, b in zip(part(init, name), part(other, name)))

    assert same("torch-embedding", "torch", "embedding")
    assert same("torch-embedding", "keras", "cells")
    assert same("torch-cells", "keras", "embedding")
    assert same("torch-cells", "torch", "cells")
    assert not same("keras", "torch", "embedding")
    assert not same("keras", "torch", "cells")
    assert drawn["torch-embedding"]["embedding"].std() > 0.3  # standard normal, not ±0.05
    # Keras's: zero biases but the LSTM's forget gate
    lstm = gn.initial_weights(arch, "lstm", 8, 3)["cells"][0][0]["bias"]
    w = len(arch.layers[0])
    assert np.all(lstm[w:2 * w] == 1) and np.count_nonzero(lstm) == w
    # a network's weights come from its own seed alone
    again = gn.initial_weights(arch, "gru", 8, 3, io="thesis", init="torch")
    assert same("torch", "torch", "cells") and all(
        np.array_equal(a, b) for a, b in zip(part("torch", "cells"),
                                             [c[k] for l in again["cells"] for c in l
                                              for k in ("kernel", "recurrent_kernel", "bias")]))
    with pytest.raises(ValueError, match="init must be one of"):
        gn.initial_weights(arch, "gru", 8, 3, init="jax")


def test_length_buckets_keep_every_example_once_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=300)
    x = np.where(np.arange(32) < lengths[:, None], rng.integers(1, 8, (300, 32)), 0)
    y = np.arange(300)  # labels as example ids
    epochs = {}
    for width in (0, 4):
        seen, padded = [], 0
        for tokens, ids in rb.batches(x, y, batch_size=16, seed=3, bucket_width=width):
            tokens = tokens.numpy()
            np.testing.assert_array_equal(tokens, x[ids.numpy(), :tokens.shape[1]])
            assert (x[ids.numpy(), tokens.shape[1]:] == 0).all()  # only padding was cut
            if width:
                real = lengths[ids.numpy()]
                assert real.max() - real.min() < width and tokens.shape[1] % width == 0
            seen += ids.numpy().tolist()
            padded += tokens.size - (tokens != 0).sum()
        assert sorted(seen) == list(range(300))
        epochs[width] = (seen, padded)
    assert epochs[4][1] < epochs[0][1] / 3  # far less padding in buckets
    again = [i for _, ids in rb.batches(x, y, 16, seed=3, bucket_width=4) for i in ids.numpy()]
    assert again == epochs[4][0]  # deterministic from the seed


def test_full_batches_fill_partial_batches_with_rows_no_loss_counts():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 29, size=150)
    lengths[:10] = 32  # a bucket of 10 strings (lengths 29-32): too few for a full batch
    x = np.where(np.arange(32) < lengths[:, None], rng.integers(1, 8, (150, 32)), 0)
    y = np.arange(150)  # labels as example ids
    plain = list(rb.batches(x, y, batch_size=16, seed=3, bucket_width=4))
    full = list(rb.batches(x, y, batch_size=16, seed=3, bucket_width=4, full_batches=True))
    full_lengths = {t.shape[1] for t, ids in plain if len(ids) == 16}
    assert len(full) == len(plain)
    filled, kept = 0, set()
    for (tokens, ids), (full_tokens, full_ids) in zip(plain, full):
        n, length = len(ids), tokens.shape[1]
        np.testing.assert_array_equal(full_tokens[:n], tokens)
        np.testing.assert_array_equal(full_ids[:n], ids)
        if length in full_lengths:  # filled up to the shape of the full batches
            assert full_tokens.shape == (16, length)
            assert (full_tokens.numpy()[n:] == 0).all() and (full_ids.numpy()[n:] == -1).all()
            filled += n < 16
        else:  # no full batch of this length to share a compiled shape with: left as it was
            assert full_tokens.shape == tokens.shape
            kept.add(tuple(tokens.shape))
    assert filled >= 3 and (10, 32) in kept
    assert ({tuple(t.shape) for t, _ in full} == {(16, length) for length in full_lengths} | kept)
    assert len({tuple(t.shape) for t, _ in plain}) == len(full_lengths) + filled + len(kept)
    # a filler row changes no network's training step
    arch = gn.architecture(GRAPHS[0])
    nets = [edge.EdgeNetwork.from_weights("gru", gn.initial_weights(arch, "gru", 8, 0))
            for _ in range(2)]
    tokens = np.array([[1, 2, 3], [2, 1, 0], [0, 0, 0]], np.int32)
    labels = np.array([1, 0, rb.NO_EXAMPLE], np.int32)
    with_filler = nets[0].train_epoch(edge.Batches.stack([(tokens, labels)]))
    without = nets[1].train_epoch(edge.Batches.stack([(tokens[:2], labels[:2])]))
    np.testing.assert_allclose(with_filler, without, rtol=1e-6)
    np.testing.assert_allclose(nets[0].theta, nets[1].theta, atol=1e-7)
