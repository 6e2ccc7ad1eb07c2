"""Cost of SNIP pruning, measured side by side in one run (medians of interleaved repetitions).

(a) steady-state training-step time of the pruned model / the same dense model;
(b) cold wall time of a one-shot ``snip_tf.snip`` on a fresh model / cold wall time of a fresh
    model's first ``train_on_batch`` (both include tracing).

    python benchmarks/overhead.py [--repeats 7] [--steps 20]

Models: LeNet-5-Caffe (28x28x1), LSTM(128) and GRU(128) (28 steps of 28 features), batch 100.
Goals: (a) <= 1.05, (b) <= 0.75.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import snip_tf  # noqa: E402
from snip_tf import models  # noqa: E402

BATCH = 100


def lenet5():
    return models.get("lenet-5-caffe")


def recurrent(cls):
    def build():
        return keras.Sequential([keras.Input((28, 28)), cls(128), keras.layers.Dense(10)])
    return build


MODELS = {"LeNet-5-Caffe": (lenet5, (28, 28, 1)), "LSTM(128)": (recurrent(keras.layers.LSTM), (28, 28)),
          "GRU(128)": (recurrent(keras.layers.GRU), (28, 28))}


JIT_COMPILE = "auto"


def compiled(build):
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=JIT_COMPILE)
    return model


def time_steps(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--pairs", type=int, default=4, help="dense/pruned model pairs timed")
    parser.add_argument("--jit_compile", choices=["auto", "true", "false"], default="auto",
                        help="Keras compile(jit_compile=...): auto (Keras's default), XLA on, off")
    args = parser.parse_args()
    global JIT_COMPILE
    JIT_COMPILE = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    rng = np.random.default_rng(0)
    print(f"batch {BATCH}, sparsity {args.sparsity}, {args.repeats} interleaved repetitions, "
          f"{args.pairs} model pairs, {args.steps} steps per timing, jit_compile={args.jit_compile}; keras {keras.__version__}, {os.cpu_count()} CPUs\n")
    rows = []
    for name, (build, shape) in MODELS.items():
        x = rng.normal(size=(BATCH,) + shape).astype("float32")
        y = rng.integers(0, 10, BATCH)

        # (a) steady state. Step times of identical models differ by up to ~15 % from one
        # instance to the next (memory placement), so several dense/pruned pairs are built, in
        # alternating order, and all are timed round-robin in every repetition.
        pairs = []
        for i in range(args.pairs):
            keras.utils.set_random_seed(i)
            first, second = compiled(build), compiled(build)
            dense, pruned = (first, second) if i % 2 == 0 else (second, first)
            pruned.set_weights(dense.get_weights())
            snip_tf.snip(pruned, (x, y), args.sparsity)
            for model in (dense, pruned):
                time_steps(model, x, y, 3)                 # trace and warm up
            pairs.append((dense, pruned))
        ratios, dense_t, pruned_t = [], [], []
        for _ in range(args.repeats):
            d = statistics.mean(time_steps(dense, x, y, args.steps) for dense, _ in pairs)
            p = statistics.mean(time_steps(pruned, x, y, args.steps) for _, pruned in pairs)
            dense_t.append(d)
            pruned_t.append(p)
            ratios.append(p / d)

        # (b) cold one-shot SNIP vs cold first train_on_batch, fresh models each time.
        compiled(build).train_on_batch(x, y)             # process-level warm-up of both paths
        snip_tf.snip(compiled(build), (x, y), args.sparsity)
        cold, snip_s, first_s = [], [], []
        for _ in range(args.repeats):
            a, b = compiled(build), compiled(build)
            start = time.perf_counter()
            snip_tf.snip(a, (x, y), args.sparsity)
            s = time.perf_counter() - start
            start = time.perf_counter()
            b.train_on_batch(x, y)
            f = time.perf_counter() - start
            snip_s.append(s)
            first_s.append(f)
            cold.append(s / f)
        rows.append((name, statistics.median(dense_t) * 1e3, statistics.median(pruned_t) * 1e3,
                     statistics.median(ratios), statistics.median(snip_s) * 1e3,
                     statistics.median(first_s) * 1e3, statistics.median(cold)))

    print("| model | dense step (ms) | pruned step (ms) | (a) pruned/dense | snip (ms) | "
          "first train_on_batch (ms) | (b) snip/first step |")
    print("|---|---|---|---|---|---|---|")
    for name, d, p, ra, s, f, rb in rows:
        print(f"| {name} | {d:.1f} | {p:.1f} | {ra:.3f} | {s:.0f} | {f:.0f} | {rb:.2f} |")
    print("\ngoals: (a) <= 1.05, (b) <= 0.75; medians of per-repetition ratios")


if __name__ == "__main__":
    main()
