import csv
import json
import os

import keras
import numpy as np
import pytest

from snip_tf.studies import reber_common, reber_pruning


def test_recurrent_weight_selection():
    data = reber_common.load("generated", n=40)
    model = reber_common.build("lstm", data, seed=0)
    both = reber_common.recurrent_weights(model, "ih+hh")
    assert [p.split("/")[-1] for p in both] == ["kernel", "recurrent_kernel"] * 3
    assert reber_common.recurrent_weights(model, "hh") == both[1::2]


def test_padding_is_masked():
    data = reber_common.load("generated", n=40)
    model = reber_common.build("gru", data, seed=0)
    x = data.x_test[:4]
    longer = np.concatenate([x, np.zeros((4, 7), x.dtype)], axis=1)
    np.testing.assert_allclose(model(x).numpy(), model(longer).numpy(), rtol=1e-5, atol=1e-6)


def test_unmasked_padding_runs_through_the_padding_of_each_batch():
    # The thesis's networks read the state after their batch's trailing padding.
    data = reber_common.load("generated", n=40)
    model = reber_common.build("gru", data, seed=0, padding="unmasked")
    x = data.x_test[:4]
    longer = np.concatenate([x, np.zeros((4, 7), x.dtype)], axis=1)
    assert np.abs(model(x).numpy() - model(longer).numpy()).max() > 1e-4
    for tokens, _ in reber_common.train_dataset(data, seed=0, batch_size=8, padding="unmasked"):
        longest = int((tokens.numpy() != 0).sum(1).max())
        assert tokens.shape[1] == longest  # cut to the batch's longest string, no further
    with pytest.raises(ValueError, match="padding must be one of"):
        reber_common.build("gru", data, seed=0, padding="none")


def test_masked_batches_are_cut_and_train_as_the_full_width_arrays_do():
    # Masked padding steps carry the state over, so cutting each batch at (a multiple of 8 at or
    # past) its longest string must not change what the network learns or how it scores.
    data = reber_common.load("generated", n=120, train_limit=32)
    width = data.x_train.shape[1]
    cut = [(t.numpy(), y.numpy()) for t, y in
           reber_common.train_dataset(data, seed=0, batch_size=4)]
    for tokens, _ in cut:
        longest = int((tokens != 0).sum(1).max())
        assert longest <= tokens.shape[1] <= min(width, longest + 7)
        assert tokens.shape[1] % 8 == 0 or tokens.shape[1] == width
    assert min(t.shape[1] for t, _ in cut) < width  # some batch was cut
    models = []
    for full_width in (False, True):
        model = reber_common.build("gru", data, seed=0)
        for tokens, labels in cut:
            if full_width:
                tokens = np.pad(tokens, [(0, 0), (0, width - tokens.shape[1])])
            model.train_on_batch(tokens, labels)
        models.append(model)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    _, _, loss, acc = reber_common.evaluate(models[0], data)
    full = models[0].evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    assert acc == full["accuracy"] and loss == pytest.approx(full["loss"], rel=1e-5)


@pytest.mark.parametrize("variant", ["gru", "lstm"])
def test_torch_initializer_gives_the_thesis_networks_initialization(variant):
    data = reber_common.load("generated", n=40)
    model = reber_common.build(variant, data, seed=0, initializer="torch")
    bound = 50 ** -0.5  # PyTorch: every weight and bias of a cell uniform(+-1/sqrt(units))
    for layer in model.layers:
        if isinstance(layer, keras.layers.RNN):
            for weight in (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias):
                values = np.abs(weight.numpy())
                assert values.max() <= bound and values.max() > 0.95 * bound, weight.path
    embedding = model.get_layer("embedding").embeddings.numpy()
    assert 0.8 < embedding.std() < 1.2  # nn.Embedding's standard normal
    head_bias = model.layers[-1].bias.numpy()
    assert 0 < np.abs(head_bias).max() <= bound  # nn.Linear's bias, fan_in 50
    default = reber_common.build(variant, data, seed=0)
    assert np.abs(default.get_layer("embedding").embeddings.numpy()).max() <= 0.05


@pytest.mark.parametrize("initializer", ["vs-x", "torch"])
def test_unit_forget_bias_overrides_the_initializers_forget_gate_bias(initializer):
    data = reber_common.load("generated", n=40)

    def forget_biases(**options):
        model = reber_common.build("lstm", data, seed=0, initializer=initializer, **options)
        # Keras's LSTM bias is [input, forget, cell, output] gates of 50 units each.
        return [layer.cell.bias.numpy()[50:100] for layer in model.layers
                if isinstance(layer, keras.layers.RNN)]

    default, on, off = forget_biases(), forget_biases(unit_forget_bias=True), forget_biases(
        unit_forget_bias=False)
    assert len(on) == 3
    for d, b1, b0 in zip(default, on, off):
        np.testing.assert_array_equal(b1, 1.0)
        assert np.all(b0 != 1.0)  # Glorot's zero bias, or PyTorch's uniform draw
        np.testing.assert_array_equal(d, b1 if initializer == "vs-x" else b0)
    # the variants without a forget gate ignore the study's setting; the model refuses it
    gru = reber_common.build("gru", data, seed=0, unit_forget_bias=False)
    np.testing.assert_array_equal(
        gru.get_weights()[1], reber_common.build("gru", data, seed=0).get_weights()[1])
    from snip_tf import models
    with pytest.raises(ValueError, match="LSTM only"):
        models.get("reber-gru", unit_forget_bias=False)


