"""Figure 2: what SNIP keeps in LeNet-300-100's first layer, per class.

    python -m snip_tf.experiments.figure2 --data_dir=../shared/data

For each class, the connection sensitivity is computed on a batch of 100 training examples of that
class; for each sparsity 10 ... 90 % the global top-κ mask is taken, and its first-layer part
(784 x 300) is averaged over the 300 units and shown as a 28 x 28 image. No training is involved.
Writes results/figure2/figure2_{mnist,fashion_mnist}.png and figure2.json.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from snip_tf import data, models, plot, scoring, selection
from snip_tf.experiments import common

SPARSITIES = tuple(round(0.1 * i, 1) for i in range(1, 10))
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def first_layer_images(model, x, y, sparsities) -> dict:
    """``{sparsity: 28x28 mean first-layer mask}`` from one scoring of ``(x, y)``."""
    scores = scoring.connection_sensitivity(model, (x, y), loss=LOSS)
    arrays = list(scores.values())
    total = sum(a.size for a in arrays)
    images = {}
    for sparsity in sparsities:
        first = selection.top_k_masks(arrays, selection.num_to_keep(sparsity, total))[0]
        images[sparsity] = plot.mask_image(first)
    return images


def class_batches(dataset, data_dir, per_class=100, seed=0):
    ds = data.make_datasets(dataset, 100, data_dir=data_dir, seed=seed)
    x, y = ds.x_train, ds.y_train
    return {c: (x[y == c][:per_class], y[y == c][:per_class]) for c in range(ds.num_classes)}


def run(data_dir=None, results_dir=None, seed=0, datasets=("mnist", "fashion_mnist"),
        sparsities=SPARSITIES) -> dict:
    out = common.out_dir("figure2", results_dir)
    plt = common.pyplot()
    summary = {}
    for dataset in datasets:
        batches = class_batches(dataset, data_dir, seed=seed)
        keras.utils.set_random_seed(seed)
        model = models.get("lenet-300-100", seed=seed)
        grid = {c: first_layer_images(model, x, y, sparsities) for c, (x, y) in batches.items()}
        fig, axes = plt.subplots(len(sparsities), len(grid),
                                 figsize=(1.1 * len(grid), 1.1 * len(sparsities)), squeeze=False)
        for j, c in enumerate(grid):
            for i, s in enumerate(sparsities):
                ax = axes[i][j]
                ax.imshow(grid[c][s], cmap="gray")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(str(c), fontsize=8)
                if j == 0:
                    ax.set_ylabel(f"{100 * s:.0f}%", fontsize=8)
        fig.suptitle(f"LeNet-300-100 first-layer SNIP masks, {dataset} (seed {seed})", fontsize=9)
        common.save_figure(fig, os.path.join(out, f"figure2_{dataset}.png"))
        # A number that says whether the mask follows the class's pixels: correlation between the
        # kept fraction per input pixel (at 90 %) and the class's mean absolute input.
        summary[dataset] = {
            str(c): float(np.corrcoef(grid[c][sparsities[-1]].ravel(),
                                      np.abs(batches[c][0]).mean(axis=0).ravel())[0, 1])
            for c in grid}
    common.write_json(os.path.join(out, "figure2.json"),
                      {"seed": seed, "sparsities": list(sparsities),
                       "mask_vs_mean_input_correlation_at_max_sparsity": summary})
    return summary


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("epochs", "iterations", "train_limit", "protocol", "models", "criteria", "workers",
                "set", "report_only")


def main(argv):
    del argv
    run(common.FLAGS.data_dir, common.FLAGS.results_dir, common.one_seed("figure2"))


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
