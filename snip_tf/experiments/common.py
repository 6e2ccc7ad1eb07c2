"""What the experiments share: flags, the paper's protocol as configs, result files, plots."""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import sys
import time
from typing import Iterable, Optional

from absl import app, flags

from snip_tf.config import base_config
from snip_tf import atomic, training

flags.DEFINE_string("data_dir", None, "Local data folder (default $SNIP_TF_DATA_DIR, else tfds).")
flags.DEFINE_string("results_dir", None, "Output folder (default results/<experiment>).")
flags.DEFINE_list("seeds", ["0"], "Seeds; each configuration is run once per seed.")
flags.DEFINE_integer("epochs", None, "Training epochs per run (default: the experiment's).")
flags.DEFINE_integer("train_limit", 0, "Use only this many training examples (0: all).")
flags.DEFINE_enum("protocol", "paper", ["paper", "authors"],
                  "paper: as the paper states it; authors: details of the authors' code "
                  "(score one draw and train a fresh one, biases ranked and L2-penalized with "
                  "0.00025*sum(w^2), variance-scaling fan_in initialization).")
flags.DEFINE_list("models", [], "Only these models (default: all of the experiment's).")
FLAGS = flags.FLAGS

# The paper's weight decay of 0.0005 is a gradient coefficient: the authors' code adds
# 0.00025 * sum(w^2) to the loss (snip/model.py), so the L2 penalty is l2=2.5e-4.
WEIGHT_DECAY_L2 = 2.5e-4
# The paper's LeNet protocol: batch 100, SGD momentum 0.9, lr 0.1 divided by 10 twice, weight
# decay 0.0005; 10 % of the training set held out for validation. The paper decays at 25k and
# 50k iterations; our shorter CPU budgets decay at the same points relative to the run: half and
# three quarters.
LENET = dict(batch_size=100, optimizer="sgd", learning_rate=0.1, momentum=0.9,
             lr_decay_fractions=(0.5, 0.75), l2=WEIGHT_DECAY_L2)
# Sequential MNIST for the recurrent models (Adam; the paper gives no further detail).
RNN = dict(batch_size=100, optimizer="adam", learning_rate=1e-3, l2=0.0, clipnorm=5.0,
           sequential=True, lr_decay_fractions=(0.5, 0.75))


def run_app(main) -> None:
    """``absl.app.run(main)`` for an experiment command: its ``--help`` shows the command's
    docstring as written (absl %-formats it) and the flags shared from this module beside its own."""
    module = sys.modules["__main__"]
    if module.__doc__:
        module.__doc__ = module.__doc__.replace("%", "%%")
    for name in ("data_dir", "results_dir", "seeds", "epochs", "train_limit", "protocol",
                 "models"):
        FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])
    app.run(main)


def chosen_models(known) -> tuple:
    """The ``--models`` the user named (default: all of ``known``); an unknown name is a usage
    error that lists the experiment's models."""
    known = tuple(known)
    unknown = [m for m in FLAGS.models if m not in known]
    if unknown:
        raise app.UsageError(f"--models names {unknown}, which this experiment does not run; its "
                             f"models are {list(known)}.")
    return tuple(FLAGS.models) or known


def config(model: str, sparsity: float, *, dataset: str = "mnist", seed: int = 0,
           epochs: int = 20, train_limit: int = 0, protocol: str = "paper", **overrides):
    """A run config for ``model`` with the paper's protocol for its family."""
    c = base_config()
    family = RNN if model.startswith(("lstm", "gru")) else LENET
    c.update({"name": f"{model}_{dataset}", "model": model, "dataset": dataset,
              "sparsity": float(sparsity), "seed": int(seed), "epochs": int(epochs),
              "train_limit": int(train_limit), **family})
    if protocol == "authors":
        c.snip.fresh_init = True
        c.snip.include_bias = True
        c.l2 = WEIGHT_DECAY_L2
        c.l2_bias = True
        c.initializer = "lecun"
    for key, value in overrides.items():
        target = c
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return c


def run(cfg, data_dir: Optional[str], extra_callbacks=None) -> dict:
    """Train one config; the summary row an experiment tables (and the full result)."""
    result = training.run(cfg, data_dir=data_dir, results_dir="", extra_callbacks=extra_callbacks)
    row = {"model": cfg.model, "dataset": cfg.dataset, "sparsity": cfg.sparsity,
           "criterion": cfg.snip.criterion if cfg.sparsity > 0 else "dense", "seed": cfg.seed,
           "test_error": result["metrics"]["test_error"],
           "validation_error": result["metrics"]["validation_error"],
           "train_loss": result["metrics"]["train_loss"],
           "reached_sparsity": result["sparsity"]["sparsity"],
           "collapsed": ";".join(result["sparsity"]["collapsed"]),
           "epochs": cfg.epochs, "iterations": result["iterations"],
           "train_size": result["train_size"], "wall_time_s": round(result["wall_time_s"], 1)}
    return row, result


def mean_std(values: Iterable[float]) -> tuple:
    values = list(values)
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def out_dir(name: str, results_dir: Optional[str]) -> str:
    path = results_dir or os.path.join("results", name)
    os.makedirs(path, exist_ok=True)
    return path


def changed_settings(before: dict, settings: dict) -> dict:
    """{key: (value in ``before``, value in ``settings``)} for each key of ``settings`` whose
    value differs in ``before`` (a key ``before`` lacks counts as changed)."""
    return {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}


def require_same_settings(before: dict, settings: dict, folder: str) -> None:
    """Raise if ``settings`` differ from ``before``, those of the results in ``folder`` that a
    resumed run would add to: results of two settings must not mix."""
    changed = changed_settings(before, settings)
    if changed:
        raise ValueError(f"--resume with settings other than those of the results in {folder}: "
                         + ", ".join(f"{k} was {a!r}, now {b!r}"
                                     for k, (a, b) in changed.items()))


def write_rows(path: str, rows: list) -> str:
    if not rows:
        raise ValueError("no rows to write")
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return atomic.write_bytes(path, buffer.getvalue().encode("utf-8"))


def write_json(path: str, payload: dict) -> str:
    payload = {**payload, "hardware": training.hardware(),
               "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    return atomic.write_json(path, payload, default=str)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> str:
    """Lay out, write and close a matplotlib figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def seeds() -> list:
    """The --seeds flag as integers."""
    return [int(s) for s in FLAGS.seeds]


def one_seed(command: str) -> int:
    """The --seeds flag of a command that runs a single seed; several are an error rather than
    silently all but the first ignored."""
    given = seeds()
    if len(given) != 1:
        raise app.UsageError(f"{command} runs one seed at a time; got "
                             f"--seeds={','.join(FLAGS.seeds)}. Run it once per seed (each with "
                             f"its own --results_dir).")
    return given[0]


def pct(x: float) -> str:
    return f"{100 * x:.2f}"
