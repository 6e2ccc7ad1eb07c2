"""Export round trips in every format and the sparse inference path."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from conftest import classification_data, mlp
from snip_tf import sparse


@pytest.fixture
def pruned():
    x, y = classification_data(n=64)
    model = mlp(hidden=256)
    snip_tf.snip(model, (x, y), 0.9)
    model.fit(x, y, epochs=1, verbose=0)
    return model, x


def test_compact_export_restores_the_exact_model(pruned, tmp_path):
    model, x = pruned
    path = snip_tf.export(model, str(tmp_path / "m.snip"), format="compact")
    restored = snip_tf.load_compact(path)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)                  # exact values, exact zero pattern
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert snip_tf.is_pruned(restored)
    restored.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    restored.fit(x, np.zeros(len(x), int), epochs=1, verbose=0)
    for a, b in zip(snip_tf.prunable_weights(model), snip_tf.prunable_weights(restored)):
        assert ((a.numpy() == 0) <= (b.numpy() == 0)).all()  # hooks came back
    dense_bytes = sum(w.nbytes for w in model.get_weights())
    assert os.path.getsize(path) < dense_bytes / 3


def test_tflite_export_serves_the_same_outputs(pruned, tmp_path):
    model, x = pruned
    path = snip_tf.export(model, str(tmp_path / "m.tflite"), format="tflite")
    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.resize_tensor_input(0, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_export_rejects_unknown_formats_and_existing_files(pruned, tmp_path):
    model, _ = pruned
    with pytest.raises(ValueError, match="format must be one of"):
        snip_tf.export(model, str(tmp_path / "x"), format="onnx")
    path = snip_tf.export(model, str(tmp_path / "m.snip"), format="compact")
    with pytest.raises(FileExistsError):
        snip_tf.export(model, path, format="compact")


def test_sparse_path_equals_dense_path(pruned, tmp_path):
    model, x = pruned
    fast = sparse.sparsify(model, force=True)
    assert fast.sparse_layers == [l.name for l in model.layers if isinstance(l, keras.layers.Dense)]
    assert all(isinstance(fast.get_layer(n), sparse.SparseDense) for n in fast.sparse_layers)
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    layer = fast.get_layer(fast.sparse_layers[0])
    assert layer.nnz == int(np.count_nonzero(model.get_layer(layer.name).kernel.numpy()))
    path = str(tmp_path / "sparse.keras")
    fast.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), fast.predict(x, verbose=0), rtol=1e-6)
    none = sparse.sparsify(model, force=False)
    assert none.sparse_layers == []


def test_sparse_path_on_sequences():
    model = keras.Sequential([keras.Input((7, 5)), keras.layers.Dense(16), keras.layers.GRU(8),
                              keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(4, 7, 5)).astype("float32")
    snip_tf.snip(model, (x, np.arange(4) % 3), 0.8)
    fast = sparse.sparsify(model, force=True, min_sparsity=0.0)
    assert len(fast.sparse_layers) == 2
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_tflite_export_of_a_recurrent_model_fails_clearly(tmp_path):
    model = keras.Sequential([keras.Input((7, 5)), keras.layers.LSTM(4), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="TFLite converter cannot convert"):
        snip_tf.export(model, str(tmp_path / "m.tflite"), format="tflite")
    assert not (tmp_path / "m.tflite").exists()
