"""Table 1: LeNets pruned at initialization — SNIP beside magnitude-at-init and random pruning.

    python -m snip_tf.experiments.table1 --data_dir=../shared/data --seeds=0,1 --epochs=30

LeNet-300-100 at 95 and 98 %, LeNet-5-Caffe at 98 and 99 %, each beside the dense network and two
baselines pruned at initialization to the same sparsity. Writes results/table1/{table1.csv,
table1.json,table1.md,table1.png}.
"""

from __future__ import annotations

import os

from snip_tf.experiments import common

# Paper's Table 1 (test error %, SNIP column; dense reference in the text).
PAPER = {("lenet-300-100", 0.0): 1.7, ("lenet-300-100", 0.95): 1.6, ("lenet-300-100", 0.98): 2.4,
         ("lenet-5-caffe", 0.0): 0.9, ("lenet-5-caffe", 0.98): 0.8, ("lenet-5-caffe", 0.99): 1.1}
SETTINGS = {"lenet-300-100": (0.95, 0.98), "lenet-5-caffe": (0.98, 0.99)}
CRITERIA = ("snip", "magnitude", "random")


def run(data_dir=None, results_dir=None, seeds=(0,), epochs=30, train_limit=0,
        protocol="paper", models=tuple(SETTINGS)) -> list:
    out = common.out_dir("table1", results_dir)
    rows = []
    for model in models:
        runs = [(0.0, "snip")] + [(s, c) for s in SETTINGS[model] for c in CRITERIA]
        for sparsity, criterion in runs:
            for seed in seeds:
                cfg = common.config(model, sparsity, seed=seed, epochs=epochs,
                                    train_limit=train_limit, protocol=protocol,
                                    **{"snip.criterion": criterion})
                row, _ = common.run(cfg, data_dir)
                rows.append(row)
                print(f"{model} sparsity={sparsity} {row['criterion']} seed={seed}: "
                      f"test error {common.pct(row['test_error'])}%", flush=True)
    common.write_rows(os.path.join(out, "table1.csv"), rows)
    summary = summarize(rows)
    common.write_json(os.path.join(out, "table1.json"),
                      {"rows": rows, "summary": summary, "seeds": list(seeds), "epochs": epochs,
                       "train_limit": train_limit, "protocol": protocol})
    with open(os.path.join(out, "table1.md"), "w") as f:
        f.write(markdown(summary, seeds, epochs, protocol))
    plot(summary, os.path.join(out, "table1.png"))
    return rows


def summarize(rows) -> list:
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], r["sparsity"], r["criterion"]), []).append(r)
    summary = []
    for (model, sparsity, criterion), group in groups.items():
        mean, std = common.mean_std(r["test_error"] for r in group)
        summary.append({"model": model, "sparsity": sparsity, "criterion": criterion,
                        "test_error_mean": mean, "test_error_std": std, "seeds": len(group),
                        "iterations": group[0]["iterations"],
                        "wall_time_s": sum(r["wall_time_s"] for r in group),
                        "collapsed": any(r["collapsed"] for r in group),
                        "paper": PAPER.get((model, sparsity)) if criterion in ("snip", "dense")
                        else None})
    return summary


def markdown(summary, seeds, epochs, protocol) -> str:
    lines = ["| model | sparsity | method | test error % (ours) | paper % | seeds | iterations |"
             " wall s |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        paper = f"{s['paper']:.1f}" if s["paper"] is not None else "–"
        lines.append(f"| {s['model']} | {100 * s['sparsity']:.0f} % | {s['criterion']} | "
                     f"{common.pct(s['test_error_mean'])} ± {common.pct(s['test_error_std'])} | "
                     f"{paper} | {s['seeds']} | {s['iterations']} | {s['wall_time_s']:.0f} |")
    lines.append(f"\nseeds {list(seeds)}, {epochs} epochs per run, protocol '{protocol}'.\n")
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
        ax.set_ylabel("test error (%)")
        ax.set_title(model)
    common.save_figure(fig, path)


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 30, F.train_limit,
        F.protocol, models=common.chosen_models(SETTINGS))


if __name__ == "__main__":
    common.run_app(main)
