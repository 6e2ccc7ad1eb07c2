"""Study 1: magnitude pruning of trained RNNs on the Reber grammar, and SNIP at initialization on
the same networks.

    python -m snip_tf.studies.reber_pruning --data_dir=../shared/data --variants=gru,lstm \
        --base_epochs=5 --retrain_epochs=3

For each variant (RNN-Tanh, RNN-ReLU, LSTM, GRU): train; then for p = 10 ... 100 % prune by weight
magnitude, the threshold pooled across the recurrent layers, in three settings (input-to-hidden and
hidden-to-hidden together, input-to-hidden only, hidden-to-hidden only); evaluate right after
pruning (epoch 0) and after each retraining epoch. Then SNIP at initialization at the same
sparsities (both kernels, pooled), trained from scratch for base + retrain epochs. Writes
results/reber_pruning/<variant>.csv in the thesis's layout (mode, prune, epoch, train_loss,
train_acc, test_loss, test_acc, time), a summary JSON and a plot per variant; with several
``--seeds``, one such folder per seed (``seed_<seed>/``), and ``--table`` then prints each cell's
mean over the seeds and its range.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import app, flags

from snip_tf import atomic, masking, models, pruning
from snip_tf.experiments import common
from snip_tf.studies import reber_batches as rb
from snip_tf.studies import reber_common as rc

flags.DEFINE_list("variants", list(rc.VARIANTS), "Variants to study.")
flags.DEFINE_list("levels", [str(10 * i) for i in range(1, 11)], "Pruning percentages.")
flags.DEFINE_integer("base_epochs", 10, "Epochs of base training (thesis: 50).")
flags.DEFINE_integer("retrain_epochs", 3, "Retraining epochs after pruning (thesis: 10).")
flags.DEFINE_enum("source", "thesis", ["thesis", "generated"], "Reber data set.")
flags.DEFINE_enum("initializer", "vs-x", list(models.INITIALIZERS), "Initialization of the "
                  "networks (see snip_tf.models.get); 'torch' is the thesis's PyTorch code's, "
                  "with a standard normal embedding.")
flags.DEFINE_bool("unit_forget_bias", None, "LSTM: start the forget gate's bias at 1 (Keras's "
                  "unit_forget_bias) instead of --initializer's bias, or not; unset: the "
                  "initializer's own choice (on for Keras's initializers, off for 'torch').")
flags.DEFINE_integer("generated_size", 25000, "Strings in the generated data set (--source="
                     "generated), split 75/25 into training and test strings.")

flags.DEFINE_list("robustness_epochs", [], "Instead of the study: train each variant to these "
                  "epochs in turn and at each test copies pruned at --levels in every setting, "
                  "with no retraining (does longer training make a network survive pruning?). "
                  "Writes <variant>_robustness.csv and robustness.json, and prints a table.")
flags.DEFINE_float("regain_tolerance", 0.1, "--table: a pruned network has regained the dense "
                   "accuracy once its test accuracy is within this many points of it.")
flags.DEFINE_bool("table", False, "Train nothing: print the markdown table of the results "
                  "folder's summary.json beside the thesis's numbers, and the accuracy of "
                  "predicting from string length alone; for a folder of several seeds' "
                  "seed_<seed> folders, each cell's mean over the seeds and its range.")

SETTINGS = {"ih+hh": "_prune", "ih": "_prune_i2h", "hh": "_prune_h2h"}

# The thesis's own results (repository harshildarji/thesis, Implementations/experiments/results/
# prune/<variant>.csv): test accuracy after 50 epochs of base training, and for each setting and
# pruning level 10, 20, ..., 100 % the test accuracy right after pruning (its epoch 0) and after
# its 10th retraining epoch.
THESIS_DENSE = {"rnn-tanh": 0.93728, "rnn-relu": 1.0, "lstm": 1.0, "gru": 1.0}
_THESIS_GRID = {  # (variant, setting): [(after pruning, after retraining) at 10, 20, ... 100 %]
    ("rnn-tanh", "ih+hh"): [(0.93728, 0.93696), (0.93728, 0.93728), (0.93728, 0.93728),
                            (0.93728, 0.93648), (0.93728, 0.93728), (0.93728, 0.93728),
                            (0.93296, 0.93728), (0.9192, 0.99472), (0.65584, 0.93728),
                            (0.49424, 0.49424)],
    ("rnn-tanh", "ih"): [(0.93728, 0.93728), (0.93728, 0.93728), (0.93728, 0.93728),
                         (0.93728, 0.93728), (0.93728, 0.93632), (0.93664, 0.93728),
                         (0.93088, 0.93664), (0.81392, 0.96944), (0.49424, 0.97104),
                         (0.49424, 0.49424)],
    ("rnn-tanh", "hh"): [(0.93728, 0.93728), (0.93728, 0.92704), (0.93728, 0.93728),
                         (0.93728, 0.93728), (0.93728, 0.93728), (0.93728, 0.93728),
                         (0.9264, 0.93728), (0.93728, 0.93728), (0.72032, 0.93696),
                         (0.49424, 0.53664)],
    ("rnn-relu", "ih+hh"): [(1.0, 1.0)] * 4 + [(0.9976, 1.0), (0.99296, 1.0), (0.98576, 1.0),
                                              (0.54864, 1.0), (0.50304, 1.0),
                                              (0.50576, 0.49424)],
    ("rnn-relu", "ih"): [(1.0, 1.0), (1.0, 0.97472)] + [(1.0, 1.0)] * 5
                        + [(0.94976, 1.0), (0.90464, 1.0), (0.50576, 0.49424)],
    ("rnn-relu", "hh"): [(1.0, 1.0)] * 5 + [(0.99664, 1.0), (0.99072, 1.0), (0.64864, 1.0),
                                            (0.46352, 1.0), (0.50576, 0.51728)],
    ("lstm", "ih+hh"): [(1.0, 1.0)] * 6 + [(0.80288, 1.0), (0.66784, 1.0), (0.49488, 1.0),
                                           (0.50576, 0.50576)],
    ("lstm", "ih"): [(1.0, 1.0)] * 6 + [(0.99216, 1.0), (0.9456, 1.0), (0.62128, 1.0),
                                        (0.50576, 0.49424)],
    ("lstm", "hh"): [(1.0, 1.0)] * 7 + [(0.99904, 1.0), (0.95264, 1.0), (0.5208, 1.0)],
    ("gru", "ih+hh"): [(1.0, 1.0)] * 5 + [(0.99984, 1.0), (0.99776, 1.0), (0.9936, 1.0),
                                          (0.5512, 1.0), (0.50576, 0.49424)],
    ("gru", "ih"): [(1.0, 1.0)] * 6 + [(0.99952, 1.0), (0.9968, 1.0), (0.876, 1.0),
                                       (0.50576, 0.50576)],
    ("gru", "hh"): [(1.0, 1.0)] * 2 + [(0.99984, 1.0)] * 3 + [(0.9976, 1.0), (0.9928, 1.0),
                                                             (0.95616, 1.0), (0.95072, 1.0),
                                                             (0.57328, 1.0)],
}
THESIS_PRUNING = {  # (variant, setting, percent): (after pruning, after 10 retraining epochs)
    (variant, setting, 10 * (i + 1)): pair
    for (variant, setting), pairs in _THESIS_GRID.items() for i, pair in enumerate(pairs)}


def _prune_subset(model, paths, percent, criterion, data=None, seed=0, padding="masked"):
    """Prune ``percent`` % of the weights at ``paths``; 100 % zeroes them all (the thesis's last
    level), which ``snip_tf.prune`` refuses for a whole network."""
    if percent >= 100:
        entries = {e.path: e for e in masking.prunable_entries(model)}
        pruning.apply_masks(model, {p: np.zeros(entries[p].variable.shape, bool) for p in paths})
        return
    batch = None
    if data is not None:
        tokens = data.x_train[:32]
        if padding == "unmasked":  # as a training batch: cut to its longest string
            tokens = rb.trim(tf.constant(tokens), 1).numpy()
        batch = (tokens, data.y_train[:32])
    pruning.prune(model, batch, percent / 100, criterion=criterion, weights=paths, seed=seed)


def regain_epoch(rows, target: float):
    """First epoch (0 = right after pruning) whose test accuracy reaches ``target``, or None."""
    for row in rows:
        if row["test_acc"] >= target:
            return row["epoch"]
    return None


def _magnitude_pruned_copy(build, trained_weights, setting, percent):
    """A fresh model from ``build`` with ``trained_weights``, magnitude-pruned at ``percent`` %
    of its ``setting``'s recurrent kernels (collapse warnings silenced: 100 % collapses by
    design)."""
    model = build()
    model.set_weights(trained_weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pruning.LayerCollapseWarning)
        _prune_subset(model, rc.recurrent_weights(model, setting), percent, "magnitude")
    return model


def _magnitude_key(setting: str, percent: int) -> str:
    return f"magnitude {setting} {percent}"


def _snip_key(percent: int) -> str:
    return f"snip {percent}"


def _cell_keys(levels) -> list:
    """A variant's pruned networks in the order of its rows: each setting's levels, then SNIP's."""
    return ([_magnitude_key(setting, percent) for setting in SETTINGS for percent in levels]
            + [_snip_key(percent) for percent in levels if percent < 100])


