"""Throughput of the graph study's trainers: one Keras model per network, a NetworkBank, and the
edge trainer.

    python benchmarks/graph_bank.py [--variant gru] [--networks 50] [--networks_per_slot 8] [--steps 10] [--rounds 3] [--padding_only]

Draws graphs as the study does (the three generators, 10-50 nodes), sorts them into banks of
``--networks`` by depth and size as the study does, and trains the middle bank
on the thesis's Reber data (batch 128, trailing padding trimmed for the bank, the full padded
width for Keras as ``fit`` sees it). Measures, in interleaved rounds, the median training-step
time per network: Keras one model at a time (a sample of the networks), and the bank
XLA-compiled with TensorFlow's gradient of the recurrence, with the hand-written backward pass,
with the hand-written pass on length-bucketed batches (``reber_batches.batches``), and the same
with ``--networks_per_slot`` networks packed side by side in each slot (``network_bank.pack``),
and the same networks one by one as ``EdgeNetwork``s (``edge_trainer``: compiled loops over each
network's own connections, one network per CPU at a time, timed as the wall time of all of
them), on uniform and on bucketed batches.
Prints
the time per epoch per network (from a random sample of each epoch's batches), the projected
throughput at the thesis's budget (15 epochs) and the time for the full study's 1,200 networks.
"""

import argparse
import concurrent.futures
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from snip_tf.studies import edge_trainer as edge  # noqa: E402
from snip_tf.studies import graph_networks as gn  # noqa: E402
from snip_tf.studies import network_bank as nb  # noqa: E402
from snip_tf.studies import reber_batches as rb  # noqa: E402
from snip_tf.studies import reber_common as rc  # noqa: E402

EPOCHS = 15  # the thesis's budget per network


def sorted_pool(size, rng):
    """As the study forms its banks: ``size`` networks (the three generators, 10-50 nodes)
    sorted by depth and size."""
    return sorted((gn.architecture(gn.random_graph(gn.GENERATORS[i % 3],
                                                   int(rng.integers(10, 51)), i))
                   for i in range(size)), key=nb.padding_key)


