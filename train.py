"""Train a network pruned once at initialization with SNIP.

    python train.py                                   # default: 8x8 digits, no download, ~1 min
    python train.py --config=configs/lenet300_mnist.py --config.sparsity=0.95 \
        --data_dir=../shared/data                     # MNIST from local IDX files
    python train.py --config=configs/lenet5_mnist.py --export_dir=/tmp/lenet5_pruned
    python train.py --tune --tune.max_error_increase=0.3 --tune.max_trials=8   # keras-tuner search

Writes a results JSON (config, per-layer sparsity, metrics, wall time) under --results_dir.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

# `--tune` switches to a keras-tuner search; its settings are the config's `tune` fields, given as
# --tune.FIELD=VALUE (shorthand for --config.tune.FIELD=VALUE). Rewritten before the flags are
# defined: ml_collections registers the --config.* overrides it finds in sys.argv at definition.
_TUNE = "--tune" in sys.argv[1:]
sys.argv = [sys.argv[0]] + [a for a in sys.argv[1:] if a != "--tune"]
sys.argv = [a.replace("--tune.", "--config.tune.", 1) if a.startswith("--tune.") else a
            for a in sys.argv]


def _check_overrides(argv):
    """Unknown --config.FIELD names fail here with the list of fields, not in a traceback."""
    from snip_tf.config import check_override

    for arg in argv[1:]:
        if arg.startswith("--config."):
            try:
                check_override(arg[len("--config."):].split("=", 1)[0])
            except ValueError as error:
                sys.exit(f"train.py: {error}")


_check_overrides(sys.argv)

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Config file (a Python file with get_config()); override fields with --config.FIELD=VALUE.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Local data folder (mnist/, fashion_mnist/, cifar10/); default "
    "$SNIP_TF_DATA_DIR, else tensorflow-datasets.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", None, "Where to write the results JSON.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Write a SavedModel of the pruned model here.")
_VERBOSE = flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0, 1 or 2).")
_RESUME = flags.DEFINE_bool(
    "resume", False, "Back the run up after every epoch and, if a killed run with this config left "
    "a backup, continue it from its last finished epoch with its exact mask.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from snip_tf import config as snip_config
    from snip_tf import training

    config = _CONFIG.value
    try:   # every value checked before any data is read or anything is trained
        snip_config.validate(config)
        if not _TUNE:
            results_dir = _RESULTS_DIR.value if _RESULTS_DIR.value is not None \
                else config.results_dir
            snip_config.check_output_dir(results_dir, "--results_dir")
            snip_config.check_export_path(_EXPORT_DIR.value or config.export_dir)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if _TUNE:
        from snip_tf import tuning

        summary = tuning.tune(config, data_dir=_DATA_DIR.value, verbose=0)
        best = summary["best"]
        print(f"\ndense validation error: {100 * summary['dense_validation_error']:.2f}%")
        for trial in summary["trials"]:
            print(f"trial {trial['trial']}: {trial['hyperparameters']} -> sparsity "
                  f"{trial.get('sparsity', float('nan')):.3f}, validation error "
                  f"{100 * trial.get('val_error', float('nan')):.2f}%")
        print(f"best (highest sparsity within +{config.tune.max_error_increase} points): "
              f"{best['hyperparameters']}")
        print(f"trials: {summary['path']}")
        return
    result = training.run(config, data_dir=_DATA_DIR.value, results_dir=_RESULTS_DIR.value,
                          export_dir=_EXPORT_DIR.value, verbose=_VERBOSE.value,
                          resume=_RESUME.value)
    report = result["sparsity"]
    metrics = result["metrics"]
    if result["resumed"]:
        print("\nresumed from the backup of a run that was stopped")
    print(f"\n{config.name}: {config.model} on {result['dataset_source']}, "
          f"{result['iterations']} iterations in {result['wall_time_s']:.1f} s")
    print(f"sparsity reached: {100 * report['sparsity']:.2f}% "
          f"({report['kept']:,} of {report['total']:,} prunable weights kept)")
    print(f"test accuracy: {100 * metrics['test_accuracy']:.2f}%  "
          f"(test error {100 * metrics['test_error']:.2f}%)")
    if report["collapsed"]:
        print(f"layer collapse: {', '.join(report['collapsed'])}")
    if "results_path" in result:
        print(f"results: {result['results_path']}")
    if "export_path" in result:
        print(f"SavedModel: {result['export_path']}")


if __name__ == "__main__":
    app.run(main)