def test_length_only_accuracy_uses_the_training_strings_majority_per_length():
    tokens = lambda lengths: np.array([[1] * n + [0] * (5 - n) for n in lengths])  # noqa: E731
    data = reber_common.ReberData(tokens([2, 2, 2, 3, 3]), np.array([1, 1, 0, 0, 0]),
                                  tokens([2, 3, 3, 4]), np.array([1, 0, 1, 1]), 2, "test")
    # length 2 -> 1, length 3 -> 0, length 4 unseen -> 0: right on the first two of four
    assert reber_common.length_only_accuracy(data) == 0.5


def test_magnitude_study_on_a_tiny_setting(tmp_path):
    # With the thesis's network (PyTorch's initialization, unmasked padding); the default one
    # runs in test_criteria_comparison.
    report = reber_pruning.run(results_dir=str(tmp_path), variants=("gru",), levels=(50, 100),
                               base_epochs=1, retrain_epochs=1, source="generated",
                               train_limit=120, generated_size=2000, initializer="torch",
                               padding="unmasked")
    summary = report["gru"]["summary"]
    assert [(s["setting"], s["prune"]) for s in summary if s["method"].startswith("mag")] == [
        ("ih+hh", 50), ("ih+hh", 100), ("ih", 50), ("ih", 100), ("hh", 50), ("hh", 100)]
    assert [s["prune"] for s in summary if s["method"].startswith("SNIP")] == [50]
    header = open(tmp_path / "gru.csv").readline().strip()
    assert header == "mode,prune,epoch,train_loss,train_acc,test_loss,test_acc,time"
    assert os.path.isfile(tmp_path / "gru.png")
    summary_json = json.load(open(tmp_path / "summary.json"))
    assert summary_json["train_size"] == 120
    assert (summary_json["initializer"], summary_json["padding"]) == ("torch", "unmasked")
    table = reber_pruning.comparison_table(summary_json).splitlines()
    hh_100 = next(line for line in table if "| hh | 100 % |" in line)
    assert hh_100.endswith(" / 100.00% |")  # the thesis's GRU regains all at 100 % hh
    gru_lines = [line for line in table if line.startswith("| gru |")]
    assert len(gru_lines) == 6
    assert not any(" / –" in line for line in gru_lines)  # the thesis's grid covers 50 % too
    grid = reber_pruning.grid_table(summary_json, "gru").splitlines()
    assert len(grid) == 4 and grid[0].count("|") == 9  # header, rule, one row per level
    row_100 = grid[3].split(" | ")
    assert row_100[0] == "| 100 %" and row_100[-1] == "– |"  # no SNIP run at 100 %
    assert row_100[6].endswith(" / 100.00")  # hh retrained, beside the thesis's 100 %
    assert grid[2].split(" | ")[-1] != "– |"  # SNIP at 50 %