def _stem(out: str, variant: str) -> str:
    """A variant's files in the results folder ``out``, without their endings."""
    return os.path.join(out, variant.replace("-", "_"))


class StudyProgress:
    """What a variant's study has finished: its base training, then each pruned network (a
    cell). With ``stem`` (a path without extension) every part is written as it finishes, the
    base network's weights to ``<stem>_base_weights.npz`` and the rows to
    ``<stem>_progress.json``, and ``resume=True`` reads them back, so that a study stopped
    part-way goes on where it stopped. Each cell starts from the base weights, or from a seeded
    initialization, and draws its batches from the seed: a resumed study's results are those of
    an uninterrupted one. ``on_change(progress)`` is called after each part."""

    def __init__(self, stem: Optional[str] = None, resume: bool = False, on_change=None):
        self.stem, self.on_change = stem, on_change
        self.base_weights, self.base_rows, self.cells = None, None, {}
        if stem and resume and all(os.path.exists(p) for p in self._paths()):
            saved = atomic.read_json(self._paths()[1], expect=dict)
            with np.load(self._paths()[0], allow_pickle=False) as arrays:
                self.base_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
            self.base_rows, self.cells = saved["base_rows"], saved["cells"]

    @staticmethod
    def paths(stem: str) -> tuple:
        """(base weights, progress) files of the variant at ``stem``."""
        return stem + "_base_weights.npz", stem + "_progress.json"

    @staticmethod
    def unfinished(stem: str) -> bool:
        """Whether the variant at ``stem`` has started and not finished (``finish`` deletes
        its progress file)."""
        return os.path.exists(StudyProgress.paths(stem)[1])

    def _paths(self) -> tuple:
        return self.paths(self.stem)

    @property
    def dense_acc(self) -> float:
        """The base network's test accuracy after its training."""
        return self.base_rows[-1]["test_acc"]

    def record_base(self, weights: list, rows: list) -> None:
        self.base_weights, self.base_rows = weights, rows
        if self.stem:
            buffer = io.BytesIO()
            np.savez(buffer, *weights)
            atomic.write_bytes(self._paths()[0], buffer.getvalue())
        self._changed()

    def record_cell(self, key: str, rows: list, entry: dict) -> None:
        self.cells[key] = {"rows": rows, "summary": entry}
        self._changed()

    def collected(self, levels) -> tuple:
        """(rows, summary entries) of the finished parts, in the study's order; with those of
        levels other than ``levels`` that a resumed study had finished, so that none is lost."""
        levels = sorted(set(levels) | {int(key.split()[-1]) for key in self.cells})
        keys = [k for k in _cell_keys(levels) if k in self.cells]
        return ((self.base_rows or []) + [r for k in keys for r in self.cells[k]["rows"]],
                [self.cells[k]["summary"] for k in keys])

    def finish(self) -> None:
        """Delete the files: the variant's CSV and summary now hold everything."""
        for path in self._paths() if self.stem else ():
            if os.path.exists(path):
                os.remove(path)

    def _changed(self) -> None:
        if self.stem:
            path = self._paths()[1]
            # a study killed while writing keeps the last file
            atomic.write_json(path, {"base_rows": self.base_rows, "cells": self.cells}, indent=None)
        if self.on_change:
            self.on_change(self)


