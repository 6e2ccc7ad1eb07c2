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


def _steps_taken(model) -> int:
    return int(model.optimizer.iterations.numpy())


class IterationClock(keras.callbacks.Callback):
    """The optimizer's step count, read once at the start of training and once after each step,
    for the callbacks below to share (``clock=``). Each read of the variable costs tens of
    microseconds on a CPU; three callbacks reading it every step would add up. Put the clock
    before them in the callback list (and after one that restores a backup)."""

    def __init__(self):
        super().__init__()
        self.value, self.batch = None, None

    def on_train_begin(self, logs=None):
        self.value, self.batch = _steps_taken(self.model), None

    def on_train_batch_end(self, batch, logs=None):
        self.value, self.batch = _steps_taken(self.model), batch


class _ByIteration(keras.callbacks.Callback):
    """A callback that acts on the optimizer's step count: from an :class:`IterationClock` if
    given, else read from the optimizer."""

    def __init__(self, clock: Optional[IterationClock] = None):
        super().__init__()
        self.clock = clock

    def _iteration(self, batch=None) -> int:
        """The step count; ``batch``: the batch whose end this is (None at the start)."""
        if self.clock is None:
            return _steps_taken(self.model)
        if self.clock.value is None or self.clock.batch != batch:
            raise RuntimeError(f"{type(self).__name__} reads an IterationClock that has not seen "
                               "this point of training yet: put the clock in the callback list, "
                               "before the callbacks that read it.")
        return self.clock.value


class StopAtIteration(_ByIteration):
    """Stop ``fit`` once the optimizer has taken ``total`` steps (also mid-epoch, and counting the
    steps of a run resumed from a backup)."""

    def __init__(self, total: int, clock: Optional[IterationClock] = None):
        super().__init__(clock)
        self.total = int(total)

    def on_train_batch_end(self, batch, logs=None):
        if self._iteration(batch) >= self.total:
            self.model.stop_training = True


class StopOnDivergence(_ByIteration):
    """Stop ``fit`` at the end of an epoch whose training loss is not finite: a diverged run
    would spend the rest of its budget on NaN. :attr:`diverged_at` is then the iteration it
    stopped at (else None)."""

    def __init__(self, clock: Optional[IterationClock] = None):
        super().__init__(clock)
        self.diverged_at = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = self._iteration(self.clock.batch if self.clock else None)
            self.model.stop_training = True


class CheckpointEvaluation(_ByIteration):
    """The validation and test error at checkpoints: every ``every`` iterations over the last
    ``keep`` of them up to ``total`` (the authors' code saved every 1000 iterations; see
    :func:`checkpoint_summary` for the errors read from them).

    ``records`` holds one ``{"iteration", "validation_error", "test_error"}`` per checkpoint
    reached. With ``path``, they are also written there (atomically) as each is taken and read
    back when a resumed run starts, so that a run killed and resumed keeps them."""

    def __init__(self, total: int, every: int, keep: int, validation, test, path=None,
                 clock: Optional[IterationClock] = None):
        super().__init__(clock)
        self.at = {total - k * every for k in range(keep) if total - k * every > 0}
        self.validation, self.test, self.path = validation, test, path
        self.records = []
        if path and os.path.exists(path):
            records = atomic.read_json(path, expect=list)
            if not all(isinstance(r, dict) and isinstance(r.get("iteration"), int)
                       for r in records):
                raise ValueError(f"{path!r} is not a list of checkpoint records "
                                 "({'iteration': ..., 'test_error': ...}).")
            self.records = records

    def on_train_begin(self, logs=None):
        done = self._iteration()
        self.records = [r for r in self.records if r["iteration"] <= done]
        model = self.model
        self._logits = tf.function(lambda x: model(x, training=False))

    def _error(self, data) -> float:
        correct = count = 0
        for x, y in data:
            predicted = tf.argmax(self._logits(x), axis=-1, output_type=tf.int32)
            correct += int(tf.reduce_sum(tf.cast(predicted == tf.cast(y, tf.int32), tf.int32)))
            count += int(tf.shape(y)[0])
        return 1.0 - correct / count

    def on_train_batch_end(self, batch, logs=None):
        iteration = self._iteration(batch)
        if iteration in self.at and all(r["iteration"] != iteration for r in self.records):
            self.records.append({"iteration": iteration,
                                 "validation_error": (self._error(self.validation)
                                                      if self.validation is not None else None),
                                 "test_error": self._error(self.test)})
            if self.path:
                atomic.write_json(self.path, self.records)

    def summary(self) -> dict:
        """:func:`checkpoint_summary` of the records."""
        return checkpoint_summary(self.records)