def test_several_seeds_run_into_a_folder_each_resume_and_tabulate(tmp_path, monkeypatch):
    # The study itself is tested above; here its seeds: folders, resuming, the table.
    calls = []

    def fake_study(variant, data, levels, base_epochs, retrain_epochs, seed, *_, **__):
        calls.append((variant, seed))
        acc = 0.9 + 0.01 * seed
        summary = [{"variant": variant, "method": "magnitude after training", "setting": s,
                    "prune": p, "acc_after_pruning": acc - 0.1, "acc_after_retraining": acc}
                   for s in reber_pruning.SETTINGS for p in levels]
        summary += [{"variant": variant, "method": "SNIP at initialization", "setting": "ih+hh",
                     "prune": p, "acc_after_pruning": None, "acc_after_retraining": acc}
                    for p in levels if p < 100]
        rows = [{"mode": variant, "prune": 0, "epoch": 1, "test_acc": acc}]
        return rows, summary, acc + 0.05

    monkeypatch.setattr(reber_pruning, "study_variant", fake_study)
    settings = dict(results_dir=str(tmp_path), variants=("gru",), levels=(50, 100),
                    base_epochs=1, retrain_epochs=1, source="generated", generated_size=200)
    reports = reber_pruning.run_seeds([0, 2], **settings)
    assert sorted(reports) == [0, 2] and calls == [("gru", 0), ("gru", 2)]
    assert json.load(open(tmp_path / "seed_2" / "summary.json"))["seed"] == 2
    assert not (tmp_path / "summary.json").exists()
    reber_pruning.run_seeds([0, 2, 3], **settings)  # 0 and 2 are finished: only 3 runs
    assert calls[2:] == [("gru", 3)]
    reber_pruning.run_seeds([0, 3], **dict(settings, base_epochs=2))  # other settings: re-run
    assert calls[3:] == [("gru", 0), ("gru", 3)]
    with pytest.raises(ValueError, match="differ in base_epochs"):  # seed 2 still has 1
        reber_pruning.seeds_table(reber_pruning.seed_summaries(str(tmp_path)), "gru")
    reber_pruning.run_seeds([2], **dict(settings, base_epochs=2,
                                        results_dir=str(tmp_path / "seed_2")))
    # The first runs did not record their initializer and padding, then always vs-x and masked:
    # such a summary is still a finished seed, and averages with the others.
    summary_0 = json.load(open(tmp_path / "seed_0" / "summary.json"))
    del summary_0["initializer"], summary_0["padding"]
    json.dump(summary_0, open(tmp_path / "seed_0" / "summary.json", "w"))
    reber_pruning.run_seeds([0, 2], **dict(settings, base_epochs=2))
    assert len(calls) == 6  # neither run again
    table = reber_pruning.seeds_table(reber_pruning.seed_summaries(str(tmp_path)), "gru")
    lines = table.splitlines()
    assert lines[0] == "gru, seeds 0, 2, 3: mean test accuracy % (lowest–highest seed); " \
                       "dense 96.67 (95.00–98.00)"
    assert lines[-2].startswith("| 50 % | 81.67 (80.00–83.00) | 91.67 (90.00–93.00) |")
    assert lines[-2].endswith("| 91.67 (90.00–93.00) |")  # SNIP
    assert lines[-1].endswith("| – |")  # no SNIP at 100 %
    with pytest.raises(ValueError, match="distinct"):
        reber_pruning.run_seeds([1, 1], **settings)


def _study_files(folder):
    rows = [{k: v for k, v in row.items() if k != "time"}
            for row in csv.DictReader(open(os.path.join(folder, "gru.csv")))]
    return rows, json.load(open(os.path.join(folder, "summary.json")))["report"]


def test_stopped_study_resumes_from_its_last_finished_network(tmp_path, monkeypatch, capsys):
    # Training replaced by a fingerprint of the weights it would start from, so that equal rows
    # mean that the resumed networks started from the same weights; the real training's
    # equivalence is test_resumed_study_trains_as_an_uninterrupted_one (slow).
    calls = []

    def fake_fit(model, data, epochs, seed, mode, prune, padding="masked"):
        calls.append((mode, prune))
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt("stopped")
        print_ = float(sum(np.abs(w).sum() for w in model.get_weights()))
        return [{"mode": mode, "prune": prune, "epoch": e, "train_loss": 0.0,
                 "train_acc": 0.0, "test_loss": 0.0, "test_acc": print_ / 1e4, "time": 1.0}
                for e in range(1, epochs + 1)]

    def fake_evaluate(model, data, padding="masked", seed=0):
        return 0.0, 0.0, 0.0, float(sum(np.abs(w).sum() for w in model.get_weights())) / 1e4

    monkeypatch.setattr(reber_common, "fit_epochs", fake_fit)
    monkeypatch.setattr(reber_common, "evaluate", fake_evaluate)
    settings = dict(variants=("gru",), levels=(50, 100), base_epochs=2, retrain_epochs=1,
                    source="generated", train_limit=64, generated_size=200)
    stop_at = [0]
    reber_pruning.run(results_dir=str(tmp_path / "whole"), **settings)
    whole = _study_files(tmp_path / "whole")
    assert len(calls) == 1 + 6 + 1  # base, 3 settings x 2 levels, SNIP at 50 %

    calls.clear()
    stop_at[0] = 4  # during the third pruned network
    part = str(tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        reber_pruning.run(results_dir=part, **settings)
    rows, report = _study_files(part)  # what it finished is already written
    assert [(r["setting"], r["prune"]) for r in report["gru"]["summary"]] == [
        ("ih+hh", 50), ("ih+hh", 100)]
    assert rows == whole[0][:len(rows)]
    assert reber_pruning._finished(os.path.join(part, "summary.json"), {},
                                   ("gru",), (50, 100)) is None
    from absl.testing import flagsaver

    with flagsaver.flagsaver():
        reber_pruning.common.FLAGS(["prog", "--table", f"--results_dir={part}"])
        capsys.readouterr()
        reber_pruning.main([])
    assert "gru is unfinished (running, or stopped: --resume goes on): 2 pruned networks so " \
           "far" in capsys.readouterr().out
    with pytest.raises(ValueError, match="base_epochs was 2, now 3"):
        reber_pruning.run(results_dir=part, resume=True, **dict(settings, base_epochs=3))

    calls.clear()
    stop_at[0] = 2  # resumed at 100 % only, and stopped again: the 50 % network stays
    with pytest.raises(KeyboardInterrupt):
        reber_pruning.run(results_dir=part, resume=True, **dict(settings, levels=(100,)))
    resumed = _study_files(part)[0]
    assert resumed[:len(rows)] == rows  # and ih at 100 %, finished before the stop
    assert [(r["mode"], r["prune"]) for r in resumed[len(rows):]] == [("gru_prune_i2h", "100")] * 2
    calls.clear()
    stop_at[0] = 0
    reber_pruning.run(results_dir=part, resume=True, **settings)
    assert calls == [("gru_prune_i2h", 50), ("gru_prune_h2h", 50), ("gru_prune_h2h", 100),
                     ("gru_snip", 50)]  # no base training again
    assert _study_files(part) == whole
    assert sorted(os.listdir(part)) == ["gru.csv", "gru.png", "summary.json"]
    calls.clear()
    reber_pruning.run(results_dir=part, resume=True, **settings)
    assert calls == []  # finished: nothing trained


@pytest.mark.slow  # about 70 s: eleven small models trained
def test_resumed_study_trains_as_an_uninterrupted_one(tmp_path, monkeypatch):
    settings = dict(variants=("gru",), levels=(50,), base_epochs=1, retrain_epochs=1,
                    source="generated", train_limit=120, generated_size=2000)
    reber_pruning.run(results_dir=str(tmp_path / "whole"), **settings)
    fit, calls = reber_common.fit_epochs, []

    def stopping_fit(*args, **kwargs):
        calls.append(args[4])
        if len(calls) == 3:
            raise KeyboardInterrupt("stopped")
        return fit(*args, **kwargs)

    monkeypatch.setattr(reber_common, "fit_epochs", stopping_fit)
    with pytest.raises(KeyboardInterrupt):
        reber_pruning.run(results_dir=str(tmp_path / "part"), **settings)
    monkeypatch.setattr(reber_common, "fit_epochs", fit)
    reber_pruning.run(results_dir=str(tmp_path / "part"), resume=True, **settings)
    (whole_rows, _), (part_rows, _) = (_study_files(tmp_path / "whole"),
                                        _study_files(tmp_path / "part"))
    assert len(part_rows) == len(whole_rows) == 1 + 3 * 2 + 2
    for a, b in zip(part_rows, whole_rows):
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] if k == "mode" else np.isclose(float(a[k]), float(b[k]),
                                                               rtol=1e-5) for k in a)