def study_variant(variant, data, levels, base_epochs, retrain_epochs, seed=0,
                  initializer="vs-x", padding="masked",
                  progress: Optional[StudyProgress] = None, unit_forget_bias=None) -> tuple:
    """One variant's study; ``progress`` keeps (and, resumed, already holds) its finished
    parts. Returns (rows, summary entries, dense test accuracy)."""
    def build():
        return rc.build(variant, data, seed, initializer=initializer, padding=padding,
                        unit_forget_bias=unit_forget_bias)

    progress = progress or StudyProgress()
    if progress.base_rows is None:
        base = build()
        rows = rc.fit_epochs(base, data, base_epochs, seed, variant, 0, padding=padding)
        progress.record_base(base.get_weights(), rows)
    trained, dense_acc = progress.base_weights, progress.dense_acc
    for setting, suffix in SETTINGS.items():
        for percent in levels:
            if _magnitude_key(setting, percent) in progress.cells:
                continue
            model = _magnitude_pruned_copy(build, trained, setting, percent)
            tr_loss, tr_acc, te_loss, te_acc = rc.evaluate(model, data, padding, seed)
            level_rows = [{"mode": variant + suffix, "prune": percent, "epoch": 0,
                           "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss,
                           "test_acc": te_acc, "time": 0.0}]
            level_rows += rc.fit_epochs(model, data, retrain_epochs, seed, variant + suffix,
                                        percent, padding=padding)
            progress.record_cell(_magnitude_key(setting, percent), level_rows, {
                "variant": variant, "method": "magnitude after training", "setting": setting,
                "prune": percent, "acc_after_pruning": te_acc,
                "acc_after_retraining": level_rows[-1]["test_acc"],
                "epochs_to_regain": regain_epoch(level_rows, dense_acc),
                "epochs_total": base_epochs + retrain_epochs})
            print(f"{variant} {setting} {percent}%: {te_acc:.4f} -> "
                  f"{level_rows[-1]['test_acc']:.4f}", flush=True)
    for percent in [p for p in levels if p < 100]:
        if _snip_key(percent) in progress.cells:
            continue
        model = build()
        _prune_subset(model, rc.recurrent_weights(model, "ih+hh"), percent, "snip", data, seed,
                      padding)
        snip_rows = rc.fit_epochs(model, data, base_epochs + retrain_epochs, seed,
                                  variant + "_snip", percent, padding=padding)
        progress.record_cell(_snip_key(percent), snip_rows, {
            "variant": variant, "method": "SNIP at initialization", "setting": "ih+hh",
            "prune": percent, "acc_after_pruning": None,
            "acc_after_retraining": snip_rows[-1]["test_acc"],
            "epochs_to_regain": regain_epoch(snip_rows, dense_acc),
            "epochs_total": base_epochs + retrain_epochs})
        print(f"{variant} SNIP {percent}%: {snip_rows[-1]['test_acc']:.4f}", flush=True)
    rows, summary = progress.collected(levels)
    return rows, summary, dense_acc


