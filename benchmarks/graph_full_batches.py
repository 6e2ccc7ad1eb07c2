"""What the XLA compiles cost a bank of the graph study, and what full batches save.

    python benchmarks/graph_full_batches.py [--variant gru] [--bank middle|deepest] [--networks 30] [--epochs 3] [--rounds 2]

An XLA-compiled training step compiles once per batch shape, in the first epoch. On the thesis's
data in length buckets of 8 an epoch has batches of 10 shapes, 4 of them only in partial
batches of lengths that also have full ones; ``network_bank.batches(full_batches=True)`` (the
study's ``--full_batches``) fills those 4 up to 128 rows with filler that no loss counts,
leaving 6 shapes.

One bank of ``--networks`` networks, cut from a pool drawn and sorted as the study does
(``graph_bank.py``'s pool; ``--bank``: its middle bank or its deepest), trains for ``--epochs``
with and without full batches, each run in a fresh process with one thread, as a study worker,
one run at a time (two side by side do not share the CPU evenly), in the order A B, B A, ...
for ``--rounds`` rounds. Prints, per setting, the median time of the first epoch (with its
compiles), of the later epochs but the last, and of the last (with the test pass), and the
bank's projected time for the study's 15 epochs.
"""

import argparse
import concurrent.futures
import multiprocessing
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

STUDY_EPOCHS = 15


def pick_bank(args):
    import numpy as np

    from graph_bank import middle_bank, sorted_pool

    pool = sorted_pool(args.pool, np.random.default_rng(args.seed))
    if args.bank == "deepest":
        return pool[-args.networks:]
    return middle_bank(pool, args.networks)


def train_once(args, full_batches):
    """Train the bank in this (fresh) process; returns each epoch's seconds and the number of
    distinct batch shapes of an epoch."""
    from snip_tf.studies import graph_architectures as ga

    ga.use_threads(1)
    from snip_tf.studies import network_bank as nb
    from snip_tf.studies import reber_common as rc

    data = rc.load("thesis", args.data_dir, seed=args.seed)
    archs = pick_bank(args)
    bank = nb.NetworkBank(archs, args.variant, data.vocab_size, list(range(len(archs))),
                          networks_per_slot=args.networks_per_slot)
    stamps = [time.perf_counter()]
    nb.train(bank, data.x_train, data.y_train, data.x_test, data.y_test, epochs=args.epochs,
             seed=args.seed, jit_compile=True, bucket_width=args.bucket_width,
             full_batches=full_batches, log=lambda _: stamps.append(time.perf_counter()))
    # Counted after training, so that the timed epochs follow nothing but the bank's set-up,
    # as in the study.
    shapes = {tuple(t.shape) for t, _ in nb.batches(data.x_train, data.y_train, 128, args.seed,
                                                    args.bucket_width, full_batches)}
    return [b - a for a, b in zip(stamps, stamps[1:])], len(shapes), max(
        len(a.layers) for a in archs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="gru")
    parser.add_argument("--bank", choices=["middle", "deepest"], default="middle")
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--pool", type=int, default=300, help="networks drawn and sorted")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--networks_per_slot", type=int, default=8)
    parser.add_argument("--bucket_width", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: the first compiles, the last tests.")

    settings = {"partial batches": False, "full batches": True}
    epochs = {name: [] for name in settings}
    shapes, depth = {}, 0
    context = multiprocessing.get_context("spawn")
    for round_ in range(args.rounds):
        for name in list(settings)[::1 if round_ % 2 == 0 else -1]:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                times, shapes[name], depth = pool.submit(train_once, args,
                                                         settings[name]).result()
            epochs[name].append(times)
            print(f"round {round_ + 1}, {name}: epochs " +
                  ", ".join(f"{t:.1f}" for t in times) + " s", flush=True)

    print(f"{args.variant}: the {args.bank} bank of {args.networks} networks (depth <= {depth}) "
          f"of {args.pool} drawn and sorted as the study does, {args.networks_per_slot} per "
          f"slot, buckets of {args.bucket_width}, seed {args.seed}; {args.epochs} epochs, "
          f"{args.rounds} rounds, one fresh process of one thread at a time "
          f"({os.cpu_count()} CPUs)")
    first, projected = {}, {}
    for name, runs in epochs.items():
        first[name] = statistics.median(r[0] for r in runs)
        middle = statistics.median(t for r in runs for t in r[1:-1])
        last = statistics.median(r[-1] for r in runs)
        projected[name] = first[name] + (STUDY_EPOCHS - 2) * middle + last
        print(f"{name}: {shapes[name]} batch shapes per epoch; first epoch {first[name]:.1f} s, "
              f"later epochs {middle:.1f} s, last (with the test pass) {last:.1f} s; "
              f"{STUDY_EPOCHS} epochs projected {projected[name]:.0f} s")
    print(f"full batches over partial: "
          f"{projected['full batches'] / projected['partial batches']:.3f} of the time "
          f"(first epoch: {first['full batches'] / first['partial batches']:.3f})")


if __name__ == "__main__":
    main()
