"""Data and training shared by the Reber-grammar studies (the thesis's setup: Adam 1e-3, batch 32,
gradient-norm clipping 5)."""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from snip_tf import models
from snip_tf.data import reber

VARIANTS = ("rnn-tanh", "rnn-relu", "lstm", "gru")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@dataclasses.dataclass
class ReberData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    vocab_size: int
    source: str


def load(source: str = "thesis", data_dir: Optional[str] = None, n: int = 25000, seed: int = 0,
         train_limit: int = 0) -> ReberData:
    """The thesis's exact split (``source="thesis"``) or a generated set split 75/25."""
    if source == "thesis":
        (train, y_train), (test, y_test) = reber.load_thesis(data_dir)
    elif source == "generated":
        strings, labels = reber.make_dataset(n, seed=seed, min_len=11, max_len=53)
        cut = int(0.75 * n)
        train, y_train, test, y_test = strings[:cut], labels[:cut], strings[cut:], labels[cut:]
    else:
        raise ValueError(f"source must be 'thesis' or 'generated'; got {source!r}.")
    if train_limit:
        train, y_train = train[:train_limit], y_train[:train_limit]
    vocab = reber.vocabulary(list(train) + list(test))
    max_len = max(len(s) for s in list(train) + list(test))
    return ReberData(reber.encode(train, vocab, max_len), np.asarray(y_train),
                     reber.encode(test, vocab, max_len), np.asarray(y_test), len(vocab) + 1,
                     source)


def build(variant: str, data: ReberData, seed: int, learning_rate: float = 1e-3):
    keras.utils.set_random_seed(seed)
    model = models.get(f"reber-{variant}", vocab_size=data.vocab_size, seed=seed)
    # The thesis clips the norm of all gradients together (torch's clip_grad_norm_), not each
    # variable's on its own (Keras's clipnorm).
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=5.0), loss=LOSS,
                  metrics=["accuracy"])
    return model


def train_dataset(data: ReberData, seed: int, batch_size: int = 32):
    return (tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
            .shuffle(len(data.x_train), seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE))


def evaluate(model, data: ReberData) -> tuple:
    """(train_loss, train_acc, test_loss, test_acc)."""
    train = model.evaluate(data.x_train, data.y_train, batch_size=256, verbose=0, return_dict=True)
    test = model.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0, return_dict=True)
    return train["loss"], train["accuracy"], test["loss"], test["accuracy"]


def fit_epochs(model, data: ReberData, epochs: int, seed: int, mode: str, prune: int,
               first_epoch: int = 1) -> list:
    """Train epoch by epoch; one row per epoch in the thesis's CSV layout."""
    rows, ds = [], train_dataset(data, seed)
    for epoch in range(first_epoch, first_epoch + epochs):
        start = time.perf_counter()
        history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
        test = model.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0,
                              return_dict=True)
        rows.append({"mode": mode, "prune": prune, "epoch": epoch,
                     "train_loss": history.history["loss"][-1],
                     "train_acc": history.history["accuracy"][-1],
                     "test_loss": test["loss"], "test_acc": test["accuracy"],
                     "time": time.perf_counter() - start})
    return rows


def length_only_accuracy(data: ReberData) -> float:
    """Test accuracy of predicting each string's label from its length alone (the majority label
    of the training strings of that length): what a network can reach that sees only how many
    steps its masked recurrence ran."""
    train_len, test_len = (data.x_train != 0).sum(1), (data.x_test != 0).sum(1)
    majority = {n: int(np.mean(data.y_train[train_len == n]) >= 0.5) for n in set(train_len)}
    predicted = np.array([majority.get(n, 0) for n in test_len])
    return float(np.mean(predicted == np.asarray(data.y_test)))


def recurrent_weights(model, which: str) -> list:
    """Paths of the recurrent layers' input-to-hidden ("ih"), hidden-to-hidden ("hh") or both
    ("ih+hh") kernels; biases, the embedding and the classifier excluded (as the thesis)."""
    names = {"ih": ("kernel",), "hh": ("recurrent_kernel",),
             "ih+hh": ("kernel", "recurrent_kernel")}[which]
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.RNN):
            out += [v.path for v in layer.cell.trainable_variables if v.name in names]
    return out
