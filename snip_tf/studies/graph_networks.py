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
layers. Two differences from that code remain in both: skip edges are input connections of
their target layer (the thesis ran each skip as a separate recurrent layer and added its outputs
to the target's), and padding is masked (the thesis ran through trailing padding).

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

from snip_tf import pruning

L = keras.layers
GATES = {"rnn-tanh": 1, "rnn-relu": 1, "lstm": 4, "gru": 3}
GENERATORS = ("barabasi_albert", "watts_strogatz", "erdos_renyi")
IO = ("full", "thesis")


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


def _check_io(io: str):
    if io not in IO:
        raise ValueError(f"io must be one of {IO}; got {io!r}.")


def input_width(arch: Architecture, io: str = "full", embedding_dim: int = 16) -> int:
    """Width of the embedding the first layer reads (see the module's ``io``)."""
    _check_io(io)
    return len(arch.layers[0]) if io == "thesis" else embedding_dim


def readout_nodes(arch: Architecture, io: str = "full") -> list:
    """The nodes whose final states the classifier reads (see the module's ``io``)."""
    _check_io(io)
    return list(arch.layers[-1]) if io == "thesis" else list(arch.sinks)


def gate_mask(mask: np.ndarray, gates: int, layout: str = "block") -> np.ndarray:
    """The kernel mask of a gated cell in Keras's ``(inputs, gates * units)`` layout."""
    if layout == "block":
        return np.tile(mask, (1, gates))
    if layout == "thesis":
        return np.repeat(mask, gates, axis=1)
    raise ValueError(f"layout must be 'block' or 'thesis'; got {layout!r}.")


def build_model(arch: Architecture, variant: str, vocab_size: int, seed: int,
                layout: str = "block", embedding_dim: int = 16, io: str = "full"):
    """A Keras model of ``arch`` with its structure installed as pruning masks (so the absent
    connections stay exactly zero through training). ``io``: see the module's docstring."""
    embedding_dim = input_width(arch, io, embedding_dim)
    keras.utils.set_random_seed(seed)
    cls = {"rnn-tanh": L.SimpleRNN, "rnn-relu": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU}[variant]
    kwargs = {"activation": "relu"} if variant == "rnn-relu" else {}
    inputs = keras.Input((None,), dtype="int32")
    embedded = L.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(inputs)
    sequences, finals, rnns = [], [], []
    for l, nodes in enumerate(arch.layers):
        source = embedded if l == 0 else (
            sequences[0] if l == 1 else L.Concatenate(name=f"into_layer{l}")(sequences[:l]))
        rnn = cls(len(nodes), return_sequences=True, return_state=True, name=f"layer{l}", **kwargs)
        seq, *states = rnn(source)
        sequences.append(seq)
        finals.append(states[0])
        rnns.append(rnn)
    readout = finals[0] if len(finals) == 1 else L.Concatenate(name="all_nodes")(finals)
    head = L.Dense(2, name="classifier")
    model = keras.Model(inputs, head(readout), name=f"graph_{variant.replace('-', '_')}")
    masks = {}
    for l in range(1, len(arch.layers)):
        masks[rnns[l].cell.kernel.path] = gate_mask(arch.input_masks[l], GATES[variant], layout)
    order = [n for layer in arch.layers for n in layer]
    read_rows = np.isin(order, readout_nodes(arch, io))
    masks[head.kernel.path] = np.repeat(read_rows[:, None], 2, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pruning.LayerCollapseWarning)
        pruning.apply_masks(model, masks)
    return model


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


