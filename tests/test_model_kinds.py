"""Every kind of model a Keras user brings keeps its exact mask on every route.

Model kinds: Sequential, Functional, nested/shared, subclassed (a plain ``__init__`` and a
registered one with ``get_config``), keras-hub tasks and backbones built from explicit tiny configs
(no download), and ``keras.applications`` models with ``weights=None`` on 32x32 inputs.

Routes: ``model.save`` + ``snip_tf.load_model``; ``save_weights`` + ``snip_tf.load_weights``;
``tf.train.Checkpoint``; ``BackupAndRestore`` resume; SavedModel export; ``strip``; ``sparsify``.

Each pruned model gets one *kept* weight set exactly to zero before it is saved: a route that
rebuilt the mask from the zero pattern would prune it, so only the exact mask passes.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from snip_tf import masking

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# --- model kinds --------------------------------------------------------------------------------

class PlainNet(keras.Model):
    """A subclassed model as users write it: no arguments, no get_config."""

    def __init__(self):
        super().__init__()
        self.conv = L.Conv2D(4, 3, activation="relu")
        self.flat = L.Flatten()
        self.hidden = L.Dense(12, activation="relu")
        self.out = L.Dense(3)

    def call(self, x):
        return self.out(self.hidden(self.flat(self.conv(x))))


@keras.saving.register_keras_serializable("snip_tf_tests")
class RegisteredNet(keras.Model):
    """A subclassed model with a config, a custom add_weight and an LSTM."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rnn = L.LSTM(units)
        self.out = L.Dense(3)

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
        self.rnn.build(input_shape)              # a build() builds its sublayers (Keras's rule)
        self.out.build((input_shape[0], self.units))

    def call(self, x):
        return self.out(self.rnn(x * self.scale))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _images(n=8, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, size, size, channels)).astype("float32"), rng.integers(0, 3, n)


def sequential():
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu"),
                             L.Flatten(), L.Dense(12, activation="relu"), L.Dense(3)])


def functional():
    inputs = keras.Input((8, 8, 1))
    h = L.Conv2D(4, 3, activation="relu")(inputs)
    h = L.Flatten()(h)
    return keras.Model(inputs, L.Dense(3)(L.Dense(12, activation="relu")(h)))


def nested_shared():
    inner = keras.Sequential([keras.Input((8,)), L.Dense(8, activation="relu"), L.Dense(8)],
                             name="inner")
    shared = L.Dense(8, activation="relu", name="shared")
    inputs = keras.Input((8, 8, 1))
    h = L.Flatten()(inputs)
    h = L.Dense(8)(h)
    h = shared(inner(shared(h)))            # one layer used twice, around a nested model
    return keras.Model(inputs, L.Dense(3)(h))


def plain_subclassed():
    model = PlainNet()
    model(np.zeros((1, 8, 8, 1), "float32"))
    return model


def registered_subclassed():
    model = RegisteredNet()
    model(np.zeros((1, 6, 4), "float32"))
    return model


def _sequences(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 4)).astype("float32"), rng.integers(0, 3, n)


def bert_classifier():
    hub = pytest.importorskip("keras_hub")
    backbone = hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
                                       hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
    return hub.models.BertTextClassifier(backbone=backbone, num_classes=3, preprocessor=None)


def _tokens(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {"token_ids": rng.integers(1, 50, (n, 8)).astype("int32"),
         "segment_ids": np.zeros((n, 8), "int32"), "padding_mask": np.ones((n, 8), "int32")}
    return x, rng.integers(0, 3, n)


def vit_classifier():
    hub = pytest.importorskip("keras_hub")
    backbone = hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4, num_layers=1,
                                      num_heads=2, hidden_dim=16, mlp_dim=32)
    return hub.models.ViTImageClassifier(backbone=backbone, num_classes=3, preprocessor=None)


def _application(name, **kwargs):
    def build():
        return getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None,
                                                 classes=3, **kwargs)
    build.__name__ = name
    return build


KINDS = {
    "sequential": (sequential, _images),
    "functional": (functional, _images),
    "nested_shared": (nested_shared, _images),
    "plain_subclassed": (plain_subclassed, _images),
    "registered_subclassed": (registered_subclassed, _sequences),
    "bert_task": (bert_classifier, _tokens),
    "vit_task": (vit_classifier, lambda: _images(size=16, channels=3)),
}
APPLICATIONS = {
    "MobileNet": _application("MobileNet", alpha=0.25),
    "MobileNetV2": _application("MobileNetV2", alpha=0.35),
    "MobileNetV3Small": _application("MobileNetV3Small", include_preprocessing=False),
    "MobileNetV3Large": _application("MobileNetV3Large", include_preprocessing=False,
                                     minimalistic=True),
    "ResNet50": _application("ResNet50"),
    "VGG16": _application("VGG16"),
    "ConvNeXtTiny": _application("ConvNeXtTiny"),
    "EfficientNetB0": _application("EfficientNetB0"),
    "DenseNet121": _application("DenseNet121"),
    "NASNetMobile": _application("NASNetMobile"),
}
# Deep or large graphs whose save / load / trace take 30-90 s each here: in the slow run.
_SLOW_APPLICATIONS = {"ResNet50", "ConvNeXtTiny", "EfficientNetB0", "DenseNet121", "NASNetMobile"}


