"""Sparse recurrent architectures from random graphs, their graph properties, and how well those
properties predict accuracy (the thesis's second study).

A random graph becomes a network:
1. edges are oriented from the lower to the higher node index, giving a DAG;
2. each node gets the layer 1 + max(layer of its parents) (sources: layer 0);
3. each layer is one recurrent layer with one unit per node. Its input-to-hidden connectivity is the
   edges into its nodes: from the previous layer, and from earlier layers as skip connections. One
   masked kernel holds both, over the concatenated outputs of all earlier layers. The sources read
   the embedding densely, and hidden-to-hidden is dense;
4. the classifier reads the final states of the sink nodes.

For LSTM/GRU every gate uses the same connectivity. Keras lays a kernel out as
``(inputs, gates * units)`` in gate blocks, so the correct mask tiles the node mask once per gate
block (``layout="block"``). The thesis's code used ``np.repeat(mask, gates, 0)`` on PyTorch's
``(gates * units, inputs)`` layout, which repeats each row instead. That interleaves the gates
(``layout="thesis"``, offered to show what the difference does).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
import keras
import networkx as nx
import numpy as np
from absl import app, flags

from snip_tf import pruning
from snip_tf.experiments import common
from snip_tf.studies import network_bank as nb
from snip_tf.studies import reber_common as rc

L = keras.layers
GATES = {"rnn-tanh": 1, "rnn-relu": 1, "lstm": 4, "gru": 3}
GENERATORS = ("barabasi_albert", "watts_strogatz", "erdos_renyi")
# The thesis's Random Forest R^2 in its results files, per variant.
THESIS_R2 = {"rnn-tanh": 0.43, "rnn-relu": 0.62, "gru": 0.88, "lstm": 0.58}


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


def gate_mask(mask: np.ndarray, gates: int, layout: str = "block") -> np.ndarray:
    """The kernel mask of a gated cell in Keras's ``(inputs, gates * units)`` layout."""
    if layout == "block":
        return np.tile(mask, (1, gates))
    if layout == "thesis":
        return np.repeat(mask, gates, axis=1)
    raise ValueError(f"layout must be 'block' or 'thesis'; got {layout!r}.")


def build_model(arch: Architecture, variant: str, vocab_size: int, seed: int,
                layout: str = "block", embedding_dim: int = 16):
    """A Keras model of ``arch`` with its structure installed as pruning masks (so the absent
    connections stay exactly zero through training)."""
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
    sink_rows = np.isin(order, arch.sinks)
    masks[head.kernel.path] = np.repeat(sink_rows[:, None], 2, axis=1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pruning.LayerCollapseWarning)
        pruning.apply_masks(model, masks)
    return model


def _stats(values, prefix) -> dict:
    values = list(values)
    return {f"{prefix}_mean": float(np.mean(values)), f"{prefix}_var": float(np.var(values)),
            f"{prefix}_std": float(np.std(values))}


def graph_properties(graph: nx.Graph) -> dict:
    """The thesis's features of a graph (on the undirected graph; layers, sources and sinks on
    its DAG)."""
    arch = architecture(graph)
    connected = nx.is_connected(graph)
    props = {"layers": len(arch.layers), "nodes": graph.number_of_nodes(),
             "edges": graph.number_of_edges(),
             "sources": sum(1 for n in arch.dag if arch.dag.in_degree(n) == 0),
             "sinks": len(arch.sinks), "density": nx.density(graph),
             "diameter": nx.diameter(graph) if connected else float("nan"),
             "avg_shortest_path": nx.average_shortest_path_length(graph) if connected
             else float("nan")}
    props.update(_stats(nx.eccentricity(graph).values() if connected else [np.nan],
                        "eccentricity"))
    props.update(_stats(dict(graph.degree()).values(), "degree"))
    props.update(_stats(nx.closeness_centrality(graph).values(), "closeness"))
    props.update(_stats(nx.betweenness_centrality(graph).values(), "node_betweenness"))
    props.update(_stats(nx.edge_betweenness_centrality(graph).values(), "edge_betweenness"))
    return props


FEATURES = ("layers", "nodes", "edges", "sources", "sinks", "diameter", "density",
            "avg_shortest_path") + tuple(
    f"{p}_{s}" for p in ("eccentricity", "degree", "closeness", "node_betweenness",
                         "edge_betweenness") for s in ("mean", "var", "std"))