def test_robustness_over_training_prunes_copies_of_one_network_at_each_checkpoint():
    data = reber_common.load("generated", n=400, train_limit=64)
    rows = reber_pruning.robustness_over_training("gru", data, [1, 3], [100])
    assert [(r["epoch"], r["setting"]) for r in rows] == [
        (1, "dense"), (1, "ih+hh"), (1, "ih"), (1, "hh"), (2, "dense"),
        (3, "dense"), (3, "ih+hh"), (3, "ih"), (3, "hh")]  # the dense network at every epoch
    # The copies leave the run alone: its network is the study's base network at each epoch
    # (the same batches in the same order), not one whose batch order restarts at a checkpoint.
    study = reber_common.fit_epochs(reber_common.build("gru", data, seed=0), data, 3, 0, "gru", 0)
    assert [r["train_loss"] for r in rows if r["setting"] == "dense"] == [
        r["train_loss"] for r in study]
    # With every recurrent weight gone the output no longer depends on the string: one class.
    majority = data.y_test.mean()
    for r in rows:
        if r["setting"] == "ih+hh":
            assert min(abs(r["test_acc"] - majority), abs(r["test_acc"] - (1 - majority))) < 1e-6


def test_robustness_table_sets_each_cell_beside_the_thesis():
    rows = [{"variant": "gru", "epoch": e, "setting": s, "prune": p, "test_acc": a}
            for e in (3, 10) for s, p, a in [("dense", 0, 0.999), ("ih+hh", 80, 0.5),
                                             ("ih", 80, 0.6), ("hh", 80, 0.7)]]
    rows.insert(4, {"variant": "gru", "epoch": 4, "setting": "dense", "prune": 0,
                    "test_acc": 0.998})  # between checkpoints: no row of the table
    table = reber_pruning.robustness_table(rows).splitlines()
    assert table[0] == "| epoch | dense | setting | 80 % |" and len(table) == 2 + 2 * 3
    assert table[2] == "| 3 | 99.90 | ih+hh | 50.00 / 99.36 |"  # the thesis's, after 50 epochs
    assert table[-1] == "| 10 | 99.90 | hh | 70.00 / 95.62 |"
    with pytest.raises(ValueError, match="increasing epochs"):
        reber_pruning.robustness_over_training("gru", None, [2, 1], [100])


