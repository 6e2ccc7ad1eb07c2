"""Batches of Reber strings and the per-network early-stopping rule, shared by the graph study's
trainers (the edge trainer and the Keras trainer) and study 1.

>>> import numpy as np
>>> x = np.array([[1, 2, 0, 0], [1, 0, 0, 0]])
>>> trim(tf.constant(x), multiple=2).numpy().tolist()
[[1, 2], [1, 0]]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _trimmed_length(longest, multiple: int):
    """The length ``trim`` gives a batch whose longest string is ``longest`` (numpy or
    TensorFlow)."""
    return tf.maximum((longest + multiple - 1) // multiple * multiple, multiple)


def trim(tokens, multiple: int = 8):
    """Cut a right-padded batch to its longest string, rounded up to ``multiple`` so that a
    compiled step sees few distinct shapes. Exact: padded steps carry the state unchanged."""
    length = _trimmed_length(
        tf.reduce_max(tf.reduce_sum(tf.cast(tokens != 0, tf.int32), axis=1)), multiple)
    tokens = tf.pad(tokens, [[0, 0], [0, tf.maximum(length - tf.shape(tokens)[1], 0)]])
    return tokens[:, :length]


NO_EXAMPLE = -1  # the label of a filler row: an empty string that no loss counts


def batches(x, y, batch_size: int = 128, seed: int = 0, bucket_width: int = 0,
            full_batches: bool = False):
    """One epoch of shuffled training batches ``(tokens, labels)``, each cut to its longest
    string (``trim``); reshuffled every epoch, deterministically from ``seed``.

    ``bucket_width=0`` draws batches uniformly, as the thesis did: a batch of 128 is then as long
    as its longest string (on the thesis's training strings, of median length 21, the median
    batch is 36 steps long: 6,000 steps per epoch after rounding up to multiples of 8).
    ``bucket_width > 0`` draws each batch from strings whose lengths fall in the same bucket of
    that width (``tf.data``'s ``bucket_by_sequence_length``), so it is at most ``bucket_width - 1``
    steps longer than its shortest string: the same examples per epoch, far fewer padded steps
    (3,752 per epoch at width 8, 3,536 at width 4, in a few more, partly filled batches), but
    batches less mixed in length.

    ``full_batches`` fills a partial batch (the last of the epoch, or of a bucket) up to
    ``batch_size`` rows with empty strings labelled ``NO_EXAMPLE``, which
    the trainers' losses leave out, where the epoch has full batches of its length: an
    XLA-compiled step compiles once per batch shape, and a filled batch takes the shape of
    those. A bucket too small for a full batch keeps its one partial batch, which costs a
    compile either way. At width 8 the thesis's training strings come in 10 shapes, 4 of them
    only in partial batches of lengths that also have full ones; filling leaves 6. The same
    examples in the same batches, so the same training, up to float rounding (the sums run
    over more rows).
    """
    data = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.int32), np.asarray(y, np.int32)))
    data = data.shuffle(len(x), seed=seed)
    if bucket_width:
        boundaries = list(range(bucket_width + 1, np.shape(x)[1] + 1, bucket_width))
        data = data.bucket_by_sequence_length(
            lambda t, _: tf.reduce_sum(tf.cast(t != 0, tf.int32)), boundaries,
            [batch_size] * (len(boundaries) + 1))
        multiple = bucket_width
    else:
        data, multiple = data.batch(batch_size), 8
    data = data.map(lambda t, labels: (trim(t, multiple), labels))
    if full_batches:
        if bucket_width:
            # Every batch of a bucket has the length trim gives its strings' own lengths.
            lengths = _trimmed_length(np.sum(np.asarray(x) != 0, axis=1), multiple).numpy()
            values, counts = np.unique(lengths, return_counts=True)
            full_lengths = tf.constant(values[counts >= batch_size], tf.int32)

        def fill(tokens, labels):
            missing = batch_size - tf.shape(labels)[0]
            if bucket_width:  # uniform batches: the epoch's one partial batch is always filled
                missing = tf.where(tf.reduce_any(tf.shape(tokens)[1] == full_lengths),
                                   missing, 0)
            return (tf.pad(tokens, [[0, missing], [0, 0]]),
                    tf.pad(labels, [[0, missing]], constant_values=NO_EXAMPLE))

        data = data.map(fill)
    return data.prefetch(tf.data.AUTOTUNE)


class EarlyStopping:
    """Keras's ``EarlyStopping(monitor="loss")`` rule for each of ``networks`` on its own: a
    network is done when its epoch loss has not fallen below its best minus ``min_delta`` for
    ``patience`` epochs (``patience=0``: never).

    >>> rule = EarlyStopping(2, patience=1, min_delta=0.1)
    >>> [rule.update(np.array(losses)).tolist() for losses in ([1.0, 1.0], [0.5, 0.95])]
    [[False, False], [False, True]]
    """

    def __init__(self, networks: int, patience: int, min_delta: float = 1e-4):
        if patience < 0:
            raise ValueError(f"patience must be 0 or more epochs; got {patience}.")
        self.patience, self.min_delta = patience, min_delta
        self.best = np.full(networks, np.inf)
        self.wait = np.zeros(networks, int)

    def update(self, epoch_loss) -> np.ndarray:
        """Take one epoch's losses; returns which networks are done (NaN losses never are)."""
        improved = epoch_loss < self.best - self.min_delta
        self.best = np.where(improved, epoch_loss, self.best)
        self.wait = np.where(improved, 0, self.wait + 1)
        done = self.wait >= self.patience if self.patience else np.zeros(len(self.wait), bool)
        return done & ~np.isnan(epoch_loss)

    def stop_epochs(self, losses) -> np.ndarray:
        """The epoch (from 1) at which each network stops on the loss curves ``losses``
        (epochs x networks), at the last epoch if it does not stop before."""
        stops = np.full(losses.shape[1], len(losses))
        for epoch, epoch_loss in enumerate(losses, start=1):
            stops[self.update(epoch_loss) & (stops == len(losses))] = epoch
        return stops
