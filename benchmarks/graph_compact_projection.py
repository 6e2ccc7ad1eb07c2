"""Would per-network input kernels, cut to the rows each network uses, make a bank's step faster?

    python benchmarks/graph_compact_projection.py [--variants gru] [--networks 50] [--steps 10] [--rounds 5]

A packed slot's input kernel spans all of its networks' earlier units, and most of its entries
are masked out (``benchmarks/graph_step_parts.py``). ``CompactBank`` gives each network its own
kernel instead, ``(networks, rows, columns)``, over only the earlier units some connection of
that network's layer uses, padded to the bank's most: one batched matmul over networks, between
a gather of each network's rows from the slot layout and a gather of its columns back into it.
Both gathers are one-to-one apart from padding, so their gradients are gathers too (no
scatter). It computes exactly what ``NetworkBank`` does: the benchmark checks that the two
banks, from the same initial weights, give the same logits and the same losses on every timed
step.

The middle bank of ``--networks`` (drawn and sorted as ``benchmarks/graph_bank.py`` does, 8
networks per slot, buckets of 8, XLA) is trained both ways on ``--steps`` random batches of an
epoch, in interleaved rounds (medians).
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


def one_to_one_gather(values, index, inverse):
    """``values[:, index]`` (axis 1), where ``index`` takes each column at most once apart from
    ``values``' last column, a zero one that padding reads; its gradient is the gather of the
    incoming gradient (with a zero column appended) through ``inverse``."""
    @tf.custom_gradient
    def gather(values):
        def grad(upstream):
            upstream = tf.concat([upstream, tf.zeros_like(upstream[:, :1])], axis=1)
            return tf.gather(upstream, inverse, axis=1)
        return tf.gather(values, index, axis=1), grad
    return gather(values)


def inverse_of(index, size):
    """For each of ``size`` source columns (the last: the zero one), the position that reads it,
    or ``len(index)`` (a zero appended to the gradient) if none does."""
    inverse = np.full(size, len(index), np.int32)
    for position, column in enumerate(index):
        if column != size - 1:
            if inverse[column] != len(index):
                raise ValueError(f"column {column} is read twice: not a one-to-one gather.")
            inverse[column] = position
    return inverse


def with_zero_row(values):
    """(time, rows, batch) with a zero row appended: what padding reads."""
    return tf.concat([values, tf.zeros_like(values[:, :1])], axis=1)


class CompactBank(nb.NetworkBank):
    """A ``NetworkBank`` whose input projections use per-network kernels of the rows in use.
    The bank's slot-layout kernels stay, untrained, as the source of the initial values."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if max(self.cell_counts) > 1:
            raise ValueError("CompactBank supports one cell per layer (skips='input') only.")
        self.maps, self.compact, self.compact_masks = [], [], []
        networks = self.size
        for l, kernel in enumerate(self.kernels):
            mask, owner = self.kernel_masks[l].numpy(), self.owners(kernel).numpy()
            value = kernel.numpy()
            slots, rows, columns = mask.shape
            used_rows, own_columns = [], []
            for k, place in enumerate(self.placements):
                mine = owner[place.slot] == k
                used_rows.append(np.flatnonzero((mask[place.slot] * mine).any(axis=1)))
                own_columns.append(np.flatnonzero(mine.any(axis=0)))
            width = max(map(len, used_rows)), max(map(len, own_columns))
            row_index = np.full((networks, width[0]), slots * rows, np.int32)
            column_index = np.full((slots, columns), networks * width[1], np.int32)
            initial = np.zeros((networks, *width), np.float32)
            compact_mask = np.zeros_like(initial)
            for k, place in enumerate(self.placements):
                r, c, s = used_rows[k], own_columns[k], place.slot
                row_index[k, :len(r)] = s * rows + r
                column_index[s, c] = k * width[1] + np.arange(len(c))
                initial[k, :len(r), :len(c)] = value[s][np.ix_(r, c)]
                compact_mask[k, :len(r), :len(c)] = mask[s][np.ix_(r, c)]
            row_index, column_index = row_index.ravel(), column_index.ravel()
            self.maps.append((row_index, inverse_of(row_index, slots * rows + 1), column_index,
                              inverse_of(column_index, networks * width[1] + 1), width))
            variable = self.add_weight(name=f"compact_kernel{l}", shape=initial.shape,
                                       initializer=keras.initializers.Constant(initial))
            self._owners[id(variable)] = tf.constant(np.broadcast_to(
                np.arange(networks, dtype=np.int32)[:, None, None], initial.shape))
            self.compact.append(variable)
            self.compact_masks.append(tf.constant(compact_mask))
            kernel.trainable = False

    def _project(self, layer, inputs):
        row_index, row_inverse, column_index, column_inverse, (rows, columns) = self.maps[layer]
        shape = tf.shape(inputs)  # (time, slots, batch, slot rows)
        time_steps, batch, slots = shape[0], shape[2], shape[1]
        # Units outermost, so that each gathered row is one contiguous batch of values.
        values = tf.reshape(tf.transpose(inputs, [0, 1, 3, 2]), [time_steps, -1, batch])
        values = one_to_one_gather(with_zero_row(values), row_index, row_inverse)
        values = tf.reshape(values, [time_steps, self.size, rows, batch])
        projected = tf.einsum("tnrb,nrc->tncb", values,
                              self.compact[layer] * self.compact_masks[layer])
        projected = tf.reshape(projected, [time_steps, self.size * columns, batch])
        projected = one_to_one_gather(with_zero_row(projected), column_index, column_inverse)
        projected = tf.reshape(projected, [time_steps, slots, -1, batch])
        return tf.transpose(projected, [0, 1, 3, 2])


