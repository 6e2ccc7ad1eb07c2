"""Table 3: the effect of the initializer (RN, TN, VS-X, VS-H) at 90 % sparsity.

    python -m snip_tf.experiments.table3 --data_dir=../shared/data --epochs=10

LeNet-300-100, LeNet-5-Caffe (MNIST) and LSTM-s, GRU-s (sequential MNIST), each initialized four
ways, pruned to 90 % with SNIP and trained. Writes results/table3/{table3.csv,table3.json,
table3.md,table3.png}.
"""

from __future__ import annotations

import os

from snip_tf.experiments import common

# Paper's Table 3 (test error %), columns RN, TN, VS-X, VS-H.
PAPER = {"lenet-300-100": (1.90, 1.96, 1.91, 1.95), "lenet-5-caffe": (0.89, 0.84, 0.95, 0.86),
         "lstm-s": (2.93, 1.15, 1.20, 1.09), "gru-s": (1.78, 1.73, 1.85, 1.62)}
INITIALIZERS = ("rn", "tn", "vs-x", "vs-h")


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=10, train_limit=0, protocol="paper",
        models=tuple(PAPER), initializers=INITIALIZERS, iterations=0, workers=1) -> list:
    out = common.out_dir("table3", results_dir)
    cfgs = [common.config(model, 0.9, seed=seed, epochs=epochs, iterations=iterations,
                          train_limit=train_limit, protocol=protocol, initializer=init)
            for model in models for init in initializers for seed in seeds]
    rows = common.run_all(cfgs, data_dir, out, workers)
    for row, cfg in zip(rows, cfgs):
        row["initializer"] = cfg.initializer
    common.write_rows(os.path.join(out, "table3.csv"), rows)
    common.write_json(os.path.join(out, "table3.json"), {"rows": rows, "seeds": list(seeds),
                                                           "epochs": epochs,
                                                           "iterations": iterations,
                                                           "protocol": protocol})
    lines = ["| model | " + " | ".join(i.upper() for i in initializers) + " |",
             "|---|" + "---|" * len(initializers)]
    for model in models:
        cells = []
        for k, init in enumerate(initializers):
            mean, std = common.mean_std(r["test_error"] for r in rows
                                        if r["model"] == model and r["initializer"] == init)
            paper = PAPER.get(model, (None,) * 4)[INITIALIZERS.index(init)]
            cells.append(f"{common.pct(mean)} ± {common.pct(std)} (paper {paper})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    budget = f"{iterations} iterations" if iterations else f"{epochs} epochs"
    lines.append(f"\ntest error % at the last iteration, 90 % sparsity, mean ± std over seeds "
                 f"{list(seeds)}, {budget} per run, protocol '{protocol}'.\n")
    common.write_text(os.path.join(out, "table3.md"), "\n".join(lines))
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(initializers)
    for k, init in enumerate(initializers):
        values = [100 * common.mean_std(r["test_error"] for r in rows if r["model"] == m
                                        and r["initializer"] == init)[0] for m in models]
        ax.bar([i + k * width for i in range(len(models))], values, width, label=init.upper())
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], list(models), fontsize=8)
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=8)
    common.save_figure(fig, os.path.join(out, "table3.png"))
    return rows


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 10, F.train_limit,
        F.protocol, models=common.chosen_models(PAPER), iterations=F.iterations or 0,
        workers=F.workers)


if __name__ == "__main__":
    common.run_app(main)
