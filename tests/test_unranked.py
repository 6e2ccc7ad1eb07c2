"""Everything trainable is ranked, or reported as not ranked: ConvLSTM kernels are ranked; other
trainable variables (custom add_weight, position embeddings, class tokens) are named in a warning
and in the sparsity report, and can be opted in with weights=."""

import warnings

import keras
import numpy as np
import pytest

import snip_tf

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize("layer, shape", [
    (lambda: L.ConvLSTM1D(3, 3), (4, 8, 2)),
    (lambda: L.ConvLSTM2D(3, 3), (4, 6, 6, 2)),
    (lambda: L.ConvLSTM3D(2, 3), (3, 5, 5, 5, 1)),
])
def test_conv_lstm_kernels_are_ranked_and_held_at_zero(layer, shape):
    model = keras.Sequential([keras.Input(shape), layer(), L.Flatten(), L.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=LOSS)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8,) + shape).astype("float32"), rng.integers(0, 3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", snip_tf.UnrankedWeightsWarning)
        masks = snip_tf.snip(model, (x, y), 0.8)
    names = [p.split("/")[-1] for p in masks]
    assert names.count("kernel") == 2 and names.count("recurrent_kernel") == 1
    model.fit(x, y, epochs=2, verbose=0)
    for variable in snip_tf.prunable_weights(model):
        assert not np.any(variable.numpy()[~masks[variable.path]])
    report = snip_tf.sparsity_report(model)
    assert [r.weight for r in report.unranked] == [v.path for v in model.trainable_variables
                                                   if v.name == "bias"]


class Scale(L.Layer):
    """A custom layer whose weight no criterion knows."""

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(input_shape[-1], 64), initializer="glorot_uniform")

    def call(self, x):
        return x @ self.w


def _custom_model():
    model = keras.Sequential([keras.Input((16,)), Scale(), L.Dense(8, activation="relu"),
                              L.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=LOSS)
    rng = np.random.default_rng(0)
    return model, (rng.normal(size=(16, 16)).astype("float32"), rng.integers(0, 3, 16))


def test_unranked_weights_are_warned_about_and_reported():
    model, data = _custom_model()
    custom = model.layers[0].w
    with pytest.warns(snip_tf.UnrankedWeightsWarning, match=custom.path):
        snip_tf.snip(model, data, 0.9)
    report = snip_tf.sparsity_report(model)
    assert report.sparsity == pytest.approx(0.9, abs=1e-2)
    assert custom.path in [r.weight for r in report.unranked]
    assert report.unranked_total == 16 * 64 + 8 + 3        # the custom weight and the biases
    ranked, total = report.total, report.total + report.unranked_total
    unranked_kept = sum(r.kept for r in report.unranked)
    assert report.overall_sparsity == pytest.approx(1 - (report.kept + unranked_kept) / total)
    assert report.overall_sparsity < 0.5 < report.sparsity     # 1,024 dense weights weigh in
    text = str(report)
    assert "not ranked" in text and custom.path in text and "all" in text
    assert report.to_dict()["unranked_total"] == report.unranked_total and ranked < total


def test_no_warning_when_only_biases_are_unranked():
    model = keras.Sequential([keras.Input((16,)), L.Dense(8), L.BatchNormalization(), L.Dense(3)])
    model.compile(loss=LOSS)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", snip_tf.UnrankedWeightsWarning)
        snip_tf.snip(model, (rng.normal(size=(8, 16)).astype("float32"),
                             rng.integers(0, 3, 8)), 0.5)


def test_opted_in_weights_are_ranked_pruned_held_and_saved(tmp_path):
    model, data = _custom_model()
    custom = model.layers[0].w
    chosen = [custom] + snip_tf.prunable_weights(model)
    masks = snip_tf.prune(model, data, 0.9, weights=chosen)
    assert custom.path in masks and not masks[custom.path].all()
    assert snip_tf.sparsity_report(model).unranked_total == 8 + 3
    model.fit(*data, epochs=2, verbose=0)
    assert not np.any(custom.numpy()[~masks[custom.path]])
    model.save(str(tmp_path / "m.keras"))
    loaded = snip_tf.load_model(str(tmp_path / "m.keras"), custom_objects={"Scale": Scale})
    restored = loaded.layers[0].w
    np.testing.assert_array_equal(snip_tf.masking.mask_of(restored), masks[custom.path])
    loaded.compile(optimizer="adam", loss=LOSS)
    loaded.fit(*data, epochs=1, verbose=0)
    assert not np.any(restored.numpy()[~masks[custom.path]])


def test_weights_must_name_trainable_variables():
    model, data = _custom_model()
    with pytest.raises(ValueError, match="not a variable"):
        snip_tf.prune(model, data, 0.5, weights=["nope/kernel"])
    with pytest.raises(ValueError, match="empty"):
        snip_tf.prune(model, data, 0.5, weights=[])
    assert not snip_tf.is_pruned(model)


def test_vit_class_token_is_reported_and_can_be_opted_in():
    hub = pytest.importorskip("keras_hub")
    backbone = hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4, num_layers=1,
                                      num_heads=2, hidden_dim=16, mlp_dim=32)
    model = hub.models.ViTImageClassifier(backbone=backbone, num_classes=3, preprocessor=None)
    model.compile(optimizer="sgd", loss=LOSS)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 16, 16, 3)).astype("float32"), rng.integers(0, 3, 4)
    token = next(v for v in model.trainable_variables if v.name == "class_token")
    # 16 of 3,379 parameters: under the 1 % threshold, so no warning, but the report names it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", snip_tf.UnrankedWeightsWarning)
        snip_tf.snip(model, (x, y), 0.5)
    assert token.path in [r.weight for r in snip_tf.sparsity_report(model).unranked]
    masks = snip_tf.prune(model, (x, y), 0.5, weights=[token] + snip_tf.prunable_weights(model))
    assert token.path in masks
    assert token.path not in [r.weight for r in snip_tf.sparsity_report(model).unranked]
