import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from conftest import classification_data, mlp

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_masked_layer_owns_masks_and_only_wrapped_layers_are_pruned(tmp_path):
    x, y = classification_data(n=48)
    model = keras.Sequential([keras.Input((6, 5)), L.Flatten(), snip_tf.Masked(L.Dense(16)),
                              L.Dense(3)])
    model.compile(optimizer="adam", loss=LOSS)
    wrapped = model.layers[1]
    assert [v.name for v in snip_tf.prunable_weights(model)] == ["kernel"]
    mask_var = wrapped.mask_variable(wrapped.layer.kernel)
    assert not mask_var.trainable and (mask_var.numpy() == 1).all()
    # with every mask at 1 the wrapper computes exactly what the plain layer computes
    np.testing.assert_allclose(snip_tf.strip(model).predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)

    masks = snip_tf.snip(model, (x, y), 0.8)
    (path, mask), = masks.items()
    np.testing.assert_array_equal(mask_var.numpy().astype(bool), mask)
    model.fit(x, y, epochs=2, verbose=0)
    assert (wrapped.layer.kernel.numpy()[~mask] == 0).all()
    assert (model.layers[2].kernel.numpy() != 0).all()   # unwrapped layer untouched

    path = str(tmp_path / "wrapped.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)
    loaded.fit(x, y, epochs=1, verbose=0)
    assert (loaded.layers[1].layer.kernel.numpy()[~mask] == 0).all()


@pytest.mark.parametrize("layer,shape", [
    (lambda: L.LSTM(5), (7, 3)), (lambda: L.Bidirectional(L.GRU(4)), (7, 3)),
    (lambda: L.Conv1D(4, 3), (7, 3)), (lambda: L.SimpleRNN(5, return_sequences=True), (7, 3))])
def test_wrap_keeps_weights_and_prunes_recurrent_and_conv_layers(layer, shape):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16,) + shape).astype("float32"), rng.integers(0, 3, 16)
    model = keras.Sequential([keras.Input(shape), layer(), L.Flatten(), L.Dense(3)])
    wrapped = snip_tf.wrap(model)
    assert all(isinstance(l, snip_tf.Masked) for l in wrapped.layers if l.weights)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    wrapped.compile(optimizer="adam", loss=LOSS)
    masks = snip_tf.snip(wrapped, (x, y), 0.8)
    wrapped.fit(x, y, epochs=1, verbose=0)
    for v, m in zip(snip_tf.prunable_weights(wrapped), masks.values()):
        assert (v.numpy()[~m] == 0).all()
    stripped = snip_tf.strip(wrapped)
    assert not any(isinstance(l, snip_tf.Masked) for l in stripped.layers)
    assert not any("mask" in v.path for v in stripped.weights)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), wrapped.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_wrap_selects_layers_by_name_and_rejects_unknown_names():
    model = mlp()
    name = model.layers[1].name
    wrapped = snip_tf.wrap(model, layers=[name])
    assert [type(l).__name__ for l in wrapped.layers] == ["Flatten", "Masked", "Dense"]
    with pytest.raises(ValueError, match="does not have"):
        snip_tf.wrap(model, layers=["nope"])


def test_masked_rejects_layers_without_prunable_weights():
    with pytest.raises(ValueError, match="Masked cannot wrap BatchNormalization"):
        snip_tf.Masked(L.BatchNormalization())
    with pytest.raises(ValueError, match="expects a keras.layers.Layer"):
        snip_tf.Masked("dense")


def test_strip_plain_pruned_model_removes_constraints_and_leaves_the_input_alone():
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.9)
    stripped = snip_tf.strip(model)
    for layer in stripped.layers[1:]:
        assert layer.kernel_constraint is None and layer.kernel.constraint is None
    assert isinstance(model.layers[1].kernel.constraint, snip_tf.PruningMask)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), model.predict(x, verbose=0))
    assert snip_tf.sparsity(stripped) == snip_tf.sparsity(model)
    assert "PruningMask" not in str(stripped.get_config())


def test_strip_subclassed_model_returns_a_copy_and_leaves_the_model_pruned():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = L.Flatten()
            self.out = L.Dense(3)

        def call(self, inputs):
            return self.out(self.flat(inputs))

    x, y = classification_data()
    model = Net()
    model.compile(loss=LOSS)
    snip_tf.snip(model, (x, y), 0.5)
    plain = snip_tf.strip(model)
    assert plain is not model and type(plain) is Net
    assert plain.out.kernel.constraint is None and not snip_tf.is_pruned(plain)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), model.predict(x, verbose=0))
    assert snip_tf.is_pruned(model) and snip_tf.sparsity(model) == pytest.approx(0.5)
    snip_tf.remove_hooks(model)           # the explicit in-place route
    assert not snip_tf.is_pruned(model) and snip_tf.sparsity(model) == pytest.approx(0.5)


@pytest.mark.parametrize("wrapped", [False, True])
def test_export_saved_model_serves_the_same_outputs(tmp_path, wrapped):
    x, y = classification_data()
    model = snip_tf.wrap(mlp()) if wrapped else mlp()
    model.compile(optimizer="sgd", loss=LOSS)
    snip_tf.snip(model, (x, y), 0.9)
    model.fit(x, y, epochs=1, verbose=0)
    path = snip_tf.export(model, str(tmp_path / "saved"))
    served = tf.saved_model.load(path)
    np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    kernels = [v.numpy() for v in served.variables if v.shape.rank == 2]
    assert sum(int(np.count_nonzero(k)) for k in kernels) == snip_tf.sparsity_report(model).kept
    with pytest.raises(FileExistsError):
        snip_tf.export(model, path)
    assert os.path.isdir(path)


def test_masked_masks_restore_from_a_tf_checkpoint(tmp_path):
    x, y = classification_data(n=48)

    def build():
        model = keras.Sequential([keras.Input((6, 5)), L.Flatten(),
                                  snip_tf.Masked(L.Dense(16, activation="relu")), L.Dense(3)])
        model.compile(optimizer="adam", loss=LOSS)
        return model

    model = build()
    masks = snip_tf.snip(model, (x, y), 0.8)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    restored = build()
    tf.train.Checkpoint(model=restored).restore(path).expect_partial()
    (mask,) = masks.values()
    wrapped = restored.layers[1]
    np.testing.assert_array_equal(wrapped.mask_variable(wrapped.layer.kernel).numpy() > 0, mask)
    restored.fit(x, y, epochs=2, verbose=0)   # the restored mask variables hold the zeros
    assert (wrapped.layer.kernel.numpy()[~mask] == 0).all()
