"""How SNIP's global ranking spreads over the gates of LSTM/GRU kernels ("gate starvation").

    python -m snip_tf.experiments.gate_usage --data_dir=../shared/data --models=lstm-s,gru-s

Scores the zoo model on the same scoring batch ``train.py``/table2 use (100 training examples of
sequential MNIST, seed 0), prunes to 95 %, and counts the kept weights of each gate block of each
recurrent kernel (Keras lays kernels out as (inputs, gates * units)). Scoring only, no training.
Writes results/gate_usage/gate_usage.json and .md.
"""

from __future__ import annotations

import os

import keras
from absl import flags

from snip_tf import data, masking, models, pruning, selection
from snip_tf.experiments import common

flags.DEFINE_float("sparsity", 0.95, "Sparsity to prune to.")
flags.DEFINE_enum("scope", "global", list(selection.SCOPES), "Pruning scope ('gate': each "
                  "LSTM/GRU weight's count shared equally among its gates).")


def gate_counts(model) -> list:
    rows = []
    for layer in model._flatten_layers():
        gates = masking.gate_names(layer) or (
            ("h",) if isinstance(layer, keras.layers.SimpleRNNCell) else ())
        if not gates:
            continue
        for var in (layer.kernel, layer.recurrent_kernel):
            value = var.numpy()
            width = value.shape[1] // len(gates)
            rows.append({"weight": var.path, "total_per_gate": int(value.shape[0] * width),
                         **{f"kept_{g}": int((value[:, i * width:(i + 1) * width] != 0).sum())
                            for i, g in enumerate(gates)}})
    return rows


def run(data_dir=None, results_dir=None, models_=("lstm-s", "gru-s"), sparsity=0.95, seed=0,
        scope="global"):
    out = common.out_dir("gate_usage", results_dir)
    ds = data.make_datasets("mnist", 100, data_dir=data_dir, seed=seed, sequential=True)
    report = {}
    lines = ["| weight | per-gate total | kept per gate |", "|---|---|---|"]
    for name in models_:
        model = models.get(name, input_shape=ds.input_shape, seed=seed)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        pruning.prune(model, ds.scoring_batch, sparsity, scope=scope)
        rows = gate_counts(model)
        report[name] = rows
        for r in rows:
            kept = ", ".join(f"{k[5:]}: {v:,}" for k, v in r.items() if k.startswith("kept_"))
            lines.append(f"| {r['weight']} | {r['total_per_gate']:,} | {kept} |")
    common.write_json(os.path.join(out, "gate_usage.json"),
                      {"report": report, "sparsity": sparsity, "seed": seed, "scope": scope})
    common.write_text(os.path.join(out, "gate_usage.md"),
                      "\n".join(lines) + f"\n\nSNIP at {100 * sparsity:g} %, seed {seed}, scope {scope}.\n")
    return report


# The shared flags (common.SHARED_FLAGS) this command does not read: given, each is an error.
UNUSED_FLAGS = ("epochs", "iterations", "train_limit", "protocol", "criteria", "workers", "set",
                "report_only")


def main(argv):
    del argv
    F = common.FLAGS
    run(F.data_dir, F.results_dir, common.chosen("models", ("lstm-s", "gru-s")), F.sparsity,
        common.one_seed("gate_usage"), F.scope)


if __name__ == "__main__":
    common.run_app(main, unused=UNUSED_FLAGS)
