"""What one step of a bank's recurrence costs, by how many slots run it at once.

    python benchmarks/graph_recurrence.py [--variant gru] [--widths 16,32] [--slots 1,2,4,8,16,40] [--dtypes float32] [--rounds 5]

A ``NetworkBank`` runs each layer as one recurrence over its slots: ``(time, slots, batch,
width)``, forward and hand-written backward (``network_bank.recurrence``), XLA-compiled. Here that
recurrence runs alone on random inputs (25 time steps, batch 128), for every number of slots and
width, in interleaved rounds; it prints the median time per unit-step (one unit of one string at
one time step, forward and backward together) and per loop iteration.

Why: if a loop iteration had a large fixed cost, running all of a bank's layers in one recurrence
(a layer wavefront: layer l at time t - l, so a bank of L layers loops T + L - 1 times over
L times the slots instead of L times over T) would save it. The cost per unit-step at the slots
a bank has now (``--bank``: the slots of each layer of the study's middle bank, as
``benchmarks/graph_bank.py`` draws it) against that at L times as many bounds what a wavefront
could gain, before the delay lines its skip connections would need.

``--dtypes float32,bfloat16`` times the same recurrence in bfloat16 as well (inputs, weights and
states), to see whether this CPU's bfloat16 instructions (AVX512_BF16) make it cheaper.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from snip_tf.studies import graph_networks as gn  # noqa: E402
from snip_tf.studies import network_bank as nb  # noqa: E402

TIME, BATCH = 25, 128  # a bucketed batch of the thesis's strings is 8-48 steps long


def compiled_recurrence(variant, slots, width, dtype="float32"):
    """A function running the recurrence forward and backward on fixed random inputs."""
    gates = gn.GATES[variant]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(TIME, slots, BATCH, gates * width)), dtype)
    u = tf.constant(0.1 * rng.normal(size=(slots, width, gates * width)), dtype)
    rb = tf.zeros([slots, 1, gates * width], dtype)
    keep = tf.ones([TIME, 1, BATCH, 1], tf.bool)

    @tf.function(jit_compile=True)
    def run(x, u, rb):
        with tf.GradientTape() as tape:
            tape.watch([x, u, rb])
            h = nb.recurrence(variant, x, keep, u, rb)
            loss = tf.reduce_sum(h * h)
        return tape.gradient(loss, [x, u] + ([rb] if variant == "gru" else []))

    def call():
        for g in run(x, u, rb):
            g.numpy()

    call()  # compile
    return call


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="gru", choices=sorted(gn.GATES))
    parser.add_argument("--widths", default="16,32", help="units per slot of a layer")
    parser.add_argument("--slots", default="1,2,4,8,16,40")
    parser.add_argument("--dtypes", default="float32", help="e.g. float32,bfloat16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bank", type=int, default=30,
                        help="networks of the middle bank whose slots are printed")
    args = parser.parse_args()
    dtypes = args.dtypes.split(",")
    labelled = len(dtypes) > 1  # a dtype column only when there is more than one
    cases = [(k, w, dtype) for dtype in dtypes
             for w in map(int, args.widths.split(",")) for k in map(int, args.slots.split(","))]
    calls = {case: compiled_recurrence(args.variant, *case) for case in cases}
    times = {case: [] for case in cases}
    for r in range(args.rounds):
        for case in cases if r % 2 == 0 else cases[::-1]:
            start = time.perf_counter()
            calls[case]()
            times[case].append(time.perf_counter() - start)

    from graph_bank import middle_bank, sorted_pool

    archs = middle_bank(sorted_pool(150, np.random.default_rng(0)), args.bank)
    layout = nb.pack(archs, [16] * len(archs), 8)
    print(f"variant {args.variant}, {TIME} time steps, batch {BATCH}, forward + hand-written "
          f"backward, XLA; median of {args.rounds} interleaved rounds; {os.cpu_count()} CPUs")
    print(f"the middle bank of {args.bank} (8 networks per slot): {layout.slots} slots, "
          f"{len(layout.widths)} layers of widths {list(layout.widths)}")
    print(f"{'slots':>5s} {'width':>5s} {'us/iteration':>13s} {'ns/unit-step':>13s}"
          + (" dtype" if labelled else ""))
    for k, w, dtype in cases:
        t = statistics.median(times[(k, w, dtype)])
        print(f"{k:5d} {w:5d} {1e6 * t / (2 * TIME):13.1f} {1e9 * t / (TIME * k * BATCH * w):13.1f}"
              + (f" {dtype}" if labelled else ""))


if __name__ == "__main__":
    main()
