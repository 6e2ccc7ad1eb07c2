"""Bad input gets a clear error that names the problem, and changes nothing."""

import io
import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from conftest import REPO, assert_weights_equal, classification_data, mlp, weights_of
from snip_tf import config as snip_config
from snip_tf import masking


def _run_train(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flag, named", [("--config.sparsity=-0.5", "config.sparsity"),
                                         ("--config.foo=1", "Unknown config field 'foo'")])
def test_train_py_refuses_bad_config_values_before_reading_data(flag, named, tmp_path):
    proc = _run_train(flag, f"--results_dir={tmp_path}")
    assert proc.returncode != 0 and named in proc.stdout + proc.stderr
    assert not os.listdir(tmp_path)                    # nothing trained, nothing written


@pytest.mark.parametrize("field, value, message", [
    ("sparsity", float("nan"), "sparsity"), ("sparsity", 1.0, "sparsity"),
    ("epochs", 0, "epochs"), ("batch_size", -1, "batch_size"),
    ("validation_fraction", 1.0, "validation_fraction"), ("train_limit", -3, "train_limit"),
    ("learning_rate", 0.0, "learning_rate"), ("snip.num_batches", 0, "snip.num_batches"),
    ("tune.max_trials", 0, "tune.max_trials"), ("model", "nope", "model"),
    ("snip.criterion", "nope", "snip.criterion"),
])
def test_config_validation_names_the_flag_and_range(field, value, message):
    config = snip_config.base_config()
    target = config
    *parents, leaf = field.split(".")
    for p in parents:
        target = target[p]
    target[leaf] = value
    with pytest.raises(ValueError, match=f"--config.{message}"):
        snip_config.validate(config)


def test_unwritable_results_dir_is_reported_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        snip_config.check_output_dir(str(blocker), "--results_dir")


def test_iterative_snip_refuses_all_zero_gradients():
    x, y = classification_data()
    model = mlp()
    before = weights_of(model)
    with pytest.raises(ValueError, match="zero"):
        snip_tf.prune(model, (x, y, np.zeros(len(x), "float32")), 0.9, criterion="iterative_snip")
    assert_weights_equal(model, before)
    assert not snip_tf.is_pruned(model)


@pytest.mark.parametrize("bad", [0.5, np.nan, 2, -1, "False"])
def test_apply_masks_accepts_only_boolean_or_01_masks(bad):
    model = mlp()
    before = weights_of(model)
    kernel = snip_tf.prunable_weights(model)[0]
    mask = np.ones(kernel.shape, dtype=object if isinstance(bad, str) else float)
    mask[0, 0] = bad
    with pytest.raises(ValueError, match="boolean or 0/1"):
        snip_tf.apply_masks(model, {kernel.path: mask})
    assert_weights_equal(model, before)
    assert not snip_tf.is_pruned(model)
    snip_tf.apply_masks(model, {kernel.path: (np.arange(kernel.numpy().size) % 2).reshape(kernel.shape)})
    assert snip_tf.is_pruned(model)


def test_repruning_at_a_lower_sparsity_warns():
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.9)
    with pytest.warns(snip_tf.RepruneWarning, match="already pruned"):
        snip_tf.snip(model, (x, y), 0.5)
    with pytest.warns(UserWarning, match="already pruned to sparsity"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[snip_tf.SNIPCallback(0.8)])


def test_grasp_checks_its_batch():
    x, y = classification_data()
    model = mlp()
    with pytest.raises(ValueError, match="different batch sizes"):
        snip_tf.prune(model, (x, y[:-3]), 0.5, criterion="grasp")
    with pytest.raises(ValueError, match="empty"):
        snip_tf.prune(model, (x[:0], y[:0]), 0.5, criterion="grasp")
    weighted = snip_tf.prune(mlp(), (x, y, np.linspace(0, 1, len(x))), 0.5, criterion="grasp",
                             return_scores=True)[1]
    keras.utils.set_random_seed(0)
    plain = snip_tf.prune(mlp(), (x, y), 0.5, criterion="grasp", return_scores=True)[1]
    assert any(not np.allclose(a, b) for a, b in zip(weighted.values(), plain.values()))
    assert not snip_tf.is_pruned(model)


