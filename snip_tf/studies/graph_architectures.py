"""The thesis's second study: sparse recurrent architectures from random graphs
(:mod:`snip_tf.studies.graph_networks`), trained on the Reber grammar, and how well their graph
properties predict their accuracy.

    python -m snip_tf.studies.graph_architectures --data_dir=$D --num_graphs=100

Each network trains as compiled loops over its own connections
(:mod:`snip_tf.studies.edge_trainer`), one per CPU core at a time; ``--trainer=keras`` trains
each as its Keras model instead (the reference, slower; it also runs the thesis's own network:
``--skips=separate``, ``--padding=unmasked``).
"""

from __future__ import annotations

import json
import os
import statistics
import time

import keras
import networkx as nx
import numpy as np
import tensorflow as tf
from absl import app, flags

from snip_tf import atomic
from snip_tf.experiments import common
from snip_tf.studies import edge_trainer as edge
from snip_tf.studies.graph_networks import (FEATURES, GENERATORS, INITS, IO, SKIPS,
                                            StructureAdam, architecture, assign_weights,
                                            build_model, graph_properties, initial_weights,
                                            random_graph)
from snip_tf.studies.reber_batches import NO_EXAMPLE, EarlyStopping, batches, trim
from snip_tf.studies import reber_common as rc

# The thesis's Random Forest R^2 in its results files, per variant.
THESIS_R2 = {"rnn-tanh": 0.43, "rnn-relu": 0.62, "gru": 0.88, "lstm": 0.58}


def _regressors(seed: int) -> dict:
    from sklearn.ensemble import AdaBoostRegressor, RandomForestRegressor
    from sklearn.linear_model import BayesianRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {"BayesianRidge": make_pipeline(StandardScaler(), BayesianRidge()),
            "RandomForest": RandomForestRegressor(n_estimators=200, random_state=seed),
            "AdaBoost": AdaBoostRegressor(random_state=seed)}


def _xy(rows: list) -> tuple:
    """Graph properties (missing ones as 0) and test accuracy of each network."""
    x = np.nan_to_num(np.array([[r[f] for f in FEATURES] for r in rows], dtype=np.float64))
    return x, np.array([r["test_acc"] for r in rows])


def _folds(n: int, seed: int, folds: int = 5):
    from sklearn.model_selection import KFold

    return KFold(min(folds, n), shuffle=True, random_state=seed)


def fit_regressors(rows: list, seed: int = 0, folds: int = 5) -> dict:
    """R^2 of BayesianRidge, RandomForest and AdaBoost predicting test accuracy from the graph
    properties: on a held-out 20 % split and with k-fold cross-validation; plus the Random
    Forest's feature importances."""
    from sklearn.model_selection import cross_val_score, train_test_split

    x, y = _xy(rows)
    regressors = _regressors(seed)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed)
    out = {}
    for name, reg in regressors.items():
        reg.fit(x_tr, y_tr)
        held_out = float(reg.score(x_te, y_te))
        cv = cross_val_score(reg, x, y, cv=_folds(len(y), seed, folds), scoring="r2")
        out[name] = {"r2_holdout": held_out, "r2_cv_mean": float(np.mean(cv)),
                     "r2_cv_std": float(np.std(cv))}
    forest = regressors["RandomForest"].fit(x, y)
    out["RandomForest"]["feature_importance"] = dict(
        sorted(zip(FEATURES, map(float, forest.feature_importances_)), key=lambda kv: -kv[1]))
    return out


def plot_predictions(rows_by_variant: dict, path: str, seed: int = 0, folds: int = 5):
    """Measured test accuracy against the Random Forest's k-fold (out-of-fold) prediction from
    the graph properties, one panel per variant: how much of the spread the graph explains."""
    from sklearn.model_selection import cross_val_predict

    plt = common.pyplot()
    variants = [v for v, rows in rows_by_variant.items() if len(rows) >= 5]
    if not variants:
        return
    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants), 3.2), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        x, y = _xy(rows_by_variant[variant])
        predicted = cross_val_predict(_regressors(seed)["RandomForest"], x, y,
                                      cv=_folds(len(y), seed, folds))
        generators = [r["graph"] for r in rows_by_variant[variant]]
        for kind in dict.fromkeys(generators):
            pick = [g == kind for g in generators]
            ax.scatter(predicted[pick], y[pick], s=10, label=kind)
        low, high = min(y.min(), predicted.min()), max(y.max(), predicted.max())
        ax.plot([low, high], [low, high], color="grey", linewidth=0.8)
        ax.set_title(variant, fontsize=9)
        ax.set_xlabel("Random Forest prediction (out of fold)")
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].legend(fontsize=6)
    common.save_figure(fig, path)


