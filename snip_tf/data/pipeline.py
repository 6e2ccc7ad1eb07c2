"""``tf.data`` pipelines with the paper's protocol: a held-out validation split, normalization,
seeded shuffling, optional augmentation, prefetching."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from snip_tf.data.loaders import ArraySplits, load, random_labels


@dataclasses.dataclass
class Datasets:
    train: tf.data.Dataset
    validation: Optional[tf.data.Dataset]
    test: tf.data.Dataset
    input_shape: tuple
    num_classes: int
    train_size: int
    source: str
    scoring_batch: tuple     # (x, y) drawn from the training split for pruning, true labels
    x_train: np.ndarray      # the prepared training arrays (labels as trained on)
    y_train: np.ndarray


def _normalize(x: np.ndarray, mean, std) -> np.ndarray:
    return ((x.astype(np.float32) / 255.0) - mean) / std


def make_datasets(name: str, batch_size: int, *, data_dir: Optional[str] = None,
                  validation_fraction: float = 0.1, seed: int = 0, normalize: str = "meanstd",
                  augment: bool = False, sequential: bool = False, label_noise: str = "none",
                  scoring_batch_size: Optional[int] = None, train_limit: int = 0,
                  arrays: Optional[ArraySplits] = None) -> Datasets:
    """Train / validation / test pipelines for data set ``name``.

    Args:
        validation_fraction: fraction of the training set held out for validation (paper: 0.1).
        normalize: "meanstd" (per-channel mean/std of the training split, as the authors' code) or
            "scale" (pixels / 255).
        augment: random horizontal flip and translation by up to 4 pixels (CIFAR protocol).
        sequential: images as sequences of rows (sequential MNIST: 28 steps of 28 features).
        label_noise: "random" replaces the training labels by a seeded permutation.
        scoring_batch_size: size of the batch returned for SNIP scoring (default ``batch_size``).
            It always carries the true labels, also with ``label_noise="random"`` (the paper's
            memorization experiment computes the mask from true labels).
        train_limit: use only this many training examples (0: all); for quick runs and tests.
    """
    arrays = arrays or load(name, data_dir)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays.x_train))
    n_val = int(round(validation_fraction * len(order)))
    train_idx, val_idx = order[n_val:], order[:n_val]
    if train_limit:
        train_idx = train_idx[:train_limit]
    x_train, y_train = arrays.x_train[train_idx], arrays.y_train[train_idx]
    true_labels = y_train
    if label_noise == "random":
        y_train = random_labels(y_train, seed)
    elif label_noise != "none":
        raise ValueError(f"label_noise must be 'none' or 'random'; got {label_noise!r}.")

    channel_axes = tuple(range(x_train.ndim - 1)) if x_train.ndim == 4 else None
    if normalize == "meanstd":
        scaled = x_train.astype(np.float32) / 255.0
        mean, std = scaled.mean(axis=channel_axes), scaled.std(axis=channel_axes)
    elif normalize == "scale":
        mean, std = 0.0, 1.0
    else:
        raise ValueError(f"normalize must be 'meanstd' or 'scale'; got {normalize!r}.")

    def prepare(x):
        x = _normalize(x, mean, std)
        if x.ndim == 3 and not sequential:
            x = x[..., None]          # grayscale images get a channel axis
        return x.astype(np.float32)

    x_train_f = prepare(x_train)
    x_val_f = prepare(arrays.x_train[val_idx])
    x_test_f = prepare(arrays.x_test)
    if sequential and x_train_f.ndim != 3:
        raise ValueError("sequential=True needs grayscale images (N, rows, columns).")

    def augment_fn(x, y):
        x = tf.image.random_flip_left_right(x)
        padded = tf.pad(x, [[4, 4], [4, 4], [0, 0]], mode="CONSTANT")
        return tf.image.random_crop(padded, tf.shape(x)), y

    train = tf.data.Dataset.from_tensor_slices((x_train_f, y_train))
    train = train.shuffle(len(x_train_f), seed=seed, reshuffle_each_iteration=True)
    if augment:
        train = train.map(augment_fn, num_parallel_calls=tf.data.AUTOTUNE)
    train = train.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def eval_ds(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(max(batch_size, 500)).prefetch(
            tf.data.AUTOTUNE)

    validation = eval_ds(x_val_f, arrays.y_train[val_idx]) if n_val else None
    pick = rng.choice(len(x_train_f), size=min(scoring_batch_size or batch_size, len(x_train_f)),
                      replace=False)
    return Datasets(train=train, validation=validation,
                    test=eval_ds(x_test_f, arrays.y_test), input_shape=x_train_f.shape[1:],
                    num_classes=arrays.num_classes, train_size=len(x_train_f),
                    source=arrays.source, scoring_batch=(x_train_f[pick], true_labels[pick]),
                    x_train=x_train_f, y_train=y_train)
