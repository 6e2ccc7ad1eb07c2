"""The run configuration: every field ``snip_tf.training.run`` and ``train.py`` read, with defaults.

Config files in ``configs/`` start from :func:`base_config` and override fields.
"""

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
    c.train_limit = 0               # use only this many training examples (0: all)
    # model
    c.model = "mlp"
    c.initializer = "vs-x"          # rn | tn | vs-x | vs-h | lecun (the authors' code's "vs")
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
    # training
    c.batch_size = 100
    c.epochs = 60
    c.optimizer = "sgd"             # sgd | adam
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.lr_boundaries = ()            # iterations at which the learning rate is divided by 10
    c.lr_decay_fractions = ()       # or: fractions of the run at which it is (overrides the above)
    c.clipnorm = 0.0
    c.seed = 0
    # hyperparameter search (train.py --tune)
    c.tune = ml_collections.ConfigDict()
    c.tune.max_error_increase = 0.3  # percentage points of validation error above dense
    c.tune.tuner = "random"          # random | bayesian | hyperband
    c.tune.max_trials = 10
    c.tune.epochs = 0                # epochs per trial; 0 = config.epochs
    c.tune.directory = "results/tuning"
    # outputs
    c.results_dir = "results/runs"
    c.export_dir = ""               # write a SavedModel of the pruned model here
    return c
