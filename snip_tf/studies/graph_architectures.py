"""The thesis's second study: sparse recurrent architectures from random graphs
(:mod:`snip_tf.studies.graph_networks`), trained on the Reber grammar, and how well their graph
properties predict their accuracy.

    python -m snip_tf.studies.graph_architectures --data_dir=$D --num_graphs=100

Each network trains as compiled loops over its own connections
(:mod:`snip_tf.studies.edge_trainer`), one per CPU core at a time; ``--trainer=bank`` trains
them in batched TensorFlow banks (:mod:`snip_tf.studies.network_bank`) instead.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import statistics
import sys
import time

import keras
import networkx as nx
import numpy as np
from absl import app, flags

from snip_tf import atomic
from snip_tf.experiments import common
from snip_tf.studies import edge_trainer as edge
from snip_tf.studies import network_bank as nb
from snip_tf.studies.graph_networks import (FEATURES, GENERATORS, IO, SKIPS,
                                            architecture, build_model, graph_properties,
                                            random_graph)
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
    graphs), the same whichever bank or run trains it."""
    return seed * 100003 + index


def train_one(graph, variant, data, epochs, seed, layout="block", patience=0,
              init_seed=None, io="full", skips="input", padding="masked",
              init="keras", min_delta=1e-4) -> dict:
    """Train the network of ``graph`` alone, as a Keras model (the reference path; the study
    trains in banks, see ``train_networks``). ``seed`` shuffles the data; ``init_seed``
    (default ``seed``) initializes the weights."""
    if init != "keras" or padding != "masked":
        raise ValueError(f"init={init!r} and padding={padding!r} need trainer='bank' (the "
                         f"Keras trainer has Keras's initialization and masked padding).")
    arch = architecture(graph)
    model = build_model(arch, variant, data.vocab_size,
                        seed if init_seed is None else init_seed, layout, io=io, skips=skips)
    # The thesis clips the global gradient norm (torch's clip_grad_norm_), as the bank does.
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=5.0), loss=rc.LOSS,
                  metrics=["accuracy"])
    start = time.perf_counter()
    callbacks = [keras.callbacks.EarlyStopping(monitor="loss", patience=patience,
                                               min_delta=min_delta)] if patience else []
    history = model.fit(rc.train_dataset(data, seed, batch_size=128), epochs=epochs, verbose=0,
                        callbacks=callbacks, shuffle=False)
    test = model.evaluate(data.x_test, data.y_test, batch_size=512, verbose=0, return_dict=True)
    return {"test_acc": float(test["accuracy"]), "test_loss": float(test["loss"]),
            "time": time.perf_counter() - start,
            "epochs_trained": len(history.history["loss"])}


