"""Throughput of the graph study's trainers: one Keras model per network against a NetworkBank.

    python benchmarks/graph_bank.py [--variant gru] [--networks 50] [--steps 10] [--rounds 3]

Draws graphs as the study does (the three generators, 10-50 nodes), sorts them into banks of
``--networks`` by depth and size as the study does, and trains the middle bank
on the thesis's Reber data (batch 128, trailing padding trimmed for the bank, the full padded
width for Keras as ``fit`` sees it). Measures, in interleaved rounds, the median training-step
time per network: Keras one model at a time (a sample of the networks), the bank eagerly
traced, and the bank XLA-compiled. Prints the projected throughput at the thesis's budget
(15 epochs of 147 steps) and the time for the full study's 1,200 networks.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from snip_tf.studies import graph_networks as gn  # noqa: E402
from snip_tf.studies import network_bank as nb  # noqa: E402
from snip_tf.studies import reber_common as rc  # noqa: E402

STEPS_PER_NETWORK = 15 * 147  # thesis: 15 epochs of 18,750 strings at batch 128


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="gru")
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--pool", type=int, default=300, help="networks the banks are cut from")
    parser.add_argument("--keras_sample", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    args = parser.parse_args()
    data = rc.load("thesis", args.data_dir)
    rng = np.random.default_rng(0)
    # As the study forms its banks: a pool of networks sorted by depth and size, cut into banks;
    # the measured bank is the middle one.
    pool = sorted((gn.architecture(gn.random_graph(gn.GENERATORS[i % 3],
                                                   int(rng.integers(10, 51)), i))
                   for i in range(args.pool)), key=nb.padding_key)
    middle = (len(pool) // args.networks // 2) * args.networks
    archs = pool[middle:middle + args.networks]
    batches = [(data.x_train[i * 128:(i + 1) * 128], data.y_train[i * 128:(i + 1) * 128]
                .astype(np.int32)) for i in range(args.steps + 1)]

    keras_models = []
    for arch in archs[::max(1, len(archs) // args.keras_sample)][:args.keras_sample]:
        model = gn.build_model(arch, args.variant, data.vocab_size, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=5.0), loss=rc.LOSS)
        model.train_on_batch(*batches[0])
        keras_models.append(model)

    def bank_step(jit):
        bank = nb.NetworkBank(archs, args.variant, data.vocab_size, list(range(len(archs))))
        step = nb.make_train_step(bank, keras.optimizers.Adam(1e-3), 5.0, jit_compile=jit)
        trimmed = [(nb.trim(tf.constant(x)), tf.constant(y)) for x, y in batches]
        for length in sorted({int(t.shape[1]) for t, _ in trimmed}):  # compile every shape
            step(*next((t, y) for t, y in trimmed if t.shape[1] == length))
        return step, trimmed

    banks = {"bank": bank_step(False), "bank-xla": bank_step(True)}
    times = {"keras": [], "bank": [], "bank-xla": []}
    for _ in range(args.rounds):
        per_model = []
        for model in keras_models:
            start = time.perf_counter()
            for x, y in batches[1:]:
                model.train_on_batch(x, y)
            per_model.append((time.perf_counter() - start) / args.steps)
        times["keras"].append(statistics.median(per_model))
        for name, (step, trimmed) in banks.items():
            start = time.perf_counter()
            for tokens, labels in trimmed[1:]:
                step(tokens, labels).numpy()
            times[name].append((time.perf_counter() - start) / args.steps / len(archs))
    keras_time = statistics.median(times["keras"])
    depth = max(len(a.layers) for a in archs)
    print(f"variant {args.variant}, {len(archs)} networks (bank, depth <= {depth} "
          f"of a sorted pool of {len(pool)}), {len(keras_models)} "
          f"(Keras sample), {args.steps} steps x {args.rounds} interleaved rounds; "
          f"{os.cpu_count()} CPUs")
    print(f"{'trainer':10s} {'s/step/network':>15s} {'speed-up':>9s} {'networks/min':>13s} "
          f"{'1,200 networks (h)':>19s}")
    for name, values in times.items():
        per = statistics.median(values)
        rate = 60 / (per * STEPS_PER_NETWORK)
        print(f"{name:10s} {per:15.4f} {keras_time / per:9.2f} {rate:13.2f} "
              f"{1200 / rate / 60:19.1f}")


if __name__ == "__main__":
    main()
