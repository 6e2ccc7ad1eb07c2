"""What cutting masked batches to their longest string saves in the Reber pruning study.

    python benchmarks/reber_masked_batches.py --data_dir=../shared/data [--variants gru,lstm] \
        [--rounds 3]

A masked network's padding steps carry its state over unchanged, so a batch can be cut anywhere
at or past its longest string without changing what the network computes. The study's batches of
32 were full width (49 steps on the thesis's data); ``reber_common`` now cuts each to its longest
string rounded up to a multiple of 8 (a mean of 32.8 symbols before rounding). Per variant, two
identically built models train one epoch each on the thesis's training set, full width ("full")
and cut ("cut"), in interleaved rounds after one untimed warm-up epoch each (tracing), then each
evaluates the test set the same two ways. Prints the median seconds per epoch and per test
evaluation, the ratio full / cut, and whether the two models' weights are still identical bit for
bit after all their epochs (same seed, same shuffles: they should be).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from snip_tf.studies import reber_common as rc  # noqa: E402


def full_width(x, y, seed, batch_size):
    """The study's batches before the change: shuffled, never cut."""
    return (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    parser.add_argument("--variants", default="gru,lstm")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = rc.load("thesis", args.data_dir)
    print(f"thesis data: {len(data.x_train)} training strings, width {data.x_train.shape[1]}; "
          f"batch 32; median of {args.rounds} interleaved rounds; {os.cpu_count()} CPUs, "
          f"TF intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}")
    print(f"{'variant':8s} {'full s/epoch':>12s} {'cut s/epoch':>12s} {'ratio':>6s}   "
          f"{'full s/test':>11s} {'cut s/test':>10s} {'ratio':>6s}  identical")
    for variant in args.variants.split(","):
        arms = {
            "full": (rc.build(variant, data, seed=0), full_width(data.x_train, data.y_train, 0, 32),
                     lambda m: m.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0)),
            "cut": (rc.build(variant, data, seed=0), rc.train_dataset(data, seed=0),
                    lambda m: rc.evaluate_test(m, data)),
        }
        fit, test = {arm: [] for arm in arms}, {arm: [] for arm in arms}
        for model, ds, evaluate in arms.values():  # warm-up: tracing
            model.fit(ds, epochs=1, verbose=0)
            evaluate(model)
        for r in range(args.rounds):
            for arm in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
                model, ds, evaluate = arms[arm]
                fit[arm].append(timed(lambda: model.fit(ds, epochs=1, verbose=0)))
                test[arm].append(timed(lambda: evaluate(model)))
        identical = all(np.array_equal(a, b) for a, b in
                        zip(*(arms[arm][0].get_weights() for arm in arms)))
        f, c = (statistics.median(fit[a]) for a in arms)
        tf_, tc = (statistics.median(test[a]) for a in arms)
        print(f"{variant:8s} {f:12.1f} {c:12.1f} {f / c:6.2f}   {tf_:11.2f} {tc:10.2f} "
              f"{tf_ / tc:6.2f}  {identical}", flush=True)


if __name__ == "__main__":
    main()
