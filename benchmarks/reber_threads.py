"""How many TensorFlow threads a Reber pruning study should use on this machine's 2 cores.

    python benchmarks/reber_threads.py --data_dir=../shared/data [--variants rnn-tanh,gru] \
        [--rounds 3]

Three arms per variant, in interleaved rounds, each in fresh processes (TensorFlow fixes its
thread pools at start-up): one process with 2 intra-op threads ("2 threads"), one with 1 ("1
thread"), and two 1-thread processes at once ("2 x 1 thread", what running two studies side by
side does). Each process builds the study's network (seed 0), trains one untimed epoch on the
thesis's training set (it traces every batch shape) and then one timed epoch, on the study's own
batches of 32 (``reber_common.train_dataset``). Prints the median seconds per epoch of each arm
and the throughput, epochs per minute over all the arm's processes, relative to "2 threads".

It asks why an RNN-Tanh epoch gained nothing from cut batches (20.5 s with the CPU to itself,
``results/reber_masked_batches_benchmark.txt``) while it took 13.7 s with one thread beside
another run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def child(variant, data_dir, train_limit):
    import time

    from snip_tf.studies import reber_common as rc

    data = rc.load("thesis", data_dir, train_limit=train_limit)
    model = rc.build(variant, data, seed=0)
    batches = rc.train_dataset(data, seed=0)
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run_processes(variant, threads, copies, args):
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, __file__, "--child", variant, "--train_limit",
               str(args.train_limit)] + (["--data_dir", args.data_dir] if args.data_dir else [])
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    seconds = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{variant} with {threads} thread(s) failed ({proc.returncode}).")
        seconds.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    return seconds


ARMS = {"2 threads": (2, 1), "1 thread": (1, 1), "2 x 1 thread": (1, 2)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    parser.add_argument("--variants", default="rnn-tanh,gru")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train_limit", type=int, default=0, help="0: the whole training set")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.data_dir, args.train_limit)
    print(f"thesis data{f' (first {args.train_limit} strings)' if args.train_limit else ''}, "
          f"batch 32, cut batches; median of {args.rounds} interleaved rounds; "
          f"{os.cpu_count()} CPUs; a fresh process per epoch timed")
    print(f"{'variant':8s} {'arm':14s} {'s/epoch':>8s} {'epochs/min':>10s} {'vs 2 threads':>12s}")
    for variant in args.variants.split(","):
        times = {arm: [] for arm in ARMS}
        for r in range(args.rounds):
            order = list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]
            for arm in order:
                times[arm].append(run_processes(variant, *ARMS[arm], args))
        rate = {}
        for arm, (_, copies) in ARMS.items():
            per_epoch = statistics.median(s for round_ in times[arm] for s in round_)
            rate[arm] = 60 * copies / per_epoch
            print(f"{variant:8s} {arm:14s} {per_epoch:8.1f} {rate[arm]:10.2f} "
                  f"{rate[arm] / rate['2 threads']:12.2f}", flush=True)


if __name__ == "__main__":
    main()