def test_table_prints_a_robustness_folder_and_names_an_empty_one(tmp_path, capsys):
    from absl import app
    from absl.testing import flagsaver
    rows = [{"variant": "lstm", "epoch": 10, "setting": s, "prune": p, "test_acc": a}
            for s, p, a in [("dense", 0, 1.0), ("ih+hh", 100, 0.5), ("ih", 100, 0.5),
                            ("hh", 100, 0.8912)]]
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "robustness.json").write_text(json.dumps(
        {"report": {"lstm": rows}, "seed": 0, "source": "thesis", "initializer": "vs-x",
         "padding": "masked", "unit_forget_bias": False}))
    with flagsaver.flagsaver():
        reber_pruning.common.FLAGS(["prog", "--table", f"--results_dir={probe}"])
        reber_pruning.main([])
        out = capsys.readouterr().out
        assert "initializer vs-x, padding masked, unit_forget_bias False" in out
        assert "| 10 | 100.00 | hh | 89.12 / 52.08 |" in out
        (tmp_path / "empty").mkdir()
        reber_pruning.common.FLAGS(["prog", "--table", f"--results_dir={tmp_path / 'empty'}"])
        with pytest.raises(app.UsageError, match="no summary.json"):
            reber_pruning.main([])
        reber_pruning.common.FLAGS(["prog", "--table", f"--results_dir={tmp_path / 'none'}"])
        with pytest.raises(app.UsageError, match="no folder"):
            reber_pruning.main([])
        assert not (tmp_path / "none").exists()


def test_regain_table_counts_epochs_to_within_the_tolerance_of_the_dense_accuracy():
    def row(mode, prune, epoch, acc):
        return {"mode": mode, "prune": str(prune), "epoch": str(epoch), "test_acc": str(acc)}

    rows = [row("gru", 0, 1, 0.9), row("gru", 0, 2, 0.99),  # dense: the last base epoch
            row("gru_prune", 50, 0, 0.5), row("gru_prune", 50, 1, 0.985),
            row("gru_prune", 50, 2, 0.99), row("gru_prune_i2h", 50, 0, 0.99),
            row("gru_prune_h2h", 50, 0, 0.5), row("gru_prune_h2h", 50, 1, 0.6),
            row("gru_snip", 50, 1, 0.9), row("gru_snip", 50, 2, 0.9895)]
    table = reber_pruning.regain_table(rows, "gru", tolerance=0.1).splitlines()
    assert "dense 99.00 %" in table[0]
    assert table[-1] == "| 50 % | 2 | 0 | – | 2 of 2 |"  # 0.985 is not within 0.1 of 0.99
    loose = reber_pruning.regain_table(rows, "gru", tolerance=1.0).splitlines()
    assert loose[-1] == "| 50 % | 1 | 0 | – | 2 of 2 |"
    with pytest.raises(ValueError, match="No base training rows"):
        reber_pruning.regain_table(rows[2:], "gru")


import networkx as nx  # noqa: E402

from snip_tf.studies import graph_architectures as ga  # noqa: E402
from snip_tf.studies import graph_networks as gn  # noqa: E402


def test_graph_to_layers_and_masks_on_a_hand_made_graph():
    # 0-1, 0-2, 1-3, 2-3, 0-3 (a skip), 3-4: layers {0}, {1,2}, {3}, {4}
    graph = nx.Graph([(0, 1), (0, 2), (1, 3), (2, 3), (0, 3), (3, 4)])
    arch = gn.architecture(graph)
    assert arch.layers == [[0], [1, 2], [3], [4]]
    np.testing.assert_array_equal(arch.input_masks[1], [[True, True]])
    # layer 2 reads nodes [0, 1, 2]: 0->3 is a skip connection, 1->3 and 2->3 consecutive
    np.testing.assert_array_equal(arch.input_masks[2], [[True], [True], [True]])
    np.testing.assert_array_equal(arch.input_masks[3], [[False], [False], [False], [True]])
    assert arch.sinks == [4]


def test_gate_block_layout_versus_the_thesis_layout():
    mask = np.array([[1, 0], [0, 1], [1, 1]], bool)      # 3 inputs -> 2 units
    block = gn.gate_mask(mask, 3)
    assert block.shape == (3, 6)
    for g in range(3):                                     # each gate block is the node mask
        np.testing.assert_array_equal(block[:, 2 * g:2 * g + 2], mask)
    thesis = gn.gate_mask(mask, 3, layout="thesis")
    np.testing.assert_array_equal(thesis[0], [1, 1, 1, 0, 0, 0])   # units interleaved
    assert not (thesis == block).all()


