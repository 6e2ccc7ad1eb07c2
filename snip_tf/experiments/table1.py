"""Table 1: LeNets pruned at initialization — SNIP beside magnitude-at-init and random pruning.

    python -m snip_tf.experiments.table1 --data_dir=../shared/data --seeds=0,1,2 --workers=2

LeNet-300-100 at 95 and 98 %, LeNet-5-Caffe at 98 and 99 %, each beside the dense network and two
baselines pruned at initialization to the same sparsity, on the paper's schedule (100k
iterations, the learning rate divided by 10 every 25k; --iterations or --epochs for less). Each
cell is the mean ± std over the seeds of three test errors: at the last iteration, by the authors'
rule (the best test error among the last 5 checkpoints, 1000 iterations apart, the ones their
saver kept: it selects on the test set) and at the checkpoint with the best validation error
(among the last 10). Every run's result is kept in
results/table1/runs/ as it finishes, and a command run again trains only what is missing. Writes
results/table1/{table1.csv,table1.json,table1.md,table1.png}; with --report_only, from the
runs kept so far, training nothing (each cell says how many seeds it has).
"""

from __future__ import annotations

import os
from typing import Optional

from snip_tf.experiments import common

# Paper's Table 1 (test error %, SNIP column; dense reference in the text).
PAPER = {("lenet-300-100", 0.0): 1.7, ("lenet-300-100", 0.95): 1.6, ("lenet-300-100", 0.98): 2.4,
         ("lenet-5-caffe", 0.0): 0.9, ("lenet-5-caffe", 0.98): 0.8, ("lenet-5-caffe", 0.99): 1.1}
SETTINGS = {"lenet-300-100": (0.95, 0.98), "lenet-5-caffe": (0.98, 0.99)}
# What each setting runs: the dense reference and three criteria (``--criteria`` picks some).
DENSE = "dense"
CRITERIA = (DENSE, "snip", "magnitude", "random")


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=None, train_limit=0,
        protocol="paper", models=tuple(SETTINGS), iterations=None, workers=1,
        criteria=CRITERIA, report_only: Optional[bool] = None) -> list:
    """``iterations`` per run if given, else ``epochs`` epochs if given, else the paper's 100k
    iterations. ``criteria`` picks among the dense reference and the three criteria."""
    criteria = common.check_names("criteria", criteria, CRITERIA)
    budget = ({"iterations": iterations} if iterations else {"epochs": epochs} if epochs else
              {"iterations": common.PAPER_ITERATIONS})
    cfgs = []
    for model in models:
        runs = [(0.0, "snip")] if DENSE in criteria else []
        runs += [(s, c) for s in SETTINGS[model] for c in criteria if c != DENSE]
        for sparsity, criterion in runs:
            for seed in seeds:
                cfgs.append(common.config(model, sparsity, seed=seed, train_limit=train_limit,
                                          protocol=protocol, **budget,
                                          **{"snip.criterion": criterion}))
    out = common.out_dir("table1", results_dir)
    rows = [r for r in common.run_all(cfgs, data_dir, out, workers, partial_ok=True,
                                      report_only=report_only)
            if r is not None]
    common.write_rows(os.path.join(out, "table1.csv"), rows)
    summary = summarize(rows)
    common.write_json(os.path.join(out, "table1.json"),
                      {"rows": rows, "summary": summary, "seeds": list(seeds), **budget,
                       "train_limit": train_limit, "protocol": protocol})
    common.write_text(os.path.join(out, "table1.md"),
                      markdown(summary, seeds, budget, protocol) + common.diverged_note(rows))
    plot(summary, os.path.join(out, "table1.png"))
    return rows


def summarize(rows) -> list:
    """One entry per (model, sparsity, criterion): per ``common.ERRORS`` key the values of its
    runs (None for a run without that figure) and their mean and std (None unless every run has
    it)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], r["sparsity"], r["criterion"]), []).append(r)
    summary = []
    for (model, sparsity, criterion), group in groups.items():
        entry = {"model": model, "sparsity": sparsity, "criterion": criterion,
                 "seeds": len(group), "iterations": group[0]["iterations"],
                 "wall_time_s": sum(r["wall_time_s"] for r in group),
                 "collapsed": any(r["collapsed"] for r in group),
                 "paper": PAPER.get((model, sparsity)) if criterion in ("snip", "dense")
                 else None}
        for key in common.ERRORS:  # a figure some run lacks has no mean (its cell is "–")
            values = [r.get(key) for r in group]
            mean, std = (None, None) if None in values else common.mean_std(values)
            entry[f"{key}_mean"], entry[f"{key}_std"] = mean, std
            entry[f"{key}_values"] = values
        summary.append(entry)
    return summary


def markdown(summary, seeds, budget, protocol) -> str:
    lines = ["| model | sparsity | method | "
             + " | ".join(f"{v} %" for v in common.ERRORS.values())
             + " | paper % | seeds | iterations | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        paper = f"{s['paper']:.1f}" if s["paper"] is not None else "–"
        lines.append(f"| {s['model']} | {100 * s['sparsity']:.0f} % | {s['criterion']} | "
                     + " | ".join(common.cell(s[f"{key}_values"]) for key in common.ERRORS)
                     + f" | {paper} | {s['seeds']} | {s['iterations']} | "
                       f"{s['wall_time_s']:.0f} |")
    what = common.budget_label(budget.get("iterations"), budget.get("epochs"))
    lines.append(f"\nmean ± std over seeds {list(seeds)}; {what} per run, protocol "
                 f"{common.protocol_label(protocol)}.\n")
    return "\n".join(lines)


def plot(summary, path):
    plt = common.pyplot()
    models = list(dict.fromkeys(s["model"] for s in summary))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        entries = [s for s in summary if s["model"] == model]
        labels = [f"{s['criterion']}\n{100 * s['sparsity']:.0f}%" for s in entries]
        ax.bar(range(len(entries)), [100 * s["test_error_mean"] for s in entries],
               yerr=[100 * s["test_error_std"] for s in entries], color=[
                   {"dense": "grey", "snip": "C0", "magnitude": "C1", "random": "C2"}[s["criterion"]]
                   for s in entries])
        ax.set_xticks(range(len(entries)), labels, fontsize=7)
        ax.set_ylabel("test error at the last iteration (%)")
        ax.set_title(model)
    common.save_figure(fig, path)


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ()


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs, F.train_limit, F.protocol,
        models=common.chosen("models", SETTINGS), iterations=F.iterations, workers=F.workers,
        criteria=common.chosen("criteria", CRITERIA))


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
