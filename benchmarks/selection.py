"""Global top-κ selection time and peak memory for 1m, 10m and 100m scores.

    python benchmarks/selection.py [--sizes 1e6,1e7,1e8] [--repeats 3]

Scores are split over 20 arrays (like the weights of a deep network) and drawn with many ties
(rounded to 3 decimals). ``selection.top_k_masks`` finds the threshold with ``np.partition``
(linear time, no full sort) and keeps exactly κ. Peak memory is the extra resident memory over the
scores themselves, measured with tracemalloc. Goal: 100m in under 10 s on 2 CPU cores.
"""

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from snip_tf import selection


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1e6,1e7,1e8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sparsity", type=float, default=0.99)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"sparsity {args.sparsity}, scores rounded to 3 decimals (many ties), median of "
          f"{args.repeats}\n")
    print("| scores | selection (s) | extra peak memory (MB) | scores (MB) | kept exactly |")
    print("|---|---|---|---|---|")
    for size in (int(float(s)) for s in args.sizes.split(",")):
        parts = np.array_split(np.round(rng.random(size, dtype=np.float32), 3), 20)
        keep = selection.num_to_keep(args.sparsity, size)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            masks = selection.top_k_masks(parts, keep)
            times.append(time.perf_counter() - start)
            exact = sum(int(m.sum()) for m in masks) == keep
            del masks
        tracemalloc.start()
        masks = selection.top_k_masks(parts, keep)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del masks
        print(f"| {size:,} | {statistics.median(times):.2f} | {peak / 2**20:.0f} | "
              f"{size * 4 / 2**20:.0f} | {exact} |", flush=True)
        del parts


if __name__ == "__main__":
    main()
