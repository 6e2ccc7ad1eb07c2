"""Many small graph-shaped recurrent networks trained together as one batched computation.

The graph study trains hundreds of networks of 10-50 units each. One at a time, a network's step is
a few hundred tiny ops. A bank lays ``K`` such networks out along a batched axis of slots: every
weight has shape ``(slots, ...)``, every product is a batched matmul over that axis, and one
training step advances all ``K`` networks. A slot holds one network or several side by side
(``networks_per_slot``, :func:`pack`), each on its own units. Nothing is shared between networks:

* each network's structure is a constant 0/1 mask on its own block of every weight, applied in the
  forward pass, so absent connections (within a network, and between networks sharing a slot)
  contribute nothing and receive zero gradient (Adam leaves them untouched);
* every slot is padded to the bank's widest layers; padded units have no incoming weights and no
  bias, so their state stays exactly zero. Packing several networks per slot pads less;
* the loss is the sum of the networks' own mean losses, so each network's gradient is its own;
  gradient clipping is per network (the global norm of the weights it owns, as
  ``clip_grad_norm_`` in the thesis), and Adam is elementwise — training network ``k`` in a bank
  is training it alone, on the same batches;
* each batch is cut to its longest string (``trim``), which masking makes exact.

The study sorts networks by depth and size before cutting them into banks, to pad less. Each
layer's recurrence has a hand-written backward pass (:func:`recurrence`), and ``batches`` can
draw length-bucketed batches. On 2 CPU cores, per epoch, a bank of 50 GRU networks (XLA) is 3.9x
faster per network than one Keras model at a time, 7.9x on buckets of 8, and 16.2x with 8
networks packed per slot as well (``benchmarks/graph_bank.py``,
``results/graph_bank_benchmark.txt``).

``to_keras(k)`` returns network ``k`` as the ordinary Keras model of
:func:`snip_tf.studies.graph_networks.build_model`, with its weights; the tests check that both
give the same outputs.

Example:

>>> import networkx as nx
>>> from snip_tf.studies.graph_networks import architecture
>>> archs = [architecture(nx.path_graph(4)), architecture(nx.star_graph(5))]
>>> bank = NetworkBank(archs, "gru", vocab_size=8, seeds=[0, 1])
>>> bank(np.array([[1, 2, 3, 0]])).shape  # (batch, networks, classes)
TensorShape([1, 2, 2])
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from snip_tf.studies import graph_networks as gn
from snip_tf.studies.reber_batches import NO_EXAMPLE, EarlyStopping, batches, trim
from snip_tf.studies.graph_networks import GATES


def _gate_columns(units: int, padded: int, gates: int, cell: int = 0,
                  start: int = 0) -> np.ndarray:
    """Bank column of each column of a Keras ``(inputs, gates * units)`` kernel of the layer's
    ``cell``-th cell, for a network whose units begin at ``start`` in its slot: a bank layer
    lays its columns out as (cell, gate, unit), each cell ``gates * padded`` wide."""
    return np.concatenate([(cell * gates + g) * padded + start + np.arange(units)
                           for g in range(gates)])


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one network sits in a bank: its ``slot`` (an index of the bank's batched axis),
    the first unit of each of its layers within that slot's layer (``starts``), its first
    embedding column (``embedding_start``), and which of the slot's classifiers is its own
    (``head``)."""

    slot: int
    starts: tuple
    embedding_start: int
    head: int


@dataclasses.dataclass(frozen=True)
class Layout:
    """A bank's packing of its networks into slots: one ``Placement`` per network, each
    layer's width (its fullest slot's), the embedding's width and the classifiers per slot."""

    placements: tuple
    widths: tuple
    embedding_width: int
    heads: int

    @property
    def slots(self) -> int:
        """Slots holding a network (a bank adds an empty one if there is only one)."""
        return max(p.slot for p in self.placements) + 1

    @property
    def units(self) -> int:
        """Units the layout computes at each step, padding included, over its slots."""
        return self.slots * sum(self.widths)


