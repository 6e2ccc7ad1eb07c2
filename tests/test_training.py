"""Pruned weights stay zero through every way of training; callback, resume and collapse."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from snip_tf import atomic
from conftest import classification_data, mlp

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def assert_masked(model, masks):
    for v, m in zip(snip_tf.prunable_weights(model), masks.values()):
        assert (v.numpy()[~m] == 0.0).all(), v.path


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    lambda: keras.optimizers.Adam(0.01),
    lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    lambda: keras.optimizers.RMSprop(0.01),
])
@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_pruned_weights_stay_exactly_zero(optimizer, loop):
    x, y = classification_data(n=64)
    model = mlp()
    model.compile(optimizer=optimizer(), loss=LOSS)
    masks = snip_tf.snip(model, (x, y), 0.8)
    if loop == "fit":
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    else:
        opt = optimizer()

        @tf.function
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = LOSS(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))

        for _ in range(10):
            step(x, y)
    assert_masked(model, masks)
    kept = sum(int(m.sum()) for m in masks.values())
    assert snip_tf.sparsity_report(model).kept == kept   # the kept weights are trained, non-zero


@pytest.mark.parametrize("when", ["compiled before pruning", "compiled after pruning",
                                  "pruned by the callback", "Masked wrapper"])
def test_an_optimizer_with_ema_leaves_the_trained_model_sparse(when):
    # fit ends by writing the moving averages into the model: the pruned weights' averages must
    # be zero, i.e. the pruned weights must never move, not only be put back to zero.
    x, y = classification_data(n=64)
    model = mlp(compile=False)
    if when == "Masked wrapper":
        model = keras.Sequential([keras.Input((6, 5)), keras.layers.Flatten(),
                                  snip_tf.Masked(keras.layers.Dense(16, activation="relu")),
                                  snip_tf.Masked(keras.layers.Dense(3))])
    optimizer = keras.optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9)
    callbacks = []
    if when == "compiled after pruning":
        masks = snip_tf.prune(model, (x, y), 0.8, loss=LOSS)
        model.compile(optimizer=optimizer, loss=LOSS)
    else:
        model.compile(optimizer=optimizer, loss=LOSS)
        if when == "pruned by the callback":
            callbacks = [snip_tf.SNIPCallback(0.8, data=(x, y))]
        else:
            masks = snip_tf.prune(model, (x, y), 0.8)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
    if callbacks:
        masks = callbacks[0].masks
    assert_masked(model, masks)
    assert snip_tf.sparsity_report(model).kept == sum(int(m.sum()) for m in masks.values())


def test_clipping_counts_the_kept_gradients_only():
    # One SGD step with global_clipnorm: the kept weights move as the sparse network's would,
    # clipped by the norm of the kept weights' gradients (the pruned ones are zero, as in the
    # authors' code, where each weight is multiplied by its mask).
    x, y = classification_data(n=32)
    model = mlp(compile=False)
    model.compile(optimizer=keras.optimizers.SGD(0.5, global_clipnorm=0.01), loss=LOSS)
    masks = snip_tf.prune(model, (x, y), 0.9)
    before = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    kept = {v.path: masks[v.path] for v in model.trainable_variables if v.path in masks}
    grads = [g.numpy() * kept.get(v.path, 1) for g, v in zip(grads, model.trainable_variables)]
    norm = np.sqrt(sum(float((g ** 2).sum()) for g in grads))
    assert norm > 0.01  # the clipping is active
    model.train_on_batch(x, y)
    for v, w, g in zip(model.trainable_variables, before, grads):
        np.testing.assert_allclose(v.numpy(), w - 0.5 * g * 0.01 / norm, atol=1e-6)


def test_a_custom_loop_sees_the_sparse_networks_gradients():
    x, y = classification_data(n=32)
    model = mlp(compile=False)
    masks = snip_tf.prune(model, (x, y), 0.8, loss=LOSS)
    opt = keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))
    opt.finalize_variable_values(model.trainable_variables)  # the moving averages
    assert_masked(model, masks)


def test_an_embeddings_sparse_gradient_is_masked_by_rows():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 50, (64, 6)), rng.integers(0, 2, 64)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(50, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.01, use_ema=True, clipnorm=0.1), loss=LOSS)
    masks = snip_tf.prune(model, (x, y), 0.7)
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x))
    assert isinstance(tape.gradient(loss, model.layers[0].embeddings), tf.IndexedSlices)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert_masked(model, masks)


@pytest.mark.parametrize("how", ["pruned after training", "loaded by Keras",
                                 "inside a larger model"])
def test_gradients_are_masked_wherever_the_pruned_weights_are_trained(how, tmp_path):
    # The masking belongs to the pruned variables, not to one model object or optimizer state.
    x, y = classification_data(n=64)
    model = mlp(compile=False)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True, ema_momentum=0.5)
    if how == "pruned after training":  # momentum and averages hold values for every weight
        model.compile(optimizer=optimizer, loss=LOSS)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        masks = snip_tf.prune(model, (x, y), 0.8)
    else:
        masks = snip_tf.prune(model, (x, y), 0.8, loss=LOSS)
    if how == "loaded by Keras":
        model.save(tmp_path / "pruned.keras")
        model = keras.models.load_model(tmp_path / "pruned.keras")
        model.compile(optimizer=optimizer, loss=LOSS)
    if how == "inside a larger model":
        model = keras.Sequential([keras.Input((6, 5)), model, keras.layers.Activation("linear")])
        model.compile(optimizer=optimizer, loss=LOSS)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for v, m in zip(snip_tf.prunable_weights(model), masks.values()):
        assert (v.numpy()[~m] == 0.0).all(), v.path


def test_existing_constraint_is_composed_not_dropped():
    x, y = classification_data(n=64)
    model = mlp(kernel_constraint=keras.constraints.MaxNorm(0.05))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=LOSS)
    masks = snip_tf.snip(model, (x, y), 0.5)
    model.fit(x, y, epochs=2, verbose=0)
    kernel = snip_tf.prunable_weights(model)[0].numpy()
    assert np.sqrt((kernel ** 2).sum(axis=0)).max() <= 0.05 + 1e-6   # MaxNorm still applied
    assert_masked(model, masks)
    stripped = snip_tf.strip(model)
    assert isinstance(stripped.layers[1].kernel_constraint, keras.constraints.MaxNorm)


def test_same_weights_and_batch_give_the_same_mask():
    x, y = classification_data()
    a = mlp()
    b = mlp()
    b.set_weights(a.get_weights())
    ma = snip_tf.snip(a, (x, y), 0.9)
    mb = snip_tf.snip(b, (x, y), 0.9)
    assert all((p == q).all() for p, q in zip(ma.values(), mb.values()))


def test_functional_and_subclassed_models():
    x, y = classification_data()

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = keras.layers.Flatten()
            self.hidden = keras.layers.Dense(12, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, inputs):
            return self.out(self.hidden(self.flat(inputs)))

    inputs = keras.Input((6, 5))
    functional = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    for model in (Net(), functional):
        model.compile(optimizer="adam", loss=LOSS)
        model.fit(x, y, epochs=2, verbose=0, callbacks=[snip_tf.SNIPCallback(0.75)])
        report = snip_tf.sparsity_report(model)
        assert report.kept == snip_tf.selection.num_to_keep(0.75, report.total)


def test_callback_without_data_scores_the_first_training_batch():
    x, y = classification_data(n=64)
    model = mlp()
    twin = mlp()
    twin.set_weights(model.get_weights())
    callback = snip_tf.SNIPCallback(0.9)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                        callbacks=[callback])
    expected = snip_tf.snip(twin, (x[:16], y[:16]), 0.9)
    assert all((a == b).all() for a, b in zip(callback.masks.values(), expected.values()))
    assert_masked(model, callback.masks)
    # the scoring batch was trained on: same number of steps as an unpruned run
    assert len(history.history["loss"]) == 2
    twin.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert twin.optimizer.iterations.numpy() == model.optimizer.iterations.numpy() == 8


def test_callback_with_steps_per_execution_and_dataset():
    x, y = classification_data(n=64)
    model = mlp()
    model.compile(optimizer="sgd", loss=LOSS, steps_per_execution=3)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    callback = snip_tf.SNIPCallback(0.9, num_batches=2)
    model.fit(ds, epochs=2, verbose=0, callbacks=[callback])
    assert model.optimizer.iterations.numpy() == 16
    assert_masked(model, callback.masks)


def test_callback_with_explicit_data():
    x, y = classification_data(n=64)
    model = mlp()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    twin = mlp()
    twin.set_weights(model.get_weights())
    callback = snip_tf.SNIPCallback(0.9, data=ds, num_batches=2)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    expected = snip_tf.snip(twin, ds, 0.9, num_batches=2)
    assert all((a == b).all() for a, b in zip(callback.masks.values(), expected.values()))
    assert_masked(model, callback.masks)


def test_callback_validates_its_arguments():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        snip_tf.SNIPCallback(1.0)
    with pytest.raises(ValueError, match="unknown options"):
        snip_tf.SNIPCallback(0.5, temperature=3)


def test_second_fit_does_not_prune_again():
    x, y = classification_data(n=64)
    model = mlp()
    callback = snip_tf.SNIPCallback(0.9)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    first = {k: v.copy() for k, v in callback.masks.items()}
    model.fit(x, y, epochs=1, verbose=0, callbacks=[snip_tf.SNIPCallback(0.9)])
    assert_masked(model, first)


def test_backup_and_restore_resume_keeps_the_mask(tmp_path):
    x, y = classification_data(n=64)
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    model = mlp()
    callback = snip_tf.SNIPCallback(0.9)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, epochs=4, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(backup), callback, Interrupt()])
    masks = callback.masks
    fresh = mlp()   # a new process would rebuild the model from code
    resumed = snip_tf.SNIPCallback(0.9)
    fresh.fit(x, y, epochs=4, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(backup), resumed])
    assert all((a == b).all() for a, b in zip(resumed.masks.values(), masks.values()))
    assert_masked(fresh, masks)


def test_tf_train_checkpoint_round_trip(tmp_path):
    x, y = classification_data(n=64)
    model = mlp()
    masks = snip_tf.snip(model, (x, y), 0.9)
    model.fit(x, y, epochs=1, verbose=0)
    checkpoint = tf.train.Checkpoint(model=model)
    path = checkpoint.save(os.path.join(tmp_path, "ckpt"))
    restored = mlp()
    tf.train.Checkpoint(model=restored).restore(path).expect_partial()
    snip_tf.apply_masks(restored, snip_tf.masks_from_zeros(restored))
    restored.fit(x, y, epochs=1, verbose=0)
    assert_masked(restored, masks)


def test_layer_collapse_is_detected_warned_and_reported():
    x, y = classification_data()
    inputs = keras.Input((6, 5))
    flat = keras.layers.Flatten()(inputs)
    side = keras.layers.Dense(4, name="side")
    merged = keras.layers.Concatenate()([keras.layers.Dense(200)(flat), side(flat)])
    model = keras.Model(inputs, keras.layers.Dense(3)(merged))
    model.compile(loss=LOSS)
    # A side branch whose weights are tiny scores far below the rest and loses every connection.
    side.kernel.assign(side.kernel * 1e-6)
    with pytest.warns(snip_tf.LayerCollapseWarning, match="side/kernel"):
        snip_tf.snip(model, (x, y), 0.99)
    report = snip_tf.sparsity_report(model)
    assert report.collapsed and "COLLAPSED" in str(report)
    assert report.to_dict()["collapsed"] == report.collapsed


def test_sparsity_report_table():
    x, y = classification_data()
    model = mlp()
    snip_tf.snip(model, (x, y), 0.5)
    report = snip_tf.sparsity_report(model)
    assert report.sparsity == pytest.approx(0.5, abs=1 / report.total)
    text = str(report)
    assert "kernel" in text and "total" in text and "%" in text
    assert [r.total for r in report.rows] == [30 * 16, 16 * 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snip_tf.sparsity(model)


def test_callback_in_eager_mode():
    x, y = classification_data(n=32)
    model = mlp()
    model.compile(optimizer="sgd", loss=LOSS, run_eagerly=True)
    callback = snip_tf.SNIPCallback(0.9)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert model.optimizer.iterations.numpy() == 2
    assert_masked(model, callback.masks)


def test_memorization_callback_detects_fitting_random_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 5)).astype("float32")
    y_random = rng.integers(0, 3, 64)
    big = mlp(hidden=256)
    big.compile(optimizer=keras.optimizers.Adam(0.01), loss=LOSS)
    memo = snip_tf.MemorizationCallback((x, y_random), threshold=0.95, every_n_batches=4)
    big.fit(x, y_random, epochs=40, batch_size=16, verbose=0, callbacks=[memo])
    assert memo.memorized and memo.first_memorized_step is not None
    assert memo.curve["loss"][-1] < memo.curve["loss"][0]
    assert len(memo.curve["step"]) == 1 + 40 * 4 // 4

    tiny = mlp(hidden=1)           # one hidden unit cannot memorize 64 random labels
    tiny.compile(optimizer=keras.optimizers.Adam(0.01), loss=LOSS)
    memo_tiny = snip_tf.MemorizationCallback((x, y_random), threshold=0.95)
    tiny.fit(x, y_random, epochs=5, batch_size=16, verbose=0, callbacks=[memo_tiny])
    assert not memo_tiny.memorized and memo_tiny.first_memorized_step is None
    assert len(memo_tiny.curve["accuracy"]) == 6
    with pytest.raises(ValueError, match="threshold"):
        snip_tf.MemorizationCallback((x, y_random), threshold=2)


def test_callback_scoring_several_batches_trains_every_batch_once_in_order():
    x, y = classification_data(n=64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)       # 8 batches an epoch
    model = mlp()
    twin = mlp()
    twin.set_weights(model.get_weights())
    ends = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(batch)

    callback = snip_tf.SNIPCallback(0.9, num_batches=np.int64(3))
    model.fit(ds, epochs=2, verbose=0, callbacks=[callback, Count()])
    assert ends == list(range(8)) * 2                       # one end per batch, as without SNIP
    assert model.optimizer.iterations.numpy() == 16
    expected = snip_tf.snip(twin, ds, 0.9, num_batches=3)   # the same 3 batches scored
    assert all((a == b).all() for a, b in zip(callback.masks.values(), expected.values()))
    twin.fit(ds, epochs=2, verbose=0)                       # then trained as usual
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_callback_num_batches_beyond_an_epoch_is_a_clear_error():
    x, y = classification_data(n=32)
    model = mlp()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="an epoch has only 4"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                  callbacks=[snip_tf.SNIPCallback(0.9, num_batches=5)])
    assert not snip_tf.is_pruned(model) and model.optimizer.iterations.numpy() == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).filter(lambda a, b: True)
    assert ds.cardinality() == tf.data.UNKNOWN_CARDINALITY
    with pytest.raises(ValueError, match="the epoch has only 4"):   # length unknown in advance
        model.fit(ds, epochs=1, verbose=0, callbacks=[snip_tf.SNIPCallback(0.9, num_batches=5)])
    assert not snip_tf.is_pruned(model)


def test_backup_survives_a_kill_while_it_is_written(tmp_path):
    x, y = classification_data(n=32)
    backup = str(tmp_path / "backup")
    model = mlp()
    callback = snip_tf.BackupAndRestore(backup)
    with pytest.raises(_Killed):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0,
                  callbacks=[snip_tf.SNIPCallback(0.8), callback, _StopAt(2)])
    good = [w.copy() for w in model.get_weights()]
    original = model.save_weights

    def killed_midway(filepath, **kwargs):       # a partial file, then the process dies
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF\r\n")
        raise KeyboardInterrupt

    model.save_weights = killed_midway
    callback._current_epoch = 3
    with pytest.raises(KeyboardInterrupt):
        callback._save_model()
    model.save_weights = original
    fresh = mlp()
    fresh.fit(x, y, epochs=2, batch_size=8, verbose=0,
              callbacks=[snip_tf.SNIPCallback(0.8), snip_tf.BackupAndRestore(backup), _Capture()])
    for a, b in zip(_Capture.first, good):
        np.testing.assert_array_equal(a, b)          # resumed from the last complete backup
    assert snip_tf.is_pruned(fresh)


def test_backup_keeps_the_whole_runs_history_and_time_across_a_kill(tmp_path):
    x, y = classification_data(n=32)
    backup = str(tmp_path / "backup")

    class AddsALog(keras.callbacks.Callback):        # after the backup: not in its records
        def on_epoch_end(self, epoch, logs=None):
            logs["late"] = 1.0

    first = snip_tf.BackupAndRestore(backup)
    with pytest.raises(_Killed):
        mlp().fit(x, y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[snip_tf.SNIPCallback(0.8), first, AddsALog(), _StopAt(2)])
    assert first.restored_epoch is None and first.earlier_elapsed_s == 0
    second = snip_tf.BackupAndRestore(backup)
    history = mlp().fit(x, y, epochs=5, batch_size=8, verbose=0,
                        callbacks=[snip_tf.SNIPCallback(0.8), second, AddsALog()])
    assert len(history.history["loss"]) == 3               # fit's own: this segment only
    assert second.restored_epoch == 2 and second.history_complete
    assert len(second.earlier_history["loss"]) == 2 and "late" not in second.earlier_history
    assert 0 < second.earlier_elapsed_s < second.run_elapsed_s()
    whole = snip_tf.callbacks.join_histories(second.earlier_history, history.history)
    assert whole["loss"] == second.earlier_history["loss"] + history.history["loss"]
    assert whole["late"] == [None, None, 1.0, 1.0, 1.0]    # aligned with the epochs


def test_a_backup_keeps_a_diverged_epochs_nan_loss_and_resumes(tmp_path):
    x, y = classification_data(n=32)
    backup = str(tmp_path / "backup")

    class Diverges(keras.callbacks.Callback):          # before the backup: it records the NaN
        def on_epoch_end(self, epoch, logs=None):
            logs["loss"] = float("nan")

    with pytest.raises(_Killed):
        mlp().fit(x, y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[Diverges(), snip_tf.BackupAndRestore(backup), _StopAt(2)])
    callback = snip_tf.BackupAndRestore(backup)
    mlp().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[callback])
    assert callback.restored_epoch == 2 and np.isnan(callback.earlier_history["loss"]).all()


def test_a_backup_with_a_damaged_history_is_named_and_leaves_the_model_alone(tmp_path):
    x, y = classification_data(n=32)
    backup = str(tmp_path / "backup")
    with pytest.raises(_Killed):
        mlp().fit(x, y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[snip_tf.SNIPCallback(0.8), snip_tf.BackupAndRestore(backup),
                             _StopAt(2)])
    path = os.path.join(backup, "training_metadata.json")
    metadata = atomic.read_json(path, expect=dict)
    atomic.write_json(path, {**metadata, "history": {"loss": "nan"}})
    model = mlp()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="holds no valid run history"):
        model.fit(x, y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[snip_tf.BackupAndRestore(backup)])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


class _StopAt(keras.callbacks.Callback):
    """Ends fit after ``epochs`` epochs without the clean-up of a finished run (a kill)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise _Killed()


class _Killed(Exception):
    pass


class _Capture(keras.callbacks.Callback):
    first = None

    def on_train_begin(self, logs=None):
        _Capture.first = [w.copy() for w in self.model.get_weights()]


def test_a_fit_that_runs_no_step_leaves_no_scoring_wrapper_behind():
    x, y = classification_data(n=32)
    model = mlp()
    model.fit(x, y, epochs=0, verbose=0, callbacks=[snip_tf.SNIPCallback(0.5)])
    assert not getattr(model.train_function, "snip_tf_wrapper", False)
    model.fit(x, y, epochs=1, verbose=0)                 # a later fit without the callback
    assert not snip_tf.is_pruned(model)
