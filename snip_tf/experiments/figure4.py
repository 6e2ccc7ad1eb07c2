"""Figure 4: fitting random labels — a network pruned with SNIP cannot memorize them.

    python -m snip_tf.experiments.figure4 --data_dir=../shared/data --epochs=30 --train_limit=10000

LeNet-5-Caffe dense and pruned at 99 % (the mask always scored on true labels), trained on true
labels and on random labels, plus the dense network on random labels with the paper's weight
decay 0.0005 (a gradient coefficient: the L2 penalty ``0.00025 * sum(w^2)``,
``common.WEIGHT_DECAY_L2``). The training loss and accuracy on the labels trained on are
recorded after each epoch by ``snip_tf.MemorizationCallback`` (``config.memorization``), which also says whether each run
memorized its labels. Each run's result is kept in results/figure4/runs/ as it finishes, and the
command run again trains only what is missing (--workers=2: two at a time). Writes
results/figure4/{figure4.csv,figure4.json,figure4.png}.
"""

from __future__ import annotations

import os

from snip_tf.experiments import common

RUNS = (  # (label, sparsity, labels, l2)
    ("dense, true labels", 0.0, "none", 0.0),
    ("pruned 99 %, true labels", 0.99, "none", 0.0),
    ("dense, random labels", 0.0, "random", 0.0),
    ("pruned 99 %, random labels", 0.99, "random", 0.0),
    ("dense, random labels, weight decay", 0.0, "random", common.WEIGHT_DECAY_L2),
)


def run(data_dir=None, results_dir=None, seed=0, epochs=30, train_limit=10000, threshold=0.9,
        model="lenet-5-caffe", runs=RUNS, workers=1) -> list:
    cfgs = [common.config(model, sparsity, seed=seed, epochs=epochs, train_limit=train_limit,
                          label_noise=labels, l2=l2, lr_decay_fractions=(), learning_rate=0.01,
                          memorization=threshold, **{"snip.batch_size": 100})
            for _, sparsity, labels, l2 in runs]

    def row(cfg, result):
        memo = result["memorization"]
        return {**common.row_of(cfg, result), "labels": cfg.label_noise, "l2": cfg.l2,
                "memorized": memo["memorized"], "final_fit_accuracy": memo["curve"]["accuracy"][-1],
                "final_fit_loss": memo["curve"]["loss"][-1], "curve": memo["curve"]}

    out = common.out_dir("figure4", results_dir)
    rows = common.run_all(cfgs, data_dir, out, workers, row_of=row)
    curves = {}
    for (label, *_), r in zip(runs, rows):
        r["run"], curves[label] = label, r.pop("curve")
    for r in rows:
        print(f"{r['run']}: fit accuracy {r['final_fit_accuracy']:.3f}, memorized "
              f"{r['memorized']}", flush=True)
    common.write_rows(os.path.join(out, "figure4.csv"), rows)
    common.write_json(os.path.join(out, "figure4.json"),
                      {"rows": rows, "curves": curves, "seed": seed, "epochs": epochs,
                       "train_limit": train_limit, "threshold": threshold})
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, curve in curves.items():
        axes[0].plot(curve["epoch"], curve["loss"], label=label)
        axes[1].plot(curve["epoch"], curve["accuracy"], label=label)
    axes[0].set_ylabel("training loss (on the labels trained on)")
    axes[1].set_ylabel("training accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{model}, {train_limit or 'all'} training examples, seed {seed}", fontsize=9)
    common.save_figure(fig, os.path.join(out, "figure4.png"))
    return rows


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("iterations", "protocol", "models", "criteria")


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.one_seed("figure4"), F.epochs or 30,
        F.train_limit or 10000, workers=F.workers)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