def pack(archs, reads, networks_per_slot: int = 1) -> Layout:
    """Pack networks side by side into slots of at most ``networks_per_slot`` networks each.

    A slot is one index of the bank's batched axis; its networks share that index's padded
    layer widths, each on its own units (block-diagonal masks keep them apart). With one network
    per slot every network pays for the widest network's layer at every depth; packing several
    fills a slot's layers closer to the bank's widths, at the cost of kernels that span the
    slot's networks (masked off). ``reads``: each network's embedding width. Networks are placed
    largest first, each in the slot whose layers it widens least (then the emptiest), so the
    layout is deterministic."""
    if networks_per_slot < 1:
        raise ValueError(f"networks_per_slot must be at least 1; got {networks_per_slot}.")
    sizes = [[len(nodes) for nodes in a.layers] for a in archs]
    depth = max(map(len, sizes))
    slots = -(-len(archs) // networks_per_slot)
    fill = np.zeros((slots, depth), int)
    members = [[] for _ in range(slots)]
    placed = {}
    for k in sorted(range(len(archs)), key=lambda k: (-sum(sizes[k]), k)):
        w = np.zeros(depth, int)
        w[:len(sizes[k])] = sizes[k]
        open_slots = [s for s in range(slots) if len(members[s]) < networks_per_slot]
        widths = fill.max(axis=0)
        s = min(open_slots, key=lambda s: (np.maximum(fill[s] + w, widths).sum(),
                                           fill[s].sum(), s))
        placed[k] = (s, tuple(int(v) for v in fill[s][:len(sizes[k])]), len(members[s]))
        fill[s] += w
        members[s].append(k)
    embedding_start = {}
    for s in range(slots):
        offset = 0
        for k in sorted(members[s], key=lambda k: placed[k][2]):
            embedding_start[k], offset = offset, offset + reads[k]
    embedding_width = max(sum(reads[k] for k in m) for m in members)
    placements = tuple(Placement(placed[k][0], placed[k][1], embedding_start[k], placed[k][2])
                       for k in range(len(archs)))
    return Layout(placements, tuple(int(v) for v in np.maximum(fill.max(axis=0), 1)),
                  int(embedding_width), max(map(len, members)))


def _bank_rows(arch, offsets, place: Placement, layers) -> np.ndarray:
    """Bank position of each node of ``arch``'s ``layers`` (a count: the first ones; or a
    sequence of layer indices), in that order: the rows of a kernel reading their
    concatenated outputs."""
    layers = range(layers) if isinstance(layers, int) else layers
    return np.concatenate([offsets[l] + place.starts[l] + np.arange(len(arch.layers[l]))
                           for l in layers])


def _cell_rows(arch, offsets, place: Placement, layer: int, cell, reads: int) -> np.ndarray:
    """The kernel rows ``cell`` of ``arch``'s ``layer`` reads: its own ``reads`` embedding
    columns in layer 0, else its source layers' bank positions."""
    if layer == 0:
        return place.embedding_start + np.arange(reads)
    return _bank_rows(arch, offsets, place, cell.sources)


def cell_counts(archs, skips: str = "input") -> list:
    """Cells of each layer of a bank of ``archs`` (see ``graph_networks.cells``): its networks'
    most (at least 1)."""
    return [max([len(gn.cells(a, l, skips)) for a in archs if l < len(a.layers)] + [1])
            for l in range(max(len(a.layers) for a in archs))]


def step_macs(archs, gates: int, embedding_dim: int = 16, io: str = "full",
              skips: str = "input", networks_per_slot: int = 1) -> float:
    """Multiply-accumulates of the recurrent layers for one example and one time step, per
    network, in a bank of ``archs`` (forward pass; the backward pass costs about twice as much).
    Every slot pays for the bank's padded layout (:func:`pack`): layer ``l`` has the fullest
    slot's width (times the most cells) and reads all earlier layers' padded units.
    ``step_macs([arch], ...)`` is the network alone, so the ratio of the two is what padding
    costs."""
    reads = [gn.input_width(a, io, embedding_dim) for a in archs]
    layout = pack(archs, reads, networks_per_slot)
    widths, counts = layout.widths, cell_counts(archs, skips)
    inputs = np.concatenate([[layout.embedding_width], np.cumsum(widths)[:-1]])
    slot = sum(c * gates * w * (i + w) for c, w, i in zip(counts, widths, inputs))
    return float(layout.slots * slot / len(archs))


def bank_macs(archs, gates: int, embedding_dim: int = 16, io: str = "full",
              skips: str = "input", networks_per_slot: int = 1) -> float:
    """Multiply-accumulates of one step of a bank of ``archs`` in its padded layout, all its
    networks together (:func:`step_macs` is per network): what a step of the bank costs."""
    return len(archs) * step_macs(archs, gates, embedding_dim, io, skips, networks_per_slot)


def padding_factor(banks, gates: int, embedding_dim: int = 16, io: str = "full",
                   skips: str = "input", networks_per_slot: int = 1) -> float:
    """The arithmetic of ``banks`` (lists of architectures, each trained as one bank) in their
    padded layouts over that of every network trained alone (:func:`step_macs`)."""
    padded = sum(bank_macs(b, gates, embedding_dim, io, skips, networks_per_slot)
                 for b in banks)
    alone = sum(step_macs([a], gates, embedding_dim, io, skips) for b in banks for a in b)
    return padded / alone


def padding_key(arch) -> tuple:
    """Sort key that puts networks of similar depth and size next to each other, so that banks
    cut from a sorted list pad little."""
    return len(arch.layers), sum(map(len, arch.layers))


INITS = ("keras", "torch", "torch-embedding", "torch-cells")


class NetworkBank(keras.layers.Layer):
    """``K`` graph-shaped recurrent classifiers (see ``graph_networks.architecture``) as one
    layer mapping tokens ``(batch, time)`` to logits ``(batch, K, 2)``.

    Args:
        archs: one ``Architecture`` per network.
        variant: "rnn-tanh", "rnn-relu", "lstm" or "gru".
        vocab_size: embedding rows (token 0 is padding).
        seeds: one initialization seed per network.
        layout: gate-mask layout, "block" (correct) or "thesis" (its interleaved rows).
        embedding_dim: per-network embedding width (``io="full"``).
        io, skips, padding: the networks' interface, skip connections and padding
            (see ``graph_networks``).
        init: "keras", Keras's defaults (Glorot kernels, orthogonal recurrent kernels, zero
            biases with the LSTM's forget bias 1, a uniform(±0.05) embedding); "torch", as
            the thesis's PyTorch code: every weight and bias of a cell uniform(±1/√units), a
            standard normal embedding, a ``nn.Linear`` classifier; or one part of PyTorch's
            with Keras's for the rest, to tell which part matters: "torch-embedding" (the
            standard normal embedding only) or "torch-cells" (the cells and the classifier).
        backward: "bptt", the hand-written backward pass of :func:`recurrence`, or "autodiff",
            TensorFlow's (the slower reference).
        networks_per_slot: how many networks share one index of the batched axis, side by
            side (:func:`pack`); more pads less. It changes the layout only, not what any
            network computes.
    """

    def __init__(self, archs: Sequence, variant: str, vocab_size: int, seeds: Sequence[int],
                 layout: str = "block", embedding_dim: int = 16, io: str = "full",
                 skips: str = "input", padding: str = "masked", init: str = "keras",
                 backward: str = "bptt", networks_per_slot: int = 1, **kwargs):
        super().__init__(**kwargs)
        if variant not in GATES:
            raise ValueError(f"variant must be one of {sorted(GATES)}; got {variant!r}.")
        recurrences = {"bptt": recurrence, "autodiff": recurrence_autodiff}
        if backward not in recurrences:
            raise ValueError(f"backward must be one of {sorted(recurrences)}; got {backward!r}.")
        gn.check_option("skips", skips, gn.SKIPS)
        gn.check_option("padding", padding, gn.PADDINGS)
        gn.check_option("init", init, INITS)
        self._recurrence = recurrences[backward]
        if len(archs) != len(seeds) or not archs:
            raise ValueError(f"need one seed per architecture; got {len(archs)} architectures "
                             f"and {len(seeds)} seeds.")
        self.archs, self.variant, self.layout, self.io = list(archs), variant, layout, io
        self.seeds = [int(seed) for seed in seeds]
        self._options = dict(layout=layout, embedding_dim=embedding_dim, io=io, skips=skips,
                             padding=padding, init=init, backward=backward,
                             networks_per_slot=networks_per_slot)
        self.skips, self.padding, self.init = skips, padding, init
        self.reads = [gn.input_width(a, io, embedding_dim) for a in archs]
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.packing = pack(self.archs, self.reads, networks_per_slot)
        self.placements = self.packing.placements
        # oneDNN's CPU kernels fail or crash on the gradients of this computation when the
        # batched axis has length 1, so a lone slot gets an empty one beside it.
        slots = max(self.packing.slots, 2)
        heads = self.packing.heads
        self.gates = gates = GATES[variant]
        self.widths = list(self.packing.widths)
        self.cell_counts = cell_counts(archs, skips)
        offsets = np.concatenate([[0], np.cumsum(self.widths)])
        self.offsets = offsets
        w_total = int(offsets[-1])
        torch_embedding = init in ("torch", "torch-embedding")
        torch_cells = init in ("torch", "torch-cells")

        def initial(initializer, shape, seed):
            return np.asarray(keras.ops.convert_to_numpy(initializer(seed=seed)(shape)))

        def uniform(limit, shape, seed):
            return initial(lambda seed: keras.initializers.RandomUniform(-limit, limit, seed),
                           shape, seed)

        emb = np.zeros((slots, vocab_size, self.packing.embedding_width), np.float32)
        kernels = [np.zeros((slots, emb.shape[-1] if l == 0 else int(offsets[l]),
                             c * gates * w), np.float32)
                   for l, (c, w) in enumerate(zip(self.cell_counts, self.widths))]
        recurrents = [np.zeros((slots, c, w, gates * w), np.float32)
                      for c, w in zip(self.cell_counts, self.widths)]
        bias_rows = 2 if variant == "gru" else 1
        biases = [np.zeros((slots, bias_rows, k.shape[-1]), np.float32) for k in kernels]
        kmasks = [np.zeros_like(k) for k in kernels]
        rmasks = [np.zeros_like(r) for r in recurrents]
        bmasks = [np.zeros_like(b) for b in biases]
        head = np.zeros((slots, w_total, 2 * heads), np.float32)
        hmask = np.zeros_like(head)
        head_bias = np.zeros((slots, 2 * heads), np.float32)
        initial_values = {"embedding": emb, "head_kernel": head, "head_bias": head_bias,
                          **{f"kernel{l}": v for l, v in enumerate(kernels)},
                          **{f"recurrent_kernel{l}": v for l, v in enumerate(recurrents)},
                          **{f"bias{l}": v for l, v in enumerate(biases)}}
        # Which network owns each weight (K: none), for clipping each network's own gradient.
        nobody = len(self.archs)
        owners = {name: np.full(v.shape, nobody, np.int32) for name, v in initial_values.items()}
        for k, (arch, seed, reads, place) in enumerate(zip(self.archs, seeds, self.reads,
                                                            self.placements)):
            seed, s = int(seed), place.slot
            columns = place.embedding_start + np.arange(reads)
            emb[s][:, columns] = (initial(lambda seed: keras.initializers.RandomNormal(
                stddev=1.0, seed=seed), (vocab_size, reads), seed) if torch_embedding else
                initial(keras.initializers.RandomUniform, (vocab_size, reads), seed))
            owners["embedding"][s][:, columns] = k
            for l, nodes in enumerate(arch.layers):
                w, pad, start = len(nodes), self.widths[l], place.starts[l]
                # every cell's recurrent kernel has the layout of the first cell's columns
                recurrent_at = np.ix_(start + np.arange(w),
                                      _gate_columns(w, pad, gates, 0, start))
                for c, cell in enumerate(gn.cells(arch, l, skips)):
                    cell_seed = seed + 1000 * (l + 1) + 100 * c
                    cols = _gate_columns(w, pad, gates, c, start)
                    rows = _cell_rows(arch, offsets, place, l, cell, reads)
                    mask = (np.ones((reads, gates * w), bool) if l == 0 else
                            gn.gate_mask(cell.mask, gates, layout))
                    if torch_cells:
                        limit = 1 / np.sqrt(w)
                        kernel = uniform(limit, (len(rows), gates * w), cell_seed)
                        recurrent = uniform(limit, (w, gates * w), cell_seed + 1)
                        b_ih = uniform(limit, (gates * w,), cell_seed + 2)
                        b_hh = uniform(limit, (gates * w,), cell_seed + 3)
                        bias = np.stack([b_ih, b_hh]) if variant == "gru" else [b_ih + b_hh]
                        biases[l][s][:, cols] = bias
                    else:
                        kernel = initial(keras.initializers.GlorotUniform,
                                         (len(rows), gates * w), cell_seed)
                        recurrent = initial(keras.initializers.Orthogonal, (w, gates * w),
                                            cell_seed + 1)
                        if variant == "lstm":  # Keras's unit_forget_bias
                            biases[l][s][0, cols[w:2 * w]] = 1.0
                    kernels[l][s][np.ix_(rows, cols)] = kernel * mask
                    kmasks[l][s][np.ix_(rows, cols)] = mask
                    owners[f"kernel{l}"][s][np.ix_(rows, cols)] = k
                    recurrents[l][s][c][recurrent_at] = recurrent
                    rmasks[l][s][c][recurrent_at] = 1
                    owners[f"recurrent_kernel{l}"][s][c][recurrent_at] = k
                    bmasks[l][s][:, cols] = 1
                    owners[f"bias{l}"][s][:, cols] = k
            order = [n for layer in arch.layers for n in layer]
            read_rows = np.isin(order, gn.readout_nodes(arch, io))
            bank_rows = _bank_rows(arch, offsets, place, len(arch.layers))
            logits = 2 * place.head + np.arange(2)
            if torch_cells:  # nn.Linear over the nodes read
                limit = 1 / np.sqrt(read_rows.sum())
                h = uniform(limit, (len(order), 2), seed + 7)
                head_bias[s][logits] = uniform(limit, (2,), seed + 8)
            else:
                h = initial(keras.initializers.GlorotUniform, (len(order), 2), seed + 7)
            head[s][np.ix_(bank_rows, logits)] = h * read_rows[:, None]
            hmask[s][np.ix_(bank_rows, logits)] = read_rows[:, None]
            owners["head_kernel"][s][np.ix_(bank_rows, logits)] = k
            owners["head_bias"][s][logits] = k

        self._owners = {}

        def weight(name):
            value = initial_values[name]
            variable = self.add_weight(name=name, shape=value.shape,
                                       initializer=keras.initializers.Constant(value))
            self._owners[id(variable)] = tf.constant(owners[name])
            return variable

        self.embedding = weight("embedding")
        self.kernels = [weight(f"kernel{l}") for l in range(len(kernels))]
        self.recurrents = [weight(f"recurrent_kernel{l}") for l in range(len(recurrents))]
        self.biases = [weight(f"bias{l}") for l in range(len(biases))]
        self.head_kernel = weight("head_kernel")
        self.head_bias = weight("head_bias")
        # Structure: constants, not trainable.
        self.kernel_masks = [tf.constant(m) for m in kmasks]
        self.recurrent_masks = [tf.constant(m) for m in rmasks]
        self.bias_masks = [tf.constant(m) for m in bmasks]
        self.head_mask = tf.constant(hmask)
        self._logit_index = tf.constant([[p.slot, p.head] for p in self.placements])

    @property
    def size(self) -> int:
        """The number of networks."""
        return len(self.archs)

    def owners(self, variable):
        """Which network owns each entry of one of the bank's weights (``size``: none)."""
        return self._owners[id(variable)]

    def _keep(self, tokens):
        """Where each string's state advances, ``(time, 1, batch, 1)``: on its symbols
        (``padding="masked"``), or up to the longest string of the batch ("unmasked")."""
        symbols = tokens != 0
        if self.padding == "unmasked":
            length = tf.reduce_max(tf.reduce_sum(tf.cast(symbols, tf.int32), axis=1))
            steps = tf.range(tf.shape(tokens)[1]) < length
            symbols = tf.broadcast_to(steps[None], tf.shape(tokens))
        return tf.transpose(symbols)[:, None, :, None]

    def _project(self, layer: int, inputs):
        """Layer ``layer``'s input projection, without its bias: ``inputs`` (time, slots,
        batch, rows), the embedding or all earlier layers' sequences side by side, through the
        masked kernel, to (time, slots, batch, cells * gates * units)."""
        return tf.matmul(inputs, self.kernels[layer] * self.kernel_masks[layer])

    def call(self, tokens):
        # Slot-major inside each time step, (time, slots, batch, units), so that every product
        # is a plain batched matmul over the slot axis with no transposes. A layer's cells run
        # as one recurrence over a (slots x cells) axis.
        tokens = tf.cast(tokens, tf.int32)
        keep = self._keep(tokens)
        x = tf.transpose(tf.gather(self.embedding, tokens, axis=1), [2, 0, 1, 3])
        sequences, finals = [], []
        for l, (cells, w) in enumerate(zip(self.cell_counts, self.widths)):
            inputs = x if l == 0 else tf.concat(sequences, axis=-1)
            bias = self.biases[l] * self.bias_masks[l]  # (slots, rows, cells * gates * units)
            projected = self._project(l, inputs) + bias[:, :1]
            recurrent = self.recurrents[l] * self.recurrent_masks[l]
            rb = bias[:, 1:]
            if cells > 1:  # the cells become slots of their own, then are summed
                shape = tf.shape(projected)
                projected = tf.reshape(projected, tf.concat([shape[:3], [cells, -1]], 0))
                projected = tf.reshape(tf.transpose(projected, [0, 1, 3, 2, 4]), tf.concat(
                    [shape[:1], [-1], shape[2:3], [self.gates * w]], 0))
                if self.variant == "gru":
                    rb = tf.reshape(rb, [-1, 1, self.gates * w])
            hidden = self._recurrence(self.variant, projected, keep,
                                      tf.reshape(recurrent, [-1, w, self.gates * w]), rb)
            if cells > 1:
                shape = tf.shape(hidden)
                hidden = tf.reduce_sum(tf.reshape(hidden, tf.concat(
                    [shape[:1], [-1, cells], shape[2:]], 0)), axis=2)
            sequences.append(hidden)
            finals.append(hidden[-1])
        readout = tf.concat(finals, axis=-1)  # (slots, batch, all units)
        head = self.head_kernel * self.head_mask
        logits = tf.matmul(readout, head) + self.head_bias[:, None]  # (slots, batch, 2 heads)
        shape = tf.shape(logits)
        logits = tf.reshape(tf.transpose(logits, [0, 2, 1]), tf.concat(
            [shape[:1], [-1, 2], shape[1:2]], 0))  # (slots, heads, 2, batch)
        return tf.transpose(tf.gather_nd(logits, self._logit_index), [2, 0, 1])

    def macs(self, networks: Sequence[int] | None = None) -> float:
        """Multiply-accumulates per example and time step of this bank's padded layout (or of a
        bank of only ``networks``): what one step of it costs (:func:`bank_macs`)."""
        archs = self.archs if networks is None else [self.archs[k] for k in networks]
        return bank_macs(archs, self.gates, self.embedding_dim, self.io, self.skips,
                         self._options["networks_per_slot"])

    def subset(self, networks: Sequence[int]) -> "NetworkBank":
        """A bank of only ``networks`` (indices into this one, its network ``j`` being
        ``networks[j]``), packed anew, with their current weights. Each network computes what
        it computed here; only the padding around it changes."""
        networks = [int(k) for k in networks]
        bank = NetworkBank([self.archs[k] for k in networks], self.variant, self.vocab_size,
                           [self.seeds[k] for k in networks], **self._options)
        for old, new in _same_weights(self, bank):
            new.assign(regroup(old.numpy(), self.owners(old), bank.owners(new), networks))
        return bank

    def network_weights(self, k: int) -> dict:
        """Network ``k``'s weights in the layout of its Keras model
        (``graph_networks.build_model``): ``embedding`` (vocab, reads); ``cells``, one list per
        layer of one dict per cell (``graph_networks.cells``) with ``kernel`` (masked) and its
        0/1 ``kernel_mask``, ``recurrent_kernel`` and ``bias`` (Keras's: (2, 3 units) for the
        GRU, else (gates * units,)); ``head`` (all units in layer order, 2; masked) with its
        ``head_mask``, and ``head_bias``."""
        arch, place, reads = self.archs[k], self.placements[k], self.reads[k]
        s, gates = place.slot, self.gates
        cells = []
        for l, nodes in enumerate(arch.layers):
            w, pad, start = len(nodes), self.widths[l], place.starts[l]
            # this slot's weights of the layer, converted once for all its cells
            kernel_mask = self.kernel_masks[l][s].numpy()
            kernel = self.kernels[l][s].numpy() * kernel_mask
            recurrents, biases = self.recurrents[l][s].numpy(), self.biases[l][s].numpy()
            recurrent_at = np.ix_(start + np.arange(w), _gate_columns(w, pad, gates, 0, start))
            layer = []
            for c, spec in enumerate(gn.cells(arch, l, self.skips)):
                at = np.ix_(_cell_rows(arch, self.offsets, place, l, spec, reads),
                            _gate_columns(w, pad, gates, c, start))
                bias = biases[:, at[1][0]]
                layer.append({"kernel": kernel[at], "kernel_mask": kernel_mask[at],
                              "recurrent_kernel": recurrents[c][recurrent_at],
                              "bias": bias if self.variant == "gru" else bias[0]})
            cells.append(layer)
        rows = np.ix_(_bank_rows(arch, self.offsets, place, len(arch.layers)),
                      2 * place.head + np.arange(2))
        embedding = self.embedding[s].numpy()
        return {"embedding": embedding[:, place.embedding_start + np.arange(reads)],
                "cells": cells, "head": (self.head_kernel * self.head_mask).numpy()[s][rows],
                "head_mask": self.head_mask.numpy()[s][rows],
                "head_bias": self.head_bias.numpy()[s][rows[1][0]]}

    def to_keras(self, k: int):
        """Network ``k`` as the Keras model of ``graph_networks.build_model``."""
        weights = self.network_weights(k)
        model = gn.build_model(self.archs[k], self.variant, self.vocab_size, seed=0,
                               layout=self.layout, embedding_dim=self.embedding_dim, io=self.io,
                               skips=self.skips, padding=self.padding)
        model.get_layer("embedding").embeddings.assign(weights["embedding"])
        for l, layer in enumerate(weights["cells"]):
            for spec, values in zip(gn.cells(self.archs[k], l, self.skips), layer):
                cell = model.get_layer(spec.name).cell
                cell.kernel.assign(values["kernel"])
                cell.recurrent_kernel.assign(values["recurrent_kernel"])
                cell.bias.assign(values["bias"])
        classifier = model.get_layer("classifier")
        classifier.kernel.assign(weights["head"])
        classifier.bias.assign(weights["head_bias"])
        return model



# --- The recurrence, with a hand-written backward pass --------------------------------------
# Differentiating tf.scan automatically costs about three forward passes: the generated loop
# re-derives every op's gradient, pads every slice's gradient back to full width, and computes
# the recurrent weight's gradient one step at a time. The backward loop below keeps the gates of
# the forward pass and does only the work that must be sequential (the gradient through the
# state); the weight gradients are then one batched matmul over all steps. The whole training
# step of a 50-network GRU bank is 1.24x faster with it (benchmarks/graph_bank.py, 2 CPUs, XLA),
# with the same result to float precision (tests/test_network_bank.py checks it against
# autodiff for every variant).
#
# Shapes: x (time, K, batch, gates * units) is the projected input including its bias; keep
# (time, 1, batch, 1) is False on padding, where the state carries over unchanged; u is the
# masked recurrent kernel (K, units, gates * units); for the GRU, rb (K, 1, 3 * units) is the
# recurrent bias (Keras's reset_after=True). Returns the hidden sequence (time, K, batch, units).

def _shifted(states):
    """The states before each step: zeros, then all but the last."""
    return tf.concat([tf.zeros_like(states[:1]), states[:-1]], axis=0)


def _zero_state(x, units):
    """The initial state (K, batch, units) for the projected inputs ``x``."""
    return tf.zeros(tf.concat([tf.shape(x)[1:3], [units]], 0), x.dtype)


def _kernel_grad(h_prev, d_pre):
    """Gradient of the recurrent kernel from every step at once."""
    return tf.einsum("tkbi,tkbj->kij", h_prev, d_pre)


@tf.autograph.experimental.do_not_convert
def _simple_rnn(x, keep, u, relu):
    @tf.custom_gradient
    def forward(x, u):
        def step(h, elems):
            x_t, keep_t = elems
            a = x_t + tf.matmul(h, u)
            return tf.where(keep_t, tf.nn.relu(a) if relu else tf.tanh(a), h)

        hs = tf.scan(step, (x, keep), initializer=_zero_state(x, u.shape[1]))

        def grad(d_hs):
            def back(carry, elems):
                d_out, keep_t, h = elems
                d_h = carry[0] + d_out
                d_a = d_h * (tf.cast(h > 0, h.dtype) if relu else 1 - h * h)
                return (tf.where(keep_t, tf.matmul(d_a, u, transpose_b=True), d_h),
                        tf.where(keep_t, d_a, 0.0))

            _, d_x = tf.scan(back, (d_hs, keep, hs), reverse=True,
                             initializer=(tf.zeros_like(hs[0]), tf.zeros_like(x[0])))
            return d_x, _kernel_grad(_shifted(hs), d_x)

        return hs, grad

    return forward(x, u)


@tf.autograph.experimental.do_not_convert
def _lstm(x, keep, u):
    @tf.custom_gradient
    def forward(x, u):
        def step(carry, elems):
            h, c = carry[:2]
            x_t, keep_t = elems
            i, f, g, o = tf.split(x_t + tf.matmul(h, u), 4, axis=-1)
            i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
            c_new = f * c + i * g
            tanh_c = tf.tanh(c_new)
            return (tf.where(keep_t, o * tanh_c, h), tf.where(keep_t, c_new, c),
                    i, f, g, o, tanh_c)

        zeros = _zero_state(x, u.shape[1])
        hs, cs, i, f, g, o, tanh_c = tf.scan(step, (x, keep), initializer=(zeros,) * 7)

        def grad(d_hs):
            def back(carry, elems):
                d_h, d_c = carry[:2]
                d_out, keep_t, c_prev, i, f, g, o, tanh_c = elems
                d_h = d_h + d_out
                d_c_new = d_c + d_h * o * (1 - tanh_c * tanh_c)
                d_pre = tf.concat([d_c_new * g * i * (1 - i), d_c_new * c_prev * f * (1 - f),
                                   d_c_new * i * (1 - g * g), d_h * tanh_c * o * (1 - o)], -1)
                return (tf.where(keep_t, tf.matmul(d_pre, u, transpose_b=True), d_h),
                        tf.where(keep_t, d_c_new * f, d_c), tf.where(keep_t, d_pre, 0.0))

            z = tf.zeros_like(hs[0])
            _, _, d_x = tf.scan(back, (d_hs, keep, _shifted(cs), i, f, g, o, tanh_c),
                                reverse=True, initializer=(z, z, tf.zeros_like(x[0])))
            return d_x, _kernel_grad(_shifted(hs), d_x)

        return hs, grad

    return forward(x, u)


@tf.autograph.experimental.do_not_convert
def _gru(x, keep, u, rb):
    @tf.custom_gradient
    def forward(x, u, rb):
        w = u.shape[1]

        def step(carry, elems):
            h = carry[0]
            x_t, keep_t = elems
            r_all = tf.matmul(h, u) + rb
            z = tf.sigmoid(x_t[..., :w] + r_all[..., :w])
            r = tf.sigmoid(x_t[..., w:2 * w] + r_all[..., w:2 * w])
            cand = tf.tanh(x_t[..., 2 * w:] + r * r_all[..., 2 * w:])
            return tf.where(keep_t, z * h + (1 - z) * cand, h), z, r, cand, r_all[..., 2 * w:]

        zeros = _zero_state(x, w)
        hs, z, r, cand, r_cand = tf.scan(step, (x, keep), initializer=(zeros,) * 5)

        def grad(d_hs):
            h_prev = _shifted(hs)

            def back(carry, elems):
                d_out, keep_t, h, z, r, cand, r_cand = elems
                d_h = carry[0] + d_out
                d_cand = d_h * (1 - z) * (1 - cand * cand)
                d_z = d_h * (h - cand) * z * (1 - z)
                d_r = d_cand * r_cand * r * (1 - r)
                d_rec = tf.concat([d_z, d_r, d_cand * r], -1)  # w.r.t. h @ u + rb
                d_x = tf.concat([d_z, d_r, d_cand], -1)
                d_h_prev = d_h * z + tf.matmul(d_rec, u, transpose_b=True)
                return (tf.where(keep_t, d_h_prev, d_h), tf.where(keep_t, d_x, 0.0),
                        tf.where(keep_t, d_rec, 0.0))

            z0 = tf.zeros_like(hs[0])
            _, d_x, d_rec = tf.scan(back, (d_hs, keep, h_prev, z, r, cand, r_cand), reverse=True,
                                    initializer=(z0, tf.zeros_like(x[0]), tf.zeros_like(x[0])))
            return d_x, _kernel_grad(h_prev, d_rec), tf.reduce_sum(d_rec, axis=[0, 2])[:, None]

        return hs, grad

    return forward(x, u, rb)


def recurrence(variant: str, x, keep, u, rb=None):
    """The hidden sequence of one bank layer (shapes above); differentiable with respect to
    ``x``, ``u`` and (GRU only; ignored otherwise) ``rb`` through the hand-written backward
    pass."""
    if variant in ("rnn-tanh", "rnn-relu"):
        return _simple_rnn(x, keep, u, relu=variant == "rnn-relu")
    if variant == "lstm":
        return _lstm(x, keep, u)
    return _gru(x, keep, u, rb)


def recurrence_autodiff(variant: str, x, keep, u, rb=None):
    """The same as :func:`recurrence`, differentiated by TensorFlow: the reference the tests
    compare the hand-written backward pass with."""
    w = u.shape[1]

    def step(states, elems):
        x_t, keep_t = elems
        h = states[0]
        if variant in ("rnn-tanh", "rnn-relu"):
            a = x_t + tf.matmul(h, u)
            new = (tf.nn.relu(a) if variant == "rnn-relu" else tf.tanh(a),)
        elif variant == "lstm":
            i, f, g, o = tf.split(x_t + tf.matmul(h, u), 4, axis=-1)
            c = tf.sigmoid(f) * states[1] + tf.sigmoid(i) * tf.tanh(g)
            new = (tf.sigmoid(o) * tf.tanh(c), c)
        else:
            r_all = tf.matmul(h, u) + rb
            z = tf.sigmoid(x_t[..., :w] + r_all[..., :w])
            r = tf.sigmoid(x_t[..., w:2 * w] + r_all[..., w:2 * w])
            new = (z * h + (1 - z) * tf.tanh(x_t[..., 2 * w:] + r * r_all[..., 2 * w:]),)
        return tuple(tf.where(keep_t, n, s) for n, s in zip(new, states))

    zeros = _zero_state(x, w)
    init = (zeros, zeros) if variant == "lstm" else (zeros,)
    return tf.scan(step, (x, keep), initializer=init)[0]


def _same_weights(bank: NetworkBank, other: NetworkBank):
    """Pairs of ``other``'s weights and ``bank``'s of the same name (layer ``l``'s kernel, ...):
    a bank of shallower networks has fewer layers."""
    mine = {w.name: w for w in bank.weights}
    return [(mine[w.name], w) for w in other.weights]


def regroup(values, owners, new_owners, networks: Sequence[int]) -> np.ndarray:
    """The entries of ``networks`` of one bank weight (``values``, owned as ``owners`` says)
    laid out as another bank's (``new_owners``, where network ``j`` is ``networks[j]``).

    Every layout places a network's units, gates, cells and classifier rows in the same
    relative order (only the offsets and the padding between them change), so a network's
    entries, read in row-major order, correspond one to one between any two layouts."""
    shape = np.shape(new_owners)
    owners, new_owners = np.ravel(owners), np.ravel(new_owners)
    n = len(networks)
    rename = np.full(max(owners.max(), max(networks)) + 1, n)
    rename[np.asarray(networks, int)] = np.arange(n)
    renamed = rename[owners]
    counts = np.bincount(renamed, minlength=n + 1)[:n]
    if not np.array_equal(counts, np.bincount(new_owners, minlength=n + 1)[:n]):
        raise ValueError("the two layouts do not hold the same networks.")
    # stable sorts keep each network's entries in row-major order; unowned ones sort last
    src = np.argsort(renamed, kind="stable")[:counts.sum()]
    dst = np.argsort(new_owners, kind="stable")[:counts.sum()]
    out = np.zeros(new_owners.shape, np.asarray(values).dtype)
    out[dst] = np.ravel(values)[src]
    return out.reshape(shape)


def move_adam_state(old: keras.optimizers.Adam, old_bank: NetworkBank,
                    new: keras.optimizers.Adam, new_bank: NetworkBank, networks):
    """Give ``new`` (built on ``new_bank``'s variables, a :meth:`NetworkBank.subset` of
    ``old_bank`` for ``networks``) the step count and the moments ``old`` holds for them, so
    that their training goes on as if uninterrupted."""
    if not (isinstance(old, keras.optimizers.Adam) and isinstance(new, keras.optimizers.Adam)):
        raise TypeError("move_adam_state moves the moments of Adam optimizers only.")
    new.iterations.assign(old.iterations)
    for old_var, new_var in _same_weights(old_bank, new_bank):
        i, j = old._get_variable_index(old_var), new._get_variable_index(new_var)
        for moments in ("_momentums", "_velocities"):
            getattr(new, moments)[j].assign(regroup(
                getattr(old, moments)[i].numpy(), old_bank.owners(old_var),
                new_bank.owners(new_var), networks))


def _per_network_clip(grads, owners, networks: int, max_norm):
    """Scale each network's entries of the gradients so that their global norm is at most
    ``max_norm``. ``owners``: for each gradient, the network owning each entry (``networks``:
    none; such entries are structurally absent and have zero gradient)."""
    grads = [tf.convert_to_tensor(g) for g in grads]
    squares = tf.add_n([tf.math.unsorted_segment_sum(tf.reshape(tf.square(g), [-1]),
                                                     tf.reshape(o, [-1]), networks + 1)
                        for g, o in zip(grads, owners)])
    scale = tf.minimum(1.0, max_norm / tf.maximum(tf.sqrt(squares), 1e-12))
    return [g * tf.gather(scale, o) for g, o in zip(grads, owners)]


def per_network_loss(logits, labels):
    """Mean cross-entropy of each network over the batch's examples: shape ``(K,)``. A row
    labelled ``NO_EXAMPLE`` is filler (see ``reber_batches.batches``' ``full_batches``) and counts for
    nothing."""
    labels = tf.cast(labels, tf.int32)
    real = tf.cast(labels != NO_EXAMPLE, logits.dtype)[:, None]
    labels = tf.broadcast_to(tf.maximum(labels, 0)[:, None], tf.shape(logits)[:2])
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    return tf.reduce_sum(losses * real, axis=0) / tf.maximum(tf.reduce_sum(real), 1.0)


def make_train_step(bank: NetworkBank, optimizer, clipnorm: float = 5.0,
                    jit_compile: bool = False):
    """A compiled step ``(tokens, labels) -> per-network losses`` that updates every network
    of ``bank`` with its own gradient, clipped to ``clipnorm`` by its own global norm."""
    variables = bank.trainable_variables
    owners = [bank.owners(v) for v in variables]
    optimizer.build(variables)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None], tf.int32)], jit_compile=jit_compile,
                 autograph=False)
    def train_step(tokens, labels):
        with tf.GradientTape() as tape:
            losses = per_network_loss(bank(tokens), labels)
            total = tf.reduce_sum(losses)
        grads = _per_network_clip(tape.gradient(total, variables), owners, bank.size,
                                  clipnorm)
        optimizer.apply_gradients(zip(grads, variables))
        return losses

    return train_step


