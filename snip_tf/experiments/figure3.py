"""Figure 3: the effect of the pruning batch size |D_b| at 90 % sparsity on LeNet-300-100.

    python -m snip_tf.experiments.figure3 --data_dir=../shared/data --seeds=0,1,2 --epochs=10

For |D_b| in {1, 10, 100, 1000, 10000}: the first-layer mask image (mean over units) and the test
error after training with that mask (mean ± std over the seeds). Writes
results/figure3/{figure3.csv,figure3.json,figure3.md,figure3.png}. Resumable; with
--report_only, from the runs kept so far.
"""

from __future__ import annotations

import os
from typing import Optional

from snip_tf import plot, training
from snip_tf.experiments import common

BATCH_SIZES = (1, 10, 100, 1000, 10000)


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=10, train_limit=0, protocol="paper",
        batch_sizes=BATCH_SIZES, dataset="mnist", sparsity=0.9, iterations=0,
        workers=1, report_only: Optional[bool] = None) -> list:
    cfgs = [common.config("lenet-300-100", sparsity, dataset=dataset, seed=seed, epochs=epochs,
                          iterations=iterations, train_limit=train_limit, protocol=protocol,
                          **{"snip.batch_size": size})
            for size in batch_sizes for seed in seeds]
    out = common.out_dir("figure3", results_dir)
    trained = common.run_all(cfgs, data_dir, out, workers, partial_ok=True,
                             report_only=report_only)
    rows, images = [], {}
    for row, cfg in zip(trained, cfgs):
        if row is not None:  # (--report_only: the runs kept so far)
            rows.append({**row, "pruning_batch_size": cfg.snip.batch_size})
        if cfg.seed == seeds[0]:  # the first seed's first-layer mask, as its run prunes it
            _, masks = training.pruned_at_init(cfg, data_dir)
            images[cfg.snip.batch_size] = plot.mask_image(next(iter(masks.values())))
    common.write_rows(os.path.join(out, "figure3.csv"), rows)
    common.write_json(os.path.join(out, "figure3.json"), {"rows": rows, "seeds": list(seeds),
                                                           "epochs": epochs,
                                                           "iterations": iterations,
                                                           "protocol": protocol})
    groups = {s: [r for r in rows if r["pruning_batch_size"] == s] for s in batch_sizes}
    errors = {s: [r["test_error"] for r in group] for s, group in groups.items()}
    budget = common.budget_label(iterations, epochs)
    common.write_text(os.path.join(out, "figure3.md"), "\n".join([
        "| \\|D_b\\| | " + " | ".join(str(s) for s in batch_sizes) + " |",
        "|---|" + "---|" * len(batch_sizes),
        "| test error % | " + " | ".join(common.spread(errors[s]) for s in batch_sizes) + " |",
        "| seeds | " + " | ".join(str(len(errors[s])) for s in batch_sizes) + " |",
        f"\nLeNet-300-100 at {100 * sparsity:g} % on {dataset}: test error at the last iteration, "
        f"mean ± std over seeds {list(seeds)}, {budget} per run, protocol {common.protocol_label(protocol)}.\n"])
        + common.diverged_note(rows, "pruning_batch_size") + "\n"
        + common.evaluations_table({(s,): group for s, group in groups.items() if group},
                                   ["\\|D_b\\|"]))
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(batch_sizes) + 1, figsize=(2.2 * (len(batch_sizes) + 1), 2.4))
    for ax, size in zip(axes, batch_sizes):
        ax.imshow(images[size], cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"|D_b| = {size}", fontsize=8)
    done = [k for k, s in enumerate(batch_sizes) if errors[s]]
    stats = [common.mean_std(errors[batch_sizes[k]]) for k in done]
    axes[-1].errorbar(done, [100 * m for m, _ in stats],
                      yerr=[100 * sd for _, sd in stats], marker="o", capsize=3)
    axes[-1].set_xticks(range(len(batch_sizes)), [str(s) for s in batch_sizes], fontsize=7)
    axes[-1].set_xlabel("|D_b|")
    axes[-1].set_ylabel("test error (%)")
    common.save_figure(fig, os.path.join(out, "figure3.png"))
    return rows


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("models", "criteria")


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 10, F.train_limit,
        F.protocol, iterations=F.iterations or 0, workers=F.workers,
        report_only=F.report_only)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
