"""Data and training shared by the Reber-grammar studies (the thesis's setup: Adam 1e-3, batch 32,
gradient-norm clipping 5)."""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from snip_tf import models
from snip_tf.data import reber
from snip_tf.studies import reber_batches as rb

VARIANTS = ("rnn-tanh", "rnn-relu", "lstm", "gru")

# Shared by both studies' commands.
flags.DEFINE_enum("padding", "masked", list(models.REBER_PADDINGS), "'masked' (padding steps "
                  "carry the state over) or 'unmasked' (the thesis's: the networks run through "
                  "the trailing padding of their batch; test batches shuffled, of 128 strings "
                  "in the graph study, 32 in the pruning study).")
flags.DEFINE_bool("resume", False, "Keep what an interrupted run with the same settings left in "
                  "the results folder and train only the rest.")
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


def build(variant: str, data: ReberData, seed: int, learning_rate: float = 1e-3,
          initializer: str = "vs-x", padding: str = "masked",
          unit_forget_bias: Optional[bool] = None):
    """A compiled Reber classifier; ``initializer``, ``padding`` and ``unit_forget_bias`` as
    ``models.get``'s and the Reber builder's ("torch" and "unmasked" give the thesis's network).
    ``unit_forget_bias`` is ignored for the variants without a forget gate, so one setting
    serves a study of several variants."""
    keras.utils.set_random_seed(seed)
    options = {} if unit_forget_bias is None or variant != "lstm" else {
        "unit_forget_bias": unit_forget_bias}
    model = models.get(f"reber-{variant}", vocab_size=data.vocab_size, seed=seed,
                       initializer=initializer, padding=padding, **options)
    # The thesis clips the norm of all gradients together (torch's clip_grad_norm_), not each
    # variable's on its own (Keras's clipnorm).
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=5.0), loss=LOSS,
                  metrics=["accuracy"])
    return model


def _batches(x, y, seed: Optional[int], batch_size: int, padding: str):
    """Batches cut to their longest string: exactly (unmasked, the thesis's batches) or rounded up
    to a multiple of 8 (masked: padded steps carry the state over, so any cut at or past the
    longest string gives the same result; the rounding keeps the number of traced shapes small).
    Shuffled from ``seed``; in order if ``seed`` is None."""
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        data = data.shuffle(len(x), seed=seed)
    # The thesis pads each batch to its own longest string, and its unmasked networks read the
    # state after that padding: so the padding a string runs through depends on its batch.
    multiple, width = (1 if padding == "unmasked" else 8), x.shape[1]
    data = data.batch(batch_size).map(
        lambda tokens, labels: (rb.trim(tokens, multiple)[:, :width], labels))
    return data.prefetch(tf.data.AUTOTUNE)


def train_dataset(data: ReberData, seed: int, batch_size: int = 32, padding: str = "masked"):
    return _batches(data.x_train, data.y_train, seed, batch_size, padding)


def _evaluate(model, x, y, padding: str, seed: int) -> dict:
    if padding == "unmasked":
        # As the thesis's test loader: shuffled batches of 32, each cut to its longest string
        # (the same batches at every call with one seed, so that rows compare).
        batches = _batches(x, y, seed, 32, padding)
    else:
        batches = _batches(x, y, None, 256, padding)
    return model.evaluate(batches, verbose=0, return_dict=True)


def evaluate(model, data: ReberData, padding: str = "masked", seed: int = 0) -> tuple:
    """(train_loss, train_acc, test_loss, test_acc); ``padding`` is the model's."""
    train = _evaluate(model, data.x_train, data.y_train, padding, seed)
    test = _evaluate(model, data.x_test, data.y_test, padding, seed)
    return train["loss"], train["accuracy"], test["loss"], test["accuracy"]


def evaluate_test(model, data: ReberData, padding: str = "masked", seed: int = 0) -> float:
    """Test accuracy; ``padding`` is the model's."""
    return _evaluate(model, data.x_test, data.y_test, padding, seed)["accuracy"]


def train_epochs(model, data: ReberData, epochs: int, seed: int, mode: str, prune: int,
                 padding: str = "masked"):
    """Train epoch by epoch, yielding after each its row in the thesis's CSV layout; between
    epochs the caller may look at (not train) the model. ``padding`` is the model's."""
    ds = train_dataset(data, seed, padding=padding)  # one dataset: each epoch its own order
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
        test = _evaluate(model, data.x_test, data.y_test, padding, seed)
        yield {"mode": mode, "prune": prune, "epoch": epoch,
               "train_loss": history.history["loss"][-1],
               "train_acc": history.history["accuracy"][-1],
               "test_loss": test["loss"], "test_acc": test["accuracy"],
               "time": time.perf_counter() - start}


def fit_epochs(model, data: ReberData, epochs: int, seed: int, mode: str, prune: int,
               padding: str = "masked") -> list:
    """``train_epochs``'s rows, as a list. A second call goes on with the first epoch's batch
    order again: train in one call (or iterate ``train_epochs``) to continue a run."""
    return list(train_epochs(model, data, epochs, seed, mode, prune, padding))


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
