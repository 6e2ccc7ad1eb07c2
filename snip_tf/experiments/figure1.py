"""Figure 1: test error of LeNet-300-100 and LeNet-5-Caffe pruned at 0, 10, ..., 90 % sparsity.

    python -m snip_tf.experiments.figure1 --data_dir=../shared/data --seeds=0,1,2 --epochs=5

Writes results/figure1/{figure1.csv,figure1.json,figure1.md,figure1.png}: each point the mean ±
std test error over the seeds. Resumable; with --report_only, from the runs kept so far.
"""

from __future__ import annotations

import os
from typing import Optional

from snip_tf.experiments import common

SPARSITIES = tuple(round(0.1 * i, 1) for i in range(10))
MODELS = ("lenet-300-100", "lenet-5-caffe")


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=10, train_limit=0, protocol="paper",
        models=MODELS, sparsities=SPARSITIES, iterations=0, workers=1,
        report_only: Optional[bool] = None) -> list:
    cfgs = [common.config(model, sparsity, seed=seed, epochs=epochs, iterations=iterations,
                          train_limit=train_limit, protocol=protocol)
            for model in models for sparsity in sparsities for seed in seeds]
    out = common.out_dir("figure1", results_dir)
    rows = [r for r in common.run_all(cfgs, data_dir, out, workers, partial_ok=True,
                                      report_only=report_only)
            if r is not None]  # (--report_only: the runs kept so far)
    common.write_rows(os.path.join(out, "figure1.csv"), rows)
    common.write_json(os.path.join(out, "figure1.json"), {"rows": rows, "seeds": list(seeds),
                                                           "epochs": epochs,
                                                           "iterations": iterations,
                                                           "protocol": protocol})
    budget = common.budget_label(iterations, epochs)
    groups = {(m, s): [r for r in rows if r["model"] == m and r["sparsity"] == s]
              for m in models for s in sparsities}
    errors = {key: [r["test_error"] for r in group] for key, group in groups.items()}
    lines = ["| model | " + " | ".join(f"{100 * s:.0f} %" for s in sparsities) + " | seeds |",
             "|---|" + "---|" * (len(sparsities) + 1)]
    for model in models:
        counts = sorted({len(errors[model, s]) for s in sparsities})
        lines.append(f"| {model} | " + " | ".join(common.spread(errors[model, s])
                                                  for s in sparsities)
                     + f" | {'–'.join(map(str, dict.fromkeys([counts[0], counts[-1]])))} |")
    lines.append(f"\ntest error % at the last iteration against sparsity, mean ± std over seeds "
                 f"{list(seeds)}, {budget} per run, protocol {common.protocol_label(protocol)}.\n")
    common.write_text(os.path.join(out, "figure1.md"),
                      "\n".join(lines) + common.diverged_note(rows) + "\n"
                      + common.evaluations_table({(m, f"{100 * s:.0f} %"): group
                                                  for (m, s), group in groups.items() if group},
                                                 ["model", "sparsity"]))
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for model in models:  # diverged runs are left out of the curve (the table keeps them)
        trained = {s: [r["test_error"] for r in rows if r["model"] == model and r["sparsity"] == s
                       and r.get("diverged_at") is None] for s in sparsities}
        done = [s for s in sparsities if trained[s]]
        stats = [common.mean_std(trained[s]) for s in done]
        left_out = sum(len(errors[model, s]) - len(trained[s]) for s in sparsities)
        label = model + (f" ({left_out} diverged runs not drawn)" if left_out else "")
        ax.errorbar([100 * s for s in done], [100 * m for m, _ in stats],
                    yerr=[100 * sd for _, sd in stats], marker="o", capsize=3, label=label)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("test error (%)")
    kept = len({r["seed"] for r in rows})
    ax.set_title(f"SNIP on MNIST ({kept} seed{'s' if kept != 1 else ''}, {budget})")
    ax.legend(fontsize=7)
    common.save_figure(fig, os.path.join(out, "figure1.png"))
    return rows


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("criteria",)


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 10, F.train_limit,
        F.protocol, models=common.chosen("models", MODELS), iterations=F.iterations or 0,
        workers=F.workers, report_only=F.report_only)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
