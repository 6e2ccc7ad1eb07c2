import gzip
import os

import numpy as np
import pytest

from snip_tf import data
from conftest import tiny_mnist, write_idx


def test_idx_round_trip_and_loader_on_generated_files(tmp_path):
    folder = tiny_mnist(tmp_path)
    arrays = data.load_mnist("mnist", str(folder))
    assert arrays.x_train.shape == (40, 28, 28) and arrays.x_train.dtype == np.uint8
    assert arrays.y_test.tolist() == list(range(10))
    ints = np.arange(6, dtype=np.int32).reshape(2, 3)
    write_idx(tmp_path / "ints.gz", ints)
    np.testing.assert_array_equal(data.load_idx(str(tmp_path / "ints.gz")), ints)


def test_missing_and_corrupt_files_are_named(tmp_path):
    folder = tiny_mnist(tmp_path)
    target = folder / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.open(target).read()
    with gzip.open(target, "wb") as f:
        f.write(raw[:-3])
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz.*truncated"):
        data.load_mnist("mnist", str(folder))
    os.remove(target)
    with pytest.raises(data.DataError, match="Missing data file .*t10k-labels"):
        data.load_mnist("mnist", str(folder))
    with pytest.raises(data.DataError, match="fashion_mnist.* not found"):
        data.load_mnist("fashion_mnist", str(folder))
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_mnist("mnist", str(tmp_path / "nowhere"))
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(data.DataError, match="bad.gz"):
        data.load_idx(str(tmp_path / "bad.gz"))


def test_cifar_npz_loader(tmp_path):
    (tmp_path / "cifar10").mkdir()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10" / "cifar10.npz",
             x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(20, dtype=np.uint8) % 10,
             x_test=rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(5, dtype=np.uint8))
    arrays = data.load_cifar10(str(tmp_path))
    assert arrays.x_train.shape == (20, 32, 32, 3) and arrays.y_train.shape == (20,)
    np.savez(tmp_path / "cifar10" / "cifar10.npz", x_train=np.zeros(3))
    with pytest.raises(data.DataError, match="lacks"):
        data.load_cifar10(str(tmp_path))


def test_pipeline_protocol(tmp_path):
    folder = tiny_mnist(tmp_path, n_train=100)
    ds = data.make_datasets("mnist", 16, data_dir=str(folder), validation_fraction=0.1, seed=3)
    assert ds.train_size == 90 and ds.input_shape == (28, 28, 1)
    assert sum(int(x.shape[0]) for x, _ in ds.validation) == 10
    x, y = next(iter(ds.train))
    assert x.shape == (16, 28, 28, 1) and abs(float(np.mean(ds.scoring_batch[0]))) < 0.5
    seq = data.make_datasets("mnist", 16, data_dir=str(folder), sequential=True)
    assert seq.input_shape == (28, 28)
    again = data.make_datasets("mnist", 16, data_dir=str(folder), validation_fraction=0.1, seed=3)
    np.testing.assert_array_equal(next(iter(again.train))[1], y)       # seeded
    noisy = data.make_datasets("mnist", 16, data_dir=str(folder), label_noise="random")
    assert noisy.train_size == 90


def test_random_labels_are_a_seeded_permutation():
    labels = np.arange(100) % 10
    shuffled = data.random_labels(labels, seed=1)
    assert sorted(shuffled.tolist()) == sorted(labels.tolist())
    assert (shuffled != labels).mean() > 0.5
    np.testing.assert_array_equal(shuffled, data.random_labels(labels, seed=1))


def test_digits_ships_with_scikit_learn():
    arrays = data.load_digits()
    assert arrays.x_train.shape[1:] == (8, 8) and len(arrays.x_train) + len(arrays.x_test) == 1797
    assert arrays.x_train.max() == 255


def test_local_shared_mnist(shared_data):
    arrays = data.load_mnist("mnist", shared_data)
    assert arrays.x_train.shape == (60000, 28, 28) and arrays.x_test.shape == (10000, 28, 28)
    assert np.bincount(arrays.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                   974, 1009]
    fashion = data.load_mnist("fashion_mnist", shared_data)
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
