"""Table 3: the effect of the initializer (RN, TN, VS-X, VS-H) at 90 % sparsity.

    python -m snip_tf.experiments.table3 --data_dir=../shared/data --epochs=5 --seeds=0,1,2,3,4 --protocol=short
    python -m snip_tf.experiments.table3 --data_dir=../shared/data --iterations=10000 --models=lstm-s,gru-s

LeNet-300-100, LeNet-5-Caffe (MNIST) and LSTM-s, GRU-s (sequential MNIST), each initialized four
ways, pruned to 90 % with SNIP and trained. Writes results/table3/{table3.csv,table3.json,
table3.md,table3.png}: each cell the mean ± std test error over the seeds, and each model's
initializers ranked best to worst beside the paper's ranking. Resumable; with --report_only,
from the runs kept so far (each cell with its number of seeds). The recurrent models train on
the paper's SGD by default; --protocol=short trains them with Adam, which fits a 5-epoch budget.
"""

from __future__ import annotations

import os
from typing import Optional

from absl import flags

from snip_tf.experiments import common

# Paper's Table 3 (test error %), columns RN, TN, VS-X, VS-H.
PAPER = {"lenet-300-100": (1.90, 1.96, 1.91, 1.95), "lenet-5-caffe": (0.89, 0.84, 0.95, 0.86),
         "lstm-s": (2.93, 1.15, 1.20, 1.09), "gru-s": (1.78, 1.73, 1.85, 1.62)}
INITIALIZERS = ("rn", "tn", "vs-x", "vs-h")
flags.DEFINE_list("initializers", list(INITIALIZERS), "The initializers to run, of rn, tn, "
                  "vs-x, vs-h: e.g. only vs-x,vs-h with --set=recurrent_fan=cell, which leaves "
                  "the fixed-stddev rn and tn as they were.")


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=10, train_limit=0, protocol="paper",
        models=tuple(PAPER), initializers=INITIALIZERS, iterations=0, workers=1,
        report_only: Optional[bool] = None) -> list:
    initializers = common.check_names("initializers", initializers, INITIALIZERS)
    cfgs = [common.config(model, 0.9, seed=seed, epochs=epochs, iterations=iterations,
                          train_limit=train_limit, protocol=protocol, initializer=init)
            for model in models for init in initializers for seed in seeds]
    out = common.out_dir("table3", results_dir)
    trained = common.run_all(cfgs, data_dir, out, workers, partial_ok=True,
                             report_only=report_only)
    rows = []
    for row, cfg in zip(trained, cfgs):  # (--report_only: the runs kept so far)
        if row is not None:
            rows.append({**row, "initializer": cfg.initializer})
    groups = {(m, i): [r for r in rows if r["model"] == m and r["initializer"] == i]
              for m in models for i in initializers}
    errors = {key: [r["test_error"] for r in group] for key, group in groups.items()}
    orders = {m: ordering(m, initializers, errors) for m in models}
    common.write_rows(os.path.join(out, "table3.csv"), rows)
    common.write_json(os.path.join(out, "table3.json"), {"rows": rows, "seeds": list(seeds),
                                                           "epochs": epochs,
                                                           "iterations": iterations,
                                                           "protocol": protocol,
                                                           "ordering": orders})
    lines = ["| model | " + " | ".join(i.upper() for i in initializers) + " |",
             "|---|" + "---|" * len(initializers)]
    for model in models:
        cells = []
        for init in initializers:
            values = errors[model, init]
            paper = PAPER.get(model, (None,) * 4)[INITIALIZERS.index(init)]
            seeds_run = f"{len(values)} seed" + ("" if len(values) == 1 else "s")
            cells.append(f"{common.spread(values)} (paper {paper:.2f}; {seeds_run})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    budget = common.budget_label(iterations, epochs)
    lines.append(f"\ntest error % at the last iteration, 90 % sparsity, mean ± std over seeds "
                 f"{list(seeds)}, {budget} per run, protocol {common.protocol_label(protocol, cfgs)}.\n")
    lines += ["| model | ours, best to worst | paper, best to worst | same best | same order |",
              "|---|---|---|---|---|"]
    for model, o in orders.items():
        def cell(ranked, missing):
            return " < ".join(ranked) if ranked else missing

        def agree(same):
            return {True: "yes", False: "no", None: "–"}[same]

        lines.append(f"| {model} | {cell(o['ours'], '– (an initializer has no run yet)')} | "
                     f"{cell(o['paper'], '–')} | {agree(o['same_best'])} | "
                     f"{agree(o['same_order'])} |")
    lines.append("\n(mean test errors ranked; differences inside the seeds' spread are not "
                 "resolved by this ranking.)\n")
    common.write_text(os.path.join(out, "table3.md"),
                      "\n".join(lines) + common.diverged_note(rows, "initializer") + "\n"
                      + common.evaluations_table({(m, i.upper()): group
                                                  for (m, i), group in groups.items() if group},
                                                 ["model", "initializer"]))
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(initializers)
    for k, init in enumerate(initializers):
        stats = [common.mean_std(errors[m, init]) if errors[m, init] else (float("nan"), 0.0)
                 for m in models]
        ax.bar([i + k * width for i in range(len(models))], [100 * m for m, _ in stats], width,
               yerr=[100 * s for _, s in stats], label=init.upper())
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], list(models), fontsize=8)
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=8)
    common.save_figure(fig, os.path.join(out, "table3.png"))
    return rows


def _ranked(initializers, value) -> list:
    """``initializers`` ranked by ``value`` (lower first), upper-cased, equal values joined by
    " = " into one place: [["VS-X"], ["RN", "TN"], ...]."""
    places = {}
    for init in sorted(initializers, key=value):
        places.setdefault(value(init), []).append(init.upper())
    return list(places.values())


def ordering(model: str, initializers, errors: dict) -> dict:
    """The initializers ranked by mean test error, best first, ours and the paper's (over the
    initializers run; ties share a place, "RN = TN"), and whether the best and the whole order
    agree (None where a tie or a missing paper figure leaves it open). ``ours`` is None while an
    initializer has no run."""
    paper = None
    if model in PAPER:
        paper = _ranked(initializers, lambda i: PAPER[model][INITIALIZERS.index(i)])
    out = {"ours": None, "paper": paper and [" = ".join(p) for p in paper], "same_best": None,
           "same_order": None}
    if not all(errors[model, i] for i in initializers):
        return out
    ours = _ranked(initializers, lambda i: common.mean_std(errors[model, i])[0])
    out["ours"] = [" = ".join(p) for p in ours]
    if paper is not None and len(ours[0]) == len(paper[0]) == 1:
        out["same_best"] = ours[0] == paper[0]
    if paper is not None and all(len(p) == 1 for p in ours + paper):
        out["same_order"] = ours == paper
    return out


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("criteria",)


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 10, F.train_limit,
        F.protocol, models=common.chosen("models", PAPER), initializers=common.chosen("initializers", INITIALIZERS),
        iterations=F.iterations or 0, workers=F.workers, report_only=F.report_only)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