def middle_bank(pool, networks):
    """The bank of ``networks`` in the middle of the sorted pool: the one measured."""
    middle = (len(pool) // networks // 2) * networks
    return pool[middle:middle + networks]


def compiled(step, sample):
    """``step`` after one call on a batch of each length in ``sample``: XLA compiles once per
    batch shape, so that the timed calls compile nothing."""
    for length in sorted({int(t.shape[1]) for t, _ in sample}):
        step(*next((t, y) for t, y in sample if t.shape[1] == length))
    return step


def epoch_sample(data, steps, rng, bucket_width=8):
    """An epoch of ``data``'s training strings at batch 128 (in length buckets of
    ``bucket_width``; 0: uniform batches): its number of batches and ``steps`` of them drawn at
    random, the batches a benchmark times (their mean step time times the number of batches
    estimates the epoch's time)."""
    epoch = list(rb.batches(data.x_train, data.y_train, 128, 0, bucket_width))
    return len(epoch), [epoch[i] for i in rng.choice(len(epoch), steps, replace=False)]


def print_padding(pool, variant, networks_per_slot):
    """The arithmetic and the units of the padded bank layout over those of each network alone
    (``network_bank.padding_factor``), for banks of several sizes cut from the sorted pool, one
    network per slot and packed."""
    gates = gn.GATES[variant]
    real = sum(sum(map(len, a.layers)) for a in pool)
    for per_slot in sorted({1, networks_per_slot}):
        macs, units = [], []
        for size in (1, 5, 10, 20, 30, 50):
            banks = [pool[i:i + size] for i in range(0, len(pool), size)]
            macs.append(f"{size}: {nb.padding_factor(banks, gates, networks_per_slot=per_slot):.2f}x")
            layouts = [nb.pack(b, [16] * len(b), per_slot) for b in banks]
            units.append(f"{size}: {sum(l.units for l in layouts) / real:.2f}x")
        print(f"{per_slot} network(s) per slot, padded layout over each network alone, by bank "
              f"size ({len(pool)} networks, sorted): arithmetic " + ", ".join(macs) +
              "; units " + ", ".join(units))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="gru")
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--pool", type=int, default=300, help="networks the banks are cut from")
    parser.add_argument("--keras_sample", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="batches timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bucket_width", type=int, default=8)
    parser.add_argument("--networks_per_slot", type=int, default=8)
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    parser.add_argument("--padding_only", action="store_true",
                        help="print only the padded-arithmetic table (no data, no timing)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pool = sorted_pool(args.pool, rng)
    print_padding(pool, args.variant, args.networks_per_slot)
    if args.padding_only:
        return
    data = rc.load("thesis", args.data_dir)
    archs = middle_bank(pool, args.networks)
    uniform, bucketed = (epoch_sample(data, args.steps, rng, width)
                         for width in (0, args.bucket_width))
    # Keras sees the full padded width, as model.fit on the padded arrays does.
    keras_batches = [(data.x_train[i * 128:(i + 1) * 128],
                      data.y_train[i * 128:(i + 1) * 128].astype(np.int32))
                     for i in range(args.steps + 1)]
    keras_models = []
    for arch in archs[::max(1, len(archs) // args.keras_sample)][:args.keras_sample]:
        model = gn.build_model(arch, args.variant, data.vocab_size, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=5.0), loss=rc.LOSS)
        model.train_on_batch(*keras_batches[0])
        keras_models.append(model)

    def bank_step(backward, networks_per_slot=1):
        bank = nb.NetworkBank(archs, args.variant, data.vocab_size, list(range(len(archs))),
                              backward=backward, networks_per_slot=networks_per_slot)
        step = nb.make_train_step(bank, keras.optimizers.Adam(1e-3), 5.0, jit_compile=True)
        return step

    # name: (training step, its epoch's batches, the epoch's number of batches)
    trainers = {
        "bank-autodiff": (compiled(bank_step("autodiff"), uniform[1]), uniform[1], uniform[0]),
        "bank": (compiled(bank_step("bptt"), uniform[1]), uniform[1], uniform[0]),
    }
    step = compiled(bank_step("bptt"), bucketed[1])
    trainers[f"bank+buckets{args.bucket_width}"] = (step, bucketed[1], bucketed[0])
    step = compiled(bank_step("bptt", args.networks_per_slot), bucketed[1])
    trainers[f"...+packed{args.networks_per_slot}"] = (step, bucketed[1], bucketed[0])
    # The edge trainer: each network of the same bank alone, compiled loops over its own
    # connections, as many networks at a time as there are CPUs (threads); timed as the wall
    # time of the whole bank's networks on the sample.
    threads = os.cpu_count() or 1
    edge_batches = {"edge": (edge.Batches.stack(uniform[1]), uniform[0]),
                    f"edge+buckets{args.bucket_width}": (edge.Batches.stack(bucketed[1]),
                                                        bucketed[0])}
    init = nb.NetworkBank(archs, args.variant, data.vocab_size, list(range(len(archs))),
                          networks_per_slot=args.networks_per_slot)
    nets = [edge.EdgeNetwork.from_bank(init, k) for k in range(len(archs))]
    nets[0].train_epoch(edge_batches["edge"][0])  # compile
    executor = concurrent.futures.ThreadPoolExecutor(threads)
    epoch_times = {"keras": [], **{name: [] for name in trainers},
                   **{name: [] for name in edge_batches}}
    for _ in range(args.rounds):
        for name, (batches, batches_per_epoch) in edge_batches.items():
            start = time.perf_counter()
            list(executor.map(lambda net: net.train_epoch(batches), nets))
            epoch_times[name].append((time.perf_counter() - start) / len(batches)
                                     * batches_per_epoch / len(archs))
        per_model = []
        for model in keras_models:
            start = time.perf_counter()
            for x, y in keras_batches[1:]:
                model.train_on_batch(x, y)
            per_model.append((time.perf_counter() - start) / args.steps * uniform[0])
        epoch_times["keras"].append(statistics.median(per_model))
        for name, (step, sample, batches_per_epoch) in trainers.items():
            start = time.perf_counter()
            for tokens, labels in sample:
                step(tokens, labels).numpy()
            epoch_times[name].append((time.perf_counter() - start) / len(sample)
                                     * batches_per_epoch / len(archs))
    keras_time = statistics.median(epoch_times["keras"])
    depth = max(len(a.layers) for a in archs)
    print(f"variant {args.variant}, {len(archs)} networks (XLA-compiled bank, depth <= {depth} "
          f"of a sorted pool of {len(pool)}), {len(keras_models)} (Keras sample); "
          f"{args.steps} batches x {args.rounds} interleaved rounds; {os.cpu_count()} CPUs")
    print(f"batches per epoch: {uniform[0]} uniform, {bucketed[0]} bucketed "
          f"(width {args.bucket_width})")
    real = sum(sum(map(len, a.layers)) for a in archs) / len(archs)
    slots = sum(nb.pack(archs, [16] * len(archs)).widths)
    packed = nb.pack(archs, [16] * len(archs), args.networks_per_slot).units / len(archs)
    print(f"units per network: {real:.1f} real, {slots} in the bank's padded layout, "
          f"{packed:.1f} packed {args.networks_per_slot} per slot")
    print(f"{'trainer':16s} {'s/epoch/network':>16s} {'speed-up':>9s} {'networks/min':>13s} "
          f"{'1,200 networks (h)':>19s}")
    for name, values in epoch_times.items():
        per = statistics.median(values)
        rate = 60 / (per * EPOCHS)
        print(f"{name:16s} {per:16.3f} {keras_time / per:9.2f} {rate:13.2f} "
              f"{1200 / rate / 60:19.1f}")


if __name__ == "__main__":
    main()