def _pruned(kind):
    build, data = KINDS[kind]
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=LOSS)
    x, y = data()
    snip_tf.snip(model, (x, y), 0.7)
    model.fit(x, y, epochs=1, verbose=0)
    _zero_one_kept_weight(model)
    return model, build, (x, y)


def _zero_one_kept_weight(model):
    _, variable, mask = masking.hooked_variables(model)[0]
    values = variable.numpy()
    flat = np.flatnonzero(mask)
    values.reshape(-1)[flat[0]] = 0.0
    variable.assign(values)


def _masks(model):
    return [(i, tuple(v.shape), m) for i, v, m in masking.hooked_variables(model)]


def assert_same_masks(a, b):
    ma, mb = _masks(a), _masks(b)
    assert [(i, s) for i, s, _ in ma] == [(i, s) for i, s, _ in mb]
    for (_, _, x), (_, _, y) in zip(ma, mb):
        np.testing.assert_array_equal(x, y)


def assert_zeros_hold(model):
    for _, variable, mask in masking.hooked_variables(model):
        assert not np.any(variable.numpy()[~mask]), variable.path


def _snapshot(model):
    return ([(v.path, type(v.constraint).__name__, None if m is None else m.copy())
             for v in model.variables for m in [masking.mask_of(v)]],
            [v.numpy().copy() for v in model.variables])


def assert_unchanged(model, snapshot):
    hooks, values = _snapshot(model)
    assert [(p, c) for p, c, _ in hooks] == [(p, c) for p, c, _ in snapshot[0]]
    for (_, _, a), (_, _, b) in zip(hooks, snapshot[0]):
        assert (a is None) == (b is None) and (a is None or np.array_equal(a, b))
    for a, b in zip(values, snapshot[1]):
        np.testing.assert_array_equal(a, b)


def _train_one_step(model, data):
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=LOSS)
    model.fit(*data, epochs=1, verbose=0)


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


# --- routes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(KINDS))
def test_save_then_load_model_keeps_the_exact_mask(kind, tmp_path):
    model, _, data = _pruned(kind)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = snip_tf.load_model(path, custom_objects={"PlainNet": PlainNet})
    assert_same_masks(model, loaded)
    np.testing.assert_allclose(_predict(loaded, data[0]), _predict(model, data[0]),
                               rtol=1e-5, atol=1e-6)
    _train_one_step(loaded, data)
    assert_zeros_hold(loaded)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_save_weights_then_load_weights_keeps_the_exact_mask(kind, tmp_path):
    model, build, data = _pruned(kind)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    fresh = build()
    snip_tf.load_weights(fresh, path)
    assert_same_masks(model, fresh)
    _train_one_step(fresh, data)
    assert_zeros_hold(fresh)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tf_checkpoint_restore_keeps_the_exact_mask(kind, tmp_path):
    model, build, data = _pruned(kind)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = build()
    snip_tf.track(fresh)
    tf.train.Checkpoint(model=fresh).restore(path)
    assert_same_masks(model, fresh)
    _train_one_step(fresh, data)
    assert_zeros_hold(fresh)


@pytest.mark.parametrize("kind", ["sequential", "plain_subclassed", "registered_subclassed",
                                  "bert_task"])
def test_backup_and_restore_resume_keeps_the_exact_mask(kind, tmp_path):
    build, data_fn = KINDS[kind]
    x, y = data_fn()
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                _zero_one_kept_weight(self.model)    # a kept weight that is exactly zero
            if epoch == 1:
                raise RuntimeError("killed")

    keras.utils.set_random_seed(0)
    first = build()
    first.compile(optimizer="sgd", loss=LOSS)
    snip = snip_tf.SNIPCallback(0.7)
    with pytest.raises(RuntimeError, match="killed"):
        first.fit(x, y, epochs=3, batch_size=4, verbose=0,
                  callbacks=[snip, Interrupt(), keras.callbacks.BackupAndRestore(backup)])
    saved = [m.copy() for _, _, m in masking.hooked_variables(first)]

    second = build()                 # a new process would build the model afresh
    second.compile(optimizer="sgd", loss=LOSS)
    resumed = snip_tf.SNIPCallback(0.7)
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append([m.copy() for _, _, m in masking.hooked_variables(self.model)])

    second.fit(x, y, epochs=3, batch_size=4, verbose=0,
               callbacks=[keras.callbacks.BackupAndRestore(backup), resumed, Watch()])
    assert resumed.scores is None                 # resumed, not scored again
    assert len(seen[0]) == len(saved)
    for a, b in zip(seen[0], saved):
        np.testing.assert_array_equal(a, b)
    assert_zeros_hold(second)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_export_strip_and_sparsify_never_modify_the_callers_model(kind, tmp_path):
    model, _, data = _pruned(kind)
    before = _snapshot(model)
    path = snip_tf.export(model, str(tmp_path / "saved"))
    assert_unchanged(model, before)
    served = tf.saved_model.load(path)
    x = data[0]
    inputs = {k: tf.constant(v) for k, v in x.items()} if isinstance(x, dict) else tf.constant(x)
    out = served.serve(inputs)
    np.testing.assert_allclose(np.asarray(out), _predict(model, x), rtol=1e-4, atol=1e-5)
    try:
        plain = snip_tf.strip(model)
    except ValueError as error:            # a model Keras cannot copy: a clear refusal
        assert "the model was not changed" in str(error)
    else:
        assert plain is not model and not snip_tf.is_pruned(plain)
        np.testing.assert_allclose(_predict(plain, x), _predict(model, x), rtol=1e-5, atol=1e-6)
    assert_unchanged(model, before)
    try:
        snip_tf.sparse.sparsify(model, force=True)
    except ValueError as error:
        assert "not changed" in str(error) or "cannot copy" in str(error)
    assert_unchanged(model, before)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n in _SLOW_APPLICATIONS else n for n in sorted(APPLICATIONS)])
