"""The compiled edge trainer against each network's Keras model (the reference)."""

import keras
import networkx as nx
import numpy as np
import pytest

from snip_tf.studies import edge_trainer as edge
from snip_tf.studies import graph_architectures as ga
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


def _keras(variant, graph=GRAPHS[0], seed=0, layout="block", io="full", init="keras"):
    """A network's Keras model with the study's initial weights, and its architecture."""
    arch = architecture(graph)
    model = gn.build_model(arch, variant, vocab_size=8, seed=seed, layout=layout, io=io)
    gn.assign_weights(model, arch, gn.initial_weights(arch, variant, 8, seed, layout, io=io,
                                                      init=init))
    return model, arch


def _net(variant, graph=GRAPHS[0], seed=0, **options):
    """The edge network of the same graph and initial weights."""
    return edge.EdgeNetwork.from_weights(
        variant, gn.initial_weights(architecture(graph), variant, 8, seed, **options))


def _max_difference(a: dict, b: dict) -> float:
    parts = [(a[k], b[k]) for k in ("embedding", "head", "head_mask", "head_bias")]
    parts += [(x[k], y[k]) for (x,), (y,) in zip(a["cells"], b["cells"])
              for k in ("kernel", "kernel_mask", "recurrent_kernel", "bias")]
    assert all(np.shape(x) == np.shape(y) for x, y in parts)
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in parts)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("options", [{}, {"layout": "thesis", "io": "thesis", "init": "torch"}])
def test_logits_and_weights_are_keras(variant, options):
    tokens, _ = _strings(np.random.default_rng(0), 6, 9)
    for seed, graph in enumerate(GRAPHS):
        model, arch = _keras(variant, graph, seed, **options)
        net = _net(variant, graph, seed, **options)
        assert _max_difference(net.weights(), gn.network_weights(model, arch)) == 0
        np.testing.assert_allclose(net.logits(tokens), model(tokens).numpy(), atol=2e-6)
        # only the graph's connections are computed: the unmasked kernel entries
        masked = sum(int(cell["kernel_mask"].sum()) for (cell,) in net.weights()["cells"])
        assert len(net.in_src) == masked < sum(c["kernel"].size
                                               for (c,) in net.weights()["cells"])
    if options.get("init") == "torch":  # non-zero biases: their layout is checked too
        assert all(np.abs(cell["bias"]).min() > 0 for (cell,) in net.weights()["cells"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_steps_are_keras(variant):
    # Keras's Adam with the gradient clipped by the global norm (0.5: clipping is active) of
    # the network's connections (StructureAdam), five steps, both graphs
    rng = np.random.default_rng(1)
    data = [_strings(rng, 16, 9) for _ in range(5)]
    for seed, graph in enumerate(GRAPHS):
        model, arch = _keras(variant, graph, seed)
        model.compile(optimizer=gn.StructureAdam(1e-3, global_clipnorm=0.5),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        keras_losses = [float(model.train_on_batch(x, y)) for x, y in data]
        net = _net(variant, graph, seed)
        losses = net.train_epoch(edge.Batches.stack(data), clipnorm=0.5)
        np.testing.assert_allclose(losses, keras_losses, atol=1e-5)
        assert _max_difference(net.weights(), gn.network_weights(model, arch)) < 1e-5
        assert net.step == 5


def test_plain_adam_clips_by_another_norm():
    # Why the Keras trainer uses StructureAdam: the pruning hooks hold the absent connections at
    # zero, but their gradients would still count in Keras's global norm, and so would each
    # repeat of a token in the embedding's sparse gradient; the steps then shrink otherwise.
    rng = np.random.default_rng(1)
    data = [_strings(rng, 16, 9) for _ in range(3)]
    after = {}
    for name, optimizer in (("plain", keras.optimizers.Adam), ("structure", gn.StructureAdam)):
        model, arch = _keras("gru")
        model.compile(optimizer=optimizer(1e-3, global_clipnorm=0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for x, y in data:
            model.train_on_batch(x, y)
        after[name] = gn.network_weights(model, arch)
        assert all(np.all(c["kernel"][c["kernel_mask"] == 0] == 0)
                   for (c,) in after[name]["cells"])  # absent connections stay absent
    net = _net("gru")
    net.train_epoch(edge.Batches.stack(data), clipnorm=0.05)
    assert _max_difference(net.weights(), after["structure"]) < 1e-5
    assert _max_difference(net.weights(), after["plain"]) > 3e-5  # measured: 6.7e-5


def test_weights_round_trip():
    net = _net("gru")
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
    net = _net("rnn-tanh")
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
        nets = [_net(v) for v in VARIANTS]
        return edge.train(nets, epochs, test, threads=threads, **rule)

    one, two = run(1), run(2)
    assert [r["test_loss"] for r in one] == [r["test_loss"] for r in two]
    assert all(r["epochs_trained"] == 4 and len(r["train_loss"]) == 4 for r in one)
    # no decrease reaches 10: every network stops after its first patient epoch
    stopped = run(2, patience=1, min_delta=10.0)
    assert [r["epochs_trained"] for r in stopped] == [2] * len(VARIANTS)


def test_unsupported_networks_are_refused():
    with pytest.raises(ValueError, match="skips='input'"):
        _net("gru", GRAPHS[0], skips="separate")
    with pytest.raises(ValueError, match="padding='masked' only.*trainer='keras'"):
        ga.train_networks(GRAPHS, "gru", None, 1, 0, padding="unmasked")


# The Keras trainer is the slow reference: the filled-batches variant runs under -m slow.
@pytest.mark.parametrize("full_batches", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_edge_and_keras_trainers_give_the_same_study(full_batches):
    data = reber_common.load("generated", n=200, train_limit=80)
    graphs = [random_graph("erdos_renyi", 10 + i, i) for i in range(3)]
    settings = dict(variant="lstm", data=data, epochs=2, seed=0, log=None, bucket_width=4,
                    full_batches=full_batches)
    by_edge = ga.train_networks(graphs, trainer="edge", **settings)
    by_keras = ga.train_networks(graphs, trainer="keras", **settings)
    for a, b in zip(by_edge, by_keras):
        assert a["test_loss"] == pytest.approx(b["test_loss"], abs=1e-5)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-9)
        assert a["epochs_trained"] == b["epochs_trained"] == 2


def test_bad_tokens_and_labels_are_refused_before_any_update():
    net = _net("gru")
    before = net.theta.copy()
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 8\)"):
        net.train_epoch(edge.Batches.stack([(np.array([[1, 8]]), [0])]))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        net.train_epoch(edge.Batches.stack([(np.array([[1, 2]]), [2])]))
    with pytest.raises(ValueError, match=r"tokens must be \(batch, time\)"):
        net.logits([1, 2])
    np.testing.assert_array_equal(net.theta, before)
    assert net.step == 0


def test_compiled_code_is_not_cached():
    # Numba's cached code rounded differently from the same functions compiled afresh, so a
    # study's results depended on whether a run had filled the cache (see edge_trainer._jit).
    assert type(edge._run._cache).__name__ == "NullCache"
    assert type(edge._batch._cache).__name__ == "NullCache"
