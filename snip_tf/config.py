"""The run configuration: every field ``snip_tf.training.run`` and ``train.py`` read, with defaults.

Config files in ``configs/`` start from :func:`base_config` and override fields.
"""

import math

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    """Every field train.py reads, with defaults; the other configs override some of them."""
    c = ml_collections.ConfigDict()
    c.name = "default"
    # data
    c.dataset = "digits"            # mnist | fashion_mnist | cifar10 | digits
    c.data_dir = ""                 # local data folder; "" = $SNIP_TF_DATA_DIR, else tfds
    c.validation_fraction = 0.1     # held out of the training set (paper: 10 %)
    c.normalize = "meanstd"         # meanstd (training-set statistics) | scale (x / 255)
    c.augment = False               # CIFAR: random flip + translation by up to 4 px
    c.sequential = False            # images as sequences of rows (sequential MNIST)
    c.label_noise = "none"          # none | random (memorization experiment)
    c.memorization = 0.0            # record the fit to the labels trained on after each epoch
                                    # (MemorizationCallback); memorized at this accuracy (0: off)
    c.train_limit = 0               # use only this many training examples (0: all)
    # model
    c.model = "mlp"
    c.initializer = "vs-x"          # rn | tn | vs-x | vs-h | lecun (the authors' code's "vs")
    c.recurrent_fan = "split"       # split (Keras: each recurrent kernel's fans from its own
                                    # shape) | cell (TF 1's cells: one kernel over [input, state])
    c.l2 = 5e-4                     # L2 penalty: l2 * sum(w^2) on kernels
    c.l2_bias = False               # also on biases (the authors' code: all masked parameters)
    # pruning
    c.sparsity = 0.9                # fraction of prunable weights removed at initialization
    c.snip = ml_collections.ConfigDict()
    c.snip.batch_size = 0           # |D_b|; 0 = the first training batch fit draws (callback)
    c.snip.num_batches = 1
    c.snip.include_bias = False
    c.snip.criterion = "snip"       # snip | magnitude | random (baselines at initialization)
    c.snip.fresh_init = False       # authors' code: score one initial draw, train a fresh one
    c.snip.scope = "global"         # global (the paper's) | gate (each LSTM/GRU weight's count
                                    # shared among its gates) | uniform | erk
    # training
    c.batch_size = 100
    c.epochs = 60
    c.iterations = 0                # train exactly this many iterations instead (0: `epochs`)
    c.optimizer = "sgd"             # sgd | adam
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.lr_boundaries = ()            # iterations at which the learning rate is divided by 10
    c.lr_decay_fractions = ()       # or: fractions of the run at which it is (overrides the above)
    c.clipnorm = 0.0
    c.seed = 0
    # evaluation at checkpoints: validation and test error every `eval_every` iterations over
    # the last `eval_last` of them (the authors saved every 1000 iterations; their rule reads the
    # last 5, training.checkpoint_summary); 0: at the end only
    c.eval_every = 0
    c.eval_last = 10
    # hyperparameter search (train.py --tune)
    c.tune = ml_collections.ConfigDict()
    c.tune.max_error_increase = 0.3  # percentage points of validation error above dense
    c.tune.tuner = "random"          # random | bayesian | hyperband
    c.tune.max_trials = 10
    c.tune.epochs = 0                # epochs per trial; 0 = config.epochs
    c.tune.directory = "results/tuning"
    c.tune.overwrite = False         # False: resume the search, keeping earlier trials
    # outputs
    c.results_dir = "results/runs"
    c.export_dir = ""               # write a SavedModel of the pruned model here
    return c


DATASETS = ("mnist", "fashion_mnist", "cifar10", "digits")


def _leaf_paths(config, prefix="") -> set:
    out = set()
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            out |= _leaf_paths(value, path + ".")
        out.add(path)
    return out


def field_names() -> list:
    """Every field a config may set (dotted), as ``--config.FIELD=VALUE`` names them."""
    return sorted(_leaf_paths(base_config()))


