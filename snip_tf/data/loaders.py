"""Array loaders for the classification data sets, local files first."""

from __future__ import annotations

import dataclasses
import gzip
import os
import zipfile
from typing import Optional

import numpy as np

ENV_VAR = "SNIP_TF_DATA_DIR"
_IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32,
               0x0E: np.float64}


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and the expected layout."""


@dataclasses.dataclass
class ArraySplits:
    """Train and test arrays of a classification data set (images as uint8, labels as int)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str


def data_dir(explicit: Optional[str] = None) -> Optional[str]:
    """The local data folder: ``explicit``, else ``$SNIP_TF_DATA_DIR``, else None."""
    folder = explicit or os.environ.get(ENV_VAR) or None
    if folder is not None and not os.path.isdir(folder):
        raise DataError(f"Data folder {folder!r} does not exist (from "
                        f"{'--data_dir' if explicit else '$' + ENV_VAR}). Expected a folder with "
                        "mnist/, fashion_mnist/ (IDX .gz files) and/or cifar10/cifar10.npz.")
    return folder


def load_idx(path: str) -> np.ndarray:
    """Read one (optionally gzipped) IDX file, checking its header against its size."""
    if not os.path.isfile(path):
        raise DataError(f"Missing data file {path!r}.")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"Cannot read {path!r}: {error}. Expected a gzip-compressed IDX file.") \
            from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path!r} is not an IDX file (bad magic number).")
    dtype = np.dtype(_IDX_DTYPES[raw[2]]).newbyteorder(">")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path!r} is truncated or corrupt: header says shape {shape} "
                        f"({expected} bytes) but the file has {len(raw)} bytes.")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def _from_tfds(name: str) -> ArraySplits:
    import tensorflow_datasets as tfds

    try:
        train, test = tfds.as_numpy(tfds.load(name, split=["train", "test"], batch_size=-1,
                                              as_supervised=True))
    except Exception as error:  # noqa: BLE001 - tfds raises many kinds when offline
        raise DataError(
            f"No local copy of {name!r} and tensorflow-datasets could not provide it ({error}). "
            f"Set --data_dir or ${ENV_VAR} to a folder with {name}/ files (docs/experiments.md, "
            "section Data).") from error
    x_train, y_train = train
    x_test, y_test = test
    if name != "cifar10" and x_train.ndim == 4:
        x_train, x_test = x_train[..., 0], x_test[..., 0]
    return ArraySplits(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), 10,
                       f"tfds:{name}")


def load_mnist(name: str = "mnist", folder: Optional[str] = None) -> ArraySplits:
    """MNIST or Fashion-MNIST (``name='fashion_mnist'``) as 28x28 uint8 images."""
    folder = data_dir(folder)
    if folder is None:
        return _from_tfds(name)
    base = os.path.join(folder, name)
    if not os.path.isdir(base):
        raise DataError(f"{base!r} not found: expected {name}/ with "
                        f"{', '.join(_IDX_FILES['train'] + _IDX_FILES['test'])} in {folder!r}.")
    arrays = {}
    for split, (images, labels) in _IDX_FILES.items():
        x = load_idx(os.path.join(base, images))
        y = load_idx(os.path.join(base, labels)).astype(np.int64)
        if x.ndim != 3 or len(x) != len(y):
            raise DataError(f"{base}: {images} has shape {x.shape} and {labels} {y.shape}; "
                            "expected (N, 28, 28) images and N labels.")
        arrays[split] = (x, y)
    return ArraySplits(*arrays["train"], *arrays["test"], 10, f"idx:{base}")


def load_cifar10(folder: Optional[str] = None) -> ArraySplits:
    """CIFAR-10 as 32x32x3 uint8 images (``cifar10/cifar10.npz`` locally, else tfds)."""
    folder = data_dir(folder)
    if folder is None:
        return _from_tfds("cifar10")
    path = os.path.join(folder, "cifar10", "cifar10.npz")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path!r} lacks {missing}; expected arrays {list(keys)}.")
            x_train, y_train, x_test, y_test = (npz[k] for k in keys)
    except FileNotFoundError as error:
        raise DataError(f"Missing data file {path!r}: expected cifar10/cifar10.npz with arrays "
                        f"{list(keys)} in {folder!r}.") from error
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"Cannot read {path!r}: {error}. Expected an .npz with "
                        f"{list(keys)}.") from error
    return ArraySplits(x_train, y_train.reshape(-1).astype(np.int64), x_test,
                       y_test.reshape(-1).astype(np.int64), 10, f"npz:{path}")


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> ArraySplits:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), split once with ``seed``.

    Pixels (0..16) are rescaled to uint8 0..255 so every loader returns the same kind of array.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target.astype(np.int64), test_size=test_fraction, random_state=seed,
        stratify=bunch.target)
    return ArraySplits(x_train, y_train, x_test, y_test, 10, "sklearn:digits")


_LOADERS = {
    "mnist": lambda folder: load_mnist("mnist", folder),
    "fashion_mnist": lambda folder: load_mnist("fashion_mnist", folder),
    "cifar10": load_cifar10,
    "digits": lambda folder: load_digits(),
}


def load(name: str, folder: Optional[str] = None) -> ArraySplits:
    """Arrays of the data set ``name`` (one of mnist, fashion_mnist, cifar10, digits)."""
    if name not in _LOADERS:
        raise DataError(f"Unknown data set {name!r}; expected one of {sorted(_LOADERS)}.")
    return _LOADERS[name](folder)


def random_labels(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """The labels shuffled once with ``seed`` (the random-label memorization task)."""
    return np.random.default_rng(seed).permutation(labels)