def train(bank: NetworkBank, x_train, y_train, x_test, y_test, epochs: int = 15,
          batch_size: int = 128, learning_rate: float = 1e-3, clipnorm: float = 5.0,
          patience: int = 0, min_delta: float = 1e-4, seed: int = 0,
          jit_compile: bool = False, bucket_width: int = 0, compact: float = 0.75,
          test_every_epoch: bool = False, full_batches: bool = False, log=None) -> dict:
    """Train every network of ``bank`` on the same shuffled batches (thesis: Adam 1e-3, batch 128,
    15 epochs, clipping 5); returns per-network ``test_acc``, ``test_loss``, ``epochs_trained``
    and ``train_loss`` (each epoch's mean training loss, NaN once stopped), and the bank's
    ``compactions``; with ``test_every_epoch``, also ``test_acc_history`` (each epoch's test
    accuracy, NaN once stopped: learning curves, at the cost of a test pass per epoch).

    ``patience > 0`` applies Keras ``EarlyStopping(monitor="loss")`` semantics to each network
    on its own: a network stops when its epoch training loss has not improved by ``min_delta``
    for ``patience`` epochs, and its result is its test metric at that epoch. The bank stops
    when all have stopped. Stopped networks still cost their share of every step until the
    bank is repacked without them (:meth:`NetworkBank.subset`, with their Adam moments): it is,
    as soon as that leaves at most ``compact`` of the bank's arithmetic (0: never).
    ``bucket_width`` batches strings of similar length, and ``full_batches`` fills partial
    batches so that an XLA-compiled step compiles for fewer shapes (see :func:`batches`).
    A bank with unmasked padding is tested, as the thesis did, in shuffled batches of 128."""
    if not 0 <= compact <= 1:
        raise ValueError(f"compact must be a fraction in [0, 1]; got {compact}.")

    def compile_steps(bank):
        optimizer = keras.optimizers.Adam(learning_rate)
        train_step = make_train_step(bank, optimizer, clipnorm, jit_compile)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32),
                                      tf.TensorSpec([None], tf.int32)], autograph=False)
        def eval_step(tokens, labels):
            logits = bank(tokens)
            correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                       labels[:, None]), tf.float32)
            loss_sum = per_network_loss(logits, labels) * tf.cast(tf.shape(labels)[0],
                                                                  tf.float32)
            return loss_sum, tf.reduce_sum(correct, 0)

        return optimizer, train_step, eval_step

    def evaluate(eval_step, x, y):
        if bank.padding == "unmasked":
            # A string's result depends on its batch's longest string: the thesis's shuffled
            # batches of 128.
            chunks = batches(x, y, 128, seed + 1)
        else:
            chunks = ((trim(tf.constant(x[i:i + 512])), tf.constant(y[i:i + 512], tf.int32))
                      for i in range(0, len(x), 512))
        loss = np.zeros(bank.size)
        correct = np.zeros(bank.size)
        for tokens, labels in chunks:
            l_sum, c_sum = eval_step(tokens, labels)
            loss += l_sum.numpy()
            correct += c_sum.numpy()
        return loss / len(x), correct / len(x)

    dataset = batches(x_train, y_train, batch_size, seed, bucket_width, full_batches)
    optimizer, train_step, eval_step = compile_steps(bank)
    k_count = bank.size
    members = np.arange(k_count)  # the original index of each network of the current bank
    stopper = EarlyStopping(k_count, patience, min_delta)
    stopped_at = np.zeros(k_count, int)
    result_loss, result_acc = np.zeros(k_count), np.zeros(k_count)
    history, test_history, compactions = [], [], []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        sums, steps = np.zeros(bank.size), 0
        for tokens, labels in dataset:
            sums += train_step(tokens, labels).numpy()
            steps += 1
        epoch_loss = np.full(k_count, np.nan)
        active = stopped_at == 0
        epoch_loss[members] = sums / steps
        epoch_loss[~active] = np.nan  # stopped, but not yet repacked away
        history.append(epoch_loss)
        stopping = active & (stopper.update(epoch_loss) | (epoch == epochs))
        if stopping.any() or test_every_epoch:
            test_loss, test_acc = evaluate(eval_step, x_test, y_test)
        if test_every_epoch:
            test_history.append(np.full(k_count, np.nan))
            test_history[-1][members] = test_acc
            test_history[-1][~active] = np.nan
        if stopping.any():
            now = stopping[members]
            result_loss[members[now]], result_acc[members[now]] = test_loss[now], test_acc[now]
            stopped_at[stopping] = epoch
        if log:
            log(f"epoch {epoch}: mean train loss {epoch_loss[active].mean():.4f}, "
                f"{int((stopped_at == 0).sum())} of {k_count} networks still training, "
                f"{time.perf_counter() - start:.0f} s")
        if (stopped_at > 0).all():
            break
        training = np.flatnonzero(stopped_at[members] == 0)
        # the arithmetic a bank of the networks still training would leave (none stopped: no)
        left = bank.macs(training) / bank.macs() if len(training) < bank.size else np.inf
        if compact and left <= compact:
            smaller = bank.subset(training)
            new_optimizer, train_step, eval_step = compile_steps(smaller)
            move_adam_state(optimizer, bank, new_optimizer, smaller, training)
            if log:
                log(f"repacked {len(training)} of {bank.size} networks: "
                    f"{left:.2f}x the arithmetic")
            compactions.append({"epoch": epoch, "networks": len(training), "arithmetic": left})
            bank, optimizer, members = smaller, new_optimizer, members[training]
    return {"test_acc": result_acc, "test_loss": result_loss, "epochs_trained": stopped_at,
            "train_loss": np.array(history), "compactions": compactions,
            **({"test_acc_history": np.array(test_history)} if test_every_epoch else {}),
            "train_time_s": time.perf_counter() - start}