def test_keras_applications_save_load_strip(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = APPLICATIONS[name]()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=LOSS)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    y = np.arange(4) % 3
    snip_tf.snip(model, (x, y), 0.9)
    _zero_one_kept_weight(model)
    model.save(str(tmp_path / "m.keras"))
    loaded = snip_tf.load_model(str(tmp_path / "m.keras"))
    assert_same_masks(model, loaded)
    _train_one_step(loaded, (x, y))
    assert_zeros_hold(loaded)
    # Export and strip leave the caller's model unchanged (every kind above checks them; for these
    # deep graphs the SavedModel trace is what costs, so strip alone runs here).
    before = _snapshot(model)
    plain = snip_tf.strip(model)
    assert not snip_tf.is_pruned(plain)
    assert_unchanged(model, before)


class Uncloneable(L.Layer):
    """A layer Keras cannot serialize (a Python function among its arguments), like some keras-hub
    layers: neither clone_model nor a config round trip can copy it."""

    def __init__(self, units, fn, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(units)
        self.fn = fn

    def call(self, x):
        return self.fn(self.dense(x))


@pytest.mark.parametrize("kind", ["sequential", "plain_subclassed", "bert_task"])
def test_keras_own_export_and_saved_model_save_work_on_a_pruned_model(kind, tmp_path):
    model, _, data = _pruned(kind)            # carries its mask record, a TF trackable
    model.export(str(tmp_path / "keras_export"), verbose=False)
    tf.saved_model.save(model, str(tmp_path / "tf_saved"))
    served = tf.saved_model.load(str(tmp_path / "keras_export"))
    x = data[0]
    inputs = {k: tf.constant(v) for k, v in x.items()} if isinstance(x, dict) else tf.constant(x)
    np.testing.assert_allclose(np.asarray(served.serve(inputs)), _predict(model, x),
                               rtol=1e-4, atol=1e-5)


def test_export_succeeds_where_no_copy_can_be_made(tmp_path):
    inputs = keras.Input((6,))
    model = keras.Model(inputs, L.Dense(3)(Uncloneable(8, lambda t: t * 2.0)(inputs)))
    model.compile(loss=LOSS)
    x, y = np.random.default_rng(0).normal(size=(8, 6)).astype("float32"), np.arange(8) % 3
    snip_tf.snip(model, (x, y), 0.5)
    before = _snapshot(model)
    with pytest.raises(ValueError, match="the model was not changed"):
        snip_tf.strip(model)
    path = snip_tf.export(model, str(tmp_path / "saved"))
    assert_unchanged(model, before)
    served = tf.saved_model.load(path)          # kept alive: it owns the variables
    np.testing.assert_allclose(np.asarray(served.serve(tf.constant(x))), _predict(model, x),
                               rtol=1e-5, atol=1e-6)
    tflite = snip_tf.export(model, str(tmp_path / "m.tflite"), format="tflite")
    assert os.path.getsize(tflite) > 0
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="compact"):
        snip_tf.export(model, str(tmp_path / "m.snip"), format="compact")
    assert not (tmp_path / "m.snip").exists()
    assert_unchanged(model, before)


@pytest.mark.parametrize("kind", ["plain_subclassed", "registered_subclassed", "bert_task"])
@pytest.mark.parametrize("weights_only", [True, False])
def test_model_checkpoint_then_load_keeps_the_exact_mask(kind, weights_only, tmp_path):
    model, build, data = _pruned(kind)
    path = str(tmp_path / ("ckpt.weights.h5" if weights_only else "ckpt.keras"))
    class ZeroOneKept(keras.callbacks.Callback):      # runs before the checkpoint is written
        def on_epoch_end(self, epoch, logs=None):
            _zero_one_kept_weight(self.model)

    model.fit(*data, epochs=1, verbose=0, callbacks=[
        ZeroOneKept(), keras.callbacks.ModelCheckpoint(path, save_weights_only=weights_only)])
    if weights_only:
        restored = snip_tf.load_weights(build(), path)
    else:
        restored = snip_tf.load_model(path, custom_objects={"PlainNet": PlainNet})
    assert_same_masks(model, restored)
    _train_one_step(restored, data)
    assert_zeros_hold(restored)
