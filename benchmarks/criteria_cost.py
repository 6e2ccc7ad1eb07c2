"""Cost of each pruning criterion in units of one dense training step.

    python benchmarks/criteria_cost.py [--models lenet-5-caffe,vgg-like] [--repeats 3]

For each model: the median steady-state training step (batch 100 for LeNet-5-Caffe, 128 for
VGG-like), then the cold wall time of ``snip_tf.prune`` on a fresh model with each criterion
(tracing included), as a multiple of that step. For the iterative criteria also the marginal cost of
one more round: (time with R rounds - time with 1 round) / (R - 1), which stays near one
forward-backward pass because every round reuses one traced function.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import snip_tf  # noqa: E402
from snip_tf import criteria, models  # noqa: E402

SETUPS = {"lenet-5-caffe": ((28, 28, 1), 100), "vgg-like": ((32, 32, 3), 128)}


def fresh(name, shape):
    model = models.get(name, input_shape=shape)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def timed_prune(name, shape, data, criterion):
    model = fresh(name, shape)
    needs_data = criteria.get(criterion).needs_data
    start = time.perf_counter()
    snip_tf.prune(model, data if needs_data else None, 0.95, criterion=criterion)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="lenet-5-caffe,vgg-like")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"keras {keras.__version__}, {os.cpu_count()} CPUs, sparsity 0.95, "
          f"median of {args.repeats}\n")
    print("| model | dense step (ms) | criterion | prune, cold (s) | in dense steps | "
          "per extra round (steps) |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        shape, batch = SETUPS[name]
        x = rng.normal(size=(batch,) + shape).astype("float32")
        y = rng.integers(0, 10, batch)
        dense = fresh(name, shape)
        for _ in range(3):
            dense.train_on_batch(x, y)
        steps = []
        for _ in range(max(5, args.repeats)):
            start = time.perf_counter()
            dense.train_on_batch(x, y)
            steps.append(time.perf_counter() - start)
        step = statistics.median(steps)
        timed_prune(name, shape, (x, y), "snip")           # process-level warm-up
        for criterion in criteria.names():
            cold = statistics.median(timed_prune(name, shape, (x, y), criterion)
                                     for _ in range(args.repeats))
            extra = ""
            crit = criteria.get(criterion)
            if hasattr(crit, "rounds"):
                rounds = crit.rounds
                one = type(crit)(rounds=1)
                t1 = statistics.median(timed_prune(name, shape, (x, y), one)
                                       for _ in range(args.repeats))
                extra = f"{(cold - t1) / (rounds - 1) / step:.2f} ({rounds} rounds)"
            print(f"| {name} | {1e3 * step:.1f} | {criterion} | {cold:.2f} | {cold / step:.1f} | "
                  f"{extra} |", flush=True)


if __name__ == "__main__":
    main()