def check_override(path: str) -> None:
    """A clear error for ``--config.<path>=...`` naming a field that does not exist."""
    if path not in _leaf_paths(base_config()):
        import difflib

        close = difflib.get_close_matches(path, field_names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown config field {path!r} (from --config.{path}=...).{hint} "
                         f"The fields are: {', '.join(field_names())}.")


def _number(config, path: str, *, integer: bool, low=None, high=None, low_open=False,
            high_open=False) -> None:
    value = config
    for part in path.split("."):
        value = value[part]
    kind = "an integer" if integer else "a number"
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (not integer or float(value).is_integer()) and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"config.{path} must be {kind} in {interval}; got {value!r} "
                         f"(flag --config.{path}).")


def _choice(config, path: str, choices) -> None:
    value = config
    for part in path.split("."):
        value = value[part]
    if value not in choices:
        raise ValueError(f"config.{path} must be one of {sorted(choices)}; got {value!r} "
                         f"(flag --config.{path}).")


def validate(config) -> None:
    """Check every field a run reads before any data is read; a ValueError names the flag and the
    allowed range. Unknown fields are errors too."""
    from snip_tf import criteria, models, selection

    unknown = sorted(_leaf_paths(config) - _leaf_paths(base_config()))
    if unknown:
        raise ValueError(f"Unknown config field(s) {unknown}; the fields are: "
                         f"{', '.join(field_names())}.")
    _number(config, "sparsity", integer=False, low=0.0, high=1.0, high_open=True)
    _number(config, "epochs", integer=True, low=1)
    _number(config, "iterations", integer=True, low=0)
    _number(config, "eval_every", integer=True, low=0)
    _number(config, "eval_last", integer=True, low=1)
    _number(config, "batch_size", integer=True, low=1)
    _number(config, "validation_fraction", integer=False, low=0.0, high=1.0, high_open=True)
    _number(config, "train_limit", integer=True, low=0)
    _number(config, "learning_rate", integer=False, low=0.0, low_open=True)
    _number(config, "momentum", integer=False, low=0.0, high=1.0, high_open=True)
    _number(config, "l2", integer=False, low=0.0)
    _number(config, "memorization", integer=False, low=0.0, high=1.0)
    _number(config, "clipnorm", integer=False, low=0.0)
    _number(config, "seed", integer=True, low=0)
    _number(config, "snip.num_batches", integer=True, low=1)
    _number(config, "snip.batch_size", integer=True, low=0)
    _number(config, "tune.max_trials", integer=True, low=1)
    _number(config, "tune.epochs", integer=True, low=0)
    _number(config, "tune.max_error_increase", integer=False, low=0.0)
    _choice(config, "dataset", DATASETS)
    _choice(config, "optimizer", ("sgd", "adam"))
    _choice(config, "normalize", ("meanstd", "scale"))
    _choice(config, "label_noise", ("none", "random"))
    _choice(config, "snip.criterion", criteria.names())
    _choice(config, "snip.scope", selection.SCOPES)
    _choice(config, "initializer", tuple(models.INITIALIZERS))
    _choice(config, "recurrent_fan", models.RECURRENT_FANS)
    _choice(config, "model", models.names())
    _choice(config, "tune.tuner", ("random", "bayesian", "hyperband"))
    for name in ("lr_decay_fractions", "lr_boundaries"):
        values = list(config[name])
        for i, value in enumerate(values):
            high = 1.0 if name == "lr_decay_fractions" else None
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value) or value <= 0 or (high and value >= high):
                raise ValueError(f"config.{name} must hold numbers in "
                                 f"{'(0, 1)' if high else '(0, inf)'}; got {values!r} "
                                 f"(flag --config.{name}).")


def check_output_dir(path, what: str) -> None:
    """A folder the run will write to: creatable and writable, checked before training."""
    import os
    import tempfile

    if not path:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{what} {path!r} exists and is not a folder.")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check."):
            pass
    except OSError as error:
        raise ValueError(f"{what} {path!r} cannot be written: {error.strerror or error}.") from error


def check_export_path(path, what: str = "--export_dir") -> None:
    """An export target: its parent folder must be writable (the export itself is atomic)."""
    import os

    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    check_output_dir(parent, f"{what}'s parent folder")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{what} {path!r} exists and is not a folder.")
