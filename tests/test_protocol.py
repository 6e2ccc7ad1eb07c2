"""The training protocol of the experiments: an exact iteration budget, evaluation at the authors'
checkpoints with its three test errors, progress lines."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from snip_tf import atomic, training
from snip_tf.config import base_config


def _config(**fields):
    c = base_config()  # the MLP on 8x8 digits: no data files needed
    c.update({"sparsity": 0.5, "learning_rate": 0.05, **fields})
    return c


def test_iterations_eval_checkpoints_and_progress_lines():
    result = training.run(_config(iterations=25, eval_every=5, eval_last=3),
                          progress=3, label="mlp seed 0")
    # 13 steps per epoch (the digits' training split at batch 100): 25 iterations end mid-epoch
    assert result["train_size"] // 100 + 1 == 13
    assert result["iterations"] == 25 and result["epochs"] == 2
    records = result["checkpoints"]
    assert [r["iteration"] for r in records] == [15, 20, 25]
    metrics = result["metrics"]
    # the last checkpoint is the final network, which the test error at the end measures
    assert records[-1]["test_error"] == pytest.approx(metrics["test_error"], abs=1e-6)
    assert metrics["test_error_authors_rule"] == min(r["test_error"] for r in records[-5:])
    best = min(records, key=lambda r: (r["validation_error"], -r["iteration"]))
    assert metrics["test_error_validation_selected"] == best["test_error"]
    assert metrics["validation_selected_iteration"] == best["iteration"]


def test_authors_rule_reads_the_last_five_checkpoints_their_saver_kept():
    # snip/train.py saves with tf.train.Saver() (max_to_keep=5); snip/test.py takes the best of them
    records = [{"iteration": 1000 * i, "validation_error": 0.02, "test_error": t}
               for i, t in zip(range(91, 101), [0.010, 0.011] + [0.020] * 8)]
    summary = training.checkpoint_summary(list(reversed(records)))  # in any order
    assert training.AUTHORS_RULE_LAST == 5
    assert summary["test_error_authors_rule"] == 0.020            # not 0.010, from iteration 91k
    assert summary["validation_selected_iteration"] == 100_000      # a tie: the later one
    no_validation = [{**r, "validation_error": None} for r in records]
    assert training.checkpoint_summary(no_validation)["test_error_validation_selected"] is None
    with pytest.raises(ValueError, match="authors_last must be at least 1"):
        training.checkpoint_summary(records, authors_last=0)


def test_kept_runs_are_tabled_by_the_rules_of_today():
    from snip_tf.experiments import common

    cfg = _config(iterations=100)
    # a run kept with the old rule (the best of all 6 checkpoints: 0.01, from the first)
    records = [{"iteration": 10 * i, "validation_error": v, "test_error": t}
               for i, v, t in zip(range(1, 7), [0.1, 0.2, 0.3, 0.3, 0.3, 0.3],
                                  [0.01, 0.03, 0.04, 0.05, 0.04, 0.04])]
    stale = {"test_error": 0.04, "validation_error": 0.3, "train_loss": 0.1,
             "test_error_authors_rule": 0.01, "test_error_validation_selected": 0.5}
    result = {"metrics": stale, "checkpoints": records, "epochs": 1, "iterations": 60,
              "train_size": 100, "wall_time_s": 1.0,
              "sparsity": {"sparsity": 0.5, "collapsed": []}}
    row = common.row_of(cfg, result)
    assert row["test_error_authors_rule"] == 0.03  # the last 5 checkpoints' best
    assert row["test_error_validation_selected"] == 0.01
    row = common.row_of(cfg, {**result, "checkpoints": []})  # a run without checkpoints
    assert row["test_error_authors_rule"] is None


def test_progress_lines_name_the_run_its_iteration_and_the_time_left(capsys):
    training.run(_config(iterations=20), progress=2, label="mlp seed 3")
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mlp seed 3")]
    assert len(out) == 2
    assert out[0].startswith("mlp seed 3: iteration 10/20, train loss ")
    assert "train error" in out[0] and out[-1].endswith("min left")
    assert "iteration 20/20" in out[1]


def test_a_diverged_run_stops_at_the_end_of_the_epoch_and_says_so():
    from snip_tf.experiments import common

    result = training.run(_config(epochs=3, learning_rate=1e12))  # 13 steps per epoch
    assert result["diverged_at"] == 13 and result["iterations"] == 13
    assert result["metrics"]["train_loss"] != result["metrics"]["train_loss"]  # NaN
    row = common.row_of(_config(epochs=3), result)
    note = common.diverged_note([row, {**row, "diverged_at": None}])
    assert "1 of 2 runs diverged" in note and "mlp snip 50 %: seed 0 (by iteration 13)" in note
    note = common.diverged_note([row, {**row, "seed": 4, "diverged_at": 26}])
    assert "mlp snip 50 %: seeds 0, 4 (by iteration 26)" in note
    rows = [{**row, "initializer": "rn"}, {**row, "initializer": "tn", "seed": 1}]
    note = common.diverged_note(rows, "initializer")
    assert "mlp snip 50 % initializer rn: seed 0" in note and "initializer tn: seed 1" in note
    assert common.diverged_note([{**row, "diverged_at": None}]) == ""
    assert training.run(_config(epochs=1))["diverged_at"] is None


def test_without_iterations_the_run_trains_its_epochs():
    result = training.run(_config(epochs=2))
    assert result["iterations"] == 26 and result["checkpoints"] == []
    assert "test_error_authors_rule" not in result["metrics"]


def test_checkpoint_records_survive_a_resume_up_to_the_restored_iteration(tmp_path):
    path = str(tmp_path / "run.backup.checkpoints.json")
    atomic.write_json(path, [{"iteration": i, "validation_error": 0.1, "test_error": 0.2}
                             for i in (15, 20, 30)])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(20)  # as restored from the backup of iteration 20
    callback = training.CheckpointEvaluation(40, 10, 3, None, [(np.zeros((1, 2)), [0])],
                                             path=path)
    callback.set_model(model)
    callback.on_train_begin()
    assert [r["iteration"] for r in callback.records] == [15, 20]
    assert callback.at == {20, 30, 40}
    with open(path) as f:
        assert len(json.load(f)) == 3  # rewritten only when the next checkpoint is taken


def test_memorization_curve_survives_a_resume_up_to_the_restored_step(tmp_path):
    path = str(tmp_path / "run.backup.memorization.json")
    atomic.write_json(path, {"step": [0, 6, 12], "epoch": [0, 1, 2], "loss": [2.3, 2.0, 1.5],
                             "accuracy": [0.1, 0.2, 0.4]})
    x, y = np.zeros((12, 2), "float32"), np.zeros((12,), "int32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(6)  # as restored from the backup of epoch 1
    memo = snip_tf.callbacks.MemorizationCallback((x, y), threshold=0.9, path=path)
    model.fit(x, y, batch_size=2, epochs=3, initial_epoch=1, verbose=0, callbacks=[memo])
    assert memo.curve["step"] == [0, 6, 12, 18] and memo.curve["epoch"] == [0, 1, 2, 3]
    assert memo.curve["loss"][:2] == [2.3, 2.0] and memo.curve["accuracy"][-1] == 1.0
    with open(path) as f:
        assert json.load(f) == memo.curve  # written as each record is taken


def test_memorization_measures_a_resumed_run_whose_last_epoch_was_not_measured(tmp_path):
    path = str(tmp_path / "run.backup.memorization.json")
    atomic.write_json(path, {"step": [0, 6], "epoch": [0, 1], "loss": [2.3, 2.0],
                             "accuracy": [0.1, 0.2]})  # killed after epoch 2's backup
    x, y = np.zeros((12, 2), "float32"), np.zeros((12,), "int32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(12)
    model._initial_epoch = 2  # as BackupAndRestore sets it
    memo = snip_tf.callbacks.MemorizationCallback((x, y), threshold=0.9, path=path)
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[memo])
    assert memo.curve["step"] == [0, 6, 12, 18] and memo.curve["epoch"] == [0, 1, 2, 3]


def test_a_clock_after_its_readers_is_an_error():
    x, y = np.zeros((4, 2), "float32"), np.zeros((4,), "int32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    clock = training.IterationClock()
    with pytest.raises(RuntimeError, match="put the clock in the callback list, before"):
        model.fit(x, y, batch_size=2, verbose=0,
                  callbacks=[training.StopAtIteration(3, clock=clock), clock])


def test_config_memorization_records_the_fit_in_the_result():
    result = training.run(_config(iterations=3, memorization=0.5, label_noise="random"))
    memo = result["memorization"]
    assert memo["threshold"] == 0.5 and len(memo["curve"]["loss"]) == 2  # start + 1 epoch
    with pytest.raises(ValueError, match="config.memorization must be"):
        training.run(_config(memorization=2.0))


@pytest.mark.parametrize("shared", [False, True])
def test_callbacks_on_iterations_count_the_optimizer_steps_with_or_without_a_clock(shared):
    x, y = np.zeros((12, 2), "float32"), np.zeros((12,), "int32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(3)  # a run resumed at iteration 3
    clock = training.IterationClock() if shared else None
    lines = []
    callbacks = ([clock] if shared else []) + [
        training.StopAtIteration(8, clock=clock),
        training.CheckpointEvaluation(8, 2, 3, None, [(x, y)], clock=clock),
        training.ProgressLine("run", 8, 4, log=lines.append, clock=clock)]
    model.fit(x, y, batch_size=2, epochs=5, verbose=0, callbacks=callbacks)
    assert int(model.optimizer.iterations.numpy()) == 8  # stopped mid-epoch, at 8
    assert [r["iteration"] for r in callbacks[-2].records] == [4, 6, 8]
    assert [line.split(",")[0] for line in lines] == ["run: iteration 4/8", "run: iteration 8/8"]
    if shared:
        assert clock.value == 8


@pytest.mark.parametrize("field, value", [("iterations", -1), ("eval_every", -5),
                                          ("eval_last", 0)])
def test_bad_protocol_fields_are_named(field, value):
    with pytest.raises(ValueError, match=f"config.{field} must be"):
        training.run(_config(**{field: value}))


def test_pruned_at_init_gives_the_mask_of_the_run():
    cfg = _config(iterations=3)
    cfg.snip.batch_size = 20
    result = training.run(cfg)
    model, masks = training.pruned_at_init(cfg)
    assert training.mask_digest(model) == result["mask_sha256"]
    assert set(masks) == {v.path for v in model.trainable_variables if v.name == "kernel"}
    with pytest.raises(ValueError, match="needs a config that prunes before fit"):
        training.pruned_at_init(_config())


def test_a_resumed_run_trains_as_the_uninterrupted_one(tmp_path, monkeypatch):
    # Killed after its second epoch's backup and started again, a run sees the same shuffles of
    # the training set as one that ran in one go: the same weights, so the same errors.
    config = _config(epochs=4, seed=3)
    whole = training.run(config, results_dir=str(tmp_path / "whole"), resume=True)

    real = training.StopOnDivergence.on_epoch_end

    def killed(self, epoch, logs=None):  # after the backup of that epoch (an earlier callback)
        real(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(training.StopOnDivergence, "on_epoch_end", killed)
    with pytest.raises(KeyboardInterrupt):
        training.run(config, results_dir=str(tmp_path / "resumed"), resume=True)
    monkeypatch.setattr(training.StopOnDivergence, "on_epoch_end", real)
    resumed = training.run(config, results_dir=str(tmp_path / "resumed"), resume=True)
    assert resumed["resumed_at_epoch"] == 2
    assert resumed["history"]["loss"] == whole["history"]["loss"]
    assert resumed["metrics"] == whole["metrics"]


def test_backup_and_restore_replays_the_shuffles_of_a_users_fit(tmp_path):
    # The public callback in a plain fit(): killed after epoch 2, resumed, the same weights as
    # the run in one go; without `shuffled` the resumed epochs see other orders.
    from snip_tf.callbacks import BackupAndRestore

    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")

    def train(folder, epochs, shuffled_too=True, stop_after=None):
        keras.utils.set_random_seed(1)
        data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            40, seed=2, reshuffle_each_iteration=True).batch(8)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        callbacks = [BackupAndRestore(str(tmp_path / folder), save_freq="epoch",
                                      shuffled=data if shuffled_too else None)]
        if stop_after is not None:  # killed after that epoch's backup
            def kill(epoch, logs):
                if epoch + 1 == stop_after:
                    raise KeyboardInterrupt
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=kill))
            with pytest.raises(KeyboardInterrupt):
                model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks, shuffle=False)
            return None
        model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks, shuffle=False)
        return model.get_weights()[0]

    whole = train("whole", 4)
    for replay in (True, False):
        folder = f"resumed_{replay}"
        train(folder, 4, replay, stop_after=2)
        resumed = train(folder, 4, replay)
        assert np.array_equal(resumed, whole) == replay