def fit_regressors(rows: list, seed: int = 0, folds: int = 5) -> dict:
    """R^2 of BayesianRidge, RandomForest and AdaBoost predicting test accuracy from the graph
    properties: on a held-out 20 % split and with k-fold cross-validation; plus the Random
    Forest's feature importances."""
    from sklearn.ensemble import AdaBoostRegressor, RandomForestRegressor
    from sklearn.linear_model import BayesianRidge
    from sklearn.model_selection import KFold, cross_val_score, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.array([[r[f] for f in FEATURES] for r in rows], dtype=np.float64)
    x = np.nan_to_num(x)
    y = np.array([r["test_acc"] for r in rows])
    regressors = {
        "BayesianRidge": make_pipeline(StandardScaler(), BayesianRidge()),
        "RandomForest": RandomForestRegressor(n_estimators=200, random_state=seed),
        "AdaBoost": AdaBoostRegressor(random_state=seed),
    }
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed)
    out = {}
    for name, reg in regressors.items():
        reg.fit(x_tr, y_tr)
        held_out = float(reg.score(x_te, y_te))
        cv = cross_val_score(reg, x, y, cv=KFold(min(folds, len(y)), shuffle=True,
                                                 random_state=seed), scoring="r2")
        out[name] = {"r2_holdout": held_out, "r2_cv_mean": float(np.mean(cv)),
                     "r2_cv_std": float(np.std(cv))}
    forest = regressors["RandomForest"].fit(x, y)
    out["RandomForest"]["feature_importance"] = dict(
        sorted(zip(FEATURES, map(float, forest.feature_importances_)), key=lambda kv: -kv[1]))
    return out


def train_one(graph, variant, data, epochs, seed, layout="block", patience=0) -> dict:
    """Train the network of ``graph`` alone, as a Keras model (the reference path; the study
    trains in banks, see ``train_networks``)."""
    arch = architecture(graph)
    model = build_model(arch, variant, data.vocab_size, seed, layout)
    # The thesis clips the global gradient norm (torch's clip_grad_norm_), as the bank does.
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=5.0), loss=rc.LOSS,
                  metrics=["accuracy"])
    start = time.perf_counter()
    callbacks = [keras.callbacks.EarlyStopping(monitor="loss", patience=patience,
                                               min_delta=1e-4)] if patience else []
    history = model.fit(rc.train_dataset(data, seed, batch_size=128), epochs=epochs, verbose=0,
                        callbacks=callbacks, shuffle=False)
    test = model.evaluate(data.x_test, data.y_test, batch_size=512, verbose=0, return_dict=True)
    return {"test_acc": float(test["accuracy"]), "test_loss": float(test["loss"]),
            "epochs_trained": len(history.history["loss"]),
            "train_time_s": time.perf_counter() - start}


def train_networks(graphs, variant, data, epochs, seed, layout="block", patience=0,
                   trainer="bank", bank_size=50, jit_compile=True, log=print) -> list:
    """One result dict per graph. ``trainer="bank"`` trains ``bank_size`` networks at a time
    as one batched computation (:class:`NetworkBank`), grouping networks of similar depth and
    size so that little is padded; ``"keras"`` trains them one by one."""
    if trainer == "keras":
        return [train_one(g, variant, data, epochs, seed, layout, patience) for g in graphs]
    if trainer != "bank":
        raise ValueError(f"trainer must be 'bank' or 'keras'; got {trainer!r}.")
    archs = [architecture(g) for g in graphs]
    order = sorted(range(len(archs)),
                   key=lambda i: (len(archs[i].layers), sum(map(len, archs[i].layers))))
    results = [None] * len(archs)
    for first in range(0, len(order), bank_size):
        members = order[first:first + bank_size]
        bank = nb.NetworkBank([archs[i] for i in members], variant, data.vocab_size,
                              seeds=[seed * 100003 + i for i in members], layout=layout)
        out = nb.train(bank, data.x_train, data.y_train, data.x_test, data.y_test,
                       epochs=epochs, batch_size=128, patience=patience, seed=seed,
                       jit_compile=jit_compile)
        for j, i in enumerate(members):
            results[i] = {"test_acc": float(out["test_acc"][j]),
                          "test_loss": float(out["test_loss"][j]),
                          "epochs_trained": int(out["epochs_trained"][j]),
                          "train_time_s": out["train_time_s"] / len(members)}
        if log:
            log(f"{variant}: bank of {len(members)} networks (depth <= {len(bank.widths)}) in "
                f"{out['train_time_s']:.0f} s, "
                f"{60 * len(members) / out['train_time_s']:.2f} networks/min")
    return results


flags.DEFINE_integer("num_graphs", 100, "Graphs per generator and variant.")
flags.DEFINE_integer("graph_epochs", 15, "Epochs per network (thesis: 15).")
flags.DEFINE_integer("graph_patience", 0, "Per-network early stopping on the training loss "
                     "after this many epochs without improvement; 0 trains every epoch (thesis).")
