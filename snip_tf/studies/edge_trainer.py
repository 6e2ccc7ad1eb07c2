"""Graph networks trained one at a time as compiled loops over their own connections (Numba).

A graph network of the study has 10-50 units and a few hundred connections. As a batched
TensorFlow computation (the retired ``NetworkBank``, commit 8ae92d8) it paid for the padding of
a shared layout and for dense masked kernels: in a packed bank only 3.6 % of the input kernels'
entries were connections (measured by the retired ``benchmarks/graph_step_parts.py``,
docs/results/thesis-study2.md). Here each network is a list of its
connections, and one Numba-compiled function runs a whole training batch on it, forward and
backward through time, with the examples of the batch as the innermost, vectorized loop:

* every unit's pre-activation is its bias plus, for each incoming connection, the weight times the
  source's row (``batch`` floats): the embedding or an earlier layer's unit at this step, or a unit
  of its own layer at the previous step. Nothing is computed for an absent connection;
* the backward pass runs the steps in reverse and the layers from last to first, so a unit's
  gradient is complete (from its readers in later layers at this step and from its own layer at
  the next) before it is used;
* gradient clipping by the network's global norm and Keras's Adam follow, in the same function;
* ``tanh`` and the sigmoid (as ``0.5 + 0.5 tanh(x / 2)``) are Eigen's rational approximation of
  ``tanh``, the one TensorFlow's CPU kernels use, so that the loops vectorize;
* networks train in parallel threads (the compiled functions release the GIL), each on the same
  batches.

It is the same model as the network's Keras model (``graph_networks.build_model``): the tests
check that its logits, and its losses and weights after training steps, agree with Keras's to
float rounding. It covers ``skips="input"`` and ``padding="masked"`` (the study's defaults);
the gate layout, ``io`` and the initialization come with the weights it is built from.

Example:

>>> import networkx as nx
>>> from snip_tf.studies import graph_networks as gn
>>> arch = gn.architecture(nx.path_graph(4))
>>> model = gn.build_model(arch, "gru", vocab_size=8, seed=0)
>>> net = EdgeNetwork.from_weights("gru", gn.network_weights(model, arch))
>>> tokens = np.array([[1, 2, 3, 0]])
>>> np.allclose(net.logits(tokens), model(tokens), atol=1e-5)
True
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import time

import numba
import numpy as np

from snip_tf.studies import reber_batches as rb
from snip_tf.studies.graph_networks import GATES

KINDS = {"rnn-tanh": 0, "rnn-relu": 1, "lstm": 2, "gru": 3}
# theta's parts, in order: embedding, input connections, recurrent connections, input biases,
# recurrent biases (GRU), classifier kernel (readout units x 2), classifier bias.
PARTS = ("embedding", "input", "recurrent", "bias", "recurrent_bias", "head", "head_bias")

# No cache=True: code loaded from Numba's cache rounded differently from the same functions
# compiled afresh (measured: a 3-network study gave other accuracies on every network, e.g.
# 0.9624 against 0.9589, once a first run had filled the cache), so a study's results would
# depend on whether one ran before. Compiled afresh, every run gives the same results; it costs
# about 10 s per process.
_jit = numba.njit(nogil=True, fastmath=True, error_model="numpy")
_inline = numba.njit(inline="always", fastmath=True, error_model="numpy")

_F = np.float32
_ONE, _HALF, _CLAMP = _F(1.0), _F(0.5), _F(7.90531110763549805)


@_inline
def _tanh(x):
    # Eigen's generic_fast_tanh_float: a 13/6-degree rational function on [-7.9, 7.9].
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = x2 * _F(-2.76076847742355e-16) + _F(2.00018790482477e-13)
    p = x2 * p + _F(-8.60467152213735e-11)
    p = x2 * p + _F(5.12229709037114e-08)
    p = x2 * p + _F(1.48572235717979e-05)
    p = x2 * p + _F(6.37261928875436e-04)
    p = x2 * p + _F(4.89352455891786e-03)
    q = x2 * _F(1.19825839466702e-06) + _F(1.18534705686654e-04)
    q = x2 * q + _F(2.26843463243900e-03)
    q = x2 * q + _F(4.89352518554385e-03)
    return x * p / q


@_inline
def _sigmoid(x):
    return _HALF + _HALF * _tanh(_HALF * x)


@_jit
def _batch(kind, E, U, G, layer_starts, in_ptr, in_src, in_dst, rec_ptr, rec_src, rec_dst,
           head_units, offsets, theta, tokens, labels, grad, train, logits_out):
    """One batch: returns (summed loss, correct predictions, examples counted); with ``train``,
    adds the gradient of the batch's mean loss to ``grad``; fills ``logits_out`` (2, batch)
    unless it is empty. ``tokens`` (batch, time), right-padded
    with 0; a label of -1 marks a filler row that counts for nothing."""
    o_emb, o_in, o_rec, o_bias, o_rbias, o_head, o_hbias = (
        offsets[0], offsets[1], offsets[2], offsets[3], offsets[4], offsets[5], offsets[6])
    B, T = tokens.shape
    L = layer_starts.shape[0] - 1
    P = G * U
    lstm, gru = kind == 2, kind == 3
    keep = np.empty((T, B), np.bool_)
    for t in range(T):
        for b in range(B):
            keep[t, b] = tokens[b, t] != 0
    # S[t + 1]: what step t reads and writes, the embedding (E rows) then every unit's state.
    S = np.zeros((T + 1, E + U, B), np.float32)
    A = np.empty((T, P, B), np.float32)  # gates after their activation
    RC = np.empty((T if gru else 1, U, B), np.float32)  # GRU: the candidate's recurrent part
    C = np.zeros((T + 1 if lstm else 1, U, B), np.float32)  # LSTM: cell states
    TC = np.empty((T if lstm else 1, U, B), np.float32)  # LSTM: tanh of the cell states
    pre = np.empty((P, B), np.float32)
    rec = np.empty((P if gru else 1, B), np.float32)
    for t in range(T):
        now, before = S[t + 1], S[t]
        for d in range(E):
            for b in range(B):
                now[d, b] = theta[o_emb + tokens[b, t] * E + d]
        for l in range(L):
            u0, u1 = layer_starts[l], layer_starts[l + 1]
            for g in range(G):
                for i in range(u0, u1):
                    p = g * U + i
                    value = theta[o_bias + p]
                    for b in range(B):
                        pre[p, b] = value
                    if gru:
                        value = theta[o_rbias + p]
                        for b in range(B):
                            rec[p, b] = value
            for e in range(in_ptr[l], in_ptr[l + 1]):
                w, s, p = theta[o_in + e], in_src[e], in_dst[e]
                for b in range(B):
                    pre[p, b] += w * now[s, b]
            for e in range(rec_ptr[l], rec_ptr[l + 1]):
                w, s, p = theta[o_rec + e], E + rec_src[e], rec_dst[e]
                if gru:
                    for b in range(B):
                        rec[p, b] += w * before[s, b]
                else:
                    for b in range(B):
                        pre[p, b] += w * before[s, b]
            for i in range(u0, u1):
                j = E + i
                if kind == 0:
                    for b in range(B):
                        h = _tanh(pre[i, b])
                        now[j, b] = h if keep[t, b] else before[j, b]
                elif kind == 1:
                    for b in range(B):
                        h = pre[i, b] if pre[i, b] > 0 else _F(0.0)
                        now[j, b] = h if keep[t, b] else before[j, b]
                elif lstm:
                    for b in range(B):
                        ig = _sigmoid(pre[i, b])
                        fg = _sigmoid(pre[U + i, b])
                        gg = _tanh(pre[2 * U + i, b])
                        og = _sigmoid(pre[3 * U + i, b])
                        c = fg * C[t, i, b] + ig * gg
                        tc = _tanh(c)
                        A[t, i, b], A[t, U + i, b] = ig, fg
                        A[t, 2 * U + i, b], A[t, 3 * U + i, b] = gg, og
                        TC[t, i, b] = tc
                        C[t + 1, i, b] = c if keep[t, b] else C[t, i, b]
                        now[j, b] = og * tc if keep[t, b] else before[j, b]
                else:
                    for b in range(B):
                        z = _sigmoid(pre[i, b] + rec[i, b])
                        r = _sigmoid(pre[U + i, b] + rec[U + i, b])
                        rc = rec[2 * U + i, b]
                        cand = _tanh(pre[2 * U + i, b] + r * rc)
                        A[t, i, b], A[t, U + i, b], A[t, 2 * U + i, b] = z, r, cand
                        RC[t, i, b] = rc
                        h = z * before[j, b] + (_ONE - z) * cand
                        now[j, b] = h if keep[t, b] else before[j, b]

    # The classifier on the final states (padding carried each string's last state over).
    final = S[T]
    logits = np.empty((2, B), np.float32)
    for c in range(2):
        value = theta[o_hbias + c]
        for b in range(B):
            logits[c, b] = value
    for k in range(head_units.shape[0]):
        s = E + head_units[k]
        w0, w1 = theta[o_head + 2 * k], theta[o_head + 2 * k + 1]
        for b in range(B):
            logits[0, b] += w0 * final[s, b]
            logits[1, b] += w1 * final[s, b]
    if logits_out.shape[1]:
        logits_out[:, :] = logits
    loss, correct, counted = 0.0, 0, 0
    d_logits = np.zeros((2, B), np.float32)
    for b in range(B):
        y = labels[b]
        if y < 0:
            continue
        counted += 1
        l0, l1 = np.float64(logits[0, b]), np.float64(logits[1, b])
        top = max(l0, l1)
        lse = top + math.log(math.exp(l0 - top) + math.exp(l1 - top))
        loss += lse - (l1 if y == 1 else l0)
        correct += int((1 if l1 > l0 else 0) == y)
        d_logits[0, b] = math.exp(l0 - lse) - (1.0 if y == 0 else 0.0)
        d_logits[1, b] = math.exp(l1 - lse) - (1.0 if y == 1 else 0.0)
    if not train or counted == 0:
        return loss, correct, counted

    scale = _F(1.0 / counted)
    for c in range(2):
        total = _F(0.0)
        for b in range(B):
            d_logits[c, b] *= scale
            total += d_logits[c, b]
        grad[o_hbias + c] += total
    dH = np.zeros((U, B), np.float32)  # gradient of each unit's state after the current step
    for k in range(head_units.shape[0]):
        u, s = head_units[k], E + head_units[k]
        w0, w1 = theta[o_head + 2 * k], theta[o_head + 2 * k + 1]
        g0, g1 = _F(0.0), _F(0.0)
        for b in range(B):
            g0 += d_logits[0, b] * final[s, b]
            g1 += d_logits[1, b] * final[s, b]
            dH[u, b] += w0 * d_logits[0, b] + w1 * d_logits[1, b]
        grad[o_head + 2 * k] += g0
        grad[o_head + 2 * k + 1] += g1
    dC = np.zeros((U if lstm else 1, B), np.float32)
    d_pre = np.empty((P, B), np.float32)
    d_rec = np.empty((P if gru else 1, B), np.float32)
    d_before = np.empty((U, B), np.float32)  # gradient of the states before the step
    d_embedded = np.empty((E, B), np.float32)
    for t in range(T - 1, -1, -1):
        now, before = S[t + 1], S[t]
        d_embedded[:] = 0
        for l in range(L - 1, -1, -1):
            u0, u1 = layer_starts[l], layer_starts[l + 1]
            for i in range(u0, u1):
                j = E + i
                if kind <= 1:
                    for b in range(B):
                        h, dh = now[j, b], dH[i, b]
                        da = dh * (_ONE - h * h) if kind == 0 else (dh if h > 0 else _F(0.0))
                        d_pre[i, b] = da if keep[t, b] else _F(0.0)
                        d_before[i, b] = _F(0.0) if keep[t, b] else dh
                elif lstm:
                    for b in range(B):
                        dh = dH[i, b]
                        ig, fg = A[t, i, b], A[t, U + i, b]
                        gg, og = A[t, 2 * U + i, b], A[t, 3 * U + i, b]
                        tc = TC[t, i, b]
                        dc = dC[i, b] + dh * og * (_ONE - tc * tc)
                        kp = keep[t, b]
                        d_pre[i, b] = dc * gg * ig * (_ONE - ig) if kp else _F(0.0)
                        d_pre[U + i, b] = dc * C[t, i, b] * fg * (_ONE - fg) if kp else _F(0.0)
                        d_pre[2 * U + i, b] = dc * ig * (_ONE - gg * gg) if kp else _F(0.0)
                        d_pre[3 * U + i, b] = dh * tc * og * (_ONE - og) if kp else _F(0.0)
                        dC[i, b] = dc * fg if kp else dC[i, b]
                        d_before[i, b] = _F(0.0) if kp else dh
                else:
                    for b in range(B):
                        dh = dH[i, b]
                        z, r, cand = A[t, i, b], A[t, U + i, b], A[t, 2 * U + i, b]
                        d_cand = dh * (_ONE - z) * (_ONE - cand * cand)
                        d_z = dh * (before[j, b] - cand) * z * (_ONE - z)
                        d_r = d_cand * RC[t, i, b] * r * (_ONE - r)
                        kp = keep[t, b]
                        d_pre[i, b] = d_z if kp else _F(0.0)
                        d_pre[U + i, b] = d_r if kp else _F(0.0)
                        d_pre[2 * U + i, b] = d_cand if kp else _F(0.0)
                        d_rec[i, b] = d_z if kp else _F(0.0)
                        d_rec[U + i, b] = d_r if kp else _F(0.0)
                        d_rec[2 * U + i, b] = d_cand * r if kp else _F(0.0)
                        d_before[i, b] = dh * z if kp else dh
            for g in range(G):
                for i in range(u0, u1):
                    p = g * U + i
                    total = _F(0.0)
                    for b in range(B):
                        total += d_pre[p, b]
                    grad[o_bias + p] += total
                    if gru:
                        total = _F(0.0)
                        for b in range(B):
                            total += d_rec[p, b]
                        grad[o_rbias + p] += total
            for e in range(in_ptr[l], in_ptr[l + 1]):
                w, s, p = theta[o_in + e], in_src[e], in_dst[e]
                total = _F(0.0)
                for b in range(B):
                    total += d_pre[p, b] * now[s, b]
                grad[o_in + e] += total
                if s < E:
                    for b in range(B):
                        d_embedded[s, b] += w * d_pre[p, b]
                else:
                    for b in range(B):
                        dH[s - E, b] += w * d_pre[p, b]
            d_into = d_rec if gru else d_pre
            for e in range(rec_ptr[l], rec_ptr[l + 1]):
                w, u, p = theta[o_rec + e], rec_src[e], rec_dst[e]
                total = _F(0.0)
                for b in range(B):
                    total += d_into[p, b] * before[E + u, b]
                    d_before[u, b] += w * d_into[p, b]
                grad[o_rec + e] += total
            for i in range(u0, u1):
                for b in range(B):
                    dH[i, b] = d_before[i, b]
        for b in range(B):
            row = o_emb + tokens[b, t] * E
            for d in range(E):
                grad[row + d] += d_embedded[d, b]
    return loss, correct, counted


@_jit
def _run(kind, E, U, G, layer_starts, in_ptr, in_src, in_dst, rec_ptr, rec_src, rec_dst,
         head_units, offsets, theta, m, v, step, tokens, labels, sizes, train, learning_rate,
         clipnorm, beta_1, beta_2, epsilon, losses, logits_out):
    """Every batch (``tokens[k, :sizes[k, 0], :sizes[k, 1]]``, ``labels[k, :sizes[k, 0]]``) in
    turn. With ``train``: the batch's mean loss into ``losses[k]``, its gradient clipped to
    ``clipnorm`` by its global norm, then Keras's Adam step. Without: nothing changes, and the
    first batch's logits go into ``logits_out`` unless it is empty. Returns the optimizer's
    step count, the summed loss and the correct predictions. (One entry point for all uses, so
    that Numba compiles the batch once.)"""
    grad = np.zeros(theta.shape[0] if train else 0, np.float32)
    n = theta.shape[0]
    loss_sum, correct_sum = 0.0, 0
    for k in range(sizes.shape[0]):
        rows, length = sizes[k, 0], sizes[k, 1]
        if train:
            grad[:] = 0
        loss, correct, counted = _batch(
            kind, E, U, G, layer_starts, in_ptr, in_src, in_dst, rec_ptr, rec_src, rec_dst,
            head_units, offsets, theta, tokens[k, :rows, :length], labels[k, :rows], grad,
            train, logits_out if k == 0 else logits_out[:, :0])
        loss_sum += loss
        correct_sum += correct
        if not train:
            continue
        losses[k] = loss / max(counted, 1)
        squares = 0.0
        for x in range(n):
            squares += np.float64(grad[x]) * grad[x]
        scale = _F(min(1.0, clipnorm / max(math.sqrt(squares), 1e-12)))
        step += 1
        alpha = _F(learning_rate * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step))
        b1, b2, eps = _F(1.0 - beta_1), _F(1.0 - beta_2), _F(epsilon)
        for x in range(n):
            g = grad[x] * scale
            m[x] += (g - m[x]) * b1
            v[x] += (g * g - v[x]) * b2
            theta[x] -= m[x] * alpha / (math.sqrt(v[x]) + eps)
    return step, loss_sum, correct_sum


@dataclasses.dataclass
class Batches:
    """Batches of right-padded tokens laid out for the compiled loops: batch ``k`` is
    ``tokens[k, :sizes[k, 0], :sizes[k, 1]]`` with ``labels[k, :sizes[k, 0]]``."""

    tokens: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray

    @classmethod
    def stack(cls, batches) -> "Batches":
        """From ``(tokens, labels)`` pairs (arrays or tensors) of any shapes."""
        batches = [(np.asarray(t, np.int32), np.asarray(y, np.int32)) for t, y in batches]
        sizes = np.array([t.shape for t, _ in batches], np.int64).reshape(-1, 2)
        tokens = np.zeros((len(batches), *sizes.max(axis=0, initial=0)), np.int32)
        labels = np.full(tokens.shape[:2], -1, np.int32)
        for k, (t, y) in enumerate(batches):
            tokens[k, :t.shape[0], :t.shape[1]] = t
            labels[k, :len(y)] = y
        return cls(tokens, labels, sizes)

    def __len__(self):
        return len(self.sizes)


def _pre_index(widths, layer: int, columns) -> np.ndarray:
    """Pre-activation index (gate * units + unit) of the Keras kernel columns ``columns`` of
    ``layer`` in a network of layers ``widths``."""
    gate, unit = np.divmod(np.asarray(columns), widths[layer])
    return gate * sum(widths) + sum(widths[:layer]) + unit


class EdgeNetwork:
    """One graph network as lists of its connections and a flat vector ``theta`` of its
    parameters (``PARTS``, in that order), trained by compiled loops (see the module's
    docstring).

    Units are numbered layer by layer; a pre-activation by ``gate * units + unit``. A
    connection reads a source row (``< embedding_dim``: an embedding column; else
    ``embedding_dim + unit``) into a pre-activation; recurrent ones read a unit of the same layer
    at the previous step. Build one from Keras-layout weights with :meth:`from_weights`
    (``graph_networks.network_weights`` or ``initial_weights``); :meth:`weights` gives them back
    in that layout."""

    def __init__(self, variant: str, vocab_size: int, embedding_dim: int, widths,
                 input_edges, recurrent_edges, head_units, input_weights=None,
                 recurrent_weights=None):
        if variant not in KINDS:
            raise ValueError(f"variant must be one of {sorted(KINDS)}; got {variant!r}.")
        self.variant, self.gates = variant, GATES[variant]
        self.vocab_size, self.embedding_dim = int(vocab_size), int(embedding_dim)
        self.widths = [int(w) for w in widths]
        self.units = sum(self.widths)
        self.layer_starts = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)
        self.in_ptr, self.in_src, self.in_dst, input_weights = self._edge_arrays(
            input_edges, input_weights)
        self.rec_ptr, self.rec_src, self.rec_dst, recurrent_weights = self._edge_arrays(
            recurrent_edges, recurrent_weights)
        self.head_units = np.asarray(head_units, np.int64)
        sizes = [self.vocab_size * self.embedding_dim, len(self.in_src), len(self.rec_src),
                 self.gates * self.units, self.gates * self.units if variant == "gru" else 0,
                 2 * len(self.head_units), 2]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.theta = np.zeros(self.offsets[-1], np.float32)
        for name, values in (("input", input_weights), ("recurrent", recurrent_weights)):
            if values is not None:
                self.part(name)[:] = values
        self.reset_optimizer()

    def _edge_arrays(self, edges, weights=None):
        """``(layer, source, target)`` triples as arrays sorted by layer, target, source, with
        each layer's first index (``ptr``), and their ``weights`` (if given) in that order."""
        edges = np.asarray(edges, np.int64).reshape(-1, 3)
        order = np.lexsort((edges[:, 1], edges[:, 2], edges[:, 0]))
        edges = edges[order]
        ptr = np.searchsorted(edges[:, 0], np.arange(len(self.widths) + 1)).astype(np.int64)
        weights = None if weights is None else np.asarray(weights, np.float32)[order]
        return ptr, edges[:, 1].copy(), edges[:, 2].copy(), weights

    def pre_index(self, layer: int, columns) -> np.ndarray:
        """Pre-activation index of columns of ``layer``'s Keras kernel ``(rows, gates * w)``."""
        return _pre_index(self.widths, layer, columns)

    def part(self, name: str) -> np.ndarray:
        """A view of one of ``PARTS`` of ``theta``."""
        i = PARTS.index(name)
        return self.theta[self.offsets[i]:self.offsets[i + 1]]

    def _args(self):
        return (KINDS[self.variant], self.embedding_dim, self.units, self.gates,
                self.layer_starts, self.in_ptr, self.in_src, self.in_dst, self.rec_ptr,
                self.rec_src, self.rec_dst, self.head_units, self.offsets, self.theta)

    @classmethod
    def from_weights(cls, variant: str, weights: dict) -> "EdgeNetwork":
        """From one network's weights as ``graph_networks.network_weights`` gives them: every
        unmasked kernel entry becomes a connection, and so does every recurrent entry
        (hidden-to-hidden is dense within a layer); the classifier keeps its unmasked rows."""
        cells = weights["cells"]
        if any(len(layer) != 1 for layer in cells):
            raise ValueError("EdgeNetwork needs one cell per layer (skips='input'); use the "
                             "Keras trainer for skips='separate'.")
        vocab, embedding_dim = np.shape(weights["embedding"])
        widths = [np.shape(layer[0]["recurrent_kernel"])[0] for layer in cells]
        starts = np.concatenate([[0], np.cumsum(widths)])
        found = {"input": ([], []), "recurrent": ([], [])}  # (layer, source, target), weight
        for l, (cell,) in enumerate(cells):
            rows, cols = np.nonzero(cell["kernel_mask"])
            sources = rows if l == 0 else embedding_dim + rows
            r_rows, r_cols = np.indices(np.shape(cell["recurrent_kernel"])).reshape(2, -1)
            for name, src, cols_, values in (
                    ("input", sources, cols, cell["kernel"][rows, cols]),
                    ("recurrent", starts[l] + r_rows, r_cols,
                     cell["recurrent_kernel"][r_rows, r_cols])):
                edges, weights_ = found[name]
                edges.extend(zip([l] * len(src), src, _pre_index(widths, l, cols_)))
                weights_.extend(values)
        read = np.flatnonzero(np.asarray(weights["head_mask"])[:, 0])
        (input_edges, input_weights), (recurrent_edges, recurrent_weights) = found.values()
        net = cls(variant, vocab, embedding_dim, widths, input_edges, recurrent_edges, read,
                  input_weights, recurrent_weights)
        net.part("embedding")[:] = np.ravel(weights["embedding"])
        for l, (cell,) in enumerate(cells):
            at = net.pre_index(l, np.arange(net.gates * widths[l]))
            bias = np.asarray(cell["bias"])
            net.part("bias")[at] = bias[0] if variant == "gru" else bias
            if variant == "gru":
                net.part("recurrent_bias")[at] = bias[1]
        net.part("head")[:] = np.ravel(np.asarray(weights["head"])[read])
        net.part("head_bias")[:] = weights["head_bias"]
        return net

    def weights(self) -> dict:
        """The parameters in the layout of ``graph_networks.network_weights``."""
        E, gates = self.embedding_dim, self.gates
        layer_of = {name: np.repeat(np.arange(len(self.widths)), np.diff(ptr))
                    for name, ptr in (("input", self.in_ptr), ("recurrent", self.rec_ptr))}
        cells = []
        for l, w in enumerate(self.widths):
            start = self.layer_starts[l]
            kernel = np.zeros((E if l == 0 else start, gates * w), np.float32)
            mask = np.zeros_like(kernel)
            recurrent = np.zeros((w, gates * w), np.float32)
            for name, src, dst, target in (
                    ("input", self.in_src, self.in_dst, kernel),
                    ("recurrent", self.rec_src, self.rec_dst, recurrent)):
                edges = np.flatnonzero(layer_of[name] == l)
                gate, unit = np.divmod(dst[edges], self.units)
                cols = gate * w + unit - start
                rows = (src[edges] - (0 if l == 0 else E) if name == "input"
                        else src[edges] - start)
                target[rows, cols] = self.part(name)[edges]
                if name == "input":
                    mask[rows, cols] = 1
            at = self.pre_index(l, np.arange(gates * w))
            bias = self.part("bias")[at]
            if self.variant == "gru":
                bias = np.stack([bias, self.part("recurrent_bias")[at]])
            cells.append([{"kernel": kernel, "kernel_mask": mask, "recurrent_kernel": recurrent,
                           "bias": bias}])
        head = np.zeros((self.units, 2), np.float32)
        head[self.head_units] = self.part("head").reshape(-1, 2)
        head_mask = np.zeros_like(head)
        head_mask[self.head_units] = 1
        return {"embedding": self.part("embedding").reshape(self.vocab_size, E).copy(),
                "cells": cells, "head": head, "head_mask": head_mask,
                "head_bias": self.part("head_bias").copy()}

    def _checked(self, tokens, labels=None):
        """Refuse what the compiled loops would read out of bounds or count wrongly."""
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens must lie in [0, {self.vocab_size}) (0: padding); got "
                             f"values from {tokens.min()} to {tokens.max()}.")
        if labels is not None and np.size(labels) and not np.isin(labels, (-1, 0, 1)).all():
            raise ValueError("labels must be 0 or 1 (-1: a filler row that counts for nothing).")

    def reset_optimizer(self):
        """Zero Adam's moments and step count."""
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        self.step = 0

    def train_epoch(self, batches: Batches, learning_rate: float = 1e-3,
                    clipnorm: float = 5.0) -> np.ndarray:
        """One pass over ``batches``: Keras's Adam (its default betas and epsilon) on each
        batch's mean loss, the gradient clipped to ``clipnorm`` by its global norm; returns each
        batch's loss."""
        self._checked(batches.tokens, batches.labels)
        losses = np.zeros(len(batches))
        self.step = self._run(batches, True, learning_rate, clipnorm, losses)[0]
        return losses

    def _run(self, batches: Batches, train: bool, learning_rate=0.0, clipnorm=0.0,
             losses=None, logits_out=None):
        return _run(*self._args(), self.m, self.v, self.step, batches.tokens, batches.labels,
                    batches.sizes, train, learning_rate, clipnorm, 0.9, 0.999, 1e-7,
                    np.zeros(0) if losses is None else losses,
                    np.zeros((2, 0), np.float32) if logits_out is None else logits_out)

    def evaluate(self, batches: Batches) -> tuple:
        """Mean loss and accuracy over every example of ``batches``."""
        self._checked(batches.tokens, batches.labels)
        _, loss, correct = self._run(batches, False)
        examples = int(sum(np.sum(batches.labels[k, :rows] >= 0)
                           for k, (rows, _) in enumerate(batches.sizes)))
        return loss / examples, correct / examples

    def logits(self, tokens) -> np.ndarray:
        """Logits (batch, 2) of right-padded ``tokens`` (batch, time)."""
        tokens = np.ascontiguousarray(tokens, np.int32)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (batch, time); got shape {tokens.shape}.")
        self._checked(tokens)
        logits = np.zeros((2, len(tokens)), np.float32)
        self._run(Batches.stack([(tokens, np.full(len(tokens), -1))]), False,
                  logits_out=logits)
        return logits.T


