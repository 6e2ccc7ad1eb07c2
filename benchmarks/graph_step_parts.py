"""Where a bank's training step spends its time: the recurrence loops against everything else.

    python benchmarks/graph_step_parts.py [--variants gru] [--networks 50] [--networks_per_slot 8] [--steps 10] [--rounds 5]

The middle bank of ``--networks`` (drawn and sorted as ``benchmarks/graph_bank.py`` does, packed
``--networks_per_slot`` per slot) is trained, XLA-compiled, on ``--steps`` random batches of an
epoch in length buckets of 8, in two arms timed in interleaved rounds (medians):

* the bank's training step as the study runs it;
* the same step with every layer's recurrence replaced by one elementwise op on its projected
  input (no loop; the weights still get gradients), which leaves everything else: the
  embedding, the masked input projections of every layer (each layer reads all earlier
  layers, for the skip connections), the readout, the loss, the per-network clipping and Adam.

The difference is what the recurrence loops cost. It also prints the bank's weight entries
against its real connections (mask nonzeros), for the input kernels and the recurrent ones:
the input kernels of a packed slot span all of its networks' earlier units, so most of their
multiply-accumulates are on masked-out entries. And what dropping unused input rows would
leave: a layer's kernel rows (earlier units) that no connection of that layer uses, removed
slot by slot (each slot's kernel padded to the slot with the most rows left), or only those
that no slot uses.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from snip_tf.studies import network_bank as nb  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from graph_bank import compiled, middle_bank_arguments, middle_bank_setup  # noqa: E402


def no_recurrence(variant, x, keep, u, rb=None):
    """A stand-in for ``network_bank.recurrence`` with no loop: the first ``units`` columns of
    the projected input through tanh, with zero-weighted terms so that ``u`` and ``rb`` still
    receive (zero) gradients and the optimizer's work is unchanged."""
    units = u.shape[1]
    zero = 0.0 * tf.reduce_sum(u) + (0.0 * tf.reduce_sum(rb) if rb is not None else 0.0)
    return tf.tanh(x[..., :units]) + zero


def entries(masks):
    """(weight entries, nonzero mask entries) over a list of masks."""
    return (sum(int(np.prod(m.shape)) for m in masks),
            sum(int(np.count_nonzero(m.numpy())) for m in masks))


def unused_rows_dropped(masks):
    """Input-kernel entries left when each layer's kernel keeps only the rows some connection
    uses: (slot by slot, padded to the slot that keeps most; only rows no slot uses)."""
    per_slot = shared = 0
    for mask in masks:
        used = np.any(mask.numpy() != 0, axis=2)  # (slots, rows)
        slots, _, columns = mask.shape
        per_slot += slots * int(used.sum(axis=1).max()) * columns
        shared += slots * int(used.any(axis=0).sum()) * columns
    return per_slot, shared


def main():
    parser = middle_bank_arguments(argparse.ArgumentParser())
    parser.add_argument("--networks_per_slot", type=int, default=8)
    args = parser.parse_args()
    archs, data, sample = middle_bank_setup(args)
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    print(f"the middle bank of {len(archs)} of {args.pool} networks, {args.networks_per_slot} "
          f"per slot, buckets of 8; {args.steps} random batches (lengths "
          f"{sorted(int(t.shape[1]) for t, _ in sample)}) x {args.rounds} interleaved rounds, "
          f"medians; XLA; {os.cpu_count()} CPUs, TensorFlow intra-op threads: {threads}")
    for variant in args.variants.split(","):
        steps = {}
        for arm in ("training step", "without the recurrence loops"):
            bank = nb.NetworkBank(archs, variant, data.vocab_size, list(range(len(archs))),
                                  networks_per_slot=args.networks_per_slot)
            if arm != "training step":
                bank._recurrence = no_recurrence
            steps[arm] = compiled(nb.make_train_step(bank, keras.optimizers.Adam(1e-3), 5.0,
                                                     jit_compile=True), sample)
        kernel, kernel_real = entries(bank.kernel_masks)
        recurrent, recurrent_real = entries(bank.recurrent_masks)
        per_slot, shared = unused_rows_dropped(bank.kernel_masks)
        print(f"{variant}: {bank.packing.slots} slots, layers of widths {list(bank.widths)}; "
              f"input kernels {kernel:,} entries, {kernel_real:,} real connections "
              f"({kernel_real / kernel:.1%}); recurrent kernels {recurrent:,} entries, "
              f"{recurrent_real:,} real ({recurrent_real / recurrent:.1%}); input kernels "
              f"without unused rows: {per_slot:,} slot by slot ({kernel / per_slot:.2f}x "
              f"fewer), {shared:,} dropping only rows no slot uses ({kernel / shared:.2f}x)")
        times = {arm: [] for arm in steps}
        for r in range(args.rounds):
            for arm in list(steps) if r % 2 == 0 else list(steps)[::-1]:
                start = time.perf_counter()
                for tokens, labels in sample:
                    steps[arm](tokens, labels).numpy()
                times[arm].append((time.perf_counter() - start) / len(sample))
        full, rest = (statistics.median(times[arm]) for arm in steps)
        print(f"{variant}: ms per batch: training step {1e3 * full:.1f}, without the recurrence "
              f"loops {1e3 * rest:.1f}; the loops {1e3 * (full - rest):.1f} "
              f"({(full - rest) / full:.0%} of the step)")


if __name__ == "__main__":
    main()
