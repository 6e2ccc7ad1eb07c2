import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gzip  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Scripts that test_distributed.py runs in their own processes (they configure devices / a
# cluster at import), not test modules.
collect_ignore = ["distributed_check.py", "multiworker_check.py"]

SHARED_DATA = os.environ.get("SNIP_TF_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; excluded from the default run")


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def shared_data():
    if not os.path.isdir(os.path.join(SHARED_DATA, "mnist")):
        pytest.skip("shared data folder not present")
    return SHARED_DATA


def classification_data(n=32, shape=(6, 5), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + shape).astype("float32"), rng.integers(0, classes, n)


def mlp(input_shape=(6, 5), hidden=16, classes=3, compile=True, **dense_kwargs):
    model = keras.Sequential([
        keras.Input(input_shape), keras.layers.Flatten(),
        keras.layers.Dense(hidden, activation="relu", **dense_kwargs),
        keras.layers.Dense(classes)])
    if compile:
        model.compile(optimizer="sgd",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def weights_of(model):
    return [v.numpy().copy() for v in model.weights]


def assert_weights_equal(model, before):
    after = weights_of(model)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def write_idx(path, array):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def tiny_mnist(folder, name="mnist", n_train=40, n_test=10):
    base = folder / name
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(base / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(base / f"{prefix}-labels-idx1-ubyte.gz",
                  (np.arange(n) % 10).astype(np.uint8))
    return folder