flags.DEFINE_enum("trainer", "bank", ["bank", "keras"],
                  "Train networks in batched banks or one Keras model at a time.")
flags.DEFINE_integer("bank_size", 50, "Networks trained together in one bank.")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the bank's training step.")
flags.DEFINE_list("graph_variants", list(rc.VARIANTS), "Variants to study.")
flags.DEFINE_list("generators", list(GENERATORS), "Graph families.")
flags.DEFINE_enum("layout", "block", ["block", "thesis"], "Gate mask layout.")
flags.DEFINE_integer("min_nodes", 10, "Smallest graph.")
flags.DEFINE_integer("max_nodes", 50, "Largest graph.")
flags.DEFINE_enum("graph_source", "thesis", ["thesis", "generated"], "Reber data set.")


def run(data_dir=None, results_dir=None, variants=rc.VARIANTS, generators=GENERATORS,
        num_graphs=100, epochs=15, seed=0, source="thesis", train_limit=0, layout="block",
        min_nodes=10, max_nodes=50, patience=0, trainer="bank", bank_size=50,
        jit_compile=True) -> dict:
    out = common.out_dir("graph_architectures", results_dir)
    graph_dir = os.path.join(out, "graphs")
    os.makedirs(graph_dir, exist_ok=True)
    data = rc.load(source, data_dir, seed=seed, train_limit=train_limit)
    rng = np.random.default_rng(seed)
    report = {}
    start = time.perf_counter()
    trained = 0
    for variant in variants:
        rows, graphs = [], []
        for kind in generators:
            for i in range(num_graphs):
                n = int(rng.integers(min_nodes, max_nodes + 1))
                graph = random_graph(kind, n, seed=seed * 100003 + i)
                name = f"{kind}_{i}"
                nx.write_graphml(graph, os.path.join(graph_dir, f"{variant}_{name}.graphml"))
                rows.append({"variant": variant, "graph": name, "generator": kind,
                             **graph_properties(graph)})
                graphs.append(graph)
        results = train_networks(graphs, variant, data, epochs, seed, layout, patience, trainer,
                                 bank_size, jit_compile)
        for row, result in zip(rows, results):
            row.update(result)
        trained += len(rows)
        print(f"{variant}: {len(rows)} networks, mean test acc "
              f"{statistics.fmean(r['test_acc'] for r in rows):.4f}; overall "
              f"{trained / ((time.perf_counter() - start) / 60):.2f} networks/min", flush=True)
        common.write_rows(os.path.join(out, f"{variant.replace('-', '_')}.csv"), rows)
        report[variant] = {"regressors": fit_regressors(rows, seed) if len(rows) >= 5 else None,
                           "thesis_rf_r2": THESIS_R2[variant],
                           "mean_test_acc": statistics.fmean(r["test_acc"] for r in rows)}
    minutes = (time.perf_counter() - start) / 60
    common.write_json(os.path.join(out, "summary.json"),
                      {"report": report, "networks": trained, "minutes": minutes,
                       "networks_per_minute": trained / minutes if minutes else None,
                       "seed": seed, "epochs": epochs, "patience": patience, "layout": layout,
                       "trainer": trainer, "bank_size": bank_size, "source": data.source,
                       "train_size": len(data.x_train)})
    _plot(report, os.path.join(out, "r2.png"))
    return report


def _plot(report, path):
    plt = common.pyplot()
    variants = [v for v in report if report[v]["regressors"]]
    if not variants:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = ("BayesianRidge", "RandomForest", "AdaBoost")
    for k, name in enumerate(names):
        ax.bar([i + 0.2 * k for i in range(len(variants))],
               [report[v]["regressors"][name]["r2_cv_mean"] for v in variants], 0.2, label=name)
    ax.scatter([i + 0.2 for i in range(len(variants))],
               [report[v]["thesis_rf_r2"] for v in variants], color="k", marker="x",
               label="thesis RF", zorder=3)
    ax.set_xticks([i + 0.2 for i in range(len(variants))], variants)
    ax.set_ylabel("R² (k-fold)")
    ax.legend(fontsize=7)
    common.save_figure(fig, path)


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, F.graph_variants, F.generators, F.num_graphs, F.graph_epochs,
        int(F.seeds[0]), F.graph_source, F.train_limit, F.layout, F.min_nodes,
        F.max_nodes, F.graph_patience, F.trainer, F.bank_size, F.jit_compile)


if __name__ == "__main__":
    app.run(main)
