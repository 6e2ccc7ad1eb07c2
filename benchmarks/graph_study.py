"""Throughput of the graph study's two trainers: each network as its Keras model (the reference,
one at a time) and as an ``EdgeNetwork`` (the default: compiled loops over its own connections,
one network per CPU at a time).

    python benchmarks/graph_study.py [--variant gru] [--networks 50] [--steps 10] [--rounds 3]

Draws ``--networks`` graphs as the study does (the three generators, 10-50 nodes) and measures,
in interleaved rounds, the training time per epoch per network on the thesis's Reber data
(batch 128): Keras on a sample of the networks, one model at a time (``StructureAdam``, the
study's Keras trainer, on uniform batches cut to their longest string), and the edge trainer on
all of them, on uniform and on length-bucketed batches (``reber_batches.batches``), timed as the
wall time of all the networks. Each epoch's time is estimated from ``--steps`` batches drawn at
random from it. Prints the time per epoch per network, the speed-up over Keras, the projected
throughput at the thesis's budget (15 epochs) and the time for the full study's 1,200 networks.
"""

import argparse
import concurrent.futures
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from snip_tf.studies import edge_trainer as edge  # noqa: E402
from snip_tf.studies import graph_networks as gn  # noqa: E402
from snip_tf.studies import reber_batches as rb  # noqa: E402
from snip_tf.studies import reber_common as rc  # noqa: E402

EPOCHS = 15  # the thesis's budget per network


def epoch_sample(data, steps, rng, bucket_width=0):
    """An epoch of ``data``'s training strings at batch 128 (in length buckets of
    ``bucket_width``; 0: uniform batches): its number of batches and ``steps`` of them drawn at
    random, the batches a benchmark times."""
    epoch = [(t.numpy(), y.numpy()) for t, y in rb.batches(data.x_train, data.y_train, 128, 0,
                                                           bucket_width)]
    return len(epoch), [epoch[i] for i in rng.choice(len(epoch), steps, replace=False)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="gru")
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--keras_sample", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="batches timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bucket_width", type=int, default=8)
    parser.add_argument("--data_dir", default=os.environ.get("SNIP_TF_DATA_DIR"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = rc.load("thesis", args.data_dir)
    archs = [gn.architecture(gn.random_graph(gn.GENERATORS[i % 3], int(rng.integers(10, 51)), i))
             for i in range(args.networks)]
    uniform, bucketed = (epoch_sample(data, args.steps + 1, rng, width)
                         for width in (0, args.bucket_width))
    keras_models = []
    for i, arch in enumerate(archs[:args.keras_sample]):
        model = gn.build_model(arch, args.variant, data.vocab_size, seed=i)
        gn.assign_weights(model, arch, gn.initial_weights(arch, args.variant, data.vocab_size, i))
        model.compile(optimizer=gn.StructureAdam(1e-3, global_clipnorm=5.0), loss=rc.LOSS)
        for tokens, labels in uniform[1]:  # trace every batch shape before timing
            model.train_on_batch(tokens, labels)
        keras_models.append(model)
    nets = [edge.EdgeNetwork.from_weights(
        args.variant, gn.initial_weights(arch, args.variant, data.vocab_size, i))
        for i, arch in enumerate(archs)]
    edge_batches = {"edge": (edge.Batches.stack(uniform[1][1:]), uniform[0]),
                    f"edge+buckets{args.bucket_width}": (edge.Batches.stack(bucketed[1][1:]),
                                                        bucketed[0])}
    nets[0].train_epoch(edge.Batches.stack(uniform[1][:1]))  # compile
    executor = concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1)
    epoch_times = {"keras": [], **{name: [] for name in edge_batches}}
    for _ in range(args.rounds):
        for name, (batches, batches_per_epoch) in edge_batches.items():
            start = time.perf_counter()
            list(executor.map(lambda net: net.train_epoch(batches), nets))
            epoch_times[name].append((time.perf_counter() - start) / args.steps
                                     * batches_per_epoch / len(nets))
        per_model = []
        for model in keras_models:
            start = time.perf_counter()
            for tokens, labels in uniform[1][1:]:
                model.train_on_batch(tokens, labels)
            per_model.append((time.perf_counter() - start) / args.steps * uniform[0])
        epoch_times["keras"].append(statistics.median(per_model))
    keras_time = statistics.median(epoch_times["keras"])
    print(f"variant {args.variant}: {len(nets)} networks (edge), {len(keras_models)} (Keras "
          f"sample); {args.steps} batches x {args.rounds} interleaved rounds; "
          f"{os.cpu_count()} CPUs")
    print(f"batches per epoch: {uniform[0]} uniform, {bucketed[0]} bucketed "
          f"(width {args.bucket_width})")
    print(f"{'trainer':16s} {'s/epoch/network':>16s} {'speed-up':>9s} {'networks/min':>13s} "
          f"{'1,200 networks (h)':>19s}")
    for name, values in epoch_times.items():
        per = statistics.median(values)
        rate = 60 / (per * EPOCHS)
        print(f"{name:16s} {per:16.3f} {keras_time / per:9.2f} {rate:13.2f} "
              f"{1200 / rate / 60:19.1f}")


if __name__ == "__main__":
    main()
