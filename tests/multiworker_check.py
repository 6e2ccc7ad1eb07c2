"""One worker of a 2-worker MultiWorkerMirroredStrategy run on 127.0.0.1 (run by
test_distributed.py as two processes). Usage: multiworker_check.py INDEX PORT0 PORT1 OUT.json

Each worker prunes with snip() on the first global batch (per-replica parts, gathered), checks that
its mask equals a single-device SNIP on that global batch, trains with a custom loop, and checks
that pruned weights stayed zero on its replica.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
index, port0, port1, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
    "task": {"type": "worker", "index": index}})

import hashlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import snip_tf  # noqa: E402

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=LOSS)
    return model


strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = build()
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8)).astype("float32")
y = rng.integers(0, 4, 64)
# Keras 3.15's fit() fails under MultiWorkerMirroredStrategy before any callback runs (its
# _maybe_symbolic_build reduces the first batch with "MEAN" and cannot), so this worker trains
# with a custom loop, as MultiWorkerMirroredStrategy users often do.
batches = iter(strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensor_slices((x, y)).batch(16)))
first = next(batches)                          # per-replica parts of the first global batch
masks = snip_tf.snip(model, first, 0.9)        # scored on the gathered global batch
gx, gy = strategy.gather(first[0], axis=0), strategy.gather(first[1], axis=0)
reference = build()
expected = snip_tf.snip(reference, (gx.numpy(), gy.numpy()), 0.9)
same = all((a == b).all() for a, b in zip(masks.values(), expected.values()))


@tf.function
def train_step(inputs):
    def replica_step(batch):
        bx, by = batch
        with tf.GradientTape() as tape:
            loss = LOSS(by, model(bx, training=True)) / strategy.num_replicas_in_sync
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    strategy.run(replica_step, args=(inputs,))


train_step(first)
for batch in batches:
    train_step(batch)
zeros = all((v.numpy()[~m] == 0).all()
            for v, m in zip(snip_tf.prunable_weights(model), expected.values()))
moved = any((v.numpy()[m] != w.numpy()[m]).any() for v, w, m in zip(
    snip_tf.prunable_weights(model), snip_tf.prunable_weights(reference), expected.values()))
digest = hashlib.sha256(b"".join(m.tobytes() for m in masks.values())).hexdigest()
with open(out, "w") as f:
    json.dump({"same_as_single_device": bool(same), "zeros_kept": bool(zeros),
               "trained": bool(moved), "global_batch": int(gx.shape[0]),
               "mask_sha256": digest}, f)
