"""Which pruning-at-initialization criterion wins where: every criterion at extreme sparsities.

    python -m snip_tf.experiments.criteria_comparison --data_dir=../shared/data --epochs=5 \
        --models=lenet-5-caffe,lstm-s,reber-gru --seeds=0,1

LeNet-5-Caffe on MNIST, LSTM-s on sequential MNIST and the thesis's GRU on the Reber grammar, at
90, 95, 98, 99, 99.5, 99.8 and 99.9 % sparsity, pruned by snip, iterative_snip, grasp, synflow,
magnitude and random: test error and whether a layer collapsed. The Keras models train on the
"short" protocol (LSTM-s: Adam, which fits a few epochs). A criterion that fails (e.g.
SynFlow's non-finite scores) is tabled as failed. Each run's result is kept in
results/criteria_comparison/runs/ as it finishes (a failed run too: delete its file to try it
again), and the command run again trains only what is missing (--workers=2: two Keras runs at a
time). Writes results/criteria_comparison/{comparison.csv,comparison.json,comparison.md,
comparison.png}.
"""

from __future__ import annotations

import os
import warnings

from absl import app, flags

from snip_tf import atomic
from snip_tf import criteria as snip_criteria
from snip_tf import data as snip_data
from snip_tf import pruning
from snip_tf.experiments import common

flags.DEFINE_list("sparsities", [], "Only these sparsities (default: the seven of the study).")
flags.DEFINE_bool("replot", False, "Train nothing: redraw comparison.png from the "
                  "comparison.json in the results folder.")

SPARSITIES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
DENSE = "dense"  # the unpruned model at the same budget: the reference each criterion is read against
MODELS = ("lenet-5-caffe", "lstm-s", "reber-gru")


def _reber_run(sparsity, criterion, seed, epochs, data_dir, train_limit, source):
    from snip_tf.studies import reber_common as rc

    data = rc.load(source, data_dir, seed=seed, train_limit=train_limit)
    model = rc.build("gru", data, seed)
    if criterion != DENSE:
        needs_data = snip_criteria.get(criterion).needs_data
        batch = (data.x_train[:128], data.y_train[:128]) if needs_data else None
        pruning.prune(model, batch, sparsity, criterion=criterion, seed=seed)
    rows = rc.fit_epochs(model, data, epochs, seed, "gru", int(sparsity * 1000))
    report = pruning.sparsity_report(model)
    return {"model": "reber-gru", "dataset": "reber", "sparsity": sparsity,
            "criterion": criterion, "seed": seed, "test_error": 1 - rows[-1]["test_acc"],
            "reached_sparsity": report.sparsity, "collapsed": ";".join(report.collapsed),
            "epochs": epochs}


def _reber_source(data_dir) -> str:
    """The Reber data the reber-gru runs train on: the thesis's files if present, else generated."""
    folder = snip_data.data_dir(data_dir)
    thesis = folder is not None and os.path.isdir(os.path.join(folder, "reber_thesis"))
    return "thesis" if thesis else "generated"