def test_built_network_keeps_the_graph_structure_through_training():
    data = reber_common.load("generated", n=80)
    graph = nx.Graph([(0, 1), (0, 2), (1, 3), (2, 3), (0, 3), (3, 4)])
    model = gn.build_model(gn.architecture(graph), "gru", data.vocab_size, seed=0)
    kernel = model.get_layer("layer2").cell.kernel
    assert kernel.shape == (3, 3)          # 3 earlier nodes -> 1 unit x 3 gates
    model.compile(optimizer="adam", loss=reber_common.LOSS)
    model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    layer3 = model.get_layer("layer3").cell.kernel.numpy()
    assert (layer3[:3] == 0).all() and (layer3[3] != 0).all()
    head = model.get_layer("classifier").kernel.numpy()
    assert (head[:4] == 0).all() and (head[4] != 0).all()   # only the sink is read


def test_graph_properties_of_a_path():
    props = gn.graph_properties(nx.path_graph(4))
    assert props["nodes"] == 4 and props["edges"] == 3 and props["diameter"] == 3
    assert props["density"] == pytest.approx(3 / 12)  # the thesis's e / (n (n - 1))
    assert props["average_shortest_path_length"] == pytest.approx(10 / 6)
    # degree centrality 1/3, 2/3, 2/3, 1/3; sample variance
    assert props["degree_mean"] == pytest.approx(0.5) and props["layers"] == 4
    assert props["degree_var"] == pytest.approx(4 * (1 / 6) ** 2 / 3)
    assert props["source_nodes"] == 1 and props["sink_nodes"] == 1
    assert props["nodes_betweenness_mean"] == pytest.approx((0 + 2 / 3 + 2 / 3 + 0) / 4)
    assert list(props) == list(gn.FEATURES)  # the thesis's features, in its order


def test_sink_nodes_is_the_last_layer_width_as_in_the_thesis():
    # 0-1, 0-2, 1-3: node 2 is a sink in layer 1, node 3 the last layer's only node
    props = gn.graph_properties(nx.Graph([(0, 1), (0, 2), (1, 3)]))
    assert props["sink_nodes"] == 1 and props["source_nodes"] == 1 and props["layers"] == 3


# The Keras trainer (one model at a time, about 40 s here) is the slow reference: -m slow.
@pytest.mark.parametrize("trainer,bucket_width", [
    ("edge", 0), ("edge", 4), pytest.param("keras", 0, marks=pytest.mark.slow)])
def test_graph_study_on_a_tiny_setting(tmp_path, trainer, bucket_width):
    report = ga.run(results_dir=str(tmp_path), variants=("rnn-tanh",),
                    generators=("barabasi_albert", "watts_strogatz"), num_graphs=3, epochs=1,
                    source="generated", train_limit=60, min_nodes=10, max_nodes=12,
                    trainer=trainer, bucket_width=bucket_width)
    regs = report["rnn-tanh"]["regressors"]
    accuracy = report["rnn-tanh"]["test_acc"]
    assert accuracy["min"] <= report["rnn-tanh"]["mean_test_acc"] <= accuracy["max"]
    assert set(report["rnn-tanh"]["mean_test_acc_by_generator"]) == {"barabasi_albert",
                                                                   "watts_strogatz"}
    assert set(regs) == {"BayesianRidge", "RandomForest", "AdaBoost"}
    assert set(regs["RandomForest"]["feature_importance"]) == set(gn.FEATURES)
    graphs = list((tmp_path / "graphs").glob("*.graphml"))
    assert len(graphs) == 6 and nx.read_graphml(graphs[0]).number_of_nodes() >= 10
    header = open(tmp_path / "rnn_tanh.csv").readline()
    assert "edge_betweenness_std" in header and "test_acc" in header
    again = ga.refit(str(tmp_path), variants=("rnn-tanh", "gru"))
    assert set(again) == {"rnn-tanh"}  # no GRU CSV: skipped
    forest = again["rnn-tanh"]["regressors"]["RandomForest"]
    assert forest["r2_holdout"] == pytest.approx(regs["RandomForest"]["r2_holdout"], nan_ok=True)
    assert forest["feature_importance"] == pytest.approx(
        regs["RandomForest"]["feature_importance"])
    assert (tmp_path / "summary_refit.json").exists() and (tmp_path / "predicted.png").exists()
    narrowed = ga.refit(str(tmp_path), variants=("rnn-tanh",), generators=["watts_strogatz"])
    assert narrowed["rnn-tanh"]["networks"] == 3
    assert set(narrowed["rnn-tanh"]["mean_test_acc_by_generator"]) == {"watts_strogatz"}
    assert (tmp_path / "summary_refit_watts_strogatz.json").exists()