def test_clear_errors_for_odd_arguments(tmp_path):
    x, y = classification_data()
    model = mlp()
    with pytest.raises(ValueError, match="strings"):
        snip_tf.snip(model, (x, np.array(["a"] * len(x))), 0.5)
    with pytest.raises(ValueError, match="empty"):
        snip_tf.snip(model, (x[:0], y[:0]), 0.5)
    with pytest.raises(ValueError, match="masks must be"):
        snip_tf.apply_masks(model, None)
    with pytest.raises(ValueError, match="wrap expects"):
        snip_tf.wrap(None)
    with pytest.raises(ValueError, match="load_compact: expected"):
        snip_tf.load_compact(None)
    with pytest.raises(ValueError, match="batch_size"):
        snip_tf.sparse.sparsify(model, batch_size=-1)
    assert not snip_tf.is_pruned(model)
    callback = snip_tf.SNIPCallback(0.5, num_batches=np.int64(2))
    assert callback.num_batches == 2


def _compact(tmp_path):
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.5)
    return snip_tf.export(model, str(tmp_path / "m.snip"), format="compact")


def _rewrite(path, name, data):
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members[name] = data
    with zipfile.ZipFile(path, "w") as archive:
        for n, d in members.items():
            archive.writestr(n, d)


def test_compact_archive_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    path = _compact(tmp_path)
    with zipfile.ZipFile(path) as archive:
        index = json.loads(archive.read("weights.json"))
    index["weights"][0]["shape"] = [60000, 60000]
    _rewrite(path, "weights.json", json.dumps(index).encode())
    with pytest.raises(ValueError, match="declares shape"):
        snip_tf.load_compact(path)


def test_compact_mask_with_too_few_bits_is_refused(tmp_path):
    path = _compact(tmp_path)
    with zipfile.ZipFile(path) as archive:
        arrays = dict(np.load(io.BytesIO(archive.read("arrays.npz"))))
    arrays["w0_bits"] = arrays["w0_bits"][:-2]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _rewrite(path, "arrays.npz", buffer.getvalue())
    with pytest.raises(ValueError, match="declares shape"):
        snip_tf.load_compact(path)


def test_zlib_bomb_in_a_pruning_mask_config_is_refused():
    import base64
    import zlib

    bomb = base64.b64encode(zlib.compress(b"\xff" * (600 << 20), 9)).decode()
    assert len(bomb) < 2_000_000
    with pytest.raises(ValueError, match="plausible size|more than"):
        masking.PruningMask.from_config({"mask": {"shape": [8, 4], "bits": bomb}})
    with pytest.raises(ValueError, match="larger than any weight"):
        masking.PruningMask.from_config({"mask": {"shape": [1 << 20, 1 << 20], "bits": ""}})


