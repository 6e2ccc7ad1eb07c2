"""Mixed precision: a mixed_float16 / mixed_bfloat16 model is scored in float32 and gets the float32
model's masks; its layers keep their own policies afterwards and it trains with the zeros held."""

import keras
import numpy as np
import pytest

import snip_tf

LOSS = keras.losses.SparseCategoricalCrossentropy()


def _mobilenet(policy, weights=None):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                               classes=10)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=LOSS)
    return model


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mobilenet_v2_mixed_precision_gets_the_float32_masks(policy):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 32, 32, 3)).astype("float32"), np.arange(16) % 10
    reference = _mobilenet("float32")
    model = _mobilenet(policy, reference.get_weights())
    expected = snip_tf.snip(reference, (x, y), 0.9)
    masks = snip_tf.snip(model, (x, y), 0.9)          # float16 alone: "every score is zero"
    differing = sum(int(np.sum(a != b)) for a, b in zip(masks.values(), expected.values()))
    total = sum(m.size for m in masks.values())
    assert differing <= 1e-4 * total                  # the float32 masks, up to rounding
    assert all(l.dtype_policy.name == policy for l in model.layers if l.weights)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for variable in snip_tf.prunable_weights(model):
        assert not np.any(variable.numpy()[~masks[variable.path]])


@pytest.mark.parametrize("criterion", ["grasp", "iterative_snip"])
def test_other_criteria_score_mixed_precision_models(criterion):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, dtype="float32")])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 12)).astype("float32"), np.arange(30) % 3
    masks = snip_tf.prune(model, (x, y), 0.5, criterion=criterion)
    assert 0.45 < 1 - sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values())