def epoch_batches(x, y, epochs: int, batch_size: int = 128, seed: int = 0,
                  bucket_width: int = 0, full_batches: bool = False) -> list:
    """The training batches of ``epochs`` epochs, one ``Batches`` each: those the Keras trainer
    (``graph_architectures.train_one``) draws with the same arguments
    (``reber_batches.batches``, reshuffled every epoch), so that both see the same batches in
    the same order."""
    dataset = rb.batches(x, y, batch_size, seed, bucket_width, full_batches)
    return [Batches.stack(dataset.as_numpy_iterator()) for _ in range(epochs)]


def evaluation_batches(x, y, batch_size: int = 128) -> Batches:
    """``x`` in order, in batches each cut to its longest string (rounded up to 8)."""
    return Batches.stack((rb.trim(x[i:i + batch_size]).numpy(), y[i:i + batch_size])
                         for i in range(0, len(x), batch_size))


def cost(net: EdgeNetwork) -> int:
    """Multiply-accumulates of one example's forward step through ``net``'s connections (input
    and recurrent): what its training costs, relatively."""
    return len(net.in_src) + len(net.rec_src)


def train(networks, epochs: list, test: Batches, learning_rate: float = 1e-3,
          clipnorm: float = 5.0, patience: int = 0, min_delta: float = 1e-4,
          threads: int | None = None, on_done=None) -> list:
    """Train every network of ``networks`` (``EdgeNetwork``) on the batches of ``epochs`` (one
    ``Batches`` per epoch, see :func:`epoch_batches`), ``threads`` networks at a time (default:
    one per CPU core), costliest first; then test each on ``test``.

    As the Keras trainer: Adam, the gradient clipped by each network's global norm, and
    with ``patience > 0`` Keras's ``EarlyStopping(monitor="loss")`` rule on each network's
    epoch training loss (the mean of its batches' losses), its result then its test metrics at
    the epoch it stopped. Returns one dict per network: ``test_acc``, ``test_loss``,
    ``epochs_trained``, ``train_loss`` (per epoch) and ``train_time_s`` (its own training and
    testing); ``on_done(index, result)`` is called, in the calling thread, as each finishes."""
    from snip_tf.studies.reber_batches import EarlyStopping

    def one(net):
        start = time.perf_counter()
        stopper, history = EarlyStopping(1, patience, min_delta), []
        for batches in epochs:
            history.append(float(np.mean(net.train_epoch(batches, learning_rate, clipnorm))))
            if stopper.update(np.array(history[-1:]))[0]:
                break
        test_loss, test_acc = net.evaluate(test)
        return {"test_acc": float(test_acc), "test_loss": float(test_loss),
                "epochs_trained": len(history), "train_loss": history,
                "train_time_s": time.perf_counter() - start}

    threads = threads or os.cpu_count() or 1
    order = sorted(range(len(networks)), key=lambda k: -cost(networks[k]))
    results = [None] * len(networks)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        running = {pool.submit(one, networks[k]): k for k in order}
        for future in concurrent.futures.as_completed(running):
            k = running[future]
            results[k] = future.result()
            if on_done:
                on_done(k, results[k])
    return results