def test_graph_study_csv_has_the_thesis_layout_and_refit_upgrades_the_earlier_one(tmp_path):
    ga.run(results_dir=str(tmp_path), variants=("rnn-relu",), generators=("watts_strogatz",),
           num_graphs=5, epochs=1, source="generated", train_limit=60, min_nodes=10,
           max_nodes=12)
    path = tmp_path / "rnn_relu.csv"
    header = path.read_text().splitlines()[0].split(",")
    assert header == ["mode", "graph", "graph_nr", *gn.FEATURES, "test_acc", "test_loss", "time",
                      "epochs_trained"]
    rows = [dict(zip(header, line.split(","))) for line in path.read_text().splitlines()[1:]]
    # the same results in the layout before this one: other names, other definitions
    old = ["variant,graph,generator,layers,sinks,degree_mean,test_acc,test_loss,epochs_trained,"
           "train_time_s"]
    old += [f"rnn-relu,{r['graph']}_{r['graph_nr']},{r['graph']},1,99,99,{r['test_acc']},"
            f"{r['test_loss']},{r['epochs_trained']},{r['time']}" for r in rows]
    path.write_text("\n".join(old) + "\n")
    ga.refit(str(tmp_path), variants=("rnn-relu",))
    again = path.read_text().splitlines()
    assert again[0].split(",") == header
    for line, row in zip(again[1:], rows):
        upgraded = dict(zip(header, line.split(",")))
        for key in ("graph", "graph_nr", "sink_nodes", "degree_mean", "test_acc", "time"):
            assert float(upgraded[key]) == pytest.approx(float(row[key])) if key != "graph" \
                else upgraded[key] == row[key]


def test_graph_study_resumes_an_interrupted_run(tmp_path, capsys):
    settings = dict(results_dir=str(tmp_path), variants=("gru",), generators=("erdos_renyi",),
                    num_graphs=4, epochs=1, source="generated", train_limit=60, min_nodes=10,
                    max_nodes=12)
    ga.run(**settings)
    path = tmp_path / "gru.csv"
    lines = path.read_text().splitlines()
    full = {tuple(line.split(",")[1:3]): line for line in lines[1:]}  # (graph, graph_nr)
    path.write_text("\n".join(lines[:3]) + "\n")  # as if stopped after the first two networks
    capsys.readouterr()
    ga.run(**settings, resume=True)
    assert "(2 trained now)" in capsys.readouterr().out
    again = path.read_text().splitlines()
    assert len(again) == 5
    for line in again[1:]:  # the same accuracies, whichever networks trained in this run
        name = tuple(line.split(",")[1:3])
        header = lines[0].split(",")
        a, b = dict(zip(header, line.split(","))), dict(zip(header, full[name].split(",")))
        assert float(a["test_acc"]) == pytest.approx(float(b["test_acc"]), abs=1e-6)
        assert a["epochs_trained"] == b["epochs_trained"] == "1"  # kept an integer
    with pytest.raises(ValueError, match="epochs was 1, now 2"):
        ga.run(**{**settings, "epochs": 2}, resume=True)
    # a study recorded before the io setting existed ran with its default
    study = json.loads((tmp_path / "study.json").read_text())
    del study["io"]
    (tmp_path / "study.json").write_text(json.dumps(study))
    with pytest.raises(ValueError, match="io was 'full', now 'thesis'"):
        ga.run(**settings, resume=True, io="thesis")
    capsys.readouterr()
    ga.run(**settings, resume=True)
    assert "(0 trained now)" in capsys.readouterr().out


def test_graph_study_init_seed_changes_the_initial_weights_only(tmp_path):
    settings = dict(variants=("rnn-tanh",), generators=("erdos_renyi",), num_graphs=3, epochs=1,
                    source="generated", train_limit=60, min_nodes=10, max_nodes=12)
    runs = {name: tmp_path / name for name in ("default", "seed0", "seed1")}
    ga.run(results_dir=str(runs["default"]), **settings)
    ga.run(results_dir=str(runs["seed0"]), init_seed=0, **settings)
    ga.run(results_dir=str(runs["seed1"]), init_seed=1, **settings)

    def rows(name):
        lines = (runs[name] / "rnn_tanh.csv").read_text().splitlines()
        return [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]

    def graphs(name):
        return sorted(p.read_text() for p in (runs[name] / "graphs").glob("*.graphml"))

    assert graphs("seed1") == graphs("default")
    for a, b, c in zip(rows("default"), rows("seed0"), rows("seed1")):
        assert {k: a[k] for k in gn.FEATURES} == {k: c[k] for k in gn.FEATURES}
        assert float(a["test_loss"]) == pytest.approx(float(b["test_loss"]), abs=1e-6)
    # other initial weights: other losses, network by network
    assert all(float(a["test_loss"]) != pytest.approx(float(c["test_loss"]), abs=1e-6)
               for a, c in zip(rows("default"), rows("seed1")))
    assert json.loads((runs["seed1"] / "study.json").read_text())["init_seed"] == 1
    with pytest.raises(ValueError, match="init_seed was 1, now 0"):
        ga.run(results_dir=str(runs["seed1"]), resume=True, **settings)
    # a study recorded before init_seed existed was initialized from its seed
    study = json.loads((runs["default"] / "study.json").read_text())
    del study["init_seed"]
    (runs["default"] / "study.json").write_text(json.dumps(study))
    ga.run(results_dir=str(runs["default"]), resume=True, **settings)