def _csv_path(out: str, variant: str) -> str:
    return os.path.join(out, f"{variant.replace('-', '_')}.csv")


def _variant_report(variant: str, rows: list, seed: int) -> dict:
    accuracies = [r["test_acc"] for r in rows]
    by_graph = {}
    for r in rows:
        by_graph.setdefault(r["graph"], []).append(r["test_acc"])
    return {"regressors": fit_regressors(rows, seed) if len(rows) >= 5 else None,
            "thesis_rf_r2": THESIS_R2[variant], "networks": len(rows),
            "mean_test_acc": statistics.fmean(accuracies),
            "test_acc": {"min": min(accuracies), "median": statistics.median(accuracies),
                         "max": max(accuracies)},
            "mean_test_acc_by_generator": {k: statistics.fmean(v) for k, v in by_graph.items()}}


def network_seed(seed: int, index: int) -> int:
    """Initialization seed of the study's network ``index`` (its place among all of a variant's
    graphs), the same whichever run trains it."""
    return seed * 100003 + index


def _initial(arch, variant, vocab_size, init_seed, layout, network) -> dict:
    """A network's initial weights (the same for every trainer)."""
    return initial_weights(arch, variant, vocab_size, init_seed, layout,
                           **{k: v for k, v in network.items() if k != "padding"})


def train_one(graph, variant, data, epochs, seed, layout="block", patience=0,
              init_seed=None, min_delta=1e-4, bucket_width=0, full_batches=False,
              learning_rate=1e-3, clipnorm=5.0, **network) -> dict:
    """Train the network of ``graph`` alone, as its Keras model (the reference trainer, any
    ``network`` option: ``io``, ``skips``, ``padding``, ``init``): from the initial weights every
    trainer draws (``graph_networks.initial_weights``, from ``init_seed``, default ``seed``), on
    the batches the edge trainer draws (``reber_batches.batches``, shuffled by ``seed``), with
    Adam and the gradient of the network's connections clipped by its global norm
    (``StructureAdam``), and the per-network early-stopping rule; tested in chunks of 128 cut
    to their longest string, as the edge trainer tests."""
    arch = architecture(graph)
    init_seed = seed if init_seed is None else init_seed
    model = build_model(arch, variant, data.vocab_size, init_seed, layout,
                        **{k: v for k, v in network.items() if k != "init"})
    assign_weights(model, arch, _initial(arch, variant, data.vocab_size, init_seed, layout,
                                         network), network.get("skips", "input"))
    model.compile(optimizer=StructureAdam(learning_rate, global_clipnorm=clipnorm),
                  loss=rc.LOSS)
    start = time.perf_counter()
    stopper, history = EarlyStopping(1, patience, min_delta), []
    dataset = batches(data.x_train, data.y_train, 128, seed, bucket_width, full_batches)
    for _ in range(epochs):
        losses = []
        for tokens, labels in dataset.as_numpy_iterator():
            real = labels != NO_EXAMPLE  # filler rows count in no loss
            losses.append(float(model.train_on_batch(tokens[real], labels[real])))
        history.append(float(np.mean(losses)))
        if stopper.update(np.array(history[-1:]))[0]:
            break
    # One compiled forward pass for every chunk shape (run eagerly, the recurrent loops cost
    # minutes on a network of 20 layers).
    logits_of = tf.function(lambda x: model(x, training=False), input_signature=[
        tf.TensorSpec((None, None), tf.as_dtype(data.x_test.dtype))])
    loss, correct = 0.0, 0
    for i in range(0, len(data.x_test), 128):
        labels = data.y_test[i:i + 128]
        logits = logits_of(trim(data.x_test[i:i + 128]))
        loss += float(keras.ops.sum(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True)))
        correct += int(np.sum(np.argmax(keras.ops.convert_to_numpy(logits), 1) == labels))
    return {"test_acc": correct / len(data.x_test), "test_loss": loss / len(data.x_test),
            "time": time.perf_counter() - start, "epochs_trained": len(history)}


TRAINERS = ("edge", "keras")