def test_saved_mask_of_the_wrong_shape_fails_at_load(tmp_path):
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.5)
    path = str(tmp_path / "m.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    layer = config["config"]["layers"][2]["config"]
    mask = layer["kernel_constraint"]["config"]["mask"]
    wrong = np.ones((3, 16), bool)
    mask.update(masking.encode_mask(wrong))
    _rewrite(path, "config.json", json.dumps(config).encode())
    with pytest.raises(ValueError, match="has shape"):
        snip_tf.load_model(path)


def test_a_failed_export_keeps_the_earlier_archive(tmp_path, monkeypatch):
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.5)
    saved = snip_tf.export(model, str(tmp_path / "saved"))
    compact = snip_tf.export(model, str(tmp_path / "m.snip"), format="compact")
    before = open(compact, "rb").read()
    listing = sorted(os.listdir(saved))

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "export", fail)
    with pytest.raises(OSError, match="disk full"):
        snip_tf.export(model, saved, overwrite=True)
    assert sorted(os.listdir(saved)) == listing
    assert tf.saved_model.load(saved) is not None
    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError):
        snip_tf.export(model, compact, format="compact", overwrite=True)
    assert open(compact, "rb").read() == before
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_results_json_is_strict(tmp_path):
    from snip_tf import atomic

    path = atomic.write_json(str(tmp_path / "r.json"), {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(open(path).read(), parse_constant=lambda c: pytest.fail(c)) == \
        {"a": None, "b": [1.0, None]}


def test_a_json_file_read_back_is_checked_first(tmp_path):
    from snip_tf import atomic, training

    good = atomic.write_json(str(tmp_path / "good.json"), {"config": {}})
    assert atomic.read_json(good, expect=dict) == {"config": {}}
    with pytest.raises(ValueError, match="good.json.*holds a JSON dict; expected a list"):
        atomic.read_json(good, expect=list)
    with pytest.raises(ValueError, match="good.json.*is 18 bytes; a JSON file snip_tf reads is "
                                         "at most 10 bytes"):
        atomic.read_json(good, max_bytes=10)
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"config": {"mod')  # as a copy cut short would leave it
    with pytest.raises(ValueError, match="truncated.json.*is not a JSON file"):
        atomic.read_json(str(truncated))
    # the two per-run record files a resumed run reads back: a damaged one is named, not used
    with pytest.raises(ValueError, match="good.json.*expected a list"):
        training.CheckpointEvaluation(10, 5, 2, None, [], path=good)
    records = atomic.write_json(str(tmp_path / "records.json"), [{"step": 3}])
    with pytest.raises(ValueError, match="records.json.*not a list of checkpoint records"):
        training.CheckpointEvaluation(10, 5, 2, None, [], path=records)
    curve = atomic.write_json(str(tmp_path / "curve.json"),
                              {"step": [0, 6], "epoch": [0], "loss": [1.0], "accuracy": [0.1]})
    data = (np.zeros((2, 2), "float32"), np.zeros((2,), "int32"))
    with pytest.raises(ValueError, match="curve.json.*not a memorization curve"):
        snip_tf.callbacks.MemorizationCallback(data, path=curve)
    assert json.loads(open(curve).read())["step"] == [0, 6]  # left as it was


def test_experiment_help_lists_shared_flags_and_prints_percent():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "snip_tf.experiments.figure1", "--help"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "--seeds" in out and "--data_dir" in out and "90 % sparsity" in out
    proc = subprocess.run([sys.executable, "-m", "snip_tf.experiments.figure1",
                           "--models=lenet-9000"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and "lenet-9000" in proc.stdout + proc.stderr
    # a shared flag the command does not read is refused, not ignored, and --help leaves it out
    proc = subprocess.run([sys.executable, "-m", "snip_tf.experiments.figure2", "--epochs=3",
                           "--protocol=authors", "--data_dir=/nonexistent"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "figure2 does not read --epochs, --protocol" in proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "snip_tf.experiments.figure2", "--help"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert "--seeds" in proc.stdout + proc.stderr and "--epochs" not in proc.stdout + proc.stderr


class SmallNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


class AttentionNet(keras.Model):
    """MultiHeadAttention creates its projection layers in build()."""

    def __init__(self):
        super().__init__()
        self.attention = keras.layers.MultiHeadAttention(2, 4)
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(keras.ops.mean(self.attention(x, x), axis=1))


@pytest.mark.parametrize("kind", ["sequential", "subclassed", "attention"])
def test_a_failed_snip_leaves_an_unbuilt_model_unbuilt(kind):
    if kind == "attention":
        model = AttentionNet()
        reference = AttentionNet()
        reference(np.zeros((2, 3, 8), "float32"))
    elif kind == "sequential":
        model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    else:
        model = SmallNet()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    shape = (16, 3) if kind == "attention" else (16,)
    wrong = rng.normal(size=shape + (5,)).astype("float32")     # 5 features; the data has 8
    with pytest.raises(ValueError):
        snip_tf.snip(model, (wrong, np.full(16, np.nan)), 0.5)   # builds, then fails on the loss
    assert not model.built and not model.weights
    x, y = rng.normal(size=shape + (8,)).astype("float32"), np.arange(16) % 3
    snip_tf.snip(model, (x, y), 0.5)                             # the right data works
    if kind == "attention":                                      # as many weights as a fresh one
        assert [tuple(w.shape) for w in model.weights] == \
            [tuple(w.shape) for w in reference.weights]
    assert snip_tf.sparsity(model) == pytest.approx(0.5, abs=0.01)
    model.fit(x, y, epochs=1, verbose=0)


def test_exports_get_the_usual_file_modes(tmp_path):
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.5)
    umask = os.umask(0o022)
    try:
        compact = snip_tf.export(model, str(tmp_path / "m.snip"), format="compact")
        saved = snip_tf.export(model, str(tmp_path / "saved"))
    finally:
        os.umask(umask)
    assert os.stat(compact).st_mode & 0o777 == 0o644
    assert os.stat(saved).st_mode & 0o777 == 0o755


def test_remove_hooks_also_clears_a_frozen_layers_config(tmp_path):
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.5)
    model.layers[1].trainable = False                   # frozen after pruning
    snip_tf.remove_hooks(model)
    assert not snip_tf.is_pruned(model)
    assert "PruningMask" not in str(model.get_config())
    model.save(str(tmp_path / "m.keras"))
    assert not snip_tf.is_pruned(keras.models.load_model(str(tmp_path / "m.keras")))