def _reber_kept(out, sparsity, criterion, seed, epochs, data_dir, train_limit) -> dict:
    """A reber-gru run's row, kept in ``<out>/runs/`` (atomically) as it finishes and read
    from there when the command runs again; a run whose criterion cannot rank the model
    (``ScoresError``) is kept as failed. With --report_only, a missing run is an error."""
    source = _reber_source(data_dir)
    path = os.path.join(out, "runs", f"reber-gru_{source}_{criterion}_s{sparsity:g}_seed{seed}_"
                                     f"epochs{epochs}_limit{train_limit}.json")
    if os.path.exists(path):
        return atomic.read_json(path, expect=dict)
    if common.FLAGS.is_parsed() and common.FLAGS.report_only:
        raise app.UsageError(f"--report_only: {path} is not there yet, and this experiment "
                             "tables complete results only; run it without --report_only.")
    try:
        row = {**_reber_run(sparsity, criterion, seed, epochs, data_dir, train_limit, source),
               "status": "ok"}
    except pruning.ScoresError as error:   # e.g. non-finite SynFlow scores
        row = {"model": "reber-gru", "sparsity": sparsity, "criterion": criterion,
               "seed": seed, "status": f"failed: {error}"[:200]}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic.write_json(path, row)
    return row


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=5, train_limit=0,
        models=MODELS, criteria=None, sparsities=SPARSITIES, workers=1) -> list:
    known = snip_criteria.names() + [DENSE]
    criteria = list(common.check_names("criteria", criteria or (), known) or known)
    if "reber-gru" in models and common.FLAGS.is_parsed() and common.FLAGS.set:
        raise app.UsageError("--set changes the configs of the Keras runs; reber-gru trains by "
                             "the thesis's own loop, which it would not reach. Run reber-gru "
                             "without --set (e.g. --models=lenet-5-caffe,lstm-s with it).")
    settings = []
    for model in models:
        runs = [(0.0, DENSE)] if DENSE in criteria else []
        runs += [(s, c) for s in sparsities for c in criteria if c != DENSE]
        settings += [(model, sparsity, criterion, seed) for sparsity, criterion in runs
                     for seed in seeds]
    cfgs = [common.config(model, sparsity, seed=seed, epochs=epochs, train_limit=train_limit,
                          protocol="short",
                          **{"snip.criterion": criterion if criterion != DENSE else "snip",
                             "snip.batch_size": 100})
            for model, sparsity, criterion, seed in settings if model != "reber-gru"]
    out = common.out_dir("criteria_comparison", results_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pruning.LayerCollapseWarning)
        trained = iter(common.run_all(
            cfgs, data_dir, out, workers, failures_ok=True,
            row_of=lambda cfg, result: {**common.row_of(cfg, result), "status": "ok"}))
        rows = [_reber_kept(out, sparsity, criterion, seed, epochs, data_dir, train_limit)
                if model == "reber-gru" else next(trained)
                for model, sparsity, criterion, seed in settings]
    for row in rows:
        print(f"{row['model']} {row['sparsity']} {row['criterion']} seed {row['seed']}: "
              f"{row.get('test_error', float('nan')):.4f} "
              f"collapsed={row.get('collapsed', '')!r} {row['status'][:40]}", flush=True)
    common.write_rows(os.path.join(out, "comparison.csv"), rows)
    common.write_json(os.path.join(out, "comparison.json"),
                      {"rows": rows, "seeds": list(seeds), "epochs": epochs,
                       "train_limit": train_limit})
    ok = [r for r in rows if r["status"] == "ok"]
    pruned = [c for c in criteria if c != DENSE]
    lines = ["| model | sparsity | " + " | ".join(pruned) + " |",
             "|---|---|" + "---|" * len(pruned)]
    for model in models:
        dense = [r["test_error"] for r in ok if r["model"] == model and r["criterion"] == DENSE]
        if dense:
            # At 0 % every criterion leaves the dense network: its error fills the row, so that
            # no column seems to own it.
            value = common.pct(common.mean_std(dense)[0])
            lines.append(f"| {model} | 0 % (dense) | " + " | ".join([value] * len(pruned)) + " |")
        for sparsity in sparsities:
            cells = []
            for criterion in pruned:
                group = [r for r in ok if r["model"] == model and r["sparsity"] == sparsity
                         and r["criterion"] == criterion]
                if not group:
                    cells.append("failed")
                    continue
                mean, std = common.mean_std(r["test_error"] for r in group)
                collapsed = any(r["collapsed"] for r in group)
                cells.append(f"{common.pct(mean)}" + (" (collapse)" if collapsed else ""))
            lines.append(f"| {model} | {100 * sparsity:g} % | " + " | ".join(cells) + " |")
    lines.append(f"\ntest error %, mean over seeds {list(seeds)}; {epochs} epochs per run.\n")
    common.write_text(os.path.join(out, "comparison.md"), "\n".join(lines))
    plot(rows, models, criteria, sparsities, os.path.join(out, "comparison.png"))
    return rows


def plot(rows, models, criteria, sparsities, path):
    """Test error against the fraction of weights kept, both on log scales, one panel per
    model (linear axes squash the extreme sparsities this comparison is about)."""
    ok = [r for r in rows if r["status"] == "ok"]
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        dense = [r["test_error"] for r in ok if r["model"] == model and r["criterion"] == DENSE]
        if dense:
            ax.axhline(100 * common.mean_std(dense)[0], color="k", linestyle="--", label=DENSE)
        for criterion in (c for c in criteria if c != DENSE):
            pts = [(s, common.mean_std(r["test_error"] for r in ok if r["model"] == model
                                       and r["sparsity"] == s and r["criterion"] == criterion)[0])
                   for s in sparsities if any(r["model"] == model and r["sparsity"] == s and
                                              r["criterion"] == criterion for r in ok)]
            if pts:
                ax.plot([100 * (1 - s) for s, _ in pts], [100 * e for _, e in pts], marker="o",
                        label=criterion)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_title(model)
        ax.set_xlabel("weights kept (%)")
        ax.set_ylabel("test error (%)")
    axes[0][0].legend(fontsize=7)
    common.save_figure(fig, path)


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("iterations", "protocol")


def main(argv):
    del argv
    F = common.FLAGS
    if F.replot:  # draws the kept table again: every shared flag but --results_dir is moot
        common.refuse_unused("criteria_comparison --replot",
                             [name for name in common.SHARED_FLAGS if name != "results_dir"])
        out = common.out_dir("criteria_comparison", F.results_dir)
        rows = atomic.read_json(os.path.join(out, "comparison.json"), expect=dict)["rows"]
        models = list(dict.fromkeys(r["model"] for r in rows))
        plot(rows, models, list(dict.fromkeys(r["criterion"] for r in rows)),
             sorted({r["sparsity"] for r in rows}), os.path.join(out, "comparison.png"))
        return
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 5, F.train_limit,
        common.chosen("models", MODELS),
        common.chosen("criteria", snip_criteria.names() + [DENSE]),
        tuple(float(s) for s in F.sparsities) or SPARSITIES, workers=F.workers)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
