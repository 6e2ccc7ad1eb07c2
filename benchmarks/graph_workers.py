"""Banks at a time: one process with every CPU thread against ``--workers`` processes sharing them.

    python benchmarks/graph_workers.py [--variant gru] [--networks 50] [--networks_per_slot 8] [--workers 2] [--steps 10] [--rounds 3]

The graph study's ``--workers`` trains that many banks at once, each in its own process with an
equal share of the threads. This measures what that gains: the middle bank of a sorted pool (as
``benchmarks/graph_bank.py`` draws it) trains ``--steps`` length-bucketed batches (a) in one
process with all threads, (b) in ``--workers`` processes at once, each on its own copy of the bank.
The processes are started and compiled once; then the two alternate for ``--rounds`` rounds.
Prints the median time of each and the throughput ratio: (b) does ``--workers`` times the work
of (a) in its time.
"""

import argparse
import multiprocessing
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def serve(args, threads, commands, replies):
    """A process holding one compiled bank: on each command, trains the batches and replies
    with the seconds they took."""
    from snip_tf.studies import graph_architectures as ga

    ga.use_threads(threads)
    import keras
    import numpy as np

    from graph_bank import epoch_sample, middle_bank, sorted_pool
    from snip_tf.studies import network_bank as nb
    from snip_tf.studies import reber_common as rc

    rng = np.random.default_rng(0)
    archs = middle_bank(sorted_pool(args.pool, rng), args.networks)
    data = rc.load("thesis", args.data_dir)
    batches, sample = epoch_sample(data, args.steps, rng, args.bucket_width)
    bank = nb.NetworkBank(archs, args.variant, data.vocab_size, list(range(len(archs))),
                          networks_per_slot=args.networks_per_slot)
    step = nb.make_train_step(bank, keras.optimizers.Adam(1e-3), 5.0, jit_compile=True)
    for tokens, labels in sample:  # compile every batch length
        step(tokens, labels).numpy()
    replies.put(("ready", batches))
    while commands.get():
        start = time.perf_counter()
        for tokens, labels in sample:
            step(tokens, labels).numpy()
        replies.put(("done", time.perf_counter() - start))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="gru")
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--networks_per_slot", type=int, default=8)
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="batches timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bucket_width", type=int, default=8)
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    replies = context.Queue()
    groups = {"one process": [cpus], f"{args.workers} processes": [
        max(1, cpus // args.workers)] * args.workers}
    processes, commands = [], {}
    for name, threads in groups.items():
        commands[name] = []
        for t in threads:
            queue = context.Queue()
            process = context.Process(target=serve, args=(args, t, queue, replies))
            process.start()
            processes.append(process)
            commands[name].append(queue)
    batches = [replies.get()[1] for _ in processes][0]
    times = {name: [] for name in groups}
    for _ in range(args.rounds):
        for name, queues in commands.items():
            start = time.perf_counter()
            for queue in queues:
                queue.put(True)
            for _ in queues:
                replies.get()
            times[name].append(time.perf_counter() - start)
    for queues in commands.values():
        for queue in queues:
            queue.put(False)
    for process in processes:
        process.join()
    one, many = (statistics.median(v) for v in times.values())
    print(f"variant {args.variant}, a bank of {args.networks} networks, {args.networks_per_slot} "
          f"per slot, {args.steps} bucketed batches (width {args.bucket_width}) x "
          f"{args.rounds} interleaved rounds; {cpus} CPUs")
    print(f"one process, {cpus} threads: {one:.2f} s for one bank's batches")
    print(f"{args.workers} processes, {max(1, cpus // args.workers)} thread(s) each: {many:.2f} s "
          f"for {args.workers} banks' batches")
    ratio = args.workers * one / many
    per_epoch = many / args.workers / args.steps * batches / args.networks
    print(f"throughput with {args.workers} processes: {ratio:.2f}x that of one; "
          f"{per_epoch:.3f} s per epoch per network, {60 / (per_epoch * 15):.2f} networks/min "
          f"at 15 epochs")


if __name__ == "__main__":
    main()
