"""The batched bank of graph-shaped networks is exactly a set of independent Keras models."""

import keras
import networkx as nx
import numpy as np
import pytest
import tensorflow as tf

from snip_tf.studies import graph_networks as gn
from snip_tf.studies import network_bank as nb
from snip_tf.studies import reber_batches as rb

GRAPHS = [nx.Graph([(0, 1), (0, 2), (1, 3), (2, 3), (0, 3), (3, 4)]),
          gn.random_graph("barabasi_albert", 14, 1), gn.random_graph("watts_strogatz", 11, 2)]
TOKENS = np.array([[1, 2, 3, 4, 0, 0], [2, 2, 0, 0, 0, 0], [3, 1, 4, 1, 5, 6]], np.int32)


@pytest.mark.parametrize("variant", ["rnn-tanh", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize("layout", ["block", "thesis"])
@pytest.mark.parametrize("networks_per_slot", [1, 3])
def test_each_network_of_a_bank_is_its_keras_model(variant, layout, networks_per_slot):
    bank = nb.NetworkBank([gn.architecture(g) for g in GRAPHS], variant, 8, [0, 1, 2],
                          layout=layout, networks_per_slot=networks_per_slot)
    rng = np.random.default_rng(0)
    for bias in bank.biases:  # non-zero biases, so that their layout is checked too
        bias.assign(rng.normal(size=bias.shape).astype("float32"))
    logits = bank(TOKENS).numpy()
    assert logits.shape == (3, 3, 2)
    for k in range(3):
        model = bank.to_keras(k)
        np.testing.assert_allclose(model(TOKENS).numpy(), logits[:, k], atol=1e-5)


@pytest.mark.parametrize("variant", ["rnn-relu", "gru"])
def test_the_thesis_interface_in_a_bank_and_in_keras(variant):
    archs = [gn.architecture(g) for g in GRAPHS]
    bank = nb.NetworkBank(archs, variant, 8, [0, 1, 2], io="thesis")
    logits = bank(TOKENS).numpy()
    for k, arch in enumerate(archs):
        model = bank.to_keras(k)
        np.testing.assert_allclose(model(TOKENS).numpy(), logits[:, k], atol=1e-5)
        # the embedding is as wide as the first layer, and the classifier reads the last layer
        assert model.get_layer("embedding").embeddings.shape == (8, len(arch.layers[0]))
        head = model.get_layer("classifier").kernel.numpy()
        order = [n for layer in arch.layers for n in layer]
        read = np.isin(order, arch.layers[-1])
        assert np.all(head[~read] == 0) and np.all(head[read] != 0)
    # a Barabási–Albert graph has one source: its network reads a 1-wide embedding
    assert len(archs[1].layers[0]) == 1 and len(archs[1].sinks) > len(archs[1].layers[-1])
    with pytest.raises(ValueError, match="io must be one of"):
        nb.NetworkBank(archs, variant, 8, [0, 1, 2], io="thesis-ish")


# Layer 3 of this graph has skip edges from layers 0 and 1 besides the main one from layer 2.
SKIPPY = nx.Graph([(0, 1), (1, 2), (2, 3), (0, 3), (1, 3), (0, 4), (3, 4)])


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
@pytest.mark.parametrize("padding", ["masked", "unmasked"])
def test_the_thesis_network_in_a_bank_and_in_keras(variant, padding):
    """Separate skip cells, PyTorch's initialization, either padding, two networks in one
    slot: bank and Keras agree."""
    archs = [gn.architecture(g) for g in (SKIPPY, GRAPHS[0], GRAPHS[2])]
    bank = nb.NetworkBank(archs, variant, 8, [0, 1, 2], io="thesis", skips="separate",
                          padding=padding, init="torch", networks_per_slot=2)
    assert bank.packing.slots == 2
    assert bank.cell_counts == [1, 1, 2, 3, 2]
    logits = bank(TOKENS).numpy()
    for k in range(3):
        model = bank.to_keras(k)
        np.testing.assert_allclose(model(TOKENS).numpy(), logits[:, k], atol=1e-5)
    skip = bank.to_keras(0).get_layer("skip0_to3").cell
    assert np.all(skip.recurrent_kernel.numpy() != 0)  # its own, dense recurrent weights
    assert np.abs(skip.recurrent_kernel.numpy()).max() <= 1.0  # uniform(±1/sqrt(1))


def test_unmasked_padding_runs_to_the_longest_string_of_the_batch():
    archs = [gn.architecture(g) for g in GRAPHS]
    masked = nb.NetworkBank(archs, "gru", 8, [0, 1, 2])
    unmasked = nb.NetworkBank(archs, "gru", 8, [0, 1, 2], padding="unmasked")
    rng = np.random.default_rng(0)
    unmasked.embedding.assign(rng.normal(size=unmasked.embedding.shape).astype("float32"))
    masked.embedding.assign(unmasked.embedding)
    a, b = masked(TOKENS).numpy(), unmasked(TOKENS).numpy()
    np.testing.assert_allclose(a[2], b[2], atol=1e-6)  # the longest string has no padding
    assert np.abs(a[:2] - b[:2]).max() > 1e-3  # the others run through the padding symbol
    # steps beyond the batch's longest string (trim's rounding) are still skipped
    np.testing.assert_allclose(unmasked(np.pad(TOKENS, [(0, 0), (0, 5)])).numpy(), b,
                               atol=1e-6)
    # and a string's result depends on its batch
    assert np.abs(unmasked(TOKENS[:2]).numpy() - b[:2]).max() > 1e-3
    for name in ("skips", "padding", "init"):
        with pytest.raises(ValueError, match=f"{name} must be one of"):
            nb.NetworkBank(archs, "gru", 8, [0, 1, 2], **{name: "other"})


def test_trailing_padding_does_not_change_the_outputs():
    bank = nb.NetworkBank([gn.architecture(g) for g in GRAPHS], "lstm", 8, [0, 1, 2])
    padded = np.pad(TOKENS, [(0, 0), (0, 5)])
    np.testing.assert_allclose(bank(padded).numpy(), bank(TOKENS).numpy(), atol=1e-6)
    assert rb.trim(tf.constant(padded)).shape == (3, 8)


@pytest.mark.parametrize("variant", ["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_hand_written_backward_pass_equals_autodiff(variant):
    """The recurrence's BPTT against TensorFlow's own gradient of the same scan, with padding
    (some sequences end early) so that the carried-over states are checked too."""
    rng = np.random.default_rng(1)
    gates, k, batch, units, time = gn.GATES[variant], 3, 5, 4, 7
    x = tf.constant(rng.normal(size=(time, k, batch, gates * units)), tf.float32)
    u = tf.constant(rng.normal(size=(k, units, gates * units)) * 0.5, tf.float32)
    rb = tf.constant(rng.normal(size=(k, 1, gates * units)) * 0.5, tf.float32)
    lengths = np.array([7, 3, 1, 5, 6])
    keep = tf.constant((np.arange(time)[:, None] < lengths)[:, None, :, None])
    weights = tf.constant(rng.normal(size=(time, k, batch, units)), tf.float32)
    results = []
    for fn in (nb.recurrence, nb.recurrence_autodiff):
        with tf.GradientTape() as tape:
            tape.watch([x, u, rb])
            hs = fn(variant, x, keep, u, rb)
            loss = tf.reduce_sum(hs * weights)  # every step's output matters, not just the last
        results.append([hs] + tape.gradient(loss, [x, u, rb]))
    (hs, d_x, d_u, d_rb), (hs_ref, d_x_ref, d_u_ref, d_rb_ref) = results
    np.testing.assert_allclose(hs.numpy(), hs_ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(d_x.numpy(), d_x_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(d_u.numpy(), d_u_ref.numpy(), atol=1e-5)
    if variant == "gru":
        np.testing.assert_allclose(d_rb.numpy(), d_rb_ref.numpy(), atol=1e-5)
    else:
        assert d_rb is None and d_rb_ref is None
    assert float(tf.reduce_max(tf.abs(d_u))) > 0.1  # the check compares real gradients


@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_the_recurrence_runs_in_the_dtype_of_its_inputs(variant):
    """bfloat16 inputs give a bfloat16 state sequence, within bfloat16's rounding of float32's
    (the retired ``benchmarks/graph_recurrence.py --dtypes`` timed the two)."""
    rng = np.random.default_rng(2)
    gates, k, batch, units, time = gn.GATES[variant], 2, 3, 4, 5
    x = rng.normal(size=(time, k, batch, gates * units))
    u = rng.normal(size=(k, units, gates * units)) * 0.5
    rb = rng.normal(size=(k, 1, gates * units)) * 0.5
    keep = tf.constant((np.arange(time)[:, None] < np.array([5, 2, 4]))[:, None, :, None])
    hs = {dtype: nb.recurrence(variant, tf.constant(x, dtype), keep, tf.constant(u, dtype),
                               tf.constant(rb, dtype))
          for dtype in (tf.float32, tf.bfloat16)}
    assert hs[tf.bfloat16].dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(hs[tf.bfloat16], tf.float32).numpy(),
                               hs[tf.float32].numpy(), atol=0.05)


@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_xla_compiled_training_equals_uncompiled_training(variant):
    """The study compiles the bank's training step with XLA by default; compiled, it leaves
    the same weights as uncompiled (the path the other tests take), networks sharing a slot."""
    rng = np.random.default_rng(3)
    tokens = np.sort(rng.integers(0, 8, size=(3, 16, 6)), axis=2)[:, :, ::-1].astype(np.int32)
    labels = rng.integers(0, 2, size=(3, 16)).astype(np.int32)
    def bank():
        return nb.NetworkBank([gn.architecture(g) for g in GRAPHS], variant, 8, [3, 4, 5],
                              networks_per_slot=2)

    weights = []
    for jit_compile in (False, True):
        trained = bank()
        step = nb.make_train_step(trained, keras.optimizers.Adam(1e-2), clipnorm=0.5,
                                  jit_compile=jit_compile)
        for t, y in zip(tokens, labels):
            step(tf.constant(t), tf.constant(y))
        weights.append([w.numpy() for w in trained.weights])
    moved = 0
    for plain, compiled, initial in zip(*weights, bank().weights):
        np.testing.assert_allclose(plain, compiled, atol=1e-5)
        moved += not np.allclose(plain, initial.numpy())
    assert moved >= 3  # training changed the weights that are compared


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
    # a filler row changes no network's loss
    logits = tf.constant(rng.normal(size=(3, 2, 2)), tf.float32)
    np.testing.assert_allclose(
        nb.per_network_loss(logits, tf.constant([1, 0, rb.NO_EXAMPLE])),
        nb.per_network_loss(logits[:2], tf.constant([1, 0])), rtol=1e-6)


def test_training_on_full_batches_equals_training_on_partial_ones():
    rng = np.random.default_rng(2)
    x = np.sort(rng.integers(0, 8, (40, 7)), 1)[:, ::-1].astype(np.int32)
    y = (x[:, 0] > 4).astype(np.int32)
    results = []
    for full_batches in (False, True):
        bank = nb.NetworkBank([gn.architecture(g) for g in GRAPHS], "gru", 8, [0, 1, 2])
        results.append(nb.train(bank, x, y, x, y, epochs=2, batch_size=16, bucket_width=4,
                                full_batches=full_batches))
        results[-1]["weights"] = [w.numpy() for w in bank.weights]
    plain, full = results
    np.testing.assert_allclose(plain["train_loss"], full["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(plain["test_loss"], full["test_loss"], rtol=1e-5)
    for a, b in zip(plain["weights"], full["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _train(graphs, seeds, steps=4, networks_per_slot=1):
    bank = nb.NetworkBank([gn.architecture(g) for g in graphs], "gru", 8, seeds,
                          networks_per_slot=networks_per_slot)
    step = nb.make_train_step(bank, keras.optimizers.Adam(1e-2), clipnorm=0.5)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        tokens = rng.integers(1, 8, size=(16, 6)).astype(np.int32)
        tokens[rng.random((16, 6)) < 0.3] = 0
        tokens = np.sort(tokens, axis=1)[:, ::-1].copy()  # right-padded
        step(tf.constant(tokens), tf.constant(rng.integers(0, 2, 16).astype(np.int32)))
    return bank


@pytest.mark.parametrize("networks_per_slot", [1, 3])
def test_networks_in_a_bank_train_independently(networks_per_slot):
    """Network 0 ends with the same weights whichever networks share its bank, or its slot
    (each network's gradient is clipped by its own norm: clipnorm 0.5 is active here)."""
    alone = _train(GRAPHS[:1], [0]).to_keras(0)
    shared = _train(GRAPHS, [0, 5, 6], networks_per_slot=networks_per_slot).to_keras(0)
    for a, b in zip(alone.weights, shared.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def _assert_trains_as_its_keras_model(bank):
    """Three Adam steps with global clipping leave the bank's network 0 and its Keras model
    (compiled as the thesis trained) with the same weights."""
    model = bank.to_keras(0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    step = nb.make_train_step(bank, keras.optimizers.Adam(1e-2), clipnorm=0.5)
    rng = np.random.default_rng(1)
    for _ in range(3):
        tokens = np.sort(rng.integers(0, 8, size=(16, 6)), axis=1)[:, ::-1].astype(np.int32)
        labels = rng.integers(0, 2, 16).astype(np.int32)
        step(tf.constant(tokens), tf.constant(labels))
        model.train_on_batch(tokens, labels)
    for a, b in zip(model.weights, bank.to_keras(0).weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_bank_training_equals_keras_training_with_global_clipping():
    _assert_trains_as_its_keras_model(nb.NetworkBank([gn.architecture(GRAPHS[1])], "gru", 8, [3]))


def test_training_in_a_shared_slot_equals_keras_training():
    bank = nb.NetworkBank([gn.architecture(g) for g in GRAPHS], "lstm", 8, [3, 4, 5],
                          networks_per_slot=3)
    assert bank.packing.slots == 1
    _assert_trains_as_its_keras_model(bank)


def test_packing_places_networks_side_by_side_without_overlap():
    archs = [gn.architecture(gn.random_graph(gn.GENERATORS[i % 3], 10 + 3 * i, i))
             for i in range(7)]
    layout = nb.pack(archs, [16] * 7, networks_per_slot=3)
    assert layout.slots == 3 and layout.heads == 3
    assert layout == nb.pack(archs, [16] * 7, networks_per_slot=3)  # deterministic
    assert layout.embedding_width == 48
    for slot in range(layout.slots):
        members = [k for k, p in enumerate(layout.placements) if p.slot == slot]
        assert sorted(layout.placements[k].head for k in members) == list(range(len(members)))
        for l, width in enumerate(layout.widths):
            taken = np.zeros(width, int)
            for k in members:
                if l < len(archs[k].layers):
                    start = layout.placements[k].starts[l]
                    taken[start:start + len(archs[k].layers[l])] += 1
            assert taken.max() <= 1  # no unit is shared
    # one network per slot is the unpacked layout: every layer as wide as its widest network
    alone = nb.pack(archs, [16] * 7)
    assert alone.slots == 7 and all(max(p.starts) == 0 for p in alone.placements)
    depth = max(len(a.layers) for a in archs)
    assert alone.widths == tuple(max(len(a.layers[l]) for a in archs if l < len(a.layers))
                                 for l in range(depth))
    # and packing pads less
    assert nb.step_macs(archs, 3, networks_per_slot=3) < nb.step_macs(archs, 3)
    with pytest.raises(ValueError, match="networks_per_slot must be at least 1"):
        nb.pack(archs, [16] * 7, networks_per_slot=0)


def test_bank_training_of_separate_skip_cells_equals_keras_training():
    # (Keras's initialization: from PyTorch's standard normal embedding Adam amplifies the
    # float rounding of near-zero gradients past any useful tolerance within 3 steps)
    _assert_trains_as_its_keras_model(
        nb.NetworkBank([gn.architecture(SKIPPY)], "lstm", 8, [3], skips="separate"))


def test_absent_connections_stay_absent_through_training():
    bank = _train(GRAPHS, [0, 1, 2])
    for kernel, mask in zip(bank.kernels, bank.kernel_masks):
        # masked entries never receive a gradient: they keep their (zero) initial value
        assert np.all(kernel.numpy()[mask.numpy() == 0] == 0)


def test_per_network_early_stopping_and_results():
    data_x = np.sort(np.random.default_rng(0).integers(0, 8, (64, 7)), 1)[:, ::-1]
    data_y = (data_x[:, 0] > 4).astype(np.int32)
    bank = nb.NetworkBank([gn.architecture(g) for g in GRAPHS], "rnn-tanh", 8, [0, 1, 2])
    out = nb.train(bank, data_x.astype(np.int32), data_y, data_x.astype(np.int32), data_y,
                   epochs=3, batch_size=16, patience=1, min_delta=10.0)
    # min_delta larger than any improvement: each network stops after its first patient epoch
    assert list(out["epochs_trained"]) == [2, 2, 2]
    assert np.all((out["test_acc"] >= 0) & (out["test_acc"] <= 1))


@pytest.mark.parametrize("variant,skips,networks_per_slot",
                         [("gru", "input", 3), ("lstm", "separate", 2), ("rnn-relu", "input", 1)])
def test_a_repacked_subset_of_a_bank_trains_on_as_if_uninterrupted(variant, skips,
                                                                    networks_per_slot):
    """Two networks taken out of a trained bank into a bank of their own, with their Adam
    moments, compute what they computed and take the same next steps."""
    graphs = GRAPHS + [SKIPPY, gn.random_graph("erdos_renyi", 12, 4)]
    bank = nb.NetworkBank([gn.architecture(g) for g in graphs], variant, 8,
                          [3, 4, 5, 6, 7], skips=skips, networks_per_slot=networks_per_slot)
    optimizer = keras.optimizers.Adam(1e-2)
    step = nb.make_train_step(bank, optimizer, clipnorm=0.5)
    rng = np.random.default_rng(2)
    data = [(tf.constant(np.sort(rng.integers(0, 8, (16, 6)), 1)[:, ::-1].astype(np.int32)),
             tf.constant(rng.integers(0, 2, 16).astype(np.int32))) for _ in range(5)]
    for tokens, labels in data[:3]:
        step(tokens, labels)
    kept = [2, 0]  # shallower than the bank: the smaller bank has fewer layers
    smaller = bank.subset(kept)
    assert smaller.size == 2 and smaller.macs() < bank.macs()
    assert len(smaller.widths) < len(bank.widths)
    np.testing.assert_allclose(smaller(data[0][0]).numpy(),
                               tf.gather(bank(data[0][0]), kept, axis=1).numpy(), atol=1e-5)
    new_optimizer = keras.optimizers.Adam(1e-2)
    new_step = nb.make_train_step(smaller, new_optimizer, clipnorm=0.5)
    nb.move_adam_state(optimizer, bank, new_optimizer, smaller, kept)
    for tokens, labels in data[3:]:
        np.testing.assert_allclose(new_step(tokens, labels).numpy(),
                                   tf.gather(step(tokens, labels), kept).numpy(), atol=1e-5)
    for j, k in enumerate(kept):
        for a, b in zip(bank.to_keras(k).weights, smaller.to_keras(j).weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_repacking_away_stopped_networks_changes_no_result():
    graphs = GRAPHS + [gn.random_graph("erdos_renyi", 12, 4)]
    data_x = np.sort(np.random.default_rng(0).integers(0, 8, (64, 7)), 1)[:, ::-1]
    data_x = data_x.astype(np.int32)
    data_y = (data_x[:, 0] > 4).astype(np.int32)
    def run(patience, compact=0, **options):
        bank = nb.NetworkBank([gn.architecture(g) for g in graphs], "gru", 8, [0, 1, 2, 3],
                              networks_per_slot=2)
        return nb.train(bank, data_x, data_y, data_x, data_y, epochs=6, batch_size=16,
                        patience=patience, min_delta=0.05, learning_rate=1e-2, compact=compact,
                        **options)

    outs = [run(1, compact) for compact in (0, 1)]
    stops = outs[0]["epochs_trained"]
    np.testing.assert_array_equal(outs[1]["epochs_trained"], stops)
    for key in ("test_acc", "test_loss", "train_loss"):
        np.testing.assert_allclose(outs[1][key], outs[0][key], atol=1e-5)
    # compact=1 repacks after every epoch in which some networks stop and others go on
    assert outs[0]["compactions"] == []
    early = sorted(set(stops[stops < stops.max()]))
    assert early, "the setting must stop networks at different epochs"
    assert [c["epoch"] for c in outs[1]["compactions"]] == early
    assert [c["networks"] for c in outs[1]["compactions"]] == [
        int((stops > e).sum()) for e in early]
    for k, stop in enumerate(stops):
        assert np.isnan(outs[1]["train_loss"][stop:, k]).all()
        assert not np.isnan(outs[1]["train_loss"][:stop, k]).any()
    # the rule replayed on the curves of all 6 epochs stops where training stopped, and the
    # test accuracy recorded at that epoch is the result
    full = run(0, test_every_epoch=True)
    np.testing.assert_array_equal(
        rb.EarlyStopping(4, 1, 0.05).stop_epochs(full["train_loss"]), stops)
    np.testing.assert_allclose(full["test_acc_history"][stops - 1, np.arange(4)],
                               outs[1]["test_acc"], atol=1e-6)


def test_regroup_refuses_layouts_of_other_networks():
    bank = nb.NetworkBank([gn.architecture(g) for g in GRAPHS], "gru", 8, [0, 1, 2])
    other = nb.NetworkBank([gn.architecture(g) for g in GRAPHS[:2]], "gru", 8, [0, 1])
    with pytest.raises(ValueError, match="same networks"):
        nb.regroup(bank.kernels[0].numpy(), bank.owners(bank.kernels[0]),
                   other.owners(other.kernels[0]), [0, 2])


def test_bad_bank_arguments_are_named():
    arch = gn.architecture(GRAPHS[0])
    with pytest.raises(ValueError, match="variant"):
        nb.NetworkBank([arch], "transformer", 8, [0])
    with pytest.raises(ValueError, match="one seed per architecture"):
        nb.NetworkBank([arch, arch], "gru", 8, [0])


def test_step_macs_counts_the_padded_layout():
    path, star = gn.architecture(nx.path_graph(4)), gn.architecture(nx.star_graph(5))
    assert [len(l) for l in path.layers] == [1, 1, 1, 1]
    assert [len(l) for l in star.layers] == [1, 5]
    # GRU (3 gates), embedding 16: gates * units * (inputs + units) per layer
    assert nb.step_macs([path], 3) == 3 * (1 * 17 + 1 * 2 + 1 * 3 + 1 * 4)
    assert nb.step_macs([star], 3) == 3 * (1 * 17 + 5 * 6)
    # together, widths [1, 5, 1, 1]: layers 2 and 3 read the padded 5-wide layer 1
    assert nb.step_macs([path, star], 3) == 3 * (1 * 17 + 5 * 6 + 1 * 7 + 1 * 8)
    # the thesis's interface: the first layer reads an embedding as wide as itself (1 here)
    assert nb.step_macs([star], 3, io="thesis") == 3 * (1 * 2 + 5 * 6)
    # two networks in one bank each pay for the padded layout; each in its own bank does not
    assert nb.padding_factor([[path, star]], 3) == pytest.approx(2 * 186 / (78 + 141))
    assert nb.padding_factor([[path], [star]], 3) == 1.0
    # separate skip cells: layer 3 of SKIPPY has 3 cells, layer 4 has 2, each 1 unit wide
    skippy = gn.architecture(SKIPPY)
    assert nb.step_macs([skippy], 1, skips="separate") == (
        1 * 17 + 1 * 2 + 1 * 3 + 3 * 1 * 4 + 2 * 1 * 5)


def test_the_parts_of_pytorchs_initialization_are_pytorchs_and_keras_elsewhere():
    archs = [gn.architecture(g) for g in GRAPHS]
    banks = {init: nb.NetworkBank(archs, "gru", 8, [0, 1, 2], io="thesis", init=init)
             for init in nb.INITS}

    def weights(init, part):
        bank = banks[init]
        if part == "embedding":
            return [bank.embedding.numpy()]
        return [v.numpy() for v in bank.kernels + bank.recurrents + bank.biases
                + [bank.head_kernel, bank.head_bias]]

    def same(init, other, part):
        return all(np.array_equal(a, b) for a, b in zip(weights(init, part),
                                                      weights(other, part)))

    assert same("torch-embedding", "torch", "embedding")
    assert same("torch-embedding", "keras", "cells")
    assert same("torch-cells", "keras", "embedding")
    assert same("torch-cells", "torch", "cells")
    assert not same("keras", "torch", "embedding")
    assert not same("keras", "torch", "cells")
    assert banks["torch-embedding"].embedding.numpy().std() > 0.3  # standard normal, not ±0.05
