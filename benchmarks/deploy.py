"""What pruning buys at deployment: file sizes and CPU inference latency, dense vs pruned, side by
side in one run (interleaved repetitions, medians).

    python benchmarks/deploy.py [--repeats 5]

LeNet-300-100 at 90, 95, 98 and 99 % and LSTM-s at 95 % (masks from SNIP on one random batch; the
zero pattern, not the values, decides sizes and speed). Sizes: raw and gzip of the SavedModel (dense
model, pruned model), the TFLite file with the sparsity optimization, and the compact export.
Latency at batch 1 and 128: the dense model, the pruned model on the dense path, the pruned model
on the sparse path (snip_tf.sparse.sparsify, per-layer choice), and the TFLite interpreter on the
dense and the pruned (sparsity-optimized) model; each path is compared with the dense model in the
same runtime.
Goals: compact gzip >= 5x smaller than the dense SavedModel's gzip at 95 %; batch-1 latency >= 2x
faster than dense at 99 % for LeNet-300-100.
"""

import argparse
import gzip
import io
import os
import shutil
import statistics
import tarfile
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import snip_tf  # noqa: E402
from snip_tf import models, sparse  # noqa: E402

CASES = [("lenet-300-100", s) for s in (0.9, 0.95, 0.98, 0.99)] + [("lstm-s", 0.95)]


def sizes(path):
    if os.path.isdir(path):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(path, arcname=".")
        raw = buffer.getvalue()
    else:
        raw = open(path, "rb").read()
    return len(raw), len(gzip.compress(raw, 9))


def tflite_runner(path, batch, shape):
    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.resize_tensor_input(0, (batch,) + shape)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)
    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp()
    size_rows, latency_rows = [], []
    for name, sparsity in CASES:
        keras.utils.set_random_seed(0)
        dense = models.get(name)
        shape = tuple(dense.input_shape[1:])
        pruned = models.get(name)
        pruned.set_weights(dense.get_weights())
        pruned.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = rng.normal(size=(100,) + shape).astype("float32")
        snip_tf.snip(pruned, (x, rng.integers(0, 10, 100)), sparsity)
        files = {
            "dense SavedModel": snip_tf.export(dense, f"{tmp}/{name}_{sparsity}_dense"),
            "pruned SavedModel": snip_tf.export(pruned, f"{tmp}/{name}_{sparsity}_pruned"),
            "pruned compact": snip_tf.export(pruned, f"{tmp}/{name}_{sparsity}.snip",
                                             format="compact"),
        }
        try:
            files["pruned TFLite (sparse)"] = snip_tf.export(
                pruned, f"{tmp}/{name}_{sparsity}.tflite", format="tflite")
            files["dense TFLite"] = snip_tf.export(
                dense, f"{tmp}/{name}_{sparsity}_dense.tflite", format="tflite")
        except ValueError:
            size_rows.append((name, sparsity, "pruned TFLite: not convertible (see export)",
                              0, 1, 0.0))
        measured = {k: sizes(v) for k, v in files.items()}
        base_gz = measured["dense SavedModel"][1]
        for kind, (raw, gz) in measured.items():
            size_rows.append((name, sparsity, kind, raw, gz, base_gz / gz))
        for batch in (1, 128):
            xb = rng.normal(size=(batch,) + shape).astype("float32")
            fast = sparse.sparsify(pruned, batch_size=batch)
            paths = {
                "dense": tf.function(lambda v, m=dense: m(v)),
                "pruned, dense path": tf.function(lambda v, m=pruned: m(v)),
                f"pruned, sparse path ({len(fast.sparse_layers)} sparse layers)":
                    tf.function(lambda v, m=fast: m(v)),
            }
            if "pruned TFLite (sparse)" in files:
                paths["dense, TFLite"] = tflite_runner(files["dense TFLite"], batch, shape)
                paths["pruned, TFLite"] = tflite_runner(files["pruned TFLite (sparse)"], batch,
                                                        shape)
            xt = tf.constant(xb)
            times = {k: [] for k in paths}
            for _ in range(args.repeats):
                for k, fn in paths.items():
                    x_in = xb if "TFLite" in k else xt
                    times[k].append(sparse.median_call_time(fn, x_in, args.calls))
            for k, v in times.items():
                # Each runtime against its own dense baseline: TF paths vs the dense model in TF,
                # TFLite vs the dense model in TFLite.
                base = times["dense, TFLite" if "TFLite" in k else "dense"]
                t = statistics.median(v)
                latency_rows.append((name, sparsity, batch, k, t * 1e6,
                                     statistics.median(base) / t))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"keras {keras.__version__}, TF {tf.__version__}, {os.cpu_count()} CPUs; medians of "
          f"{args.repeats} interleaved repetitions of {args.calls} calls\n")
    print("| model | sparsity | file | raw (KB) | gzip (KB) | dense gzip / gzip |")
    print("|---|---|---|---|---|---|")
    for name, s, kind, raw, gz, ratio in size_rows:
        print(f"| {name} | {100 * s:g} % | {kind} | {raw / 1024:.0f} | {gz / 1024:.0f} | "
              f"{ratio:.1f}x |")
    print("\n| model | sparsity | batch | path | latency (µs) | speed-up vs dense (same runtime) |")
    print("|---|---|---|---|---|---|")
    for name, s, batch, kind, t, ratio in latency_rows:
        print(f"| {name} | {100 * s:g} % | {batch} | {kind} | {t:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