def use_threads(threads: int):
    """Limit this process's TensorFlow to ``threads`` CPU threads (a worker's initializer: it
    must run before TensorFlow does anything)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_in_processes(fn, tasks: list, on_result, workers: int, initializer=None,
                     initargs=(), retries: int = 2, log=print):
    """Call ``fn(*task)`` for every task in ``workers`` processes, in order of ``tasks``, and
    ``on_result(index, result)`` in this process as each one finishes.

    Every task gets a fresh process (Python 3.11+): XLA never unmaps the code it compiles, so
    a process that compiles bank after bank runs into the kernel's limit on memory mappings
    (``vm.max_map_count``, 65,530 by default; one deep GRU bank leaves about 17,000), and
    LLVM's next compilation fails with "Cannot allocate memory" and kills the process. A worker
    that dies all the same breaks the whole pool; the tasks it left unfinished run again in a
    new pool, up to ``retries`` times. Tasks must be deterministic for that to change no result
    (a bank's training is: the same seed gives the same batches and weights). An exception
    raised by ``fn`` itself is not retried. Processes are "spawn"ed: a forked TensorFlow is not
    safe.
    """
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    pending = list(range(len(tasks)))
    for attempt in range(retries + 1):
        broken = None
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=initializer, initargs=initargs, **fresh) as pool:
            running = {pool.submit(fn, *tasks[i]): i for i in pending}
            for future in concurrent.futures.as_completed(running):
                try:
                    result = future.result()
                except concurrent.futures.process.BrokenProcessPool as error:
                    broken = error
                    continue
                on_result(running[future], result)
                pending.remove(running[future])
        if not pending:
            return
        if attempt < retries:
            log(f"a worker process died ({broken}); running its {len(pending)} unfinished "
                f"task(s) again in new processes (retry {attempt + 1} of {retries})")
    raise RuntimeError(f"worker processes died {retries + 1} times; {len(pending)} task(s) "
                       f"unfinished. Results finished so far are kept; for the study, run "
                       f"again with --resume.") from broken


def _train_bank(archs, variant, data, seeds, epochs, seed, layout, patience, jit_compile,
                bucket_width, networks_per_slot, network, log, min_delta=1e-4, compact=0.75,
                full_batches=False):
    """Train one bank; returns ``network_bank.train``'s results, the bank's padding factor
    and depth (run in this process or in a worker)."""
    bank = nb.NetworkBank(archs, variant, data.vocab_size, seeds=seeds, layout=layout,
                          networks_per_slot=networks_per_slot, **network)
    out = nb.train(bank, data.x_train, data.y_train, data.x_test, data.y_test,
                   epochs=epochs, batch_size=128, patience=patience, min_delta=min_delta,
                   seed=seed, jit_compile=jit_compile, bucket_width=bucket_width,
                   compact=compact, full_batches=full_batches, log=log)
    padding = nb.padding_factor([archs], bank.gates, io=bank.io, skips=bank.skips,
                                networks_per_slot=networks_per_slot)
    return out, padding, len(bank.widths)


def _train_edge(archs, variant, data, epochs, seed, layout, patience, min_delta, bucket_width,
                full_batches, init_seeds, threads, log, on_done, network) -> list:
    """``train_networks`` with ``trainer="edge"``: every network as an ``EdgeNetwork``, initialized
    as the bank trainer initializes it (a ``NetworkBank`` builds the weights), trained on the
    same batches, ``threads`` networks at a time."""
    for name, supported in (("skips", "input"), ("padding", "masked")):
        if network.get(name, supported) != supported:
            raise ValueError(f"trainer='edge' supports {name}={supported!r} only; got "
                             f"{name}={network[name]!r}: use trainer='bank'.")
    start = time.perf_counter()
    nets = []
    for first in range(0, len(archs), 50):  # a bank only to draw the initial weights
        bank = nb.NetworkBank(archs[first:first + 50], variant, data.vocab_size,
                              seeds=init_seeds[first:first + 50], layout=layout,
                              networks_per_slot=8, **network)
        nets += [edge.EdgeNetwork.from_bank(bank, k) for k in range(bank.size)]
    batches = edge.epoch_batches(data.x_train, data.y_train, epochs, 128, seed, bucket_width,
                                 full_batches)
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

    return [row(r) for r in edge.train(nets, batches, test, patience=patience,
                                       min_delta=min_delta, threads=threads, on_done=finish)]


TRAINERS = ("edge", "bank", "keras")


def train_networks(graphs, variant, data, epochs, seed, layout="block", patience=0,
                   trainer="edge", bank_size=50, jit_compile=True, bucket_width=0,
                   log=print, on_done=None, init_seeds=None, networks_per_slot=1,
                   workers=0, min_delta=1e-4, compact=0.75, full_batches=False,
                   **network) -> list:
    """One result dict per graph. ``trainer="edge"`` (the default) trains each network as
    compiled loops over its own connections (:mod:`snip_tf.studies.edge_trainer`), ``workers``
    networks at a time in threads (0: one per CPU core), on the bank trainer's batches and
    initial weights (``skips="input"`` and masked padding only).
    ``trainer="bank"`` trains ``bank_size`` networks at a time as one batched computation
    (:class:`NetworkBank`), grouping networks of similar depth and size so that little is
    padded. Both draw length-bucketed batches if ``bucket_width``, partial batches filled to
    full size if ``full_batches`` (see ``reber_batches.batches``); for the bank,
    ``networks_per_slot`` side by side in each slot of a bank (``network_bank.pack``),
    ``workers`` banks at a time in as many processes (each with an equal share of the CPU's
    threads; with ``jit_compile`` each bank in a fresh process, even with one worker, see
    ``run_in_processes``; 0: one); ``"keras"`` trains them one by one, on uniform batches.
    ``patience``/``min_delta``: per-network early stopping on the training loss; a bank is
    repacked without its stopped networks once that leaves at most ``compact`` of its
    arithmetic (``network_bank.train``).
    ``on_done({graph index: result})`` is called as each bank (or Keras network) finishes.
    Network ``i`` is initialized from ``init_seeds[i]`` (default ``network_seed(seed, i)``); all
    train on the same batches, shuffled by ``seed``. ``network``: the networks' ``io``,
    ``skips``, ``padding`` and ``init`` (see ``NetworkBank``)."""
    if init_seeds is None:
        init_seeds = [network_seed(seed, i) for i in range(len(graphs))]
    if trainer == "keras":
        results = []
        for i, g in enumerate(graphs):
            results.append(train_one(g, variant, data, epochs, seed, layout, patience,
                                     init_seeds[i], min_delta=min_delta, **network))
            if on_done:
                on_done({i: results[-1]})
        return results
    if trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {TRAINERS}; got {trainer!r}.")
    if workers < 0:
        raise ValueError(f"workers must be at least 1 (or 0: the default); got {workers}.")
    archs = [architecture(g) for g in graphs]
    if trainer == "edge":
        return _train_edge(archs, variant, data, epochs, seed, layout, patience, min_delta,
                           bucket_width, full_batches, init_seeds, workers or None, log,
                           on_done, network)
    workers = workers or 1
    order = sorted(range(len(archs)), key=lambda i: nb.padding_key(archs[i]))
    banks = [order[first:first + bank_size] for first in range(0, len(order), bank_size)]
    results = [None] * len(archs)

    def task(members, log):
        return ([archs[i] for i in members], variant, data, [init_seeds[i] for i in members],
                epochs, seed, layout, patience, jit_compile, bucket_width, networks_per_slot,
                network, log, min_delta, compact, full_batches)

    def finish(members, out, padding, depth):
        for j, i in enumerate(members):
            results[i] = {"test_acc": float(out["test_acc"][j]),
                          "test_loss": float(out["test_loss"][j]),
                          "time": out["train_time_s"] / len(members),
                          "epochs_trained": int(out["epochs_trained"][j])}
        if on_done:
            on_done({i: results[i] for i in members})
        if log:
            log(f"{variant}: bank of {len(members)} networks (depth <= {depth}, "
                f"{padding:.1f}x the arithmetic of each alone) in "
                f"{out['train_time_s']:.0f} s, "
                f"{60 * len(members) / out['train_time_s']:.2f} networks/min")

    # One XLA-compiled bank after another in this process would exhaust its memory mappings
    # (see run_in_processes), so then even one worker is a process of its own per bank.
    if len(banks) == 1 or (workers == 1 and not jit_compile):
        for members in banks:
            finish(members, *_train_bank(*task(members, log)))
        return results
    # Processes, not threads: a bank's step is one long XLA computation per batch, and two of
    # them on one thread each keep 2 cores busier than one on two threads.
    threads = max(1, (os.cpu_count() or 1) // workers)

    def cost(members):
        return nb.bank_macs([archs[i] for i in members], nb.GATES[variant],
                            io=network.get("io", "full"), skips=network.get("skips", "input"),
                            networks_per_slot=networks_per_slot)

    # Costliest bank first (longest-processing-time order), so that the last banks to run are
    # short and no worker idles long while another finishes a deep bank.
    ordered = sorted(banks, key=cost, reverse=True)
    run_in_processes(_train_bank, [task(members, print if log else None) for members in ordered],
                     lambda b, out: finish(ordered[b], *out), workers,
                     initializer=use_threads, initargs=(threads,), log=log or print)
    return results


flags.DEFINE_integer("num_graphs", 100, "Graphs per generator and variant.")
flags.DEFINE_integer("graph_epochs", 15, "Epochs per network (thesis: 15).")
flags.DEFINE_integer("graph_patience", 0, "Per-network early stopping on the training loss "
                     "after this many epochs without improvement; 0 trains every epoch (thesis).")
flags.DEFINE_float("graph_min_delta", 1e-4, "Early stopping: the least decrease of a network's "
                   "epoch training loss that counts as an improvement.")
flags.DEFINE_float("compact", 0.75, "Bank trainer with early stopping: repack a bank without "
                   "its stopped networks once that leaves at most this fraction of its "
                   "arithmetic; 0 never (no effect on results).")
flags.DEFINE_enum("trainer", "edge", list(TRAINERS),
                  "Train each network as compiled loops over its connections ('edge', Numba; "
                  "skips='input' and masked padding), in batched TensorFlow banks ('bank'), or "
                  "one Keras model at a time ('keras').")
flags.DEFINE_integer("bank_size", 50, "Networks trained together in one bank.")
flags.DEFINE_integer("networks_per_slot", 8, "Bank trainer: networks packed side by side in "
                     "each slot of a bank (fewer padded units; no effect on results).")
flags.DEFINE_integer("workers", 0, "Networks (edge trainer: threads) or banks (bank trainer: "
                     "processes with an equal share of the CPU threads) trained at a time; 0: "
                     "one per CPU core (edge), 1 (bank). No effect on results.")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the bank's training step.")
flags.DEFINE_integer("bucket_width", 0, "Draw each batch from strings whose "
                     "lengths fall in one bucket of this width (fewer padded steps); 0 draws "
                     "uniformly, as the thesis.")
flags.DEFINE_bool("full_batches", False, "Fill a partial batch up to 128 rows with empty "
                  "strings no loss counts where the epoch has full batches of its length, so "
                  "that the bank's XLA step compiles for fewer shapes (the same training up to "
                  "float rounding).")
flags.DEFINE_list("graph_variants", list(rc.VARIANTS), "Variants to study.")
flags.DEFINE_list("generators", list(GENERATORS), "Graph families.")
flags.DEFINE_enum("layout", "block", ["block", "thesis"], "Gate mask layout.")
flags.DEFINE_enum("io", "full", list(IO), "Network interface: 'full' (a 16-wide embedding, a "
                  "classifier over every sink) or 'thesis' (the embedding as wide as the first "
                  "layer, a classifier over the last layer), see graph_networks.")
flags.DEFINE_enum("skips", "input", list(SKIPS), "Skip edges: 'input' (input connections of "
                  "the target layer's cell) or 'separate' (the thesis's: one cell per source "
                  "layer, summed), see graph_networks.")
flags.DEFINE_enum("init", "keras", list(nb.INITS), "Initialization: Keras's defaults, "
                  "'torch' (the thesis's PyTorch code's), or only its embedding "
                  "('torch-embedding') or its cells and classifier ('torch-cells'), see "
                  "NetworkBank.")
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
        min_nodes=10, max_nodes=50, patience=0, trainer="edge", bank_size=50,
        jit_compile=True, bucket_width=0, resume=False, io="full", skips="input",
        padding="masked", init="keras", networks_per_slot=8, workers=0, min_delta=1e-4,
        compact=0.75, init_seed=None, full_batches=False) -> dict:
    """The study; see the module's flags. ``seed`` draws the graphs, orders the batches and, by
    default, initializes the networks; ``init_seed`` initializes them instead, so that two runs
    differ in their networks' initial weights only (a control for any other change).

    Each variant's CSV is rewritten as each bank finishes, and ``resume=True`` trains only the
    networks not yet in it (same settings required), so a long study can be run in pieces: a
    network's result does not depend on its bank-mates.
    Banks are cut from the networks sorted by depth and size, so the CSV of an unfinished
    variant holds groups of similar networks, not a sample: fit regressors on finished
    variants only."""
    out = common.out_dir("graph_architectures", results_dir)
    os.makedirs(_graph_dir(out), exist_ok=True)
    settings = {"seed": seed, "epochs": epochs, "patience": patience, "min_delta": min_delta,
                "layout": layout,
                "bucket_width": bucket_width, "source": source, "train_limit": train_limit,
                "num_graphs": num_graphs, "generators": list(generators),
                "min_nodes": min_nodes, "max_nodes": max_nodes, "io": io, "skips": skips,
                "padding": padding, "init": init,
                "init_seed": seed if init_seed is None else init_seed,
                "full_batches": full_batches}
    _check_settings(os.path.join(out, "study.json"), settings, resume)
    data = rc.load(source, data_dir, seed=seed, train_limit=train_limit)
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
                nx.write_graphml(graph, _graph_path(out, variant, kind, i))
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
                           patience, trainer, bank_size, jit_compile, bucket_width,
                           on_done=save,
                           init_seeds=[network_seed(settings["init_seed"], j) for j in todo],
                           networks_per_slot=networks_per_slot, workers=workers,
                           min_delta=min_delta, compact=compact,
                           full_batches=full_batches, io=io,
                           skips=skips, padding=padding, init=init)
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
                           **settings, "trainer": trainer, "bank_size": bank_size,
                           "networks_per_slot": networks_per_slot, "workers": workers,
                           "compact": compact,
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
        with open(path) as f:
            before = json.load(f)
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
        F.min_nodes, F.max_nodes, F.graph_patience, F.trainer, F.bank_size, F.jit_compile,
        F.bucket_width, F.resume, F.io, F.skips, F.padding, F.init, F.networks_per_slot,
        F.workers, F.graph_min_delta, F.compact, F.init_seed, F.full_batches)


if __name__ == "__main__":
    app.run(main)
