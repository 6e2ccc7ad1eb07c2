import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from snip_tf import models

PAPER_COUNTS = {"lenet-300-100": 267e3, "lenet-5-caffe": 431e3, "lstm-s": 137e3,
                "lstm-b": 536e3, "gru-s": 104e3, "gru-b": 404e3, "alexnet-s": 5.1e6,
                "alexnet-b": 8.5e6, "vgg-c": 10.5e6, "vgg-d": 15.2e6, "vgg-like": 14.9e6,
                # WRN-16-8: the SNIP paper says 10.0m; the standard architecture (Zagoruyko &
                # Komodakis) has 11.0m, which we follow.
                "wrn-16-8": 11.0e6, "wrn-16-10": 17.1e6, "wrn-22-8": 17.2e6}


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_parameter_counts_within_3_percent_of_the_paper(name):
    model = models.get(name)
    assert abs(model.count_params() - PAPER_COUNTS[name]) / PAPER_COUNTS[name] < 0.03


@pytest.mark.parametrize("name", ["alexnet-s", "vgg-like", "wrn-16-8", "gru-s"])
def test_zoo_model_forward_and_backward(name):
    model = models.get(name)
    shape = model.input_shape[1:]
    x = tf.random.normal((2,) + tuple(shape))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert model.output_shape == (None, 10)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_initializers_and_unknown_names():
    a = models.get("lenet-300-100", initializer="vs-h", seed=1)
    b = models.get("lenet-300-100", initializer="vs-h", seed=1)
    np.testing.assert_array_equal(a.layers[1].kernel.numpy(), b.layers[1].kernel.numpy())
    assert np.std(models.get("lenet-300-100", initializer="rn").layers[1].kernel.numpy()) == \
        pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="Unknown model"):
        models.get("resnet-9000")
    with pytest.raises(ValueError, match="Unknown initializer"):
        models.get("lenet-300-100", initializer="zeros")


def test_each_model_has_its_own_number_of_classes_unless_asked():
    # The Reber classifiers are the thesis's Dense(2); get() once forced 10 outputs on them.
    assert models.get("reber-gru", vocab_size=8).output_shape == (None, 2)
    assert models.get("lenet-300-100").output_shape == (None, 10)
    assert models.get("reber-lstm", vocab_size=8, num_classes=3).output_shape == (None, 3)


@pytest.mark.parametrize("name, shape", [("reber-gru", (None,)), ("lstm-s", (28, 28))])
def test_a_seeded_recurrent_layer_draws_its_two_kernels_independently(name, shape):
    # One seed per layer once made every recurrent kernel a copy of its input kernel (same shape,
    # same seeded draw), in every seeded LSTM / GRU / SimpleRNN of the zoo.
    model = models.get(name, input_shape=shape, seed=0)
    again = models.get(name, input_shape=shape, seed=0)
    cells = [layer.cell for layer in model.layers if isinstance(layer, keras.layers.RNN)]
    assert cells
    for cell in cells:
        kernel, recurrent = cell.kernel.numpy().ravel(), cell.recurrent_kernel.numpy().ravel()
        n = min(kernel.size, recurrent.size)
        assert abs(np.corrcoef(kernel[:n], recurrent[:n])[0, 1]) < 0.1
    again_cells = [layer.cell for layer in again.layers if isinstance(layer, keras.layers.RNN)]
    for cell, same in zip(cells, again_cells):
        np.testing.assert_array_equal(cell.recurrent_kernel.numpy(), same.recurrent_kernel.numpy())


def test_train_py_end_to_end(tmp_path):
    results = tmp_path / "results"
    export = tmp_path / "export"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "train.py"), "--config.epochs=2",
         "--config.sparsity=0.8", f"--results_dir={results}", f"--export_dir={export}",
         "--verbose=0"], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sparsity reached: 80.00%" in proc.stdout and "test accuracy" in proc.stdout
    (path,) = results.glob("*.json")
    result = json.loads(path.read_text())
    assert result["sparsity"]["sparsity"] == pytest.approx(0.8, abs=1e-4)
    assert 0.5 < result["metrics"]["test_accuracy"] <= 1.0
    assert result["config"]["sparsity"] == 0.8 and result["wall_time_s"] > 0
    assert {r["weight"].split("/")[-1] for r in result["sparsity"]["layers"]} == {"kernel"}
    served = tf.saved_model.load(str(export))
    out = served.serve(tf.zeros((2, 8, 8, 1)))
    assert out.shape == (2, 10)