def test_graph_study_on_full_batches_trains_the_same_networks(tmp_path):
    settings = dict(variants=("rnn-tanh",), generators=("erdos_renyi",), num_graphs=3, epochs=1,
                    source="generated", train_limit=60, min_nodes=10, max_nodes=12, bucket_width=4)
    plain, full = tmp_path / "plain", tmp_path / "full"
    ga.run(results_dir=str(plain), **settings)
    ga.run(results_dir=str(full), full_batches=True, **settings)

    def losses(folder):
        lines = (folder / "rnn_tanh.csv").read_text().splitlines()
        column = lines[0].split(",").index("test_loss")
        return [float(line.split(",")[column]) for line in lines[1:]]

    assert losses(full) == pytest.approx(losses(plain), abs=1e-5)
    assert json.loads((full / "study.json").read_text())["full_batches"] is True
    with pytest.raises(ValueError, match="full_batches was True, now False"):
        ga.run(results_dir=str(full), resume=True, **settings)
    # a study recorded before the setting existed trained on partial batches
    study = json.loads((plain / "study.json").read_text())
    del study["full_batches"]
    (plain / "study.json").write_text(json.dumps(study))
    ga.run(results_dir=str(plain), resume=True, **settings)


def test_graph_study_stops_networks_early_by_its_min_delta(tmp_path):
    ga.run(results_dir=str(tmp_path), variants=("rnn-tanh",), generators=("erdos_renyi",),
           num_graphs=3, epochs=4, source="generated", train_limit=60, min_nodes=10,
           max_nodes=12, patience=1, min_delta=10.0)
    lines = (tmp_path / "rnn_tanh.csv").read_text().splitlines()
    header = lines[0].split(",")
    # no decrease of the loss reaches 10: each network stops after its first patient epoch
    assert [float(dict(zip(header, l.split(",")))["epochs_trained"]) for l in lines[1:]] == [2] * 3
    assert json.loads((tmp_path / "study.json").read_text())["min_delta"] == 10.0


@pytest.mark.slow  # 354 s alone on the 2-core VM (3 networks of 20-24 nodes, Keras trainer)
def test_graph_study_with_the_thesis_network_on_a_tiny_setting(tmp_path):
    network = dict(io="thesis", skips="separate", padding="unmasked", init="torch")
    settings = dict(variants=("gru",), generators=("barabasi_albert",), num_graphs=3,
                    epochs=1, source="generated", train_limit=60, min_nodes=20, max_nodes=24,
                    **network)
    with pytest.raises(ValueError, match="trainer='edge' supports skips='input' only"):
        ga.run(results_dir=str(tmp_path / "edge"), **settings)
    report = ga.run(results_dir=str(tmp_path), trainer="keras", **settings)
    assert 0 <= report["gru"]["mean_test_acc"] <= 1
    assert len((tmp_path / "gru.csv").read_text().splitlines()) == 4
    study = json.loads((tmp_path / "study.json").read_text())
    assert {k: study[k] for k in network} == network
    # Barabási–Albert graphs of 20+ nodes have skip edges: some layer has several cells
    graphs = [nx.read_graphml(p, node_type=int) for p in (tmp_path / "graphs").glob("*.graphml")]
    assert any(len(gn.cells(gn.architecture(g), l, "separate")) > 1
               for g in graphs for l in range(len(gn.architecture(g).layers)))


def test_compare_pairs_two_runs_network_by_network(tmp_path):
    from snip_tf.experiments import common

    def run(folder, accuracies, generator="watts_strogatz"):
        (tmp_path / folder).mkdir(exist_ok=True)
        common.write_rows(str(tmp_path / folder / "gru.csv"), [
            {"mode": "gru", "graph": generator, "graph_nr": i, "test_acc": acc}
            for i, acc in enumerate(accuracies)])
        return str(tmp_path / folder)

    this = run("block", [0.90, 0.95, 0.99, 0.80])
    other = run("thesis", [0.905, 0.96, 0.94, 0.86, 0.5])  # one more network: not paired
    gru = ga.compare(this, other, variants=("gru", "lstm"))["gru"]
    assert gru["networks"] == 4
    assert gru["mean_difference"] == pytest.approx((0.5 + 1 - 5 + 6) / 4)
    assert gru["median_abs_difference"] == pytest.approx(3)
    assert gru["max_abs_difference"] == pytest.approx(6)
    assert gru["max_abs_difference_network"] == "watts_strogatz_3"
    assert gru["within_1_point"] == 2
    assert gru["spearman_rho"] == pytest.approx(0.8)  # ranks 2 3 4 1 against 2 4 3 1
    assert (tmp_path / "block" / "comparison_thesis.json").exists()
    with pytest.raises(ValueError, match="share no graph"):
        ga.compare(this, run("other_graphs", [0.9], "erdos_renyi"), variants=("gru",))
    with pytest.raises(FileNotFoundError, match="No variant has a CSV"):
        ga.compare(this, other, variants=("lstm",))