def train_networks(graphs, variant, data, epochs, seed, layout="block", patience=0,
                   trainer="edge", bucket_width=0, log=print, on_done=None, init_seeds=None,
                   workers=0, min_delta=1e-4, full_batches=False, **network) -> list:
    """One result dict per graph. ``trainer="edge"`` (the default, the fast path) trains each
    network as compiled loops over its own connections (:mod:`snip_tf.studies.edge_trainer`),
    ``workers`` networks at a time in threads (0: one per CPU core); ``skips="input"`` and
    masked padding only. ``trainer="keras"`` trains them one by one as Keras models
    (:func:`train_one`, the reference; every ``network`` option). Both start each network from
    the same initial weights and train it on the same batches: length-bucketed if
    ``bucket_width``, partial ones filled to full size if ``full_batches`` (see
    ``reber_batches.batches``), shuffled by ``seed``.
    ``patience``/``min_delta``: per-network early stopping on the training loss.
    ``on_done({graph index: result})`` is called as each network finishes.
    Network ``i`` is initialized from ``init_seeds[i]`` (default ``network_seed(seed, i)``).
    ``network``: the networks' ``io``, ``skips``, ``padding`` and ``init`` (see
    ``graph_networks``)."""
    if trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {TRAINERS}; got {trainer!r}.")
    if workers < 0:
        raise ValueError(f"workers must be at least 1 (or 0: the default); got {workers}.")
    if init_seeds is None:
        init_seeds = [network_seed(seed, i) for i in range(len(graphs))]
    if trainer == "keras":
        results = []
        for i, g in enumerate(graphs):
            results.append(train_one(g, variant, data, epochs, seed, layout, patience,
                                     init_seeds[i], min_delta, bucket_width, full_batches,
                                     **network))
            if on_done:
                on_done({i: results[-1]})
        return results
    for name, supported in (("skips", "input"), ("padding", "masked")):
        if network.get(name, supported) != supported:
            raise ValueError(f"trainer='edge' supports {name}={supported!r} only; got "
                             f"{name}={network[name]!r}: use trainer='keras'.")
    start = time.perf_counter()
    archs = [architecture(g) for g in graphs]
    nets = [edge.EdgeNetwork.from_weights(
        variant, _initial(arch, variant, data.vocab_size, init_seed, layout, network))
        for arch, init_seed in zip(archs, init_seeds)]
    epoch_batches = edge.epoch_batches(data.x_train, data.y_train, epochs, 128, seed,
                                       bucket_width, full_batches)
    test = edge.evaluation_batches(data.x_test, data.y_test)
    if log:
        log(f"{variant}: {len(nets)} networks built and {epochs} epochs of batches drawn in "
            f"{time.perf_counter() - start:.0f} s")
    done = []

    def row(result):
        return {"test_acc": result["test_acc"], "test_loss": result["test_loss"],
                "time": result["train_time_s"], "epochs_trained": result["epochs_trained"]}

    def finish(k, result):
        done.append(k)
        if log:
            log(f"{variant}: network {k} ({len(archs[k].layers)} layers, "
                f"{edge.cost(nets[k])} connections) test acc {result['test_acc']:.4f}, "
                f"{result['epochs_trained']} epochs in {result['train_time_s']:.0f} s "
                f"[{len(done)}/{len(nets)}, {time.perf_counter() - start:.0f} s]")
        if on_done:
            on_done({k: row(result)})

    return [row(r) for r in edge.train(nets, epoch_batches, test, patience=patience,
                                       min_delta=min_delta, threads=workers or None,
                                       on_done=finish)]


flags.DEFINE_integer("num_graphs", 100, "Graphs per generator and variant.")
flags.DEFINE_integer("graph_epochs", 15, "Epochs per network (thesis: 15).")
flags.DEFINE_integer("graph_patience", 0, "Per-network early stopping on the training loss "
                     "after this many epochs without improvement; 0 trains every epoch (thesis).")
flags.DEFINE_float("graph_min_delta", 1e-4, "Early stopping: the least decrease of a network's "
                   "epoch training loss that counts as an improvement.")
flags.DEFINE_enum("trainer", "edge", list(TRAINERS),
                  "Train each network as compiled loops over its connections ('edge', Numba; "
                  "skips='input' and masked padding) or as its Keras model ('keras', the "
                  "reference; any network).")
flags.DEFINE_integer("bucket_width", 0, "Draw each batch from strings whose "
                     "lengths fall in one bucket of this width (fewer padded steps); 0 draws "
                     "uniformly, as the thesis.")
flags.DEFINE_bool("full_batches", False, "Fill a partial batch up to 128 rows with empty "
                  "strings no loss counts where the epoch has full batches of its length (the "
                  "same training up to float rounding).")
