"""Does a bigger bank train each network faster? Time per network-step against bank size.

    python benchmarks/graph_bank_size.py [--variant gru] [--sizes 24,48,96] [--steps 10] [--rounds 3]

The study trains its networks in banks of ``--bank_size`` (30 in the committed runs). A bigger
bank spreads a step's fixed costs (each loop iteration's, each op's) over more networks, but
spans more depths and widths of the sorted pool, so it pads more. For each size, the bank of
that many networks at the middle of a pool of 300 (drawn and sorted as the study does; 8
networks per slot, buckets of 8, XLA) is trained on the same ``--steps`` random batches of an
epoch, the sizes in interleaved rounds (medians); printed per step and per network-step.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from snip_tf.studies import network_bank as nb  # noqa: E402
from snip_tf.studies import reber_common as rc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from graph_bank import compiled, epoch_sample, sorted_pool  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="gru")
    parser.add_argument("--sizes", default="24,48,96")
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--steps", type=int, default=10, help="batches timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not sizes or min(sizes) < 1 or max(sizes) > args.pool:
        raise SystemExit(f"--sizes must be between 1 and --pool ({args.pool}); got {sizes}.")
    rng = np.random.default_rng(0)
    pool = sorted_pool(args.pool, rng)
    data = rc.load("thesis", args.data_dir)
    _, sample = epoch_sample(data, args.steps, rng)
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    print(f"{args.variant}: the bank of each size at the middle of {args.pool} sorted networks, "
          f"8 per slot, buckets of 8; {args.steps} random batches x {args.rounds} interleaved "
          f"rounds, medians; XLA; {os.cpu_count()} CPUs, TensorFlow intra-op threads: {threads}")
    steps = {}
    for size in sizes:
        first = len(pool) // 2 - size // 2
        archs = pool[first:first + size]
        bank = nb.NetworkBank(archs, args.variant, data.vocab_size, list(range(size)),
                              networks_per_slot=8)
        depths = [len(a.layers) for a in archs]
        print(f"bank of {size}: depths {min(depths)}-{max(depths)}, {bank.packing.slots} slots, "
              f"layer widths {list(bank.widths)}")
        steps[size] = compiled(nb.make_train_step(bank, keras.optimizers.Adam(1e-3), 5.0,
                                                  jit_compile=True), sample)
    times = {size: [] for size in sizes}
    for r in range(args.rounds):
        for size in sizes if r % 2 == 0 else sizes[::-1]:
            start = time.perf_counter()
            for tokens, labels in sample:
                steps[size](tokens, labels).numpy()
            times[size].append((time.perf_counter() - start) / len(sample))
    for size in sizes:
        step = statistics.median(times[size])
        print(f"bank of {size}: {1e3 * step:.1f} ms per step, {1e3 * step / size:.2f} ms per "
              f"network-step")


if __name__ == "__main__":
    main()
