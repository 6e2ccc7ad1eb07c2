"""``SNIPCallback``: prune inside ``model.fit`` before the first weight update."""

from __future__ import annotations

import os
import time
import uuid
import warnings

import keras
import numpy as np
from absl import logging

from snip_tf import atomic, pruning, saving, selection


class SNIPCallback(keras.callbacks.Callback):
    """Prunes the model with SNIP before ``fit`` makes its first weight update.

    With ``data=None`` the connection sensitivity is computed on the first training batch(es) that
    ``fit`` itself draws (the paper's "one mini-batch of training data"); that batch is then trained
    on as usual. With ``data`` (an ``(x, y)`` tuple or a ``tf.data.Dataset`` of ``(x, y)`` batches)
    the model is pruned on it in ``on_train_begin``.

    If the model is already pruned (a second ``fit``; a ``BackupAndRestore`` or checkpoint resume of a
    pruned run that restored at least the requested fraction of zeros), the callback does not prune
    again: it keeps (or re-installs, from the zero pattern) the existing mask.

    Args:
        sparsity: fraction of prunable weights to remove, in [0, 1).
        data: data to score on; default the first ``num_batches`` training batches.
        num_batches: number of batches whose gradients are summed.
        **options: passed to :func:`snip_tf.prune` (``criterion`` (default "snip"), ``loss``,
            ``include_bias``, ``training``, ``seed``, ``scope``, ``min_per_layer``).

    Attributes:
        masks: ``{variable.path: boolean mask}`` once pruned.
        scores: ``{variable.path: the criterion's scores}`` once pruned.
        scoring_batches: with ``data=None``, the global ``(x, y, sample_weight)`` batches scored on.

    Example:
    >>> model.fit(x, y, epochs=10, callbacks=[snip_tf.SNIPCallback(0.99)])   # doctest: +SKIP
    """

    _OPTIONS = ("criterion", "loss", "include_bias", "training", "seed", "scope", "min_per_layer")

    def __init__(self, sparsity, data=None, num_batches: int = 1, **options):
        super().__init__()
        self.sparsity = selection.validate_sparsity(sparsity)
        unknown = sorted(set(options) - set(self._OPTIONS))
        if unknown:
            raise ValueError(f"SNIPCallback got unknown options {unknown}; it accepts "
                             f"{list(self._OPTIONS)}.")
        if not isinstance(num_batches, (int, np.integer)) or isinstance(num_batches, bool) \
                or num_batches < 1:
            raise ValueError(f"num_batches must be a positive integer; got {num_batches!r}.")
        num_batches = int(num_batches)
        self.data = data
        self.num_batches = num_batches
        self.options = options
        self.masks = None
        self.scores = None
        self.scoring_batches = None

    def set_model(self, model):
        super().set_model(model)
        # Before any on_train_begin: a BackupAndRestore (or load_weights) that runs then restores
        # the exact saved mask through the record (snip_tf.saving), for every model kind.
        saving.track(model)

    def _adopt_existing(self) -> bool:
        model = self.model
        if pruning.is_pruned(model):
            self.masks = {p: m for p, m in _installed_masks(model).items()}
            kept = sum(int(m.sum()) for m in self.masks.values())
            total = sum(m.size for m in self.masks.values())
            current = 1.0 - kept / total if total else 0.0
            if abs(current - self.sparsity) > max(1.0 / max(total, 1), 1e-6):
                warnings.warn(
                    f"SNIPCallback({self.sparsity:g}): the model is already pruned to sparsity "
                    f"{current:.4f}; keeping its mask, not pruning to {self.sparsity:g}. Call "
                    "snip_tf.remove_hooks(model) (and restore unpruned weights) to prune afresh.",
                    UserWarning, stacklevel=2)
            logging.info("SNIPCallback: the model is already pruned; keeping its mask.")
            return True
        include_bias = self.options.get("include_bias", False)
        report = pruning.sparsity_report(model, include_bias=include_bias)
        if (self.sparsity > 0 and report.total
                and report.kept <= selection.num_to_keep(self.sparsity, report.total)):
            # A resumed run: the restored weights carry the mask as exact zeros.
            self.masks = pruning.masks_from_zeros(model, include_bias=include_bias)
            pruning.apply_masks(model, self.masks)
            logging.info("SNIPCallback: restored weights are already %.4f sparse; re-installed "
                         "their zero pattern as the mask instead of re-scoring.", report.sparsity)
            return True
        return False

    def _prune(self, data, num_batches):
        self.masks, self.scores = pruning.prune(self.model, data, self.sparsity,
                                                num_batches=num_batches, return_scores=True,
                                                **self.options)
        logging.info("SNIPCallback: pruned to sparsity %.4f.", pruning.sparsity(
            self.model, include_bias=self.options.get("include_bias", False)))

    def on_train_begin(self, logs=None):
        if (self.model.built and self._adopt_existing()) or self.data is not None:
            if self.masks is None:
                self._prune(self.data, self.num_batches)
            # `fit` built its train function before this hook; rebuild it with the constraints.
            self.model.make_train_function(force=True)
            return
        steps = (self.params or {}).get("steps")
        if steps and self.num_batches > steps:
            raise ValueError(
                f"SNIPCallback(num_batches={self.num_batches}) scores on the first "
                f"{self.num_batches} training batches, but an epoch has only {steps}. Lower "
                "num_batches, or pass data= to score on other data. The model was not changed.")
        self._wrap_train_function()

    def _wrap_train_function(self):
        model = self.model
        model.make_train_function()
        original = model.train_function
        callback = self
        steps = max(int(getattr(model, "steps_per_execution", 1) or 1), 1)
        queue, state = [], {}

        def train_function(iterator):
            # The first call draws the scoring batches, prunes, and queues them: the following
            # calls train them one execution at a time (steps_per_execution batches each), before
            # drawing from fit's iterator again. Every batch is trained once, in order, with one
            # on_train_batch_end and one optimizer step per batch, as without the callback.
            if "train" not in state:
                batches = _draw(iterator, callback.num_batches)
                if len(batches) < callback.num_batches:
                    raise ValueError(
                        f"SNIPCallback(num_batches={callback.num_batches}) scores on the first "
                        f"{callback.num_batches} training batches, but the epoch has only "
                        f"{len(batches)}. Lower num_batches, or pass data= to score on other "
                        "data. The model was not changed.")
                model.train_function = original
                if not (model.built and callback._adopt_existing()):
                    from snip_tf import scoring

                    # Under tf.distribute these are per-replica; score on the global batch.
                    callback.scoring_batches = scoring.batches_of(
                        iter(batches), callback.num_batches, model.distribute_strategy)
                    callback._prune(iter(callback.scoring_batches), callback.num_batches)
                model.make_train_function(force=True)
                state["train"] = model.train_function
                model.train_function = train_function
                queue.extend(batches)
            take = queue[:steps]
            del queue[:steps]
            if len(take) < steps:
                take += _draw(iterator, steps - len(take))
            if not queue:
                model.train_function = state["train"]
            if not take:
                raise StopIteration
            return state["train"](iter(take))

        train_function.snip_tf_wrapper = True
        model.train_function = train_function
        self._unwrap = lambda: _unwrap(model, original, state, queue)

    def on_train_end(self, logs=None):
        # A fit that ran no step, or stopped with scoring batches still queued, must not leave
        # the wrapper behind for the next fit.
        unwrap = getattr(self, "_unwrap", None)
        if unwrap is not None:
            unwrap()
            self._unwrap = None


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` whose backups survive a kill at any moment.

    Keras's callback overwrites ``latest.weights.h5`` in place, so a run killed while it writes
    leaves a file that cannot be read, and the resumed run fails. Here every backup is a new
    weights file; the small metadata file that names it (epoch, batch, file) is replaced
    atomically once the weights are complete, and older weights files are deleted only then. The
    model's mask record (``snip_tf.track``) is saved with the weights, so a resume restores the
    exact mask. Same arguments as Keras's callback, and ``shuffled``: the ``tf.data.Dataset``
    that ``fit`` trains on. ``tf.data``'s ``shuffle(seed=..., reshuffle_each_iteration=True)``
    draws each epoch's order from a sequence that starts again with the process, so a run
    restored at epoch ``k`` would see the orders of epochs 0, 1, ... again; given the dataset,
    the restore makes the iterators the lost epochs made (Keras's epoch iterator makes two per
    epoch for a dataset of known length: the epoch's, and one at its end that the next epoch
    replaces; one otherwise), and the resumed run trains as the uninterrupted one. Random
    augmentation draws from its own generators and is not replayed.

    A resumed ``fit`` returns the history of its own epochs only; this callback also keeps the
    run's earlier epochs' logs (scalar metrics; a non-finite or non-scalar value is None) and
    their time in ``fit`` in the backup. :attr:`earlier_history` and :attr:`earlier_elapsed_s`
    are what a resumed run restored (:func:`join_histories` puts them before ``fit``'s own
    history), :attr:`restored_epoch` the epoch it continued from (None for a run that started
    afresh), and :attr:`history_complete` is False where the backup predates these records.
    Only the keys logged by callbacks that come before this one are kept.

    >>> model.fit(x, y, epochs=50,                                           # doctest: +SKIP
    ...           callbacks=[snip_tf.SNIPCallback(0.9), BackupAndRestore("backup")])
    >>> model.fit(train, epochs=50,                                          # doctest: +SKIP
    ...           callbacks=[BackupAndRestore("backup", shuffled=train)])
    """

    def __init__(self, *args, shuffled=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.shuffled = shuffled
        self.restored_epoch, self.history_complete = None, True
        self.earlier_history, self.earlier_elapsed_s = {}, 0.0
        self._segment, self._began = {}, None

    def on_train_begin(self, logs=None):
        # a second fit() with this callback starts from nothing but its backup
        self._current_epoch = self._last_batch_seen = self._batches_seen_since_last_saving = 0
        self.restored_epoch, self.history_complete = None, True
        self.earlier_history, self.earlier_elapsed_s, self._segment = {}, 0.0, {}
        self._began = time.perf_counter()
        super().on_train_begin(logs)
        if self.shuffled is not None and self.restored_epoch:
            per_epoch = 2 if int(self.shuffled.cardinality()) > 0 else 1
            for _ in range(per_epoch * self.restored_epoch):
                iter(self.shuffled)

    def on_epoch_end(self, epoch, logs=None):
        self._segment = join_histories(self._segment, {k: [_scalar(v)] for k, v in
                                                       (logs or {}).items()})
        super().on_epoch_end(epoch, logs)   # saves the backup (save_freq="epoch")

    def run_elapsed_s(self) -> float:
        """Seconds in ``fit`` so far, over every segment of the run (of the earlier ones, up to
        their last backup)."""
        now = time.perf_counter() - self._began if self._began is not None else 0.0
        return self.earlier_elapsed_s + now

    def _state_files(self):
        return [n for n in os.listdir(self.backup_dir)
                if n.startswith("state-") and n.endswith(".weights.h5")]

    def _save_model(self):
        from snip_tf import atomic

        os.makedirs(self.backup_dir, exist_ok=True)
        # A name no earlier backup has, in this process or any other: the file the metadata
        # names is never written to again.
        name = (f"state-{self._current_epoch}-{self._last_batch_seen}-{time.time_ns()}-"
                f"{uuid.uuid4().hex[:8]}.weights.h5")
        self.model.save_weights(os.path.join(self.backup_dir, name), overwrite=True)
        atomic.write_json(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen,
                           "weights": name,
                           "history": join_histories(self.earlier_history, self._segment),
                           "elapsed_s": self.run_elapsed_s()})
        for old in self._state_files():
            if old != name:
                os.remove(os.path.join(self.backup_dir, old))

    def _load_model(self):
        if not self.model.built:
            raise ValueError("BackupAndRestore needs a built model; call it on a batch of data "
                             "before fit().")
        if not os.path.exists(self._training_metadata_path):
            return
        metadata = atomic.read_json(self._training_metadata_path, expect=dict)
        if "weights" not in metadata:             # a backup Keras's own callback wrote
            return super()._load_model()
        weights = os.path.join(self.backup_dir, str(metadata["weights"]))
        if not os.path.isfile(weights):
            raise ValueError(f"BackupAndRestore: the backup in {self.backup_dir!r} names weights "
                             f"{metadata['weights']!r}, which are not there.")
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        history, elapsed = metadata.get("history", {}), metadata.get("elapsed_s", 0.0)
        if not (isinstance(history, dict) and all(
                isinstance(v, list) and all(x is None or isinstance(x, (int, float)) for x in v)
                for v in history.values()) and isinstance(elapsed, (int, float))):
            raise ValueError(f"BackupAndRestore: {self._training_metadata_path!r} holds no valid "
                             "run history (expected {'history': {metric: [numbers or null]}, "
                             "'elapsed_s': seconds}).")
        self.model.load_weights(weights)
        self.model._initial_epoch = int(metadata["epoch"])
        self._current_epoch = int(metadata["epoch"])
        self.restored_epoch = self._current_epoch
        self.history_complete = "history" in metadata
        self.earlier_history = {k: [float("nan") if x is None else float(x) for x in v]
                                for k, v in history.items()}
        self.earlier_elapsed_s = float(elapsed)


def join_histories(earlier: dict, later: dict) -> dict:
    """Two runs of epochs' logs (``{metric: [value per epoch]}``, as ``History.history``), one
    after the other; a metric one side did not log is None for each of that side's epochs.

    >>> join_histories({"loss": [0.9, 0.5]}, {"loss": [0.4], "acc": [0.8]})
    {'loss': [0.9, 0.5, 0.4], 'acc': [None, None, 0.8]}
    """
    def length(h):
        return max((len(v) for v in h.values()), default=0)

    return {key: list(earlier.get(key, [None] * length(earlier)))
            + list(later.get(key, [None] * length(later)))
            for key in {**earlier, **later}}


def _scalar(value):
    """A log value as a float, or None where it is not a scalar (e.g. a per-class metric)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _unwrap(model, original, state, queue) -> None:
    if getattr(model.train_function, "snip_tf_wrapper", False):
        model.train_function = state.get("train", original)
    queue.clear()


def _draw(iterator, count: int) -> list:
    """Up to ``count`` batches from ``iterator`` (fewer at the end of the data)."""
    import tensorflow as tf

    out = []
    for _ in range(count):
        try:
            out.append(_next_batch(iterator))
        except (StopIteration, tf.errors.OutOfRangeError):
            break
    return out


def _next_batch(iterator):
    return iterator.get_next() if hasattr(iterator, "get_next") else next(iterator)


def _installed_masks(model) -> dict:
    from snip_tf import masking

    return {variable.path: mask for _, variable, mask in masking.hooked_variables(model)}


class MemorizationCallback(keras.callbacks.Callback):
    """Records how well the model fits a fixed labelled set (e.g. randomly labelled training data)
    during training, and says whether it memorized it.

    After every epoch (and every ``every_n_batches`` batches, if set) it evaluates the loss and
    accuracy of the model on ``data`` in inference mode, appending to :attr:`curve`. The model has
    memorized the set once its accuracy reaches ``threshold``.

    Args:
        data: ``(x, y)`` arrays (the set to watch; e.g. the random-labelled training subset).
        threshold: accuracy at which the set counts as memorized.
        every_n_batches: also record within epochs, every this many batches (0: epochs only).
        batch_size: evaluation batch size.
        loss: loss to record; default the model's compiled loss.
        path: keep the curve in this JSON file (written atomically after each record) and read
            it back when a run resumed from a backup starts: the records up to the optimizer's
            restored step are kept, so the curve survives a kill. Its steps are then the
            optimizer's; the callback must come after the one that restores the backup.

    Example:
    >>> memo = MemorizationCallback((x_rand, y_rand), threshold=0.95)        # doctest: +SKIP
    >>> model.fit(x_rand, y_rand, epochs=50, callbacks=[memo])                # doctest: +SKIP
    >>> memo.memorized, memo.first_memorized_step                             # doctest: +SKIP
    """

    def __init__(self, data, threshold: float = 0.95, every_n_batches: int = 0,
                 batch_size: int = 500, loss=None, path=None):
        super().__init__()
        if not isinstance(data, tuple) or len(data) != 2:
            raise ValueError("MemorizationCallback needs data=(x, y) arrays.")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1]; got {threshold!r}.")
        self.x, self.y = data
        self.threshold = float(threshold)
        self.every_n_batches = int(every_n_batches)
        self.batch_size = int(batch_size)
        self.loss = loss
        self.curve = {"step": [], "epoch": [], "loss": [], "accuracy": []}
        self._step = 0
        self._epoch = 0
        self._loss_fn = None
        self.path = path
        if path and os.path.exists(path):
            curve = atomic.read_json(path, expect=dict)
            lengths = {len(curve.get(key, ())) if isinstance(curve.get(key), list) else None
                       for key in self.curve}
            if set(curve) != set(self.curve) or len(lengths) != 1 or None in lengths:
                raise ValueError(f"{path!r} is not a memorization curve: expected lists "
                                 f"{sorted(self.curve)} of one length.")
            self.curve = curve

    def _measure(self):
        import numpy as np

        from snip_tf import scoring

        if self._loss_fn is None:
            self._loss_fn = scoring.resolve_loss(self.model, self.loss)
        total_loss, correct, n = 0.0, 0, len(self.x)
        for start in range(0, n, self.batch_size):
            xb, yb = self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            pred = self.model(xb, training=False)
            total_loss += float(self._loss_fn(yb, pred, None)) * len(xb)
            correct += int(np.sum(np.argmax(np.asarray(pred), axis=-1) == np.asarray(yb)))
        self.curve["step"].append(self._step)
        self.curve["epoch"].append(self._epoch)
        self.curve["loss"].append(total_loss / n)
        self.curve["accuracy"].append(correct / n)
        if self.path:
            atomic.write_json(self.path, self.curve)

    def on_train_begin(self, logs=None):
        if self.path:  # steps are the optimizer's: a resumed run continues the curve
            done = int(self.model.optimizer.iterations.numpy())
            keep = [i for i, step in enumerate(self.curve["step"]) if step <= done]
            self.curve = {key: [values[i] for i in keep] for key, values in self.curve.items()}
            self._step = done
            self._epoch = int(getattr(self.model, "_initial_epoch", None) or 0)
            if self.curve["step"] and self.curve["step"][-1] == done:
                return  # the restored weights were measured when they were saved
        self._measure()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.every_n_batches and self._step % self.every_n_batches == 0:
            self._measure()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        if not (self.every_n_batches and self._step % self.every_n_batches == 0):
            self._measure()
        if logs is not None:
            logs["memorization_accuracy"] = self.curve["accuracy"][-1]

    @property
    def memorized(self) -> bool:
        """True once the recorded accuracy reached ``threshold``."""
        return any(a >= self.threshold for a in self.curve["accuracy"])

    @property
    def first_memorized_step(self):
        """The first recorded step at which accuracy reached ``threshold``, or None."""
        for step, acc in zip(self.curve["step"], self.curve["accuracy"]):
            if acc >= self.threshold:
                return step
        return None


class PruningSummaries(keras.callbacks.Callback):
    """Writes pruning summaries to TensorBoard, as users of the TF Model Optimization toolkit
    expect: per-weight and global sparsity (scalars), weight and score histograms, and the first
    prunable weight's mask as an image.

    Args:
        log_dir: the TensorBoard log folder (a ``pruning`` run is written in it).
        scores_from: a :class:`SNIPCallback` whose scores to histogram (optional).
        image_shape: reshape the first weight's mask (inputs x units, averaged over units) to this
            image shape, e.g. (28, 28); default: the mask itself as an image.

    >>> model.fit(x, y, callbacks=[snip := SNIPCallback(0.9),                    # doctest: +SKIP
    ...                            PruningSummaries("logs", scores_from=snip)])
    """

    def __init__(self, log_dir: str, scores_from=None, image_shape=None):
        super().__init__()
        import os

        self.log_dir = os.path.join(log_dir, "pruning")
        self.scores_from = scores_from
        self.image_shape = image_shape
        self._writer = None
        self._step = 0
        self._wrote_once = False

    def _write(self, step: int, with_images: bool):
        import numpy as np
        import tensorflow as tf

        from snip_tf import masking
        from snip_tf import pruning as snip_pruning

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        report = snip_pruning.sparsity_report(self.model)
        with self._writer.as_default(step=step):
            tf.summary.scalar("sparsity/global", report.sparsity)
            for row in report.rows:
                tf.summary.scalar(f"sparsity/{row.weight}", row.sparsity)
            entries = masking.prunable_entries(self.model)
            for e in entries:
                tf.summary.histogram(f"weights/{e.path}", e.variable.numpy())
            if with_images:
                scores = getattr(self.scores_from, "scores", None)
                for path, values in (scores or {}).items():
                    tf.summary.histogram(f"scores/{path}", values)
                if entries:
                    mask = (entries[0].variable.numpy() != 0).astype(np.float32)
                    mask = mask.reshape(-1, mask.shape[-1])
                    image = (mask.mean(axis=1).reshape(self.image_shape) if self.image_shape
                             else mask)
                    tf.summary.image(f"mask/{entries[0].path}", image[None, :, :, None],
                                     step=step)
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if not self._wrote_once:   # right after the first step: SNIP has pruned by then
            self._write(0, with_images=True)
            self._wrote_once = True

    def on_epoch_end(self, epoch, logs=None):
        self._write(self._step, with_images=False)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
