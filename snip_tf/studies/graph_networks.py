"""Random graphs as sparse recurrent architectures, and the graph properties the thesis studies.

A random graph becomes a network:
1. edges are oriented from the lower to the higher node index, giving a DAG;
2. each node gets the layer 1 + max(layer of its parents) (sources: layer 0);
3. each layer is one recurrent layer with one unit per node. Its input-to-hidden connectivity is the
   edges into its nodes: from the previous layer, and from earlier layers as skip connections. One
   masked kernel holds both, over the concatenated outputs of all earlier layers. The sources read
   the embedding densely, and hidden-to-hidden is dense;
4. the classifier reads the final states of the sink nodes.

``io`` chooses the network's interface. ``"full"`` (the default, above): a 16-wide embedding
read by the sources, and a classifier over every sink. ``"thesis"``, as the thesis's code
(``Implementations/experiments/arbitrary_structure.py``, ``sparse.py``) built it: the embedding
is as wide as the first layer (so a Barabási–Albert network, which always has one source, reads
a 1-wide embedding), and the classifier reads only the last layer, not the sinks of earlier
layers.

``skips`` chooses how an edge that skips layers enters its target layer. ``"input"`` (the
default, step 3 above): as an input connection of the target layer's one recurrent cell.
``"separate"``, as the thesis's ``ArbitraryStructureRNN``: the target layer has one cell per
source layer (a main cell reading the previous layer, then one for every earlier layer with an
edge into it, each as wide as the target, with its own recurrent weights and biases), and the
layer's output is the sum of their outputs.

``padding`` chooses what the network does on padding steps. ``"masked"`` (the default): they
carry the state over unchanged, so a string's result does not depend on its batch. ``"unmasked"``,
as the thesis's code: the network runs through the trailing padding up to the longest string of
its batch, with the padding symbol's embedding, and is read at that last step.

For LSTM/GRU every gate uses the same connectivity. Keras lays a kernel out as
``(inputs, gates * units)`` in gate blocks, so the correct mask tiles the node mask once per gate
block (``layout="block"``). The thesis's code used ``np.repeat(mask, gates, 0)`` on PyTorch's
``(gates * units, inputs)`` layout, which repeats each row instead. That interleaves the gates
(``layout="thesis"``, offered to show what the difference does).
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
import networkx as nx
import numpy as np

from snip_tf import masking, models, pruning

L = keras.layers
GATES = {"rnn-tanh": 1, "rnn-relu": 1, "lstm": 4, "gru": 3}
GENERATORS = ("barabasi_albert", "watts_strogatz", "erdos_renyi")
IO = ("full", "thesis")
SKIPS = ("input", "separate")
PADDINGS = models.REBER_PADDINGS  # one meaning for both studies
INITS = ("keras", "torch", "torch-embedding", "torch-cells")


def random_graph(kind: str, n: int, seed: int) -> nx.Graph:
    """The thesis's generators (and Erdős–Rényi as a third family), with n nodes."""
    if kind == "barabasi_albert":
        return nx.barabasi_albert_graph(n, max(1, n // 10), seed=seed)
    if kind == "watts_strogatz":
        return nx.connected_watts_strogatz_graph(n, max(2, n // 5), 1.0, seed=seed)
    if kind == "erdos_renyi":
        return nx.gnp_random_graph(n, min(1.0, 2 * np.log(n) / n), seed=seed)
    raise ValueError(f"Unknown graph kind {kind!r}; expected one of {GENERATORS}.")


@dataclasses.dataclass
class Architecture:
    """A DAG laid out in layers: ``layers[l]`` lists its node ids; ``input_masks[l]`` (for l >= 1)
    is the boolean connectivity from all nodes of layers < l (concatenated in layer order) to the
    nodes of layer l; ``sinks`` are the nodes read by the classifier."""

    layers: list
    input_masks: list
    sinks: list
    dag: nx.DiGraph


def to_dag(graph: nx.Graph) -> nx.DiGraph:
    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    dag.add_edges_from((min(u, v), max(u, v)) for u, v in graph.edges if u != v)
    return dag


def architecture(graph: nx.Graph) -> Architecture:
    dag = to_dag(graph)
    layer_of = {}
    for node in nx.topological_sort(dag):
        parents = list(dag.predecessors(node))
        layer_of[node] = 1 + max(layer_of[p] for p in parents) if parents else 0
    depth = max(layer_of.values()) + 1
    layers = [sorted(n for n in dag if layer_of[n] == l) for l in range(depth)]
    masks = [None]
    for l in range(1, depth):
        earlier = [n for layer in layers[:l] for n in layer]
        mask = np.zeros((len(earlier), len(layers[l])), dtype=bool)
        for i, u in enumerate(earlier):
            for j, v in enumerate(layers[l]):
                mask[i, j] = dag.has_edge(u, v)
        masks.append(mask)
    sinks = sorted(n for n in dag if dag.out_degree(n) == 0)
    return Architecture(layers, masks, sinks, dag)


def check_option(name: str, value: str, allowed: tuple):
    """Raise a ValueError naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}.")


def input_width(arch: Architecture, io: str = "full", embedding_dim: int = 16) -> int:
    """Width of the embedding the first layer reads (see the module's ``io``)."""
    check_option("io", io, IO)
    return len(arch.layers[0]) if io == "thesis" else embedding_dim


def readout_nodes(arch: Architecture, io: str = "full") -> list:
    """The nodes whose final states the classifier reads (see the module's ``io``)."""
    check_option("io", io, IO)
    return list(arch.layers[-1]) if io == "thesis" else list(arch.sinks)


@dataclasses.dataclass
class Cell:
    """One recurrent cell of a layer: it reads the outputs of the ``sources`` layers
    (concatenated in order; ``()`` is the embedding) through ``mask`` (``None``: densely)."""

    name: str
    sources: tuple
    mask: np.ndarray | None


def cells(arch: Architecture, layer: int, skips: str = "input") -> list:
    """The recurrent cells of ``arch``'s ``layer``, whose outputs sum to the layer's output
    (see the module's ``skips``). The first is named ``layer<l>``."""
    check_option("skips", skips, SKIPS)
    if layer == 0:
        return [Cell("layer0", (), None)]
    if skips == "input":
        return [Cell(f"layer{layer}", tuple(range(layer)), arch.input_masks[layer])]
    starts = np.concatenate([[0], np.cumsum([len(n) for n in arch.layers[:layer]])])
    rows = {j: arch.input_masks[layer][starts[j]:starts[j + 1]] for j in range(layer)}
    skipping = [j for j in range(layer - 1) if rows[j].any()]
    return [Cell(f"layer{layer}", (layer - 1,), rows[layer - 1])] + [
        Cell(f"skip{j}_to{layer}", (j,), rows[j]) for j in skipping]


def gate_mask(mask: np.ndarray, gates: int, layout: str = "block") -> np.ndarray:
    """The kernel mask of a gated cell in Keras's ``(inputs, gates * units)`` layout."""
    if layout == "block":
        return np.tile(mask, (1, gates))
    if layout == "thesis":
        return np.repeat(mask, gates, axis=1)
    raise ValueError(f"layout must be 'block' or 'thesis'; got {layout!r}.")


def build_model(arch: Architecture, variant: str, vocab_size: int, seed: int,
                layout: str = "block", embedding_dim: int = 16, io: str = "full",
                skips: str = "input", padding: str = "masked"):
    """A Keras model of ``arch`` with its structure installed as pruning masks (so the absent
    connections stay exactly zero through training). ``io``, ``skips``, ``padding``: see the
    module's docstring (``padding="unmasked"`` runs through every step it is given)."""
    embedding_dim = input_width(arch, io, embedding_dim)
    check_option("padding", padding, PADDINGS)
    keras.utils.set_random_seed(seed)
    cls = {"rnn-tanh": L.SimpleRNN, "rnn-relu": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU}[variant]
    kwargs = {"activation": "relu"} if variant == "rnn-relu" else {}
    inputs = keras.Input((None,), dtype="int32")
    embedded = L.Embedding(vocab_size, embedding_dim, mask_zero=padding == "masked",
                           name="embedding")(inputs)
    sequences, finals, masks = [], [], {}
    for l, nodes in enumerate(arch.layers):
        outputs, states = [], []
        for cell in cells(arch, l, skips):
            source = [embedded] if l == 0 else [sequences[j] for j in cell.sources]
            source = source[0] if len(source) == 1 else L.Concatenate(
                name=f"into_{cell.name}")(source)
            rnn = cls(len(nodes), return_sequences=True, return_state=True, name=cell.name,
                      **kwargs)
            seq, *state = rnn(source)
            outputs.append(seq)
            states.append(state[0])
            if cell.mask is not None:
                masks[rnn.cell.kernel.path] = gate_mask(cell.mask, GATES[variant], layout)
        if len(outputs) > 1:
            outputs = [L.Add(name=f"sum{l}")(outputs)]
            states = [L.Add(name=f"sum{l}_final")(states)]
        sequences.append(outputs[0])
        finals.append(states[0])
    readout = finals[0] if len(finals) == 1 else L.Concatenate(name="all_nodes")(finals)
    head = L.Dense(2, name="classifier")
    model = keras.Model(inputs, head(readout), name=f"graph_{variant.replace('-', '_')}")
    order = [n for layer in arch.layers for n in layer]
    read_rows = np.isin(order, readout_nodes(arch, io))
    masks[head.kernel.path] = np.repeat(read_rows[:, None], 2, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pruning.LayerCollapseWarning)
        pruning.apply_masks(model, masks)
    return model


def network_weights(model, arch: Architecture, skips: str = "input") -> dict:
    """The weights of a model from :func:`build_model` in the layout the trainers share
    (``EdgeNetwork.from_weights``): ``embedding``; ``cells``, one list per layer of one dict per
    cell with ``kernel`` (masked), its 0/1 ``kernel_mask``, ``recurrent_kernel`` and ``bias``;
    ``head`` (masked), ``head_mask`` and ``head_bias``. The masks are the installed ones."""
    def masked(variable):
        value = variable.numpy()
        mask = masking.mask_of(variable)
        mask = np.ones(value.shape, bool) if mask is None else mask
        return value * mask, mask.astype(value.dtype)

    cells_out = []
    for l in range(len(arch.layers)):
        layer = []
        for spec in cells(arch, l, skips):
            cell = model.get_layer(spec.name).cell
            kernel, kernel_mask = masked(cell.kernel)
            layer.append({"kernel": kernel, "kernel_mask": kernel_mask,
                          "recurrent_kernel": cell.recurrent_kernel.numpy(),
                          "bias": cell.bias.numpy()})
        cells_out.append(layer)
    classifier = model.get_layer("classifier")
    head, head_mask = masked(classifier.kernel)
    return {"embedding": model.get_layer("embedding").embeddings.numpy(), "cells": cells_out,
            "head": head, "head_mask": head_mask, "head_bias": classifier.bias.numpy()}


def initial_weights(arch: Architecture, variant: str, vocab_size: int, seed: int,
                    layout: str = "block", embedding_dim: int = 16, io: str = "full",
                    skips: str = "input", init: str = "keras") -> dict:
    """A network's initial weights in the layout of :func:`network_weights`, drawn from
    ``seed`` alone (each part from its own seed derived from it), so that every trainer starts
    a network from the same weights.

    ``init``: "keras", Keras's defaults (Glorot kernels, orthogonal recurrent kernels, zero
    biases with the LSTM's forget bias 1, a uniform(±0.05) embedding); "torch", as the thesis's
    PyTorch code: every weight and bias of a cell uniform(±1/√units), a standard normal
    embedding, a ``nn.Linear`` classifier; or one part of PyTorch's with Keras's for the rest,
    to tell which part matters: "torch-embedding" (the standard normal embedding only) or
    "torch-cells" (the cells and the classifier). The draws are those the retired
    ``NetworkBank`` made (commit 8ae92d8), so the study's recorded results stand."""
    check_option("init", init, INITS)
    gates, reads = GATES[variant], input_width(arch, io, embedding_dim)
    torch_embedding = init in ("torch", "torch-embedding")
    torch_cells = init in ("torch", "torch-cells")

    def draw(initializer, shape, seed):
        return np.asarray(keras.ops.convert_to_numpy(initializer(seed=seed)(shape)), np.float32)

    def uniform(limit, shape, seed):
        return draw(lambda seed: keras.initializers.RandomUniform(-limit, limit, seed), shape,
                    seed)

    embedding = (draw(lambda seed: keras.initializers.RandomNormal(stddev=1.0, seed=seed),
                      (vocab_size, reads), seed) if torch_embedding else
                 draw(keras.initializers.RandomUniform, (vocab_size, reads), seed))
    layers = []
    for l, nodes in enumerate(arch.layers):
        w, layer = len(nodes), []
        for c, cell in enumerate(cells(arch, l, skips)):
            cell_seed = seed + 1000 * (l + 1) + 100 * c
            rows = reads if l == 0 else sum(len(arch.layers[j]) for j in cell.sources)
            mask = (np.ones((rows, gates * w), np.float32) if cell.mask is None else
                    gate_mask(cell.mask, gates, layout).astype(np.float32))
            bias = np.zeros((2, gates * w) if variant == "gru" else (gates * w,), np.float32)
            if torch_cells:
                limit = 1 / np.sqrt(w)
                kernel = uniform(limit, (rows, gates * w), cell_seed)
                recurrent = uniform(limit, (w, gates * w), cell_seed + 1)
                b_ih = uniform(limit, (gates * w,), cell_seed + 2)
                b_hh = uniform(limit, (gates * w,), cell_seed + 3)
                bias = np.stack([b_ih, b_hh]) if variant == "gru" else b_ih + b_hh
            else:
                kernel = draw(keras.initializers.GlorotUniform, (rows, gates * w), cell_seed)
                recurrent = draw(keras.initializers.Orthogonal, (w, gates * w), cell_seed + 1)
                if variant == "lstm":  # Keras's unit_forget_bias
                    bias[w:2 * w] = 1.0
            layer.append({"kernel": kernel * mask, "kernel_mask": mask,
                          "recurrent_kernel": recurrent, "bias": bias})
        layers.append(layer)
    order = [n for layer in arch.layers for n in layer]
    read_rows = np.isin(order, readout_nodes(arch, io))
    head_mask = np.repeat(read_rows[:, None], 2, axis=1).astype(np.float32)
    if torch_cells:  # nn.Linear over the nodes read
        limit = 1 / np.sqrt(read_rows.sum())
        head = uniform(limit, (len(order), 2), seed + 7)
        head_bias = uniform(limit, (2,), seed + 8)
    else:
        head = draw(keras.initializers.GlorotUniform, (len(order), 2), seed + 7)
        head_bias = np.zeros(2, np.float32)
    return {"embedding": embedding, "cells": layers, "head": head * head_mask,
            "head_mask": head_mask, "head_bias": head_bias}


def assign_weights(model, arch: Architecture, weights: dict, skips: str = "input"):
    """Set a model of :func:`build_model` to ``weights`` (the layout of :func:`network_weights`;
    the masks are the model's own, installed by ``build_model``)."""
    model.get_layer("embedding").embeddings.assign(weights["embedding"])
    for l, layer in enumerate(weights["cells"]):
        for spec, values in zip(cells(arch, l, skips), layer):
            cell = model.get_layer(spec.name).cell
            cell.kernel.assign(values["kernel"])
            cell.recurrent_kernel.assign(values["recurrent_kernel"])
            cell.bias.assign(values["bias"])
    classifier = model.get_layer("classifier")
    classifier.kernel.assign(weights["head"])
    classifier.bias.assign(weights["head_bias"])
    return model


class StructureAdam(keras.optimizers.Adam):
    """Keras's Adam for a model of :func:`build_model`, clipping by the global norm of the
    network's true gradient, as the thesis's PyTorch code (``clip_grad_norm_``) and the edge
    trainer do:

    * its absent connections get no gradient (their masks multiply the gradients first), as
      with the thesis's masking by multiplication; the pruning hooks alone zero those weights
      after each step, but their gradients would still count in the norm;
    * the embedding's sparse gradient (one row per token read, repeats included) is summed
      into its dense gradient first; Keras's norm of the sparse one counts each repeat apart.
    """

    def apply(self, grads, trainable_variables=None):
        import tensorflow as tf

        variables = (self._trainable_variables if trainable_variables is None
                     else list(trainable_variables))
        dense = []
        for grad, variable in zip(grads, variables):
            if isinstance(grad, tf.IndexedSlices):
                grad = tf.convert_to_tensor(grad)
            mask = masking.mask_of(variable)
            dense.append(grad if grad is None or mask is None else
                         grad * keras.ops.cast(mask, grad.dtype))
        return super().apply(dense, trainable_variables)


def _stats(values, prefix) -> dict:
    """Mean, sample variance and sample standard deviation, as the thesis's ``statistics``."""
    values = np.asarray(list(values), dtype=np.float64)
    return {f"{prefix}_mean": float(np.mean(values)),
            f"{prefix}_var": float(np.var(values, ddof=1)) if len(values) > 1 else float("nan"),
            f"{prefix}_std": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")}


def graph_properties(graph: nx.Graph) -> dict:
    """The thesis's features of a graph, named and defined as its code
    (``get_graph_properties`` in ``Implementations/experiments/arbitrary_structure.py``): on the
    undirected graph, with degree centrality (degree / (n - 1)), density e / (n (n - 1)) and
    sample variances; ``layers``, ``source_nodes`` (the first layer's width) and ``sink_nodes``
    (the last layer's width, as its ``last_layer_size``; a DAG can have sinks in earlier
    layers too) on the layered DAG. Distances are NaN on a disconnected graph (Erdős–Rényi
    can be)."""
    arch = architecture(graph)
    n, e = graph.number_of_nodes(), graph.number_of_edges()
    connected = nx.is_connected(graph)
    props = {"layers": len(arch.layers), "nodes": n, "edges": e,
             "source_nodes": len(arch.layers[0]), "sink_nodes": len(arch.layers[-1]),
             "diameter": nx.diameter(graph) if connected else float("nan"),
             "density": e / (n * (n - 1)),
             "average_shortest_path_length": nx.average_shortest_path_length(graph)
             if connected else float("nan")}
    props.update(_stats(nx.eccentricity(graph).values() if connected else [np.nan],
                        "eccentricity"))
    props.update(_stats(nx.degree_centrality(graph).values(), "degree"))
    props.update(_stats(nx.closeness_centrality(graph).values(), "closeness"))
    props.update(_stats(nx.betweenness_centrality(graph).values(), "nodes_betweenness"))
    props.update(_stats(nx.edge_betweenness_centrality(graph).values(), "edge_betweenness"))
    return props


# The regressors' inputs: the thesis's feature list, in its order.
FEATURES = ("layers", "nodes", "edges", "source_nodes", "sink_nodes", "diameter", "density",
            "average_shortest_path_length") + tuple(
    f"{p}_{s}" for p in ("eccentricity", "degree", "closeness", "nodes_betweenness",
                         "edge_betweenness") for s in ("mean", "var", "std"))


