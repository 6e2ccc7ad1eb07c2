"""One training run from a config: data, model, SNIP at initialization, fit, evaluate, report.

``train.py`` is the command-line front end; experiments call :func:`run` with their own configs.
"""

from __future__ import annotations

import math
import os
import platform
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from snip_tf import atomic
from snip_tf import callbacks as snip_callbacks
from snip_tf import config as snip_config
from snip_tf import criteria as snip_criteria
from snip_tf import data as snip_data
from snip_tf import masking, models, pruning, saving


def _optimizer(config, total_iterations: int):
    lr = config.learning_rate
    boundaries = [int(b) for b in config.lr_boundaries]
    if config.lr_decay_fractions:
        # A step schedule scaled to the run's budget (shortened CPU runs never reach the paper's
        # fixed boundaries of 25k and 50k iterations).
        boundaries = [int(f * total_iterations) for f in config.lr_decay_fractions]
    if boundaries:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries, [config.learning_rate * 0.1 ** i for i in range(len(boundaries) + 1)])
    kwargs = {"clipnorm": config.clipnorm} if config.clipnorm else {}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, **kwargs)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, **kwargs)
    raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {config.optimizer!r}.")


def hardware() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "tensorflow": tf.__version__, "keras": keras.__version__}


def run(config, *, data_dir: Optional[str] = None, results_dir: Optional[str] = None,
        export_dir: Optional[str] = None, verbose: int = 0, extra_callbacks=None,
        resume: bool = False) -> dict:
    """Train ``config`` once and return (and write) its results.

    With ``resume=True`` the run backs itself up after every epoch (weights, optimizer state and
    the exact mask, in ``<results_dir>/<run name>.backup``) and a run started again with the same
    config continues from the last finished epoch of a run that was killed. The backup is deleted
    when the run finishes.

    Returns a dict with the config, the per-layer sparsity report, final metrics (test/validation
    error, train loss), the number of iterations and the wall time (what is written to the JSON),
    plus the trained ``model``, its ``masks`` and the ``datasets`` (not written).
    """
    snip_config.validate(config)
    results_dir = results_dir if results_dir is not None else config.results_dir
    export_dir = export_dir or config.export_dir
    snip_config.check_output_dir(results_dir, "results_dir")
    snip_config.check_export_path(export_dir, "export_dir")
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    scoring_size = config.snip.batch_size or None
    datasets = snip_data.make_datasets(
        config.dataset, config.batch_size, data_dir=data_dir or config.data_dir or None,
        validation_fraction=config.validation_fraction, seed=config.seed,
        normalize=config.normalize, augment=config.augment, sequential=config.sequential,
        label_noise=config.label_noise, scoring_batch_size=scoring_size,
        train_limit=config.train_limit)

    def new_model(seed):
        return models.get(config.model, input_shape=datasets.input_shape,
                          num_classes=datasets.num_classes, initializer=config.initializer,
                          l2=config.l2, l2_bias=config.l2_bias, seed=seed)

    model = new_model(config.seed)
    total_iterations = config.epochs * math.ceil(datasets.train_size / config.batch_size)
    model.compile(optimizer=_optimizer(config, total_iterations),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    # extra_callbacks: a list, or a function of the data sets returning one (for callbacks that
    # watch the prepared training arrays, like MemorizationCallback).
    if callable(extra_callbacks):
        extra_callbacks = extra_callbacks(datasets)
    callbacks = list(extra_callbacks or [])
    masks, snip_callback = None, None
    criterion = config.snip.criterion
    options = {"criterion": criterion, "include_bias": config.snip.include_bias,
               "seed": config.seed}
    if config.sparsity > 0 and (scoring_size or config.snip.fresh_init or criterion != "snip"):
        # Explicit scoring: a batch of |D_b| examples, a data-free criterion, or the authors'
        # protocol of scoring one initial draw and training a fresh one.
        scorer = model
        if config.snip.fresh_init:
            scorer = new_model(config.seed + 7919)
            scorer.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            # The authors' code initialized the biases of the scored draw by variance scaling too
            # (and the trained draw's biases with zeros), so biases have non-zero scores.
            bias_init = keras.initializers.VarianceScaling(seed=config.seed + 7919)
            for variable in scorer.trainable_variables:
                if variable.name == "bias":
                    variable.assign(bias_init(variable.shape))
        needs_data = snip_criteria.get(criterion).needs_data
        masks = pruning.prune(scorer, datasets.scoring_batch if needs_data else None,
                              config.sparsity, num_batches=1, **options)
        if scorer is not model:
            pruning.apply_masks(model, list(masks.values()),
                                include_bias=config.snip.include_bias)
    elif config.sparsity > 0:
        # The library's headline usage: the callback scores the first batch fit draws.
        snip_callback = snip_callbacks.SNIPCallback(
            config.sparsity, num_batches=config.snip.num_batches, **options)
        callbacks.append(snip_callback)

    resumed = False
    if resume:
        backup = os.path.join(results_dir or "results/runs", f"{_run_name(config)}.backup")
        resumed = os.path.isdir(backup) and bool(os.listdir(backup))
        # SNIPCallback (if any) tracks the model before this restores it, so the mask comes back
        # exactly; with explicit scoring the model above was pruned the same way again.
        saving.track(model)
        callbacks.append(snip_callbacks.BackupAndRestore(backup, save_freq="epoch"))
    history = model.fit(datasets.train, validation_data=datasets.validation, epochs=config.epochs,
                        callbacks=callbacks, verbose=verbose, shuffle=False)  # tf.data shuffles
    if snip_callback is not None:
        masks = snip_callback.masks
    test = model.evaluate(datasets.test, return_dict=True, verbose=0)
    report = pruning.sparsity_report(model, include_bias=config.snip.include_bias)
    wall = time.perf_counter() - start

    result = {
        "config": config.to_dict(),
        "dataset_source": datasets.source,
        "train_size": datasets.train_size,
        "iterations": int(model.optimizer.iterations.numpy()),
        "resumed": resumed,
        "mask_sha256": mask_digest(model),
        "epochs": config.epochs,
        "metrics": {
            "test_accuracy": float(test["accuracy"]),
            "test_error": 1.0 - float(test["accuracy"]),
            "test_loss": float(test["loss"]),
            # None when a resumed run had no epoch left to train.
            "train_loss": (float(history.history["loss"][-1]) if history.history.get("loss")
                           else None),
            "validation_error": (1.0 - float(history.history["val_accuracy"][-1])
                                 if "val_accuracy" in history.history else None),
        },
        "sparsity": report.to_dict(),
        "wall_time_s": wall,
        "hardware": hardware(),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    if results_dir:
        path = os.path.join(results_dir, f"{_run_name(config)}.json")
        atomic.write_json(path, result, default=_jsonable)
        result["results_path"] = path
        logging.info("Wrote %s", path)
    if export_dir:
        from snip_tf.export import export
        result["export_path"] = export(model, export_dir, overwrite=True)
    result["model"] = model
    result["masks"] = masks
    result["datasets"] = datasets
    return result


def _run_name(config) -> str:
    return f"{config.name}_s{config.sparsity}_seed{config.seed}"


def mask_digest(model) -> str:
    """SHA-256 of the model's installed masks (in variable order): equal digests, equal masks."""
    import hashlib

    digest = hashlib.sha256()
    for _, variable, mask in masking.hooked_variables(model):
        digest.update(f"{tuple(variable.shape)}".encode())
        digest.update(np.packbits(mask.ravel()).tobytes())
    return digest.hexdigest()


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)
