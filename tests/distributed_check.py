"""Run as a script by test_distributed.py: MirroredStrategy over 2 logical CPU devices.

Checks that SNIP under the strategy gives the single-device mask for the same global batch, through
the callback (first batch fit draws) and through snip(), and that pruned weights stay zero on every
replica after training. Prints "OK" on success.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # noqa: E402
import numpy as np  # noqa: E402

import snip_tf  # noqa: E402

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=LOSS)
    return model


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 4, 64)
    keras.utils.set_random_seed(0)
    reference = build()
    weights = reference.get_weights()
    expected = snip_tf.snip(reference, (x[:16], y[:16]), 0.9)   # global batch of 16

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = build()
    model.set_weights(weights)
    callback = snip_tf.SNIPCallback(0.9)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model.fit(ds, epochs=2, verbose=0, callbacks=[callback])
    for got, want in zip(callback.masks.values(), expected.values()):
        assert (got == want).all(), "callback mask differs from the single-device mask"
    for variable, mask in zip(snip_tf.prunable_weights(model), expected.values()):
        replicas = getattr(variable.value, "values", None) or [variable.value]
        assert len(replicas) == 2, replicas
        for replica in replicas:
            assert (replica.numpy()[~mask] == 0).all(), "a pruned weight moved on a replica"

    with strategy.scope():
        direct = build()
    direct.set_weights(weights)
    masks = snip_tf.snip(direct, (x[:16], y[:16]), 0.9)
    assert all((a == b).all() for a, b in zip(masks.values(), expected.values()))
    direct.fit(ds, epochs=1, verbose=0)
    for variable, mask in zip(snip_tf.prunable_weights(direct), expected.values()):
        for replica in variable.value.values:
            assert (replica.numpy()[~mask] == 0).all()
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
