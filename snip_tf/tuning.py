"""Hyperparameter search with keras-tuner: how sparse can a network go and stay accurate?

The search space holds sparsity, criterion, initializer and learning rate. The objective is the
one a user wants: the highest sparsity whose validation error stays within ``max_error_increase``
(percentage points) of the dense model's. Trials over the margin score below every trial within
it. Any keras-tuner tuner works (RandomSearch, BayesianOptimization, Hyperband), and trials are
written where keras-tuner writes them (``directory/project_name``).

>>> tuner = make_tuner(config, dense_error=0.02, max_error_increase=0.3,      # doctest: +SKIP
...                    tuner="random", max_trials=10, directory="results/tuning")
>>> tuner.search(train_ds, validation_data=val_ds, epochs=5)                  # doctest: +SKIP
"""

from __future__ import annotations

import keras
import keras_tuner as kt

from snip_tf import callbacks as snip_callbacks
from snip_tf import models, pruning

OBJECTIVE = "sparsity_within_margin"


def objective_score(sparsity: float, validation_error: float, dense_error: float,
                    max_error_increase: float) -> float:
    """``sparsity`` when the validation error is within the margin (percentage points) of the
    dense error; otherwise ``sparsity - 1 - excess``, below every acceptable trial."""
    excess = validation_error - dense_error - max_error_increase / 100.0
    return sparsity if excess <= 1e-12 else sparsity - 1.0 - excess


class SparsityHyperModel(kt.HyperModel):
    """A zoo model pruned at initialization, with sparsity, criterion, initializer and learning
    rate as hyperparameters.

    Args:
        config: the run config (``snip_tf.config.base_config``): model, optimizer, ...
        input_shape, num_classes: of the data.
        dense_error: validation error of the dense model (from a dense run).
        max_error_increase: allowed increase in percentage points (0.3 = 0.3 points).
        sparsities, criteria, initializers, learning_rates: the search space.
    """

    def __init__(self, config, input_shape, num_classes, dense_error: float,
                 max_error_increase: float = 0.3,
                 sparsities=(0.5, 0.8, 0.9, 0.95, 0.98, 0.99),
                 criteria=("snip", "iterative_snip", "synflow", "magnitude", "random"),
                 initializers=("vs-x", "vs-h", "tn"),
                 learning_rates=(0.1, 0.03, 0.01), **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.dense_error = float(dense_error)
        self.max_error_increase = float(max_error_increase)
        self.space = dict(sparsity=list(sparsities), criterion=list(criteria),
                          initializer=list(initializers), learning_rate=list(learning_rates))

    def build(self, hp):
        c = self.config
        # Declared here, used in fit: every hyperparameter is known to the oracle from trial 1.
        hp.Choice("sparsity", self.space["sparsity"])
        hp.Choice("criterion", self.space["criterion"])
        model = models.get(c.model, input_shape=self.input_shape, num_classes=self.num_classes,
                           initializer=hp.Choice("initializer", self.space["initializer"]),
                           l2=c.l2, seed=c.seed)
        lr = hp.Choice("learning_rate", self.space["learning_rate"])
        optimizer = (keras.optimizers.SGD(lr, momentum=c.momentum) if c.optimizer == "sgd"
                     else keras.optimizers.Adam(lr))
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        sparsity, criterion = hp.get("sparsity"), hp.get("criterion")
        callbacks = list(callbacks or []) + [snip_callbacks.SNIPCallback(
            sparsity, criterion=criterion, seed=self.config.seed)]
        history = model.fit(*args, callbacks=callbacks, **kwargs)
        val_error = 1.0 - max(history.history["val_accuracy"][-1:])
        reached = pruning.sparsity(model)
        return {OBJECTIVE: objective_score(reached, val_error, self.dense_error,
                                           self.max_error_increase),
                "val_error": val_error, "sparsity": reached}


def make_tuner(hypermodel: SparsityHyperModel, tuner: str = "random", max_trials: int = 10,
               directory: str = "results/tuning", project_name: str = "snip", seed: int = 0,
               overwrite: bool = False, max_epochs: int = 10):
    """A keras-tuner tuner maximizing :data:`OBJECTIVE` (``max_epochs`` is Hyperband's)."""
    objective = kt.Objective(OBJECTIVE, direction="max")
    common = dict(objective=objective, directory=directory, project_name=project_name,
                  seed=seed, overwrite=overwrite)
    if tuner == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if tuner == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if tuner == "hyperband":
        return kt.Hyperband(hypermodel, max_epochs=max(2, max_epochs), **common)
    raise ValueError(f"tuner must be 'random', 'bayesian' or 'hyperband'; got {tuner!r}.")


def tune(config, *, data_dir=None, verbose: int = 0) -> dict:
    """Train the dense reference of ``config``, then search ``config.tune``; returns a summary
    (dense error, every trial, the best one) and writes it next to the tuner's trials."""
    import os

    from snip_tf import atomic
    from snip_tf import data as snip_data

    t = config.tune
    datasets = snip_data.make_datasets(
        config.dataset, config.batch_size, data_dir=data_dir or config.data_dir or None,
        validation_fraction=config.validation_fraction, seed=config.seed,
        normalize=config.normalize, sequential=config.sequential,
        train_limit=config.train_limit)
    if datasets.validation is None:
        raise ValueError("Tuning needs a validation split: set validation_fraction > 0.")
    epochs = t.epochs or config.epochs
    keras.utils.set_random_seed(config.seed)
    dense = models.get(config.model, input_shape=datasets.input_shape,
                       num_classes=datasets.num_classes, initializer=config.initializer,
                       l2=config.l2, seed=config.seed)
    dense.compile(optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
                  if config.optimizer == "sgd" else keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = dense.fit(datasets.train, validation_data=datasets.validation, epochs=epochs,
                        verbose=verbose, shuffle=False)
    dense_error = 1.0 - history.history["val_accuracy"][-1]
    hypermodel = SparsityHyperModel(config, datasets.input_shape, datasets.num_classes,
                                    dense_error, t.max_error_increase)
    tuner = make_tuner(hypermodel, t.tuner, t.max_trials, t.directory, config.name,
                       config.seed, overwrite=bool(t.overwrite), max_epochs=epochs)
    tuner.search(datasets.train, validation_data=datasets.validation, epochs=epochs,
                 verbose=verbose, shuffle=False)
    trials = []
    for trial in tuner.oracle.trials.values():
        metrics = {name: trial.metrics.get_last_value(name)
                   for name in (OBJECTIVE, "val_error", "sparsity")
                   if trial.metrics.exists(name)}
        trials.append({"trial": trial.trial_id, "hyperparameters": trial.hyperparameters.values,
                       "status": str(trial.status), **metrics})
    best = tuner.oracle.get_best_trials(1)[0]
    summary = {"dense_validation_error": dense_error, "max_error_increase": t.max_error_increase,
               "tuner": t.tuner, "epochs": epochs, "trials": trials,
               "best": {"hyperparameters": best.hyperparameters.values,
                        OBJECTIVE: best.score}}
    folder = os.path.join(t.directory, config.name)
    atomic.write_json(os.path.join(folder, "summary.json"), summary, default=str)
    summary["path"] = folder
    return summary
