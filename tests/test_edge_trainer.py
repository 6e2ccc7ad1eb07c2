"""The compiled edge trainer against the TensorFlow bank (itself tested against Keras)."""

import keras
import networkx as nx
import numpy as np
import pytest
import tensorflow as tf

from snip_tf.studies import edge_trainer as edge
from snip_tf.studies import graph_architectures as ga
from snip_tf.studies import network_bank as nb
from snip_tf.studies import graph_networks as gn
from snip_tf.studies import reber_common
from snip_tf.studies.graph_networks import architecture, random_graph

VARIANTS = ("rnn-tanh", "rnn-relu", "lstm", "gru")
# a Barabási–Albert graph has skip edges; a Watts–Strogatz one several sources and sinks
GRAPHS = [nx.barabasi_albert_graph(14, 2, seed=3), nx.connected_watts_strogatz_graph(12, 3, 1.0,
                                                                                    seed=4)]


def _strings(rng, n, length, vocab=8):
    """Right-padded random strings of 1 to ``length`` symbols, random labels."""
    x = np.zeros((n, length), np.int32)
    for i in range(n):
        size = rng.integers(1, length + 1)
        x[i, :size] = rng.integers(1, vocab, size)
    return x, rng.integers(0, 2, n).astype(np.int32)


def _bank(variant, **options):
    return nb.NetworkBank([architecture(g) for g in GRAPHS], variant, vocab_size=8, seeds=[0, 1],
                          networks_per_slot=2, **options)