def robustness_over_training(variant, data, checkpoints, levels, seed=0, initializer="vs-x",
                             padding="masked", unit_forget_bias=None) -> list:
    """How much of each level of magnitude pruning a network survives, with no retraining, as
    its base training goes on: one network trained to each epoch of ``checkpoints`` in turn and,
    at each, copies of it pruned in every setting and level and tested. Rows: epoch, setting,
    prune, test_acc. The dense network's rows (``setting="dense"``, ``prune=0``) come at every
    epoch, not only at the checkpoints, with its losses: its learning curve, to read the
    checkpoints by."""
    def build():
        return rc.build(variant, data, seed, initializer=initializer, padding=padding,
                        unit_forget_bias=unit_forget_bias)

    if sorted(set(checkpoints)) != list(checkpoints) or checkpoints[0] < 1:
        raise ValueError(f"checkpoints must be increasing epochs >= 1; got {checkpoints}.")
    base, rows = build(), []
    # One uninterrupted run (its batch orders those of the study's base training), stopped at
    # each checkpoint to test pruned copies.
    for trained in rc.train_epochs(base, data, checkpoints[-1], seed, variant, 0,
                                   padding=padding):
        epoch = trained["epoch"]
        rows.append({"variant": variant, "epoch": epoch, "setting": "dense", "prune": 0,
                     "test_acc": trained["test_acc"], "train_loss": trained["train_loss"],
                     "test_loss": trained["test_loss"]})
        if epoch not in checkpoints:
            continue
        trained_weights = base.get_weights()
        for setting in SETTINGS:
            for percent in levels:
                probe = _magnitude_pruned_copy(build, trained_weights, setting, percent)
                acc = rc.evaluate_test(probe, data, padding, seed)
                rows.append({"variant": variant, "epoch": epoch, "setting": setting,
                             "prune": percent, "test_acc": acc})
                print(f"{variant} epoch {epoch} {setting} {percent}%: {acc:.4f}", flush=True)
    return rows


