"""Figure 4: fitting random labels — a network pruned with SNIP cannot memorize them.

    python -m snip_tf.experiments.figure4 --data_dir=../shared/data --epochs=30 --train_limit=10000

LeNet-5-Caffe dense and pruned at 99 % (the mask always scored on true labels), trained on true
labels and on random labels, plus the dense network on random labels with L2 (5e-4). The training
loss and accuracy on the labels trained on are recorded by ``snip_tf.MemorizationCallback``, which
also says whether each run memorized its labels. Writes results/figure4/{figure4.csv,figure4.json,
figure4.png}.
"""

from __future__ import annotations

import os

from snip_tf.callbacks import MemorizationCallback
from snip_tf.experiments import common

RUNS = (  # (label, sparsity, labels, l2)
    ("dense, true labels", 0.0, "none", 0.0),
    ("pruned 99 %, true labels", 0.99, "none", 0.0),
    ("dense, random labels", 0.0, "random", 0.0),
    ("pruned 99 %, random labels", 0.99, "random", 0.0),
    ("dense, random labels, L2", 0.0, "random", 5e-4),
)


def run(data_dir=None, results_dir=None, seed=0, epochs=30, train_limit=10000, threshold=0.9,
        model="lenet-5-caffe", runs=RUNS) -> list:
    out = common.out_dir("figure4", results_dir)
    rows, curves = [], {}
    for label, sparsity, labels, l2 in runs:
        cfg = common.config(model, sparsity, seed=seed, epochs=epochs, train_limit=train_limit,
                            label_noise=labels, l2=l2, lr_decay_fractions=(), learning_rate=0.01,
                            **{"snip.batch_size": 100})
        memo = {}

        def callbacks(datasets, memo=memo):
            memo["cb"] = MemorizationCallback((datasets.x_train, datasets.y_train),
                                              threshold=threshold)
            return [memo["cb"]]

        row, _ = common.run(cfg, data_dir, extra_callbacks=callbacks)
        cb = memo["cb"]
        row.update({"run": label, "labels": labels, "l2": l2, "memorized": cb.memorized,
                    "final_fit_accuracy": cb.curve["accuracy"][-1],
                    "final_fit_loss": cb.curve["loss"][-1]})
        rows.append(row)
        curves[label] = cb.curve
        print(f"{label}: fit accuracy {cb.curve['accuracy'][-1]:.3f}, memorized {cb.memorized}",
              flush=True)
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


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.one_seed("figure4"), F.epochs or 30,
        F.train_limit or 10000)


if __name__ == "__main__":
    common.run_app(main)
