import json
import os

import pytest

from snip_tf import tuning
from snip_tf.config import base_config


def test_objective_prefers_the_sparsest_trial_within_the_margin():
    within = tuning.objective_score(0.95, 0.021, 0.020, 0.3)
    sparser_but_worse = tuning.objective_score(0.99, 0.030, 0.020, 0.3)
    assert within == 0.95 and sparser_but_worse < 0 < within
    assert tuning.objective_score(0.9, 0.023, 0.020, 0.3) == 0.9          # exactly at the margin


# One tuner in the default run; the other two (about 18 s each) with -m slow.
@pytest.mark.parametrize("tuner", ["random", pytest.param("bayesian", marks=pytest.mark.slow),
                                   pytest.param("hyperband", marks=pytest.mark.slow)])
def test_two_trial_search_writes_its_trials(tmp_path, tuner):
    config = base_config()
    config.epochs = 1
    config.train_limit = 300
    config.name = f"tiny_{tuner}"
    config.tune.tuner = tuner
    config.tune.max_trials = 2
    config.tune.directory = str(tmp_path)
    summary = tuning.tune(config)
    assert len(summary["trials"]) >= 2 if tuner != "hyperband" else len(summary["trials"]) >= 1
    for trial in summary["trials"]:
        assert set(trial["hyperparameters"]) >= {"sparsity", "criterion", "initializer",
                                                 "learning_rate"}
    folder = tmp_path / config.name
    assert (folder / "oracle.json").exists()
    saved = json.load(open(folder / "summary.json"))
    assert saved["best"]["hyperparameters"] == summary["best"]["hyperparameters"]
    assert os.path.isdir(folder / "trial_0") or any(p.name.startswith("trial_")
                                                    for p in folder.iterdir())
