"""What per-network early stopping would save, and what it would change, in the graph study.

    python benchmarks/graph_early_stopping.py [--variant gru] [--networks 30] [--epochs 15] [--patience 1,2,3] [--min_delta 1e-4,1e-3,3e-3,1e-2]

Trains one bank of ``--networks`` graph networks, drawn and sorted as the study draws and sorts
them (``graph_bank.py``'s middle bank), for the full ``--epochs`` on the thesis's Reber data,
recording every network's epoch training loss and test accuracy. Then, for each rule
(``--patience`` x ``--min_delta``, the study's ``--graph_patience``/``--graph_min_delta``:
Keras's ``EarlyStopping(monitor="loss")`` per network, ``network_bank.EarlyStopping``), it
replays the loss curves and prints when the networks would have stopped: the network-epochs
left (the arithmetic, if stopped networks cost nothing: the study repacks its banks without
them), how far each network's test accuracy at its stop lies from its accuracy after all the
epochs, and whether the networks keep their order (Spearman's rho), which is what the study's
regressors learn from. The bank is trained once; the rules are replayed on its curves.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from snip_tf.studies import network_bank as nb  # noqa: E402
from snip_tf.studies import reber_common as rc  # noqa: E402

from graph_bank import middle_bank, sorted_pool  # noqa: E402


def replay(losses, accuracies, patience, min_delta):
    """One rule's row: stop epochs, the network-epochs they leave, and the accuracy changes."""
    stops = nb.EarlyStopping(losses.shape[1], patience, min_delta).stop_epochs(losses)
    at_stop = accuracies[stops - 1, np.arange(len(stops))]
    final = accuracies[-1]
    change = 100 * (at_stop - final)
    rho = stats.spearmanr(at_stop, final).statistic
    return (f"patience {patience}, min_delta {min_delta:g}: stops at epoch "
            f"{stops.min()}-{np.median(stops):.0f}-{stops.max()} (min-median-max), "
            f"{stops.sum() / losses.size:.2f} of the network-epochs; test accuracy at the stop "
            f"minus after {len(losses)} epochs: mean {change.mean():+.2f}, worst "
            f"{change.min():+.2f} points; Spearman rho {rho:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="gru")
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--pool", type=int, default=150, help="networks drawn and sorted")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--networks_per_slot", type=int, default=8)
    parser.add_argument("--bucket_width", type=int, default=8)
    parser.add_argument("--patience", default="1,2,3")
    parser.add_argument("--min_delta", default="1e-4,1e-3,3e-3,1e-2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()

    data = rc.load("thesis", args.data_dir, seed=args.seed)
    archs = middle_bank(sorted_pool(args.pool, np.random.default_rng(args.seed)), args.networks)
    bank = nb.NetworkBank(archs, args.variant, data.vocab_size,
                          seeds=list(range(len(archs))),
                          networks_per_slot=args.networks_per_slot)
    start = time.perf_counter()
    out = nb.train(bank, data.x_train, data.y_train, data.x_test, data.y_test,
                   epochs=args.epochs, batch_size=128, seed=args.seed, jit_compile=True,
                   bucket_width=args.bucket_width, test_every_epoch=True)
    minutes = (time.perf_counter() - start) / 60
    losses, accuracies = out["train_loss"], out["test_acc_history"]
    print(f"{args.variant}: {len(archs)} networks (the middle bank of {args.pool} drawn, "
          f"sorted as the study does), {args.epochs} epochs, batch 128, Adam 1e-3, buckets of "
          f"{args.bucket_width}, {args.networks_per_slot} networks per slot, seed {args.seed}; "
          f"trained in {minutes:.1f} min with a test pass every epoch")
    print("test accuracy by epoch, % (min / median / mean / max over the networks):")
    for epoch, acc in enumerate(100 * accuracies, start=1):
        print(f"  {epoch:2d}: {acc.min():.2f} / {np.median(acc):.2f} / {acc.mean():.2f} / "
              f"{acc.max():.2f}")
    for patience in map(int, args.patience.split(",")):
        for min_delta in map(float, args.min_delta.split(",")):
            print(replay(losses, accuracies, patience, min_delta))


if __name__ == "__main__":
    main()