def robustness_table(rows) -> str:
    """Markdown: test accuracy right after pruning, one row per (epoch, setting), one column
    per level, each beside the thesis's (after its 50 epochs). Epochs with only the dense
    network's row (between checkpoints) are left out."""
    levels = sorted({r["prune"] for r in rows if r["setting"] != "dense"})
    variant = rows[0]["variant"]
    lines = ["| epoch | dense | setting | " + " | ".join(f"{p} %" for p in levels) + " |",
             "|---" * (3 + len(levels)) + "|"]
    for epoch in sorted({r["epoch"] for r in rows if r["setting"] != "dense"}):
        at = {(r["setting"], r["prune"]): r["test_acc"] for r in rows if r["epoch"] == epoch}
        for setting in SETTINGS:
            cells = []
            for p in levels:
                thesis = THESIS_PRUNING.get((variant, setting, p))
                cells.append(f"{100 * at[setting, p]:.2f}"
                             + (f" / {100 * thesis[0]:.2f}" if thesis else ""))
            lines.append(f"| {epoch} | {100 * at['dense', 0]:.2f} | {setting} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(variant, summary, dense_acc, path):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for setting in SETTINGS:
        pts = [s for s in summary if s["setting"] == setting and s["method"].startswith("mag")]
        xs = [s["prune"] for s in pts]
        axes[0].plot(xs, [s["acc_after_pruning"] for s in pts], marker="o", label=setting)
        axes[1].plot(xs, [s["acc_after_retraining"] for s in pts], marker="o", label=setting)
    snip = [s for s in summary if s["method"].startswith("SNIP")]
    axes[1].plot([s["prune"] for s in snip], [s["acc_after_retraining"] for s in snip],
                 marker="s", linestyle="--", color="k", label="SNIP at init (ih+hh)")
    for ax, title in zip(axes, ("right after pruning", "after retraining / training")):
        ax.axhline(dense_acc, color="grey", linewidth=0.8)
        ax.set_xlabel("pruned (%)")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{variant} on the Reber grammar", fontsize=10)
    common.save_figure(fig, path)


def run(data_dir=None, results_dir=None, variants=rc.VARIANTS, levels=tuple(range(10, 101, 10)),
        base_epochs=10, retrain_epochs=3, seed=0, source="thesis", train_limit=0,
        generated_size=25000, initializer="vs-x", padding="masked", resume=False,
        unit_forget_bias=None) -> dict:
    """The study of ``variants`` into ``results_dir``: per variant a CSV and a plot, and
    summary.json. The CSV and summary.json are rewritten as each pruned network finishes, so
    a stopped study keeps what it finished and ``--table`` shows it; ``resume=True`` goes on
    from there (same settings required): finished variants are kept and an unfinished one
    goes on from its last finished network (see ``StudyProgress``)."""
    out = common.out_dir("reber_pruning", results_dir)
    settings = _settings(seed, source, train_limit, base_epochs, retrain_epochs,
                         generated_size, initializer, padding, unit_forget_bias)
    summary_path = os.path.join(out, "summary.json")
    report = {}
    if resume and os.path.exists(summary_path):
        before = _with_defaults(atomic.read_json(summary_path, expect=dict))
        common.require_same_settings(before, settings, out)
        report = {v: r for v, r in before["report"].items() if _complete(r, levels)}
    data = rc.load(source, data_dir, n=generated_size, seed=seed, train_limit=train_limit)

    def write_summary():
        common.write_json(summary_path, {"report": report, **settings, "source": data.source,
                                         "train_size": len(data.x_train)})

    for variant in variants:
        if variant in report:
            print(f"{variant}: finished in {out}, not run again", flush=True)
            continue
        stem = _stem(out, variant)

        def save(rows, summary, dense_acc, variant=variant, stem=stem):
            common.write_rows(stem + ".csv", rows)
            report[variant] = {"dense_test_acc": dense_acc, "summary": summary}
            write_summary()

        def save_partial(progress):
            save(*progress.collected(levels), progress.dense_acc)

        progress = StudyProgress(stem, resume, save_partial)
        if progress.base_rows is not None:
            keys = _cell_keys(levels)
            print(f"{variant}: resumed with {sum(k in progress.cells for k in keys)} of "
                  f"{len(keys)} pruned networks finished", flush=True)
        rows, summary, dense_acc = study_variant(variant, data, list(levels), base_epochs,
                                                 retrain_epochs, seed, initializer, padding,
                                                 progress=progress,
                                                 unit_forget_bias=unit_forget_bias)
        save(rows, summary, dense_acc)
        plot(variant, summary, dense_acc, stem + ".png")
        progress.finish()
    return report


# Settings the first runs' summaries did not record, with the one value they could have had then.
_UNRECORDED = {"train_limit": 0, "initializer": "vs-x", "padding": "masked",
               "unit_forget_bias": None}


def _settings(seed, source, train_limit, base_epochs, retrain_epochs, generated_size,
              initializer, padding, unit_forget_bias=None) -> dict:
    return {"seed": seed, "source": source, "train_limit": train_limit,
            "base_epochs": base_epochs, "retrain_epochs": retrain_epochs,
            "generated_size": generated_size, "initializer": initializer, "padding": padding,
            "unit_forget_bias": unit_forget_bias}


def _with_defaults(summary: dict) -> dict:
    return {**_UNRECORDED, **summary}


def _complete(variant_report: dict, levels) -> bool:
    """Whether a variant's report holds every magnitude-pruned and SNIP network of ``levels``."""
    done = {(r["method"].split()[0], r["setting"], r["prune"])
            for r in variant_report["summary"]}
    return (all(("magnitude", s, p) in done for s in SETTINGS for p in levels)
            and all(("SNIP", "ih+hh", p) in done for p in levels if p < 100))


def _finished(path, settings: dict, variants, levels) -> Optional[dict]:
    """The summary.json at ``path`` if it is that of a finished run with ``settings`` (every
    variant, at every level); else None."""
    if not os.path.exists(path):
        return None
    summary = _with_defaults(atomic.read_json(path, expect=dict))
    if common.changed_settings(summary, settings):
        return None
    done = all(variant in summary["report"] and _complete(summary["report"][variant], levels)
               for variant in variants)
    return summary if done else None


def run_seeds(seeds, data_dir=None, results_dir=None, variants=rc.VARIANTS,
              levels=tuple(range(10, 101, 10)), base_epochs=10, retrain_epochs=3, source="thesis",
              train_limit=0, generated_size=25000, initializer="vs-x", padding="masked",
              resume=False, unit_forget_bias=None) -> dict:
    """The study once per seed: one seed into ``results_dir`` itself (as ``run``), several each
    into ``<results_dir>/seed_<seed>/``, where ``--table`` finds them. A seed whose folder already
    holds the finished study with these settings is not run again, so a long multi-seed study
    stopped early resumes where it stopped; with ``resume``, so does an unfinished seed.
    Returns {seed: run's report}."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one; got {seeds}.")
    options = dict(data_dir=data_dir, variants=variants, levels=levels, base_epochs=base_epochs,
                   retrain_epochs=retrain_epochs, source=source, train_limit=train_limit,
                   generated_size=generated_size, initializer=initializer, padding=padding,
                   resume=resume, unit_forget_bias=unit_forget_bias)
    if len(seeds) == 1:
        return {seeds[0]: run(results_dir=results_dir, seed=seeds[0], **options)}
    out = common.out_dir("reber_pruning", results_dir)
    reports = {}
    for seed in seeds:
        folder = os.path.join(out, f"seed_{seed}")
        settings = _settings(seed, source, train_limit, base_epochs, retrain_epochs,
                             generated_size, initializer, padding, unit_forget_bias)
        finished = _finished(os.path.join(folder, "summary.json"), settings, variants, levels)
        if finished:
            print(f"seed {seed}: finished in {folder}, not run again", flush=True)
            reports[seed] = finished["report"]
        else:
            reports[seed] = run(results_dir=folder, seed=seed, **options)
    return reports


def seed_summaries(results_dir: str) -> dict:
    """{seed: summary.json} of a multi-seed study's ``seed_<seed>`` folders."""
    summaries = {}
    for name in sorted(os.listdir(results_dir)):
        path = os.path.join(results_dir, name, "summary.json")
        if name.startswith("seed_") and os.path.exists(path):
            summaries[int(name[len("seed_"):])] = _with_defaults(
                atomic.read_json(path, expect=dict))
    return summaries


def seeds_table(summaries: dict, variant: str) -> str:
    """Markdown: ``variant``'s results over the seeds of ``summaries`` ({seed: summary.json}),
    each cell the mean test accuracy and, in brackets, the lowest and highest seed's."""
    seeds = sorted(s for s, summary in summaries.items() if variant in summary["report"])
    if not seeds:
        raise ValueError(f"No seed's summary has {variant!r}; seeds: {sorted(summaries)}.")
    for key in ("source", "train_size", "base_epochs", "retrain_epochs", "initializer",
                "padding", "unit_forget_bias"):
        values = {seed: summaries[seed].get(key) for seed in seeds}
        if len(set(values.values())) > 1:
            raise ValueError(f"The seeds' studies differ in {key} ({values}): re-run them with "
                             f"one setting before averaging.")

    def cell(values, _thesis):
        values = 100 * np.asarray(values)
        return f"{values.mean():.2f} ({values.min():.2f}–{values.max():.2f})"

    dense = [summaries[s]["report"][variant]["dense_test_acc"] for s in seeds]
    lines = [f"{variant}, seeds {', '.join(map(str, seeds))}: mean test accuracy % (lowest–"
             f"highest seed); dense {cell(dense, None)}", ""]
    return "\n".join(lines + _level_grid([summaries[s]["report"] for s in seeds], variant, cell))


def comparison_table(summary: dict) -> str:
    """Markdown: each magnitude-pruning result of ``summary`` (a study's summary.json) beside the
    thesis's at the same variant, setting and level (where the thesis has that level)."""
    pct = "{:.2%}".format
    lines = [f"Ours: {summary['base_epochs']} base + {summary['retrain_epochs']} retraining "
             f"epochs, seed {summary['seed']}. Thesis: 50 + 10 epochs.", "",
             "| variant | dense: ours / thesis | setting | pruned | after pruning: ours / thesis "
             "| after retraining: ours / thesis |", "|---|---|---|---|---|---|"]
    for variant, report in summary["report"].items():
        dense = f"{pct(report['dense_test_acc'])} / {pct(THESIS_DENSE[variant])}"
        for row in report["summary"]:
            if not row["method"].startswith("magnitude"):
                continue
            thesis = THESIS_PRUNING.get((variant, row["setting"], row["prune"]))
            theirs = (lambda i: f" / {pct(thesis[i])}") if thesis else (lambda i: " / –")
            lines.append(f"| {variant} | {dense} | {row['setting']} | {row['prune']} % | "
                         f"{pct(row['acc_after_pruning'])}{theirs(0)} | "
                         f"{pct(row['acc_after_retraining'])}{theirs(1)} |")
    return "\n".join(lines)


def _level_grid(reports, variant: str, cell) -> list:
    """Markdown lines: a header, then one row per pruning level of ``variant`` in ``reports`` (the
    "report" of one or more summary.json files), each setting's test accuracy right after pruning
    and after retraining, then SNIP at initialization. ``cell(accuracies, thesis)`` formats a
    cell from its accuracies (one per report) and the thesis's (None where it has none, and for
    SNIP)."""
    results = {}
    for report in reports:
        for row in report[variant]["summary"]:
            key = (row["method"].split()[0], row["setting"], row["prune"])
            results.setdefault(key, []).append(row)
    header = [f"{setting}: {stage}" for setting in SETTINGS for stage in
              ("after pruning", "retrained")]
    lines = ["| pruned | " + " | ".join(header) + " | SNIP at init |",
             "|---|" + "---|" * (len(header) + 1)]
    for level in sorted({level for _, _, level in results}):
        cells = []
        for setting in SETTINGS:
            rows = results.get(("magnitude", setting, level))
            thesis = THESIS_PRUNING.get((variant, setting, level), (None, None))
            for stage, theirs in zip(("acc_after_pruning", "acc_after_retraining"), thesis):
                cells.append(cell([r[stage] for r in rows], theirs) if rows else "–")
        snip = results.get(("SNIP", "ih+hh", level))
        cells.append(cell([r["acc_after_retraining"] for r in snip], None) if snip else "–")
        lines.append(f"| {level} % | " + " | ".join(cells) + " |")
    return lines


def grid_table(summary: dict, variant: str) -> str:
    """Markdown: one row per pruning level of ``variant`` in ``summary`` (a study's
    summary.json), each setting's accuracy right after pruning and after retraining as
    "ours / the thesis's", then SNIP at initialization (ours only)."""
    def cell(ours, thesis):
        return f"{100 * ours[0]:.2f}" + (f" / {100 * thesis:.2f}" if thesis is not None else "")

    return "\n".join(_level_grid([summary["report"]], variant, cell))


def regain_table(rows, variant: str, tolerance: float = 0.1) -> str:
    """Markdown: for each pruning level of ``variant`` in ``rows`` (its CSV's rows), the first
    epoch at which each setting's pruned network is within ``tolerance`` points of the dense
    network's final test accuracy (0: right after pruning; "–": not within its retraining), and
    the epoch at which the network pruned by SNIP at initialization, trained from scratch, gets
    there ("of" its whole budget)."""
    series = {}
    for row in rows:
        series.setdefault((row["mode"], int(row["prune"])), []).append(
            {"epoch": int(row["epoch"]), "test_acc": float(row["test_acc"])})
    if (variant, 0) not in series:
        raise ValueError(f"No base training rows (mode {variant!r}, prune 0) to take the dense "
                         f"accuracy from; modes present: {sorted({m for m, _ in series})}.")
    dense = series[(variant, 0)][-1]["test_acc"]
    target = dense - tolerance / 100
    snip_mode = variant + "_snip"
    levels = sorted({p for m, p in series if m != variant})
    lines = [f"Epochs until the test accuracy is within {tolerance:g} points of the dense "
             f"{100 * dense:.2f} %:", "",
             "| pruned | " + " | ".join(SETTINGS) + " | SNIP at init |",
             "|---|" + "---|" * (len(SETTINGS) + 1)]

    def first(key):
        if key not in series:
            return "–"
        epoch = regain_epoch(sorted(series[key], key=lambda r: r["epoch"]), target)
        return "–" if epoch is None else str(epoch)

    for level in levels:
        cells = [first((variant + suffix, level)) for suffix in SETTINGS.values()]
        snip = first((snip_mode, level))
        if snip != "–":
            snip += f" of {len(series[(snip_mode, level)])}"
        lines.append(f"| {level} % | " + " | ".join(cells + [snip]) + " |")
    return "\n".join(lines)


def _print_robustness(variant, rows):
    print(f"\n{variant}, test accuracy % right after pruning, ours / the thesis's "
          f"(after its 50 epochs):\n")
    print(robustness_table(rows))


def _print_robustness_folder(out):
    """--table on a folder of --robustness_epochs: its settings and tables."""
    path = os.path.join(out, "robustness.json")
    if not os.path.exists(path):
        raise app.UsageError(f"--table: {out} holds no summary.json, seed_<seed>/summary.json "
                             f"or robustness.json; run the study or --robustness_epochs into "
                             f"it first.")
    probe = atomic.read_json(path, expect=dict)
    print(", ".join(f"{key} {value}" for key, value in probe.items() if key != "report"))
    for variant, rows in probe["report"].items():
        _print_robustness(variant, rows)


def main(argv):
    del argv
    F = common.FLAGS
    if F.table:
        out = F.results_dir or os.path.join("results", "reber_pruning")  # read, not created
        if not os.path.isdir(out):
            raise app.UsageError(f"--table: there is no folder {out}.")
        summary_path = os.path.join(out, "summary.json")
        if not os.path.exists(summary_path):
            summaries = seed_summaries(out)
            if not summaries:
                _print_robustness_folder(out)
                return
            for variant in dict.fromkeys(v for s in summaries.values() for v in s["report"]):
                print(f"\n{seeds_table(summaries, variant)}")
            return
        summary = atomic.read_json(summary_path, expect=dict)
        print(comparison_table(summary))
        for variant in summary["report"]:
            if StudyProgress.unfinished(_stem(out, variant)):
                print(f"\n{variant} is unfinished (running, or stopped: --resume goes on): "
                      f"{len(summary['report'][variant]['summary'])} pruned networks so far; "
                      f"in its tables '–' also marks those not run yet.")
            print(f"\n{variant}, test accuracy %, ours / the thesis's:\n")
            print(grid_table(summary, variant))
            with open(_stem(out, variant) + ".csv") as f:
                rows = list(csv.DictReader(f))
            print()
            print(regain_table(rows, variant, F.regain_tolerance))
        data = rc.load(summary["source"], F.data_dir, seed=summary["seed"],
                       n=summary.get("generated_size", 25000))
        print(f"\nPredicting the label from the string's length alone: "
              f"{rc.length_only_accuracy(data):.2%} test accuracy.")
        return
    if F.robustness_epochs:
        seed = common.one_seed("reber_pruning --robustness_epochs")
        out = common.out_dir("reber_pruning", F.results_dir)
        data = rc.load(F.source, F.data_dir, n=F.generated_size, seed=seed,
                       train_limit=F.train_limit)
        report = {}
        for variant in F.variants:
            rows = robustness_over_training(
                variant, data, [int(e) for e in F.robustness_epochs], [int(p) for p in F.levels],
                seed, F.initializer, F.padding, F.unit_forget_bias)
            common.write_rows(_stem(out, variant) + "_robustness.csv", rows)
            report[variant] = rows
            common.write_json(os.path.join(out, "robustness.json"),
                              {"report": report, "seed": seed, "source": data.source,
                               "initializer": F.initializer, "padding": F.padding,
                               "unit_forget_bias": F.unit_forget_bias})
            _print_robustness(variant, rows)
        return
    run_seeds(common.seeds(), F.data_dir, F.results_dir, F.variants, [int(p) for p in F.levels],
              F.base_epochs, F.retrain_epochs, F.source, F.train_limit, F.generated_size,
              F.initializer, F.padding, F.resume, F.unit_forget_bias)


if __name__ == "__main__":
    app.run(main)