flags.DEFINE_list("graph_variants", list(rc.VARIANTS), "Variants to study.")
flags.DEFINE_list("generators", list(GENERATORS), "Graph families.")
flags.DEFINE_enum("layout", "block", ["block", "thesis"], "Gate mask layout.")
flags.DEFINE_enum("io", "full", list(IO), "Network interface: 'full' (a 16-wide embedding, a "
                  "classifier over every sink) or 'thesis' (the embedding as wide as the first "
                  "layer, a classifier over the last layer), see graph_networks.")
flags.DEFINE_enum("skips", "input", list(SKIPS), "Skip edges: 'input' (input connections of "
                  "the target layer's cell) or 'separate' (the thesis's: one cell per source "
                  "layer, summed), see graph_networks.")
flags.DEFINE_enum("init", "keras", list(INITS), "Initialization: Keras's defaults, "
                  "'torch' (the thesis's PyTorch code's), or only its embedding "
                  "('torch-embedding') or its cells and classifier ('torch-cells'), see "
                  "graph_networks.initial_weights.")
flags.DEFINE_integer("init_seed", None, "Initialize the networks from this seed instead of "
                     "--seed, keeping the graphs and the batches: a replicate of a run that "
                     "differs in its initial weights only (compare the two with "
                     "--compare_with).")
flags.DEFINE_integer("min_nodes", 10, "Smallest graph.")
flags.DEFINE_integer("max_nodes", 50, "Largest graph.")
flags.DEFINE_enum("graph_source", "thesis", ["thesis", "generated"], "Reber data set.")
flags.DEFINE_string("compare_with", None, "Train nothing: compare the test accuracies in "
                    "--results_dir with those of the same graphs in this folder, network by "
                    "network (comparison_<folder>.json).")
flags.DEFINE_bool("refit", False, "Train nothing: fit the regressors again on the per-variant "
                  "CSVs already in the results folder and rewrite summary_refit.json; with "
                  "--generators, on those families' networks only.")


def run(data_dir=None, results_dir=None, variants=rc.VARIANTS, generators=GENERATORS,
        num_graphs=100, epochs=15, seed=0, source="thesis", train_limit=0, layout="block",
        min_nodes=10, max_nodes=50, patience=0, trainer="edge", bucket_width=0,
        resume=False, io="full", skips="input", padding="masked", init="keras", workers=0,
        min_delta=1e-4, init_seed=None, full_batches=False) -> dict:
    """The study; see the module's flags. ``seed`` draws the graphs, orders the batches and, by
    default, initializes the networks; ``init_seed`` initializes them instead, so that two runs
    differ in their networks' initial weights only (a control for any other change).

    Each variant's CSV is rewritten as each network finishes, and ``resume=True`` trains only
    the networks not yet in it (same settings required), so a long study can be run in pieces:
    a network's result depends on nothing else trained. The edge trainer takes the costliest
    networks first, so the CSV of an unfinished variant holds the larger networks, not a
    sample: fit regressors on finished variants only."""
    out = common.out_dir("graph_architectures", results_dir)
    settings = {"seed": seed, "epochs": epochs, "patience": patience, "min_delta": min_delta,
                "layout": layout,
                "bucket_width": bucket_width, "source": source, "train_limit": train_limit,
                "num_graphs": num_graphs, "generators": list(generators),
                "min_nodes": min_nodes, "max_nodes": max_nodes, "io": io, "skips": skips,
                "padding": padding, "init": init,
                "init_seed": seed if init_seed is None else init_seed,
                "full_batches": full_batches}
    data = rc.load(source, data_dir, seed=seed, train_limit=train_limit)
    _check_settings(os.path.join(out, "study.json"), settings, resume)  # its first write
    rng = np.random.default_rng(seed)
    report, finished = {}, {}
    start = time.perf_counter()
    trained = 0
    for variant in variants:
        rows, graphs = [], []
        for kind in generators:
            for i in range(num_graphs):
                n = int(rng.integers(min_nodes, max_nodes + 1))
                graph = random_graph(kind, n, seed=seed * 100003 + i)
                common.write_text(_graph_path(out, variant, kind, i),
                                  "\n".join(nx.generate_graphml(graph)))
                rows.append({"mode": variant, "graph": kind, "graph_nr": i,
                             **graph_properties(graph)})
                graphs.append(graph)
        path = _csv_path(out, variant)
        if resume and os.path.exists(path):
            saved = {(r["graph"], r["graph_nr"]): r for r in _read_rows(path)}
            for row in rows:
                row.update({k: v for k, v in saved.get((row["graph"], row["graph_nr"]),
                                                       {}).items() if k in RESULT_FIELDS})
        todo = [j for j, row in enumerate(rows) if "test_acc" not in row]

        def save(results, todo=todo, rows=rows, path=path):
            for j, result in results.items():
                rows[todo[j]].update(result)
            common.write_rows(path, [r for r in rows if "test_acc" in r])

        if todo:
            train_networks([graphs[j] for j in todo], variant, data, epochs, seed, layout,
                           patience, trainer, bucket_width, on_done=save,
                           init_seeds=[network_seed(settings["init_seed"], j) for j in todo],
                           workers=workers, min_delta=min_delta, full_batches=full_batches,
                           io=io, skips=skips, padding=padding, init=init)
        trained += len(todo)
        minutes = (time.perf_counter() - start) / 60
        print(f"{variant}: {len(rows)} networks ({len(todo)} trained now), mean test acc "
              f"{statistics.fmean(r['test_acc'] for r in rows):.4f}; "
              f"{trained / minutes:.2f} networks/min", flush=True)
        report[variant] = _variant_report(variant, rows, seed)
        # Written after every variant, so that a long study stopped early keeps what it finished.
        common.write_json(os.path.join(out, "summary.json"),
                          {"report": report, "networks": trained, "minutes": minutes,
                           "networks_per_minute": trained / minutes if minutes else None,
                           **settings, "trainer": trainer, "workers": workers,
                           "source": data.source, "train_size": len(data.x_train)})
        _plot(report, os.path.join(out, "r2.png"))
        finished[variant] = rows
        plot_predictions(finished, os.path.join(out, "predicted.png"), seed)
    return report