# The checkpoints the authors' rule reads: ``snip/train.py`` saves with ``tf.train.Saver()``,
# which keeps the last 5 (its default ``max_to_keep``), and ``snip/test.py`` evaluates every
# checkpoint kept and reports the best test accuracy.
AUTHORS_RULE_LAST = 5


def checkpoint_summary(records: list, authors_last: int = AUTHORS_RULE_LAST) -> dict:
    """Two test errors read from checkpoint records (``CheckpointEvaluation.records``):

    - the authors' rule: the best test error among the last ``authors_last`` checkpoints, which
      selects on the test set and so reads optimistic;
    - the honest one: the test error of the checkpoint (among all recorded) with the best
      validation error, the later one on a tie; None without a validation split.

    >>> records = [{"iteration": i, "validation_error": v, "test_error": t}
    ...            for i, v, t in [(1, 0.1, 0.01), (2, 0.3, 0.05), (3, 0.2, 0.04)]]
    >>> checkpoint_summary(records, authors_last=2)["test_error_authors_rule"]
    0.04
    >>> checkpoint_summary(records)["test_error_validation_selected"]
    0.01
    """
    if authors_last < 1:
        raise ValueError(f"authors_last must be at least 1; got {authors_last!r}.")
    out = {"test_error_authors_rule": None, "test_error_validation_selected": None,
           "validation_selected_iteration": None}
    if not records:
        return out
    records = sorted(records, key=lambda r: r["iteration"])
    out["test_error_authors_rule"] = min(r["test_error"] for r in records[-authors_last:])
    if all(r.get("validation_error") is not None for r in records):  # else nothing to select on
        best = min(records, key=lambda r: (r["validation_error"], -r["iteration"]))
        out["test_error_validation_selected"] = best["test_error"]
        out["validation_selected_iteration"] = best["iteration"]
    return out


class ProgressLine(_ByIteration):
    """One line every ``every`` iterations of a run: its ``label`` (e.g. the model and seed), the
    iteration, the training loss and error so far this epoch, the last checkpoint's validation
    error if any (``checkpoints``) and the time left at the current pace."""

    def __init__(self, label: str, total: int, every: int, checkpoints=None, log=None,
                 clock: Optional[IterationClock] = None):
        super().__init__(clock)
        self.label, self.total, self.every = label, int(total), max(1, int(every))
        self.checkpoints = checkpoints
        self.log = log or (lambda line: print(line, flush=True))
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = (self._iteration(), time.perf_counter())

    def on_train_batch_end(self, batch, logs=None):
        iteration = self._iteration(batch)
        if iteration % self.every and iteration != self.total:
            return
        logs = logs or {}
        done, elapsed = iteration - self._start[0], time.perf_counter() - self._start[1]
        left = (self.total - iteration) * elapsed / max(done, 1)
        parts = [f"{self.label}: iteration {iteration}/{self.total}"]
        if "loss" in logs:
            parts.append(f"train loss {float(logs['loss']):.4f}")
        if "accuracy" in logs:
            parts.append(f"train error {100 * (1 - float(logs['accuracy'])):.2f}%")
        if self.checkpoints is not None and self.checkpoints.records:
            last = self.checkpoints.records[-1]
            if last["validation_error"] is not None:
                parts.append(f"validation error {100 * last['validation_error']:.2f}%")
        parts.append(f"{left / 60:.1f} min left")
        self.log(", ".join(parts))


def hardware() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "tensorflow": tf.__version__, "keras": keras.__version__}


def explicit_scoring(config) -> bool:
    """Whether a run of ``config`` prunes before ``fit`` (a scoring batch of |D_b| examples, a
    criterion other than SNIP, or the authors' fresh draw) rather than through the callback,
    which scores the first batch ``fit`` draws."""
    return config.sparsity > 0 and bool(config.snip.batch_size or config.snip.fresh_init
                                        or config.snip.criterion != "snip")


def _options(config) -> dict:
    return {"criterion": config.snip.criterion, "include_bias": config.snip.include_bias,
            "seed": config.seed, "scope": config.snip.scope}


def _prepare(config, data_dir):
    """A run's data sets and initial model (seeded), and the function that builds the model."""
    keras.utils.set_random_seed(config.seed)
    datasets = snip_data.make_datasets(
        config.dataset, config.batch_size, data_dir=data_dir or config.data_dir or None,
        validation_fraction=config.validation_fraction, seed=config.seed,
        normalize=config.normalize, augment=config.augment, sequential=config.sequential,
        label_noise=config.label_noise, scoring_batch_size=config.snip.batch_size or None,
        train_limit=config.train_limit)

    def new_model(seed):
        return models.get(config.model, input_shape=datasets.input_shape,
                          num_classes=datasets.num_classes, initializer=config.initializer,
                          l2=config.l2, l2_bias=config.l2_bias, seed=seed,
                          recurrent_fan=config.recurrent_fan)

    return datasets, new_model(config.seed), new_model


