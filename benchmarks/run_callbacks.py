"""Per-step cost of the callbacks a long run carries (``training.run``): stop at an iteration,
the authors' checkpoints, progress lines. Each acts on the optimizer's step count; the run shares
one ``IterationClock`` among them instead of letting each read the variable every step.

    python benchmarks/run_callbacks.py [--repeats 7] [--steps 2000]

Interleaved in each repetition: ``fit`` on LeNet-300-100 (batch 100, synthetic data) with no
callbacks, with the three reading the optimizer's variable themselves, and with the three sharing
a clock. Reports the median step time of each and the medians of the per-repetition ratios to the
run without callbacks. No checkpoint or progress line falls inside the timed steps, so what is
timed is the per-step bookkeeping alone.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from snip_tf import models, training  # noqa: E402

BATCH = 100


def callbacks(kind: str) -> list:
    if kind == "none":
        return []
    clock = training.IterationClock() if kind == "clock" else None
    far = 10 ** 9  # checkpoints, progress lines and the stop outside the timed steps
    return ([clock] if clock else []) + [
        training.StopAtIteration(far, clock=clock),
        training.CheckpointEvaluation(far, far, 1, None, [], clock=clock),
        training.ProgressLine("bench", far, far, log=lambda line: None, clock=clock)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.steps * BATCH, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, args.steps * BATCH)
    keras.utils.set_random_seed(0)
    model = models.get("lenet-300-100")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:10 * BATCH], y[:10 * BATCH], batch_size=BATCH, verbose=0)  # trace, warm up
    kinds = ("none", "three reads", "clock")
    times = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for kind in kinds:
            start = time.perf_counter()
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False,
                      callbacks=callbacks(kind))
            times[kind].append((time.perf_counter() - start) / args.steps)
    print(f"LeNet-300-100, batch {BATCH}, {args.steps} steps per fit, {args.repeats} interleaved "
          f"repetitions; keras {keras.__version__}, {os.cpu_count()} CPUs\n")
    print("| callbacks | step (ms) | / none |")
    print("|---|---|---|")
    for kind in kinds:
        ratio = statistics.median(t / n for t, n in zip(times[kind], times["none"]))
        print(f"| {kind} | {1e3 * statistics.median(times[kind]):.3f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