def entries(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def main():
    args = middle_bank_arguments(argparse.ArgumentParser()).parse_args()
    archs, data, sample = middle_bank_setup(args)
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    print(f"the middle bank of {len(archs)} of {args.pool} networks, 8 per slot, buckets of 8; "
          f"{args.steps} random batches x {args.rounds} interleaved rounds, medians; XLA; "
          f"{os.cpu_count()} CPUs, TensorFlow intra-op threads: {threads}")
    for variant in args.variants.split(","):
        banks = {name: cls(archs, variant, data.vocab_size, list(range(len(archs))),
                           networks_per_slot=8)
                 for name, cls in (("slot kernels", nb.NetworkBank),
                                   ("per-network kernels", CompactBank))}
        first, second = banks.values()
        difference = float(tf.reduce_max(tf.abs(first(sample[0][0]) - second(sample[0][0]))))
        print(f"{variant}: input kernel entries {entries(first.kernels):,} in slot kernels, "
              f"{entries(second.compact):,} per network "
              f"({entries(first.kernels) / entries(second.compact):.2f}x fewer); "
              f"largest logit difference at initialization {difference:.1e}")
        steps = {name: compiled(nb.make_train_step(bank, keras.optimizers.Adam(1e-3), 5.0,
                                                   jit_compile=True), sample)
                 for name, bank in banks.items()}
        times = {name: [] for name in steps}
        largest_loss_difference = 0.0
        for r in range(args.rounds):
            losses = {}
            for name in list(steps) if r % 2 == 0 else list(steps)[::-1]:
                start = time.perf_counter()
                losses[name] = [steps[name](tokens, labels).numpy() for tokens, labels in sample]
                times[name].append((time.perf_counter() - start) / len(sample))
            largest_loss_difference = max(largest_loss_difference, float(np.max(np.abs(
                np.array(losses["slot kernels"]) - np.array(losses["per-network kernels"])))))
        slot, compact = (statistics.median(times[name]) for name in steps)
        print(f"{variant}: ms per batch: slot kernels {1e3 * slot:.1f}, per-network kernels "
              f"{1e3 * compact:.1f} ({slot / compact:.2f}x the speed); largest difference in "
              f"a network's loss over the {args.rounds * args.steps} steps "
              f"{largest_loss_difference:.1e}")


if __name__ == "__main__":
    main()