# A variant's CSV has the thesis's columns (mode, graph, graph_nr, the features, test_acc,
# test_loss, time), then epochs_trained.
RESULT_FIELDS = ("test_acc", "test_loss", "time", "epochs_trained")
SETTING_DEFAULTS = {"io": "full", "skips": "input", "padding": "masked", "init": "keras",
                    "min_delta": 1e-4, "full_batches": False}


def _check_settings(path, settings, resume):
    """Record the study's settings; when resuming, refuse to mix results of other settings."""
    if resume and os.path.exists(path):
        before = atomic.read_json(path, expect=dict)
        # Settings added after a study was recorded take their default there.
        before = {**SETTING_DEFAULTS, "init_seed": before.get("seed"), **before}
        common.require_same_settings(before, settings, os.path.dirname(path))
    atomic.write_json(path, settings)


def _read_rows(path) -> list:
    """The per-network rows of a variant's CSV, numbers as floats (``graph_nr`` and
    ``epochs_trained`` ints, so that a resumed study writes them back as they were). Rows of
    the layout before the thesis's (variant, graph "<generator>_<nr>", generator, ...,
    train_time_s) come back with the thesis's keys and without graph properties: ``refit``
    computes those again from the saved graphs."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        if "variant" in row:  # the earlier layout
            row = {"mode": row["variant"], "graph": row["generator"],
                   "graph_nr": row["graph"].rsplit("_", 1)[1],
                   **{k: row[k] for k in ("test_acc", "test_loss", "epochs_trained")},
                   "time": row["train_time_s"]}
        out.append({k: v if k in ("mode", "graph") else
                    int(float(v)) if k in ("graph_nr", "epochs_trained") and v else
                    float(v or "nan") for k, v in row.items()})
    return out


def _graph_dir(out: str) -> str:
    return os.path.join(out, "graphs")


def _graph_path(out: str, variant: str, kind: str, number: int) -> str:
    return os.path.join(_graph_dir(out), f"{variant}_{kind}_{number}.graphml")


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


def refit(results_dir=None, variants=rc.VARIANTS, seed=0, generators=None) -> dict:
    """The regressors on the saved per-network CSVs (e.g. of a study stopped before its end),
    without training; writes ``summary_refit.json``. Variants without a CSV are skipped. A CSV
    of the earlier layout is brought to the current one (properties from its saved graphs).
    ``generators`` keeps only those graph families' networks (e.g. the thesis's two); the
    outputs are then named after them (``summary_refit_<generators>.json``, ...)."""
    out = common.out_dir("graph_architectures", results_dir)
    report, rows = {}, {}
    for variant in variants:
        path = _csv_path(out, variant)
        if not os.path.exists(path):
            continue
        rows[variant] = _read_rows(path)
        if any(FEATURES[0] not in row for row in rows[variant]):
            # a CSV of the earlier layout: the properties again, from the saved graphs, as now
            # defined; the CSV is rewritten in the thesis's layout
            rows[variant] = [{**{k: row[k] for k in ("mode", "graph", "graph_nr")},
                              **graph_properties(nx.read_graphml(
                                  _graph_path(out, variant, row["graph"], row["graph_nr"]),
                                  node_type=int)),
                              **{k: row[k] for k in RESULT_FIELDS}} for row in rows[variant]]
            common.write_rows(path, rows[variant])
        if generators:
            rows[variant] = [row for row in rows[variant] if row["graph"] in generators]
        report[variant] = _variant_report(variant, rows[variant], seed)
    if not report:
        raise FileNotFoundError(f"No per-variant CSV of {list(variants)} in {out}.")
    suffix = "_" + "+".join(generators) if generators else ""
    common.write_json(os.path.join(out, f"summary_refit{suffix}.json"),
                      {"report": report, "seed": seed,
                       "generators": list(generators) if generators else "all"})
    _plot(report, os.path.join(out, f"r2{suffix}.png"))
    plot_predictions(rows, os.path.join(out, f"predicted{suffix}.png"), seed)
    return report


def compare(results_dir, other_dir: str, variants=rc.VARIANTS) -> dict:
    """How the test accuracies of two runs on the same graphs differ, network by network
    (paired by generator and graph number), e.g. two gate layouts or two packings. Per variant:
    the mean of other − this, the median and largest absolute difference (in points), how
    many networks agree within 1 point, and Spearman's ρ between the two runs' accuracies.
    Writes ``comparison_<other folder's name>.json`` into ``results_dir`` (default: the
    study's, as ``refit``); variants without both CSVs are skipped."""
    from scipy.stats import spearmanr

    results_dir = common.out_dir("graph_architectures", results_dir)
    report = {}
    for variant in variants:
        paths = [_csv_path(d, variant) for d in (results_dir, other_dir)]
        if not all(os.path.exists(p) for p in paths):
            continue
        this, other = ({(r["graph"], r["graph_nr"]): 100 * r["test_acc"] for r in _read_rows(p)}
                       for p in paths)
        shared = sorted(set(this) & set(other))
        if not shared:
            raise ValueError(f"{variant}: the runs in {results_dir} and {other_dir} share no "
                             f"graph; compare runs of the same graphs.")
        a, b = np.array([this[k] for k in shared]), np.array([other[k] for k in shared])
        diff = b - a
        worst = int(np.argmax(np.abs(diff)))
        report[variant] = {
            "networks": len(shared), "mean_this": float(a.mean()), "mean_other": float(b.mean()),
            "mean_difference": float(diff.mean()),
            "median_abs_difference": float(np.median(np.abs(diff))),
            "max_abs_difference": float(abs(diff[worst])),
            "max_abs_difference_network": "_".join(map(str, shared[worst])),
            "within_1_point": int((np.abs(diff) <= 1).sum()),
            "spearman_rho": float(spearmanr(a, b).statistic)}
    if not report:
        raise FileNotFoundError(f"No variant has a CSV in both {results_dir} and {other_dir}.")
    name = os.path.basename(os.path.normpath(other_dir))
    common.write_json(os.path.join(results_dir, f"comparison_{name}.json"),
                      {"this": results_dir, "other": other_dir, "report": report})
    return report


def main(argv):
    del argv
    F = common.FLAGS
    if F.compare_with:
        print(json.dumps(compare(F.results_dir, F.compare_with, F.graph_variants), indent=2))
        return
    if F.refit:
        # --generators narrows a refit only when given explicitly
        refit(F.results_dir, F.graph_variants, common.one_seed("graph_architectures"),
              F.generators if F["generators"].present else None)
        return
    run(F.data_dir, F.results_dir, F.graph_variants, F.generators, F.num_graphs, F.graph_epochs,
        common.one_seed("graph_architectures"), F.graph_source, F.train_limit, F.layout,
        F.min_nodes, F.max_nodes, F.graph_patience, F.trainer, F.bucket_width, F.resume, F.io,
        F.skips, F.padding, F.init, F.workers if F["workers"].present else 0,
        F.graph_min_delta, F.init_seed, F.full_batches)


if __name__ == "__main__":
    app.run(main)