def _max_difference(a: dict, b: dict) -> float:
    parts = [(a[k], b[k]) for k in ("embedding", "head", "head_mask", "head_bias")]
    parts += [(x[k], y[k]) for (x,), (y,) in zip(a["cells"], b["cells"])
              for k in ("kernel", "kernel_mask", "recurrent_kernel", "bias")]
    assert all(np.shape(x) == np.shape(y) for x, y in parts)
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in parts)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("options", [{}, {"layout": "thesis", "io": "thesis", "init": "torch"}])
def test_logits_and_weights_are_the_banks(variant, options):
    bank = _bank(variant, **options)
    tokens, _ = _strings(np.random.default_rng(0), 6, 9)
    expected = bank(tokens).numpy()
    for k in range(bank.size):
        net = edge.EdgeNetwork.from_bank(bank, k)
        assert _max_difference(net.weights(), bank.network_weights(k)) == 0
        np.testing.assert_allclose(net.logits(tokens), expected[:, k], atol=2e-6)
        # only the graph's connections are computed: the unmasked kernel entries
        masked = sum(int(cell["kernel_mask"].sum()) for (cell,) in net.weights()["cells"])
        assert len(net.in_src) == masked < sum(c["kernel"].size
                                               for (c,) in net.weights()["cells"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_steps_are_the_banks(variant):
    # Adam with each network's gradient clipped by its global norm (0.5: clipping is active)
    bank = _bank(variant)
    nets = [edge.EdgeNetwork.from_bank(bank, k) for k in range(bank.size)]
    step = nb.make_train_step(bank, keras.optimizers.Adam(1e-3), clipnorm=0.5)
    rng = np.random.default_rng(1)
    data = [_strings(rng, 16, 9) for _ in range(5)]
    bank_losses = np.array([step(tf.constant(x), tf.constant(y)).numpy() for x, y in data])
    for k, net in enumerate(nets):
        losses = net.train_epoch(edge.Batches.stack(data), clipnorm=0.5)
        np.testing.assert_allclose(losses, bank_losses[:, k], atol=1e-6)
        assert _max_difference(net.weights(), bank.network_weights(k)) < 1e-6
        assert net.step == 5


def test_weights_round_trip():
    net = edge.EdgeNetwork.from_bank(_bank("gru"), 0)
    net.theta[:] = np.random.default_rng(0).normal(size=net.theta.shape)
    again = edge.EdgeNetwork.from_weights("gru", net.weights())
    np.testing.assert_array_equal(again.theta, net.theta)


def test_fast_tanh_is_accurate():
    x = np.linspace(-20, 20, 40001).astype(np.float32)
    net = edge.EdgeNetwork("rnn-tanh", 2, 1, [1], [(0, 0, 0)], [], [0])
    # one unit reading its embedding with weight 1: its final state is tanh(embedding)
    net.part("input")[:] = 1
    net.part("head")[:] = [0, 1]
    states = []
    for value in x[::100]:
        net.part("embedding")[:] = [0, value]
        states.append(net.logits([[1]])[0, 1])
    np.testing.assert_allclose(states, np.tanh(x[::100].astype(np.float64)), atol=5e-7)


def test_batches_stack_pads_and_marks_filler_rows():
    batches = edge.Batches.stack([(np.ones((2, 3)), [0, 1]), (np.ones((1, 5)), [1])])
    assert batches.tokens.shape == (2, 2, 5) and batches.sizes.tolist() == [[2, 3], [1, 5]]
    assert batches.labels.tolist() == [[0, 1], [1, -1]]
    net = edge.EdgeNetwork.from_bank(_bank("rnn-tanh"), 0)
    loss, accuracy = net.evaluate(batches)  # over the 3 real examples only
    logits = [net.logits(np.ones((1, n))) for n in (3, 3, 5)]
    probabilities = [np.exp(l[0] - np.logaddexp(*l[0])) for l in logits]
    expected = -np.mean([np.log(p[y]) for p, y in zip(probabilities, [0, 1, 1])])
    assert loss == pytest.approx(expected, rel=1e-5)
    assert accuracy == pytest.approx(np.mean([np.argmax(p) == y for p, y in
                                              zip(probabilities, [0, 1, 1])]))


def test_train_stops_each_network_by_its_own_rule_and_threads_change_nothing():
    rng = np.random.default_rng(2)
    epochs = [edge.Batches.stack([_strings(rng, 16, 7) for _ in range(3)]) for _ in range(4)]
    test = edge.Batches.stack([_strings(rng, 20, 7)])

    def run(threads, **rule):
        nets = [edge.EdgeNetwork.from_bank(_bank(v), 0) for v in VARIANTS]
        return edge.train(nets, epochs, test, threads=threads, **rule)

    one, two = run(1), run(2)
    assert [r["test_loss"] for r in one] == [r["test_loss"] for r in two]
    assert all(r["epochs_trained"] == 4 and len(r["train_loss"]) == 4 for r in one)
    # no decrease reaches 10: every network stops after its first patient epoch
    stopped = run(2, patience=1, min_delta=10.0)
    assert [r["epochs_trained"] for r in stopped] == [2] * len(VARIANTS)


@pytest.mark.parametrize("options,message", [({"skips": "separate"}, "skips='input'"),
                                             ({"padding": "unmasked"}, "padding='masked'")])
def test_unsupported_networks_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        edge.EdgeNetwork.from_bank(_bank("gru", **options), 0)


def test_edge_and_bank_trainers_give_the_same_study():
    data = reber_common.load("generated", n=200, train_limit=80)
    graphs = [random_graph("erdos_renyi", 10 + i, i) for i in range(3)]
    settings = dict(variant="lstm", data=data, epochs=2, seed=0, bank_size=3, log=None,
                    jit_compile=False, bucket_width=4)
    by_edge = ga.train_networks(graphs, trainer="edge", **settings)
    by_bank = ga.train_networks(graphs, trainer="bank", **settings)
    for a, b in zip(by_edge, by_bank):
        assert a["test_loss"] == pytest.approx(b["test_loss"], abs=1e-5)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-9)
        assert a["epochs_trained"] == b["epochs_trained"] == 2


def test_bad_tokens_and_labels_are_refused_before_any_update():
    net = edge.EdgeNetwork.from_bank(_bank("gru"), 0)
    before = net.theta.copy()
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 8\)"):
        net.train_epoch(edge.Batches.stack([(np.array([[1, 8]]), [0])]))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        net.train_epoch(edge.Batches.stack([(np.array([[1, 2]]), [2])]))
    with pytest.raises(ValueError, match=r"tokens must be \(batch, time\)"):
        net.logits([1, 2])
    np.testing.assert_array_equal(net.theta, before)
    assert net.step == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_and_training_steps_are_keras(variant):
    # Against the Keras model of the network itself, no bank in between: the same logits, and
    # five steps of Keras's Adam. The clip norm is set where it does not act: the Keras model
    # holds its absent connections at zero by constraints, so their gradients count in its
    # global norm, while the edge trainer (like the thesis's masking by multiplication) has no
    # gradient for them; with clipping active the two scale their steps differently.
    CLIP = 1e3  # noqa: N806
    arch = architecture(GRAPHS[0])
    model = gn.build_model(arch, variant, vocab_size=8, seed=0)
    net = edge.EdgeNetwork.from_weights(variant, gn.network_weights(model, arch))
    rng = np.random.default_rng(0)
    tokens, _ = _strings(rng, 6, 9)
    np.testing.assert_allclose(net.logits(tokens), model(tokens).numpy(), atol=2e-6)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=CLIP),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = [_strings(rng, 16, 9) for _ in range(5)]
    keras_losses = [float(model.train_on_batch(x, y)) for x, y in data]
    losses = net.train_epoch(edge.Batches.stack(data), clipnorm=CLIP)
    np.testing.assert_allclose(losses, keras_losses, atol=1e-5)
    assert _max_difference(net.weights(), gn.network_weights(model, arch)) < 1e-5
