"""Controlled runs on the paper's recurrent rows (Table 2: LSTM-s and GRU-s at 95 % on
sequential MNIST): one change at a time from our protocol, to find what closes the gap to the
paper's 1.57 and 2.41 %.

    python -m snip_tf.experiments.rnn_controls --data_dir=../shared/data --seeds=0,1 --epochs=10 --workers=2
    python -m snip_tf.experiments.rnn_controls --data_dir=../shared/data --controls=baseline,gate

Each variant changes one thing from the baseline (the "short" protocol: Adam 1e-3, gradient norm
clipped at 5, the learning rate divided by 10 at half and three quarters of the run, VS-X
(Glorot) for every kernel, the recurrent one included, SNIP's global ranking on the draw that is
trained):

- ``long``: three times the iterations;
- ``sgd``: SGD with momentum 0.9 and learning rate 0.1, the paper's default optimizer;
- ``sgd-wd``: ``sgd`` plus the paper's weight decay 0.0005 (a gradient coefficient: the L2
  penalty ``2.5e-4 * sum(w^2)`` on every kernel, the recurrent ones included), a second change
  on top of ``sgd``, which overfits on the full schedule without it;
- ``vs-h``: He's variance scaling instead of Glorot's (the best for RNNs in the paper's Table 3);
- ``fresh``: score one draw and train another (the authors' code);
- ``gate``: the per-gate scope (``scope="gate"``): each gated weight's count shared equally
  among its gates, against gate starvation (see ``gate_usage``).

Every run is resumable and kept in results/rnn_controls/runs/; writes rnn_controls.{csv,json,md}
with each variant's mean ± std test error (last iteration) and its change from the baseline
(--report_only: from the runs kept so far, each row with its number of seeds). The tables hold
the models, controls and seeds the command names: name them all (a kept run is not trained
again), or table them with --report_only.
"""

from __future__ import annotations

import os

from absl import flags

from snip_tf.experiments import common

MODELS = ("lstm-s", "gru-s")
PAPER = {"lstm-s": 1.57, "gru-s": 2.41}
VARIANTS = {
    "baseline": {},
    "long": {"budget_factor": 3},
    "sgd": {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9},
    "sgd-wd": {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9,
               "l2": common.WEIGHT_DECAY_L2},
    "vs-h": {"initializer": "vs-h"},
    "fresh": {"snip.fresh_init": True},
    "gate": {"snip.scope": "gate"},
}
flags.DEFINE_list("controls", list(VARIANTS), "The variants to run (baseline, long, sgd, "
                  "sgd-wd, vs-h, fresh, gate).")


def run(data_dir=None, results_dir=None, seeds=(0, 1), epochs=10, train_limit=0,
        models=MODELS, variants=tuple(VARIANTS), iterations=0, workers=1,
        sparsity=0.95, report_only=None) -> list:
    variants = common.check_names("variants", variants, VARIANTS)
    cfgs, names = [], []
    for model in models:
        for variant in variants:
            overrides = dict(VARIANTS[variant])
            factor = overrides.pop("budget_factor", 1)
            for seed in seeds:
                cfgs.append(common.config(model, sparsity, seed=seed, epochs=epochs * factor,
                                          protocol="short",
                                          iterations=iterations * factor,
                                          train_limit=train_limit, **overrides))
                names.append(variant)
    out = common.out_dir("rnn_controls", results_dir)
    trained = common.run_all(cfgs, data_dir, out, workers, partial_ok=True,
                             report_only=report_only)
    rows = []
    for row, name in zip(trained, names):  # (--report_only: the runs kept so far)
        if row is not None:
            rows.append({**row, "variant": name})
    common.write_rows(os.path.join(out, "rnn_controls.csv"), rows)
    summary = []
    for model in models:
        groups = {v: [r for r in rows if r["model"] == model and r["variant"] == v]
                  for v in variants}
        groups = {v: g for v, g in groups.items() if g}
        base = (common.mean_std(r["test_error"] for r in groups["baseline"])[0]
                if "baseline" in groups else None)
        for variant, group in groups.items():
            mean, std = common.mean_std(r["test_error"] for r in group)
            summary.append({"model": model, "variant": variant, "test_error_mean": mean,
                            "test_error_std": std, "seeds": len(group),
                            "test_errors": [r["test_error"] for r in group],
                            "authors_rule_errors": [r["test_error_authors_rule"]
                                                    for r in group],
                            "validation_selected_errors": [r["test_error_validation_selected"]
                                                           for r in group],
                            "validation_errors": [r["validation_error"] for r in group],
                            "train_errors": [r["train_error"] for r in group],
                            "change": None if base is None else mean - base,
                            "paper": PAPER[model]})
    budget = common.budget_label(iterations, epochs)
    common.write_json(os.path.join(out, "rnn_controls.json"),
                      {"rows": rows, "summary": summary, "seeds": list(seeds), "budget": budget,
                       "sparsity": sparsity})

    cell = common.cell
    lines = ["| model | variant | " + " | ".join(f"test error % ({v})"
                                               for v in common.ERRORS.values())
             + " | validation error % (last iteration) | last-epoch training error % | seeds | "
             "change from baseline | paper % |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        change = "–" if s["change"] is None or s["variant"] == "baseline" else \
            f"{100 * s['change']:+.2f}"
        lines.append(f"| {s['model']} | {s['variant']} | {common.spread(s['test_errors'])} | "
                     f"{cell(s['authors_rule_errors'])} | "
                     f"{cell(s['validation_selected_errors'])} | "
                     f"{cell(s['validation_errors'])} | {cell(s['train_errors'])} | "
                     f"{s['seeds']} | {change} | {s['paper']} |")
    lines.append(f"\n{100 * sparsity:g} % sparsity, mean ± std over seeds {list(seeds)}; "
                 f"baseline budget {budget} per run (``long``: three times that). The "
                 "training error is the running error over the last epoch; a training error "
                 "far below the test error is overfitting. The final training loss includes the "
                 f"weight-decay penalty where a variant has one. {common.CHECKPOINT_NOTE}\n")
    lines += ["| model | variant | seed | " + " | ".join(f"test error % ({v})"
                                                      for v in common.ERRORS.values())
              + " | validation error % | final training loss | last-epoch training error % |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['variant']} | {r['seed']} | "
                     + " | ".join(common.error_cells([r]))
                     + f" | {cell([r['validation_error']])} | "
                     + ("–" if r["train_loss"] is None else f"{r['train_loss']:.3f}")
                     + f" | {cell([r['train_error']])} |")
    common.write_text(os.path.join(out, "rnn_controls.md"),
                      "\n".join(lines) + common.diverged_note(rows, "variant"))
    return rows


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("protocol", "criteria")


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.seeds(), F.epochs or 10, F.train_limit,
        common.chosen("models", MODELS), common.chosen("controls", VARIANTS), F.iterations or 0, F.workers,
        report_only=F.report_only)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
