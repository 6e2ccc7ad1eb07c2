"""Table 2: every model of the zoo, dense vs pruned at the paper's sparsity.

    python -m snip_tf.experiments.table2 --data_dir=../shared/data --epochs=10 --protocol=short  # RNN rows, Adam
    python -m snip_tf.experiments.table2 --data_dir=../shared/data --iterations=100000  # the paper's SGD
    python -m snip_tf.experiments.table2 --data_dir=... --include_cifar --epochs=...  # + CIFAR (GPU)

The recurrent rows (sequential MNIST) run on the CPU. The CIFAR-10 rows need a GPU: without
--include_cifar they are written as "not run", never with a number.
"""

from __future__ import annotations

import os

from absl import flags

from snip_tf.experiments import common

flags.DEFINE_bool("include_cifar", False, "Also train the CIFAR-10 models (needs a GPU).")

# (model, dataset, sparsity, paper dense error %, paper pruned error %)
ROWS = (
    ("alexnet-s", "cifar10", 0.90, 14.12, 14.99), ("alexnet-b", "cifar10", 0.90, 13.92, 14.50),
    ("vgg-c", "cifar10", 0.95, 6.82, 7.27), ("vgg-d", "cifar10", 0.95, 6.76, 7.09),
    ("vgg-like", "cifar10", 0.97, 8.26, 8.00), ("wrn-16-8", "cifar10", 0.95, 6.21, 6.63),
    ("wrn-16-10", "cifar10", 0.95, 5.91, 6.43), ("wrn-22-8", "cifar10", 0.95, 6.14, 5.85),
    ("lstm-s", "mnist", 0.95, 1.88, 1.57), ("lstm-b", "mnist", 0.95, 1.15, 1.35),
    ("gru-s", "mnist", 0.95, 1.87, 2.41), ("gru-b", "mnist", 0.95, 1.71, 1.52),
)
CIFAR = dict(batch_size=128, augment=True, optimizer="sgd", learning_rate=0.1, momentum=0.9,
             l2=common.WEIGHT_DECAY_L2)


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=10, train_limit=0,
        include_cifar=False, models=(), iterations=0, workers=1, protocol="paper",
        **overrides) -> list:
    """``iterations`` per run if given, else ``epochs``; ``protocol``: ``common.config``'s;
    ``overrides``: config fields for every run (e.g. ``optimizer="sgd"``)."""
    slots, cfgs = [], []  # each row: a "not run" row, or the index of its config
    for model, dataset, sparsity, paper_dense, paper_pruned in ROWS:
        if models and model not in models:
            continue
        for s, paper in ((0.0, paper_dense), (sparsity, paper_pruned)):
            if dataset == "cifar10" and not include_cifar:
                slots.append({"model": model, "dataset": dataset, "sparsity": s,
                              "criterion": "snip" if s else "dense", "status": "not run",
                              "paper_test_error": paper / 100})
                continue
            for seed in seeds:
                extra = CIFAR if dataset == "cifar10" else {}
                cfgs.append(common.config(model, s, dataset=dataset, seed=seed, epochs=epochs,
                                          iterations=iterations, train_limit=train_limit,
                                          protocol=protocol, **{**extra, **overrides}))
                slots.append((len(cfgs) - 1, paper))
    out = common.out_dir("table2", results_dir)
    trained = common.run_all(cfgs, data_dir, out, workers)
    rows = []
    for slot in slots:
        if isinstance(slot, dict):
            rows.append(slot)
        else:
            index, paper = slot
            rows.append({**trained[index], "status": "run", "paper_test_error": paper / 100})
    common.write_rows(os.path.join(out, "table2.csv"), rows)
    common.write_json(os.path.join(out, "table2.json"), {"rows": rows, "seeds": list(seeds),
                                                           "epochs": epochs,
                                                           "iterations": iterations,
                                                           "protocol": protocol})
    lines = ["| model | sparsity | " + " | ".join(f"test error % ({v})"
                                                for v in common.ERRORS.values())
             + " | paper % | seeds | iterations |", "|---|---|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["model"], r["sparsity"]) for r in rows))
    for model, s in keys:
        group = [r for r in rows if r["model"] == model and r["sparsity"] == s]
        paper = 100 * group[0]["paper_test_error"]
        if group[0]["status"] == "not run":
            ours = ["not run (needs a GPU)", "–", "–"]
            seeds_cell, epochs_cell = "–", "–"
        else:
            ours = common.error_cells(group)
            seeds_cell, epochs_cell = str(len(group)), str(group[0]["iterations"])
        lines.append(f"| {model} | {100 * s:.0f} % | {' | '.join(ours)} | {paper:.2f} | "
                     f"{seeds_cell} | {epochs_cell} |")
    if cfgs:
        lines.append(f"\nProtocol {common.protocol_label(protocol, cfgs)}. "
                     + common.CHECKPOINT_NOTE)
    common.write_text(os.path.join(out, "table2.md"), "\n".join(lines) + "\n")
    ran = [k for k in keys if any(r["status"] == "run" for r in rows if (r["model"], r["sparsity"]) == k)]
    if ran:
        plt = common.pyplot()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [f"{m}\n{100 * s:.0f}%" for m, s in ran]
        ours = [100 * common.mean_std(r["test_error"] for r in rows
                                      if (r["model"], r["sparsity"]) == k)[0] for k in ran]
        papers = [100 * next(r["paper_test_error"] for r in rows if (r["model"], r["sparsity"]) == k)
                  for k in ran]
        ax.bar([i - 0.2 for i in range(len(ran))], ours, 0.4, label="ours")
        ax.bar([i + 0.2 for i in range(len(ran))], papers, 0.4, label="paper")
        ax.set_xticks(range(len(ran)), labels, fontsize=7)
        ax.set_ylabel("test error (%)")
        ax.legend()
        common.save_figure(fig, os.path.join(out, "table2.png"))
    return rows


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("criteria",)


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 10, F.train_limit,
        F.include_cifar, common.chosen("models", dict.fromkeys(r[0] for r in ROWS)),
        iterations=F.iterations or 0, workers=F.workers, protocol=F.protocol)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