def _prune_explicitly(config, model, datasets, new_model) -> dict:
    """Prune ``model`` as a run of ``config`` does before ``fit`` (see ``explicit_scoring``)."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    scorer = model
    if config.snip.fresh_init:
        scorer = new_model(config.seed + 7919)
        # The authors' code initialized the biases of the scored draw by variance scaling too
        # (and the trained draw's biases with zeros), so biases have non-zero scores.
        bias_init = keras.initializers.VarianceScaling(seed=config.seed + 7919)
        for variable in scorer.trainable_variables:
            if variable.name == "bias":
                variable.assign(bias_init(variable.shape))
    needs_data = snip_criteria.get(config.snip.criterion).needs_data
    masks = pruning.prune(scorer, datasets.scoring_batch if needs_data else None,
                          config.sparsity, loss=loss, num_batches=1, **_options(config))
    if scorer is not model:
        pruning.apply_masks(model, list(masks.values()), include_bias=config.snip.include_bias)
    return masks


def pruned_at_init(config, data_dir: Optional[str] = None) -> tuple:
    """``(model, masks)``: the model of ``config`` pruned at initialization exactly as a run of
    it prunes it, without training (e.g. to look at the masks of runs trained elsewhere). For
    configs that prune before ``fit`` (``explicit_scoring``)."""
    snip_config.validate(config)
    if not explicit_scoring(config):
        raise ValueError("pruned_at_init needs a config that prunes before fit: a scoring batch "
                         "(snip.batch_size > 0), a criterion other than 'snip' or "
                         "snip.fresh_init; with none, the SNIPCallback scores the first batch "
                         "fit draws.")
    datasets, model, new_model = _prepare(config, data_dir)
    return model, _prune_explicitly(config, model, datasets, new_model)


def run(config, *, data_dir: Optional[str] = None, results_dir: Optional[str] = None,
        export_dir: Optional[str] = None, verbose: int = 0, extra_callbacks=None,
        resume: bool = False, progress: int = 0, label: Optional[str] = None) -> dict:
    """Train ``config`` once and return (and write) its results.

    With ``resume=True`` the run backs itself up after every epoch (weights, optimizer state and
    the exact mask, in ``<results_dir>/<run name>.backup``) and a run started again with the same
    config continues from the last finished epoch of a run that was killed. The backup is deleted
    when the run finishes.

    ``config.iterations`` trains exactly that many iterations (else ``config.epochs`` epochs).
    ``config.eval_every`` adds the validation and test error at the authors' checkpoints
    (:class:`CheckpointEvaluation`) to the metrics; ``config.memorization`` the fit to the labels
    trained on after each epoch (:class:`snip_tf.callbacks.MemorizationCallback`). ``progress``
    prints lines about the run's iterations (:class:`ProgressLine`, starting with ``label``):
    ``progress`` lines, evenly spaced over the run.

    Returns a dict with the config, the per-layer sparsity report, final metrics (test/validation
    error at the last iteration, train loss, and with checkpoints the authors' rule and the
    validation-selected test error), the number of iterations and the wall time (what is written
    to the JSON), plus the trained ``model``, its ``masks`` and the ``datasets`` (not written).
    """
    snip_config.validate(config)
    results_dir = results_dir if results_dir is not None else config.results_dir
    export_dir = export_dir or config.export_dir
    snip_config.check_output_dir(results_dir, "results_dir")
    snip_config.check_export_path(export_dir, "export_dir")
    start = time.perf_counter()
    datasets, model, new_model = _prepare(config, data_dir)
    steps_per_epoch = math.ceil(datasets.train_size / config.batch_size)
    total_iterations = config.iterations or config.epochs * steps_per_epoch
    epochs = math.ceil(total_iterations / steps_per_epoch)
    model.compile(optimizer=_optimizer(config, total_iterations),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    # extra_callbacks: a list, or a function of the data sets returning one (for callbacks that
    # watch the prepared training arrays, like MemorizationCallback).
    if callable(extra_callbacks):
        extra_callbacks = extra_callbacks(datasets)
    callbacks = list(extra_callbacks or [])
    masks, snip_callback = None, None
    options = _options(config)
    if explicit_scoring(config):
        masks = _prune_explicitly(config, model, datasets, new_model)
    elif config.sparsity > 0:
        # The library's headline usage: the callback scores the first batch fit draws.
        snip_callback = snip_callbacks.SNIPCallback(
            config.sparsity, num_batches=config.snip.num_batches, **options)
        callbacks.append(snip_callback)

    resumed, backup, restore = False, None, None
    if resume:
        backup = os.path.join(results_dir or "results/runs", f"{run_name(config)}.backup")
        resumed = os.path.isdir(backup) and bool(os.listdir(backup))
        # SNIPCallback (if any) tracks the model before this restores it, so the mask comes back
        # exactly; with explicit scoring the model above was pruned the same way again.
        saving.track(model)
        restore = snip_callbacks.BackupAndRestore(backup, save_freq="epoch",
                                                  shuffled=datasets.train)
        callbacks.append(restore)
        if not resumed:  # records of an earlier attempt that left no backup are not this run's
            for leftover in (".checkpoints.json", ".memorization.json"):
                if os.path.exists(backup + leftover):
                    os.remove(backup + leftover)
    clock = IterationClock()
    callbacks.append(clock)
    if config.iterations:
        callbacks.append(StopAtIteration(total_iterations, clock))
    divergence = StopOnDivergence(clock)
    callbacks.append(divergence)
    checkpoints = None
    if config.eval_every:
        checkpoints = CheckpointEvaluation(
            total_iterations, config.eval_every, config.eval_last, datasets.validation,
            datasets.test, path=backup + ".checkpoints.json" if backup else None, clock=clock)
        callbacks.append(checkpoints)
    memorization = None
    if config.memorization:
        memorization = snip_callbacks.MemorizationCallback(
            (datasets.x_train, datasets.y_train), threshold=config.memorization,
            path=backup + ".memorization.json" if backup else None)
        callbacks.append(memorization)
    if progress:
        callbacks.append(ProgressLine(label or run_name(config), total_iterations,
                                      math.ceil(total_iterations / progress), checkpoints,
                                      clock=clock))
    history = model.fit(datasets.train, validation_data=datasets.validation, epochs=epochs,
                        callbacks=callbacks, verbose=verbose, shuffle=False)  # tf.data shuffles
    for kept in (checkpoints, memorization):  # finished: their records go into the results
        if kept is not None and kept.path and os.path.exists(kept.path):
            os.remove(kept.path)
    if snip_callback is not None:
        masks = snip_callback.masks
    test = model.evaluate(datasets.test, return_dict=True, verbose=0)
    report = pruning.sparsity_report(model, include_bias=config.snip.include_bias)
    wall = time.perf_counter() - start
    # A resumed run's fit() returns its own epochs only: the backup keeps the earlier ones' logs
    # and training time, so that the result covers the whole run.
    logged = history.history
    if restore is not None:
        logged = snip_callbacks.join_histories(restore.earlier_history, logged)
        wall += restore.earlier_elapsed_s
    resumed_at = restore.restored_epoch if restore is not None else None

    def last(key):  # the metric after the run's last epoch, or None
        values = logged.get(key) or [None]
        return None if values[-1] is None else float(values[-1])

    result = {
        "config": config.to_dict(),
        "dataset_source": datasets.source,
        "train_size": datasets.train_size,
        "iterations": int(model.optimizer.iterations.numpy()),
        "resumed": resumed_at is not None,
        # the epoch a resumed run continued from (None: it ran in one go), and whether its
        # backup held the earlier epochs' history and time (False: a backup from before they
        # were kept; history and wall_time_s then cover the last segment only)
        "resumed_at_epoch": resumed_at,
        "history_complete": restore.history_complete if restore is not None else True,
        # the iteration a run whose training loss became NaN or infinite stopped at (else None)
        "diverged_at": divergence.diverged_at,
        "mask_sha256": mask_digest(model),
        "epochs": epochs,
        "metrics": {
            "test_accuracy": float(test["accuracy"]),
            "test_error": 1.0 - float(test["accuracy"]),
            "test_loss": float(test["loss"]),
            # None when no epoch finished
            "train_loss": last("loss"),
            "validation_error": (None if last("val_accuracy") is None
                                 else 1.0 - last("val_accuracy")),
            **(checkpoints.summary() if checkpoints else {}),
        },
        "checkpoints": checkpoints.records if checkpoints else [],
        # the fit to the labels trained on (config.memorization): after each epoch
        **({"memorization": {"threshold": memorization.threshold,
                             "memorized": memorization.memorized,
                             "first_memorized_step": memorization.first_memorized_step,
                             "curve": memorization.curve}} if memorization else {}),
        "sparsity": report.to_dict(),
        # the whole run's: a resumed one's earlier segments' time in fit() is included
        "wall_time_s": wall,
        "hardware": hardware(),
        # every epoch of the run, a resumed one's earlier epochs included
        "history": {k: [None if v is None else float(v) for v in vals]
                    for k, vals in logged.items()},
    }
    if results_dir:
        path = os.path.join(results_dir, f"{run_name(config)}.json")
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


def run_name(config) -> str:
    """The file name (without extension) of a run's results and backup."""
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
