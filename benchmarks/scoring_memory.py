"""Peak memory of SNIP scoring vs one training step, each in a fresh process.

    python benchmarks/scoring_memory.py [--models vgg-d,wrn-22-8] [--batch 128]

Each measurement runs in its own Python process (a clean allocator), building the model, then either
one ``train_on_batch`` (SGD with momentum) or one ``snip_tf.connection_sensitivity`` on the same
batch. The figure is the process's peak resident memory (ru_maxrss) minus its resident memory after
the model was built and the batch created. Goal: scoring needs no more than a training step.
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import os, sys, json, resource
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras, snip_tf
from snip_tf import models
name, batch, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = models.get(name)
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
shape = model.input_shape[1:]
x = np.random.default_rng(0).normal(size=(batch,) + tuple(shape)).astype("float32")
y = np.random.default_rng(0).integers(0, 10, batch)
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
base = rss_mb()
if what == "train":
    model.train_on_batch(x, y)
else:
    snip_tf.connection_sensitivity(model, (x, y))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"base_mb": base, "peak_mb": peak}))
"""


def measure(name, batch, what):
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(batch), what],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["peak_mb"] - result["base_mb"], result["peak_mb"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="vgg-d,wrn-22-8")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    print(f"batch {args.batch}; extra peak resident memory over the built model (MB)\n")
    print("| model | training step | SNIP scoring | scoring / step |")
    print("|---|---|---|---|")
    for name in args.models.split(","):
        train, _ = measure(name, args.batch, "train")
        score, _ = measure(name, args.batch, "score")
        print(f"| {name} | {train:.0f} | {score:.0f} | {score / train:.2f} |", flush=True)


if __name__ == "__main__":
    main()