def test_train_py_resume_continues_a_killed_run_with_its_exact_mask(tmp_path):
    import signal
    import time

    def command(results, epochs):
        return [sys.executable, os.path.join(REPO, "train.py"), f"--config.epochs={epochs}",
                f"--results_dir={results}", "--verbose=0", "--resume"]

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    reference = subprocess.run(command(tmp_path / "reference", 1), capture_output=True, text=True,
                               timeout=300, env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    (path,) = (tmp_path / "reference").glob("*.json")
    expected_mask = json.loads(path.read_text())["mask_sha256"]

    results = tmp_path / "results"
    backup = results / "default_s0.9_seed0.backup"
    proc = subprocess.Popen(command(results, 60), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metadata = backup / "training_metadata.json"
        if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(0.1)                                      # somewhere inside an epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(results.glob("*.json"))              # killed: no results yet
    assert backup.is_dir()

    resumed = subprocess.run(command(results, 60), capture_output=True, text=True, timeout=300,
                             env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed" in resumed.stdout
    (path,) = results.glob("*.json")
    result = json.loads(path.read_text())
    assert result["resumed"] is True
    assert result["mask_sha256"] == expected_mask        # the exact mask, not re-scored
    steps = -(-result["train_size"] // result["config"]["batch_size"])
    assert result["iterations"] == 60 * steps           # optimizer state continued, no epoch lost
    assert 2 <= result["resumed_at_epoch"] < 60         # it did not start over ...
    assert len(result["history"]["loss"]) == 60         # ... and its history is the whole run's
    assert result["history_complete"] is True
    assert result["metrics"]["train_loss"] == result["history"]["loss"][-1]
    assert result["sparsity"]["sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert not backup.exists()                           # cleaned up after a finished run


@pytest.mark.parametrize("initializer", ["vs-x", "vs-h"])
def test_recurrent_kernels_take_the_configured_variance_scaling_not_keras_orthogonal(initializer):
    model = models.get("lstm-s", seed=0, initializer=initializer)
    cell = model.layers[1].cell
    recurrent = cell.recurrent_kernel.numpy()  # (128, 4 * 128)
    fan_in, fan_out = recurrent.shape
    expected = (np.sqrt(2 / (fan_in + fan_out)) if initializer == "vs-x" else
                np.sqrt(2 / fan_in))
    # Keras's truncated normal keeps its stddev (the draw is rescaled)
    assert recurrent.std() == pytest.approx(expected, rel=0.05)
    # not Keras's default orthogonal rows: W W^T is far from the identity
    gram = recurrent @ recurrent.T
    assert np.abs(gram - np.eye(fan_in)).max() > 0.3
    assert np.all(cell.bias.numpy()[128:256] == 1.0)  # Keras's unit forget bias, kept


@pytest.mark.parametrize("name, blocks", [("lstm-s", (4,)), ("gru-s", (2, 1))])
@pytest.mark.parametrize("initializer", ["vs-x", "vs-h"])
def test_cell_fans_give_each_recurrent_kernel_tf1s_variance(name, blocks, initializer):
    # TF 1's cells hold one kernel over [input, state] (LSTM: 256 x 512 here; GRU: 256 x 256 for
    # the gates and 256 x 128 for the candidate), and variance scaling took its fans from it.
    units, rows = 128, 256
    cell = models.get(name, seed=0, initializer=initializer, recurrent_fan="cell").layers[1].cell
    for kernel in (cell.kernel.numpy(), cell.recurrent_kernel.numpy()):
        start = 0
        for width in (b * units for b in blocks):
            expected = (np.sqrt(2 / (rows + width)) if initializer == "vs-x" else
                        np.sqrt(2 / rows))
            assert kernel[:, start:start + width].std() == pytest.approx(expected, rel=0.03)
            start += width
    split = models.get(name, seed=0, initializer=initializer).layers[1].cell
    # Keras's split fans: He's std is sqrt(2 / 128) there, sqrt(2) times TF 1's
    if initializer == "vs-h":
        assert split.kernel.numpy().std() == pytest.approx(np.sqrt(2 / units), rel=0.03)


def test_cell_fans_leave_fixed_stddev_draws_and_other_layers_alone_and_serialize():
    for init in ("rn", "tn"):
        a = models.get("lstm-s", seed=3, initializer=init, recurrent_fan="cell")
        b = models.get("lstm-s", seed=3, initializer=init)
        for va, vb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(va.numpy(), vb.numpy())
    a = models.get("gru-s", seed=3, initializer="vs-h", recurrent_fan="cell")
    b = models.get("gru-s", seed=3, initializer="vs-h")
    np.testing.assert_array_equal(a.layers[0].kernel.numpy(), b.layers[0].kernel.numpy())
    assert not np.allclose(a.layers[1].cell.kernel.numpy(), b.layers[1].cell.kernel.numpy())
    # the initializer is a registered Keras object: the model's config rebuilds it
    again = keras.Sequential.from_config(a.get_config())
    init = again.layers[1].cell.kernel_initializer
    assert isinstance(init, models.CellVarianceScaling)
    assert (init.fused_rows, init.blocks, init.mode) == (256, (256, 128), "fan_in")


def test_cell_fans_reject_what_they_cannot_draw():
    with pytest.raises(ValueError, match="Unknown recurrent_fan"):
        models.get("lstm-s", recurrent_fan="fused")
    with pytest.raises(ValueError, match="'torch' initializer draws PyTorch's cells"):
        models.get("reber-gru", vocab_size=8, initializer="torch", recurrent_fan="cell")
    with pytest.raises(ValueError, match="input width"):
        models.Layers("vs-h", 0.0, 0, recurrent_fan="cell").rnn(keras.layers.LSTM, 8)
    init = models.CellVarianceScaling(2.0, "fan_in", fused_rows=16, blocks=(32,), seed=0)
    with pytest.raises(ValueError, match="32 columns wide"):
        init((8, 24))
    from snip_tf import config as config_lib
    c = config_lib.base_config()
    c.recurrent_fan = "fused"
    with pytest.raises(ValueError, match="recurrent_fan"):
        config_lib.validate(c)


def test_a_run_config_passes_recurrent_fan_to_its_model():
    from snip_tf import config as config_lib, training

    c = config_lib.base_config()
    c.update({"dataset": "digits", "sequential": True, "model": "lstm-s", "initializer": "vs-h",
              "recurrent_fan": "cell"})
    _, model, new_model = training._prepare(c, None)
    for m in (model, new_model(1)):
        cell = m.layers[1].cell
        assert isinstance(cell.kernel_initializer, models.CellVarianceScaling)
        assert cell.recurrent_kernel.numpy().std() == pytest.approx(np.sqrt(2 / 256), rel=0.03)
