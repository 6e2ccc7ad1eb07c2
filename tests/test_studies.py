import json
import os

import numpy as np

from snip_tf.studies import reber_common, reber_pruning


def test_recurrent_weight_selection():
    data = reber_common.load("generated", n=40)
    model = reber_common.build("lstm", data, seed=0)
    both = reber_common.recurrent_weights(model, "ih+hh")
    assert [p.split("/")[-1] for p in both] == ["kernel", "recurrent_kernel"] * 3
    assert reber_common.recurrent_weights(model, "hh") == both[1::2]


def test_padding_is_masked():
    data = reber_common.load("generated", n=40)
    model = reber_common.build("gru", data, seed=0)
    x = data.x_test[:4]
    longer = np.concatenate([x, np.zeros((4, 7), x.dtype)], axis=1)
    np.testing.assert_allclose(model(x).numpy(), model(longer).numpy(), rtol=1e-5, atol=1e-6)


def test_magnitude_study_on_a_tiny_setting(tmp_path):
    report = reber_pruning.run(results_dir=str(tmp_path), variants=("gru",), levels=(50, 100),
                               base_epochs=1, retrain_epochs=1, source="generated",
                               train_limit=120)
    summary = report["gru"]["summary"]
    assert [(s["setting"], s["prune"]) for s in summary if s["method"].startswith("mag")] == [
        ("ih+hh", 50), ("ih+hh", 100), ("ih", 50), ("ih", 100), ("hh", 50), ("hh", 100)]
    assert [s["prune"] for s in summary if s["method"].startswith("SNIP")] == [50]
    header = open(tmp_path / "gru.csv").readline().strip()
    assert header == "mode,prune,epoch,train_loss,train_acc,test_loss,test_acc,time"
    assert os.path.isfile(tmp_path / "gru.png")
    assert json.load(open(tmp_path / "summary.json"))["train_size"] == 120
