"""Each experiment command on a tiny generated data folder, a few steps: the code paths, files and
plots, not the numbers (those come from the full commands, see RESULTS.md)."""

import json
import os

import numpy as np
import pytest

from conftest import tiny_mnist
import snip_tf
from snip_tf.experiments import common, figure1, figure2, figure3, figure4, table1, table2, table3


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    tiny_mnist(folder, "mnist", n_train=120, n_test=20)
    tiny_mnist(folder, "fashion_mnist", n_train=120, n_test=20)
    (folder / "cifar10").mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "cifar10" / "cifar10.npz",
             x_train=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(40, dtype=np.uint8) % 10,
             x_test=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(10, dtype=np.uint8))
    return str(folder)


def outputs(folder, *names):
    for name in names:
        path = os.path.join(folder, name)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, name


def test_table1(tiny_data, tmp_path):
    rows = table1.run(tiny_data, str(tmp_path), epochs=1, models=("lenet-300-100",))
    assert [(r["sparsity"], r["criterion"]) for r in rows] == [
        (0.0, "dense"), (0.95, "snip"), (0.95, "magnitude"), (0.95, "random"), (0.98, "snip"),
        (0.98, "magnitude"), (0.98, "random")]
    assert all(abs(r["reached_sparsity"] - r["sparsity"]) < 1e-3 for r in rows)
    outputs(str(tmp_path), "table1.csv", "table1.json", "table1.md", "table1.png")
    assert "| lenet-300-100 | 95 % | snip |" in open(tmp_path / "table1.md").read()


def test_table1_is_resumable_run_by_run_and_reports_three_errors(tiny_data, tmp_path, capsys):
    settings = dict(models=("lenet-300-100",), criteria=("dense", "snip"), iterations=4)
    rows = table1.run(tiny_data, str(tmp_path), **settings)
    runs = sorted((tmp_path / "runs").glob("*.json"))
    assert len(rows) == len(runs) == 3  # dense, 95 %, 98 %
    for row in rows:  # 4 iterations: the checkpoint at the last one only
        assert row["iterations"] == 4
        assert row["test_error_authors_rule"] == row["test_error_validation_selected"]
        assert row["test_error_validation_selected"] == pytest.approx(row["test_error"], abs=1e-6)
    table = (tmp_path / "table1.md").read_text()
    assert "last iteration % | authors' rule % | validation-selected %" in table
    out = capsys.readouterr().out
    assert "lenet-300-100 snip 95% seed 0: iteration 4/4" in out and "min left" in out
    # a run whose result is kept is not trained again; a lost one is
    runs[0].unlink()
    again = table1.run(tiny_data, str(tmp_path), **settings)
    assert "2 of 3 runs already in" in capsys.readouterr().out
    assert [r["test_error"] for r in again] == pytest.approx([r["test_error"] for r in rows])
    # a kept run is recognized by the config it holds: under another name, and when written
    # before a field was added to the config (at its default)
    runs = sorted((tmp_path / "runs").glob("*.json"))
    runs[0].rename(tmp_path / "runs" / "renamed.json")
    result = json.loads(runs[1].read_text())
    del result["config"]["snip"]["scope"]
    runs[1].write_text(json.dumps(result))
    table1.run(tiny_data, str(tmp_path), **settings)
    assert "3 of 3 runs already in" in capsys.readouterr().out
    # report only: the kept runs, nothing trained
    runs = sorted((tmp_path / "runs").glob("*.json"))
    runs[0].unlink()
    rows = table1.run(tiny_data, str(tmp_path), **settings, report_only=True)
    assert len(rows) == 2 and len(list((tmp_path / "runs").glob("*.json"))) == 2
    assert "2 of 3 runs kept" in capsys.readouterr().out
    summary = json.loads((tmp_path / "table1.json").read_text())["summary"]
    assert len(summary) == 2 and all(s["seeds"] == 1 for s in summary)
    cells = [line for line in (tmp_path / "table1.md").read_text().splitlines()
             if line.startswith("| lenet")]
    assert len(cells) == 2 and not any("±" in line for line in cells)  # one seed: no spread
    # an experiment that tables complete results only refuses
    missing = common.config("lenet-300-100", 0.5, iterations=4)
    with pytest.raises(Exception, match="report_only: 1 of 1 runs are not in"):
        common.run_all([missing], tiny_data, str(tmp_path), report_only=True)
    table1.run(tiny_data, str(tmp_path), **settings)
    # another budget is another config: its own runs
    table1.run(tiny_data, str(tmp_path), **{**settings, "iterations": 5})
    assert len(list((tmp_path / "runs").glob("*.json"))) == 6


def test_runs_in_two_worker_processes(tiny_data, tmp_path, capfd):
    rows = table1.run(tiny_data, str(tmp_path), models=("lenet-300-100",),
                      criteria=("dense", "snip"), iterations=3, workers=2)
    assert len(rows) == 3 and all(r["iterations"] == 3 for r in rows)
    assert capfd.readouterr().out.count("iteration 3/3") == 3  # each worker's progress lines


def test_table1_authors_protocol(tiny_data, tmp_path):
    rows = table1.run(tiny_data, str(tmp_path), epochs=1, models=("lenet-5-caffe",),
                      protocol="authors", criteria=("dense", "snip"))
    assert [(r["sparsity"], r["criterion"]) for r in rows] == [
        (0.0, "dense"), (0.98, "snip"), (0.99, "snip")]
    assert json.load(open(tmp_path / "table1.json"))["protocol"] == "authors"


def test_table1_criteria_pick_the_dense_reference_too(tiny_data, tmp_path):
    rows = table1.run(tiny_data, str(tmp_path), iterations=2, models=("lenet-300-100",),
                      criteria=("random",))
    assert [(r["sparsity"], r["criterion"]) for r in rows] == [(0.95, "random"), (0.98, "random")]
    with pytest.raises(ValueError, match=r"unknown criteria \['snipp'\]"):
        table1.run(tiny_data, str(tmp_path), models=("lenet-300-100",), criteria=("snipp",))


def test_figure1(tiny_data, tmp_path):
    rows = figure1.run(tiny_data, str(tmp_path), epochs=1, models=("lenet-300-100",),
                       sparsities=(0.0, 0.5), seeds=(0, 1))
    assert len(rows) == 4
    outputs(str(tmp_path), "figure1.csv", "figure1.json", "figure1.md", "figure1.png")
    half = [r["test_error"] for r in rows if r["sparsity"] == 0.5]
    row = (tmp_path / "figure1.md").read_text().splitlines()[2]
    assert row.startswith("| lenet-300-100 |") and row.endswith(" | 2 |")
    assert common.spread(half) in row.split(" | ")[2]
    _assert_evaluations(tmp_path / "figure1.md", {
        f"lenet-300-100 | {100 * s:.0f} %": [r for r in rows if r["sparsity"] == s]
        for s in (0.0, 0.5)})


def _assert_evaluations(path, groups):
    """The command's table of the three test errors has one row per group, its cells each
    group's figures (the LeNets' protocols evaluate checkpoints, so these have numbers)."""
    table = path.read_text()
    assert "| test error % (last iteration) | test error % (authors' rule) | " in table
    for label, group in groups.items():
        cells = common.error_cells(group)
        assert f"| {label} | {' | '.join(cells)} | {len(group)} |" in table
        if label.startswith("lenet"):
            assert "–" not in cells, cells


def test_figure1_report_only_tables_the_kept_runs(tiny_data, tmp_path, monkeypatch):
    settings = dict(epochs=1, models=("lenet-300-100",), sparsities=(0.0, 0.5))
    figure1.run(tiny_data, str(tmp_path), **settings, seeds=(0,))
    monkeypatch.setattr(common.training, "run", _must_not_train)
    rows = figure1.run(tiny_data, str(tmp_path), **settings, seeds=(0, 1), report_only=True)
    assert [(r["sparsity"], r["seed"]) for r in rows] == [(0.0, 0), (0.5, 0)]
    assert (tmp_path / "figure1.md").read_text().splitlines()[2].endswith(" | 1 |")


def test_figure2(tiny_data, tmp_path):
    summary = figure2.run(tiny_data, str(tmp_path), sparsities=(0.5, 0.9))
    assert set(summary) == {"mnist", "fashion_mnist"} and len(summary["mnist"]) == 10
    outputs(str(tmp_path), "figure2_mnist.png", "figure2_fashion_mnist.png", "figure2.json")


def test_figure3(tiny_data, tmp_path):
    rows = figure3.run(tiny_data, str(tmp_path), epochs=1, batch_sizes=(1, 10))
    assert [r["pruning_batch_size"] for r in rows] == [1, 10]
    outputs(str(tmp_path), "figure3.csv", "figure3.md", "figure3.png")
    table = (tmp_path / "figure3.md").read_text()
    assert "| test error % | " + " | ".join(common.pct(r["test_error"]) for r in rows) in table
    assert "| seeds | 1 | 1 |" in table
    _assert_evaluations(tmp_path / "figure3.md", {
        f"{s}": [r for r in rows if r["pruning_batch_size"] == s] for s in (1, 10)})


def test_table3(tiny_data, tmp_path):
    rows = table3.run(tiny_data, str(tmp_path), epochs=1, models=("lenet-300-100", "gru-s"),
                      initializers=("rn", "vs-h"))
    assert [(r["model"], r["initializer"]) for r in rows] == [
        ("lenet-300-100", "rn"), ("lenet-300-100", "vs-h"), ("gru-s", "rn"), ("gru-s", "vs-h")]
    outputs(str(tmp_path), "table3.csv", "table3.md", "table3.png")
    orders = json.load(open(tmp_path / "table3.json"))["ordering"]
    assert orders["gru-s"]["paper"] == ["VS-H", "RN"]          # paper: 1.62 against 1.78
    assert orders["lenet-300-100"]["paper"] == ["RN", "VS-H"]  # paper: 1.90 against 1.95
    for model in ("lenet-300-100", "gru-s"):
        errors = {r["initializer"].upper(): r["test_error"] for r in rows if r["model"] == model}
        best = sorted(i for i in errors if errors[i] == min(errors.values()))
        assert orders[model]["ours"][0] == " = ".join(best)
        assert orders[model]["same_best"] == (None if len(best) > 1
                                              else best[0] == orders[model]["paper"][0])
    _assert_evaluations(tmp_path / "table3.md", {
        f"{r['model']} | {r['initializer'].upper()}": [r] for r in rows})


def test_table3_ordering_shares_a_place_between_ties():
    errors = {("lstm-s", "rn"): [0.03], ("lstm-s", "tn"): [0.02], ("lstm-s", "vs-x"): [0.02],
              ("lstm-s", "vs-h"): [0.01]}
    order = table3.ordering("lstm-s", table3.INITIALIZERS, errors)
    assert order["ours"] == ["VS-H", "TN = VS-X", "RN"]
    assert order["paper"] == ["VS-H", "TN", "VS-X", "RN"]  # paper: 1.09, 1.15, 1.20, 2.93
    assert order["same_best"] is True and order["same_order"] is None  # the tie leaves it open
    errors["lstm-s", "rn"] = [0.01]
    assert table3.ordering("lstm-s", table3.INITIALIZERS, errors)["same_best"] is None
    assert table3.ordering("my-net", ("rn",), {("my-net", "rn"): [0.02]})["paper"] is None
    with pytest.raises(ValueError, match=r"unknown initializers \['he'\]"):
        table3.run(None, None, initializers=("vs-h", "he"))


def test_table3_report_only_ranks_only_complete_models(tiny_data, tmp_path, monkeypatch):
    settings = dict(epochs=1, models=("lenet-300-100",), initializers=("rn", "vs-h"))
    table3.run(tiny_data, str(tmp_path), **{**settings, "initializers": ("rn",)})
    monkeypatch.setattr(common.training, "run", _must_not_train)
    rows = table3.run(tiny_data, str(tmp_path), **settings, seeds=(0, 1), report_only=True)
    assert [(r["initializer"], r["seed"]) for r in rows] == [("rn", 0)]
    assert json.load(open(tmp_path / "table3.json"))["ordering"]["lenet-300-100"]["ours"] is None
    table = (tmp_path / "table3.md").read_text()
    assert "(paper 1.90; 1 seed)" in table and "– (paper 1.95; 0 seeds)" in table
    with pytest.raises(Exception, match="none of the 2 runs is in"):  # nothing kept yet
        table3.run(tiny_data, str(tmp_path / "empty"), **settings, report_only=True)


def test_table3_command_runs_only_the_initializers_it_names(monkeypatch):
    # --initializers was once defined but not passed on, and all four were trained
    from absl.testing import flagsaver

    seen = {}
    monkeypatch.setattr(table3, "run", lambda *a, **k: seen.update(k))
    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--initializers=vs-x,vs-h", "--models=lstm-s"])
        table3.main([])
    assert seen["initializers"] == ("vs-x", "vs-h") and seen["models"] == ("lstm-s",)


def test_table2_command_passes_its_protocol_on(tiny_data, tmp_path, monkeypatch):
    # table2 once ignored --protocol and trained the paper protocol whatever was asked
    from absl.testing import flagsaver

    seen = {}
    monkeypatch.setattr(table2, "run", lambda *a, **k: seen.update(k))
    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--protocol=authors", "--models=lstm-s"])
        table2.main([])
    assert seen["protocol"] == "authors"
    monkeypatch.undo()
    rows = table2.run(tiny_data, str(tmp_path), epochs=1, models=("lstm-s",), train_limit=60,
                      protocol="authors")
    assert [r["sparsity"] for r in rows] == [0.0, 0.95]
    assert json.load(open(tmp_path / "table2.json"))["protocol"] == "authors"
    assert ("Protocol 'authors' (lstm-s: sgd 0.1, momentum 0.9, l2 0.00025)"
            in (tmp_path / "table2.md").read_text())


def test_recurrent_tables_show_the_three_test_errors_where_runs_have_checkpoints(tiny_data,
                                                                                 tmp_path):
    # the issue's three figures: last iteration, the authors' rule, validation-selected (runs
    # without checkpoint evaluation: test_rnn_controls)
    from absl.testing import flagsaver

    from snip_tf.experiments import rnn_controls

    def cells(table, start):
        line = next(line for line in table.splitlines() if line.startswith(start))
        return [c.strip() for c in line.split("|")[3:6]]

    rows = table2.run(tiny_data, str(tmp_path / "evaluated"), iterations=4, models=("lstm-s",),
                      train_limit=60, protocol="short", eval_every=2)
    pruned = rows[1]
    assert None not in (pruned["test_error_authors_rule"], pruned["test_error_validation_selected"])
    assert cells((tmp_path / "evaluated" / "table2.md").read_text(), "| lstm-s | 95 %") == [
        common.pct(pruned[key]) for key in common.ERRORS]
    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--set=eval_every=2"])
        (row,) = rnn_controls.run(tiny_data, str(tmp_path / "controls"), seeds=(0,),
                                  iterations=4, models=("gru-s",), variants=("baseline",))
    table = (tmp_path / "controls" / "rnn_controls.md").read_text()
    assert cells(table, "| gru-s | baseline") == [common.pct(row[key]) for key in common.ERRORS]
    # and each run's own line, after its seed
    line = next(line for line in table.splitlines() if line.startswith("| gru-s | baseline | 0 |"))
    assert [c.strip() for c in line.split("|")[4:7]] == [common.pct(row[key])
                                                         for key in common.ERRORS]


# What in a command's source shows that it reads a shared flag, itself or through common.
READS = {"data_dir": ("F.data_dir", "FLAGS.data_dir"),
         "results_dir": ("F.results_dir", "FLAGS.results_dir"),
         "seeds": ("common.seeds()", "common.one_seed("), "epochs": ("F.epochs",),
         "iterations": ("F.iterations",), "train_limit": ("F.train_limit",),
         "protocol": ("F.protocol",), "models": ('common.chosen("models"',),
         "criteria": ('common.chosen("criteria"',), "workers": ("F.workers",), "set": ("common.config(",),
         "report_only": ("common.run_all(", "F.report_only")}


def _commands():
    import pkgutil

    import snip_tf.experiments as package
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "common")


@pytest.mark.parametrize("name", _commands())
def test_each_command_declares_the_shared_flags_it_does_not_read(name):
    import importlib
    import inspect

    assert set(READS) == set(common.SHARED_FLAGS)
    module = importlib.import_module(f"snip_tf.experiments.{name}")
    source = inspect.getsource(module)
    reads = {flag for flag, marks in READS.items() if any(m in source for m in marks)}
    assert set(module.UNUSED_FLAGS) == set(common.SHARED_FLAGS) - reads
    assert "common.run_app(main, unused=UNUSED_FLAGS)" in source


def test_the_docs_table_of_unused_flags_matches_the_commands():
    import importlib
    import re

    from conftest import REPO
    text = open(os.path.join(REPO, "docs", "experiments.md"), encoding="utf-8").read()
    table = {}
    for commands, flags in re.findall(r"^\| (`\w+`(?:, `\w+`)*) \| (.*) \|$", text, re.M):
        for command in re.findall(r"`(\w+)`", commands):
            table[command] = set(re.findall(r"`--(\w+)`", flags))
    assert set(table) == set(_commands())
    for name, flags in table.items():
        module = importlib.import_module(f"snip_tf.experiments.{name}")
        assert flags == set(module.UNUSED_FLAGS), name


def test_unknown_names_are_refused_before_anything_is_written(tmp_path):
    from snip_tf.experiments import criteria_comparison, rnn_controls

    out = tmp_path / "out"
    for call, what in [(lambda: table1.run(results_dir=str(out), criteria=("snipp",)), "criteria"),
                       (lambda: table3.run(results_dir=str(out), initializers=("he",)),
                        "initializers"),
                       (lambda: rnn_controls.run(results_dir=str(out), variants=("adam",)),
                        "variants"),
                       (lambda: criteria_comparison.run(results_dir=str(out), criteria=["snipp"]),
                        "criteria")]:
        with pytest.raises(ValueError, match=rf"unknown {what} \['"):
            call()
    assert not out.exists()
    from absl.testing import flagsaver

    with flagsaver.flagsaver():                                  # a bad value given with --set
        common.FLAGS(["prog", "--set=clipnorm=-1.0"])
        for call in (lambda: table3.run(results_dir=str(out)),
                     lambda: table2.run(results_dir=str(out), models=("lstm-s",)),
                     lambda: rnn_controls.run(results_dir=str(out)),
                     lambda: criteria_comparison.run(results_dir=str(out),
                                                     models=("lenet-5-caffe", "lstm-s")),
                     lambda: figure1.run(results_dir=str(out)),
                     lambda: figure3.run(results_dir=str(out)),
                     lambda: figure4.run(results_dir=str(out)),
                     lambda: table1.run(results_dir=str(out))):
            with pytest.raises(ValueError, match="config.clipnorm"):
                call()
    assert not out.exists()


def test_a_command_that_writes_nothing_creates_no_folder(tmp_path):
    # the results folder appears with the first file written into it, not before
    from absl import app

    from snip_tf.studies import graph_architectures

    out = tmp_path / "out"
    with pytest.raises(app.UsageError, match="1 of 1 runs are not in"):
        common.run_all([common.config("lstm-s", 0.9, iterations=2)], None, str(out),
                       report_only=True)
    with pytest.raises(FileNotFoundError, match="No per-variant CSV"):
        graph_architectures.refit(str(out))
    assert not out.exists()
    assert common.out_dir("table1", None) == os.path.join("results", "table1")


def test_unknown_names_on_the_command_line_are_usage_errors_that_name_the_flag():
    from absl import app
    from absl.testing import flagsaver

    from snip_tf.experiments import rnn_controls

    for module, argv, message in [
            (table3, ["--initializers=vs-h,he"], r"--initializers: unknown initializers \['he'\]"),
            (rnn_controls, ["--controls=adam"], r"--controls: unknown controls \['adam'\]"),
            (table1, ["--criteria=snipp"], r"--criteria: unknown criteria \['snipp'\]"),
            (figure1, ["--models=lenet-9000"], r"--models: unknown models \['lenet-9000'\]")]:
        with flagsaver.flagsaver():
            common.FLAGS(["prog", *argv])
            with pytest.raises(app.UsageError, match=message):
                module.main([])


def test_criteria_comparison_refuses_set_for_the_reber_gru(tmp_path):
    from absl import app
    from absl.testing import flagsaver

    from snip_tf.experiments import criteria_comparison

    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--set=momentum=0.5"])
        with pytest.raises(app.UsageError, match="reber-gru trains by the thesis's own loop"):
            criteria_comparison.run(None, str(tmp_path / "out"), models=("reber-gru",))
    assert not (tmp_path / "out").exists()


def test_criteria_comparison_replot_refuses_the_flags_it_would_ignore(tmp_path):
    from absl import app
    from absl.testing import flagsaver

    from snip_tf.experiments import criteria_comparison

    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--replot", "--epochs=3", f"--results_dir={tmp_path}"])
        with pytest.raises(app.UsageError, match="criteria_comparison --replot does not read "
                                                 "--epochs"):
            criteria_comparison.main([])


def test_refuse_unused_names_every_flag_given():
    from absl import app
    from absl.testing import flagsaver

    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--seeds=1"])
        common.refuse_unused("figure2", figure2.UNUSED_FLAGS)  # --seeds is read: no error
        common.FLAGS(["prog", "--epochs=3", "--set=momentum=0.0", "--seeds=1"])
        with pytest.raises(app.UsageError, match="figure2 does not read --epochs, --set; of "
                           "the shared flags it reads --data_dir, --results_dir, --seeds "):
            common.refuse_unused("figure2", figure2.UNUSED_FLAGS)
    with pytest.raises(ValueError, match="not shared flags"):
        common.refuse_unused("figure2", ("epoch",))


def _must_not_train(*args, **kwargs):
    raise AssertionError("a kept run was trained again")


def test_figure4_memorization(tiny_data, tmp_path, monkeypatch):
    rows = figure4.run(tiny_data, str(tmp_path), epochs=2, train_limit=60)
    assert [r["labels"] for r in rows] == ["none", "none", "random", "random", "random"]
    curves = json.load(open(tmp_path / "figure4.json"))["curves"]
    assert all(len(c["loss"]) == 3 for c in curves.values())      # start + 2 epochs
    outputs(str(tmp_path), "figure4.csv", "figure4.png")
    assert len(list((tmp_path / "runs").glob("*.json"))) == 5       # each run kept: resumable
    monkeypatch.setattr(common.training, "run", _must_not_train)
    again = figure4.run(tiny_data, str(tmp_path), epochs=2, train_limit=60)
    assert [r["final_fit_loss"] for r in again] == [r["final_fit_loss"] for r in rows]
    assert json.load(open(tmp_path / "figure4.json"))["curves"] == curves


def test_table2_marks_cifar_rows_not_run_and_runs_the_rest(tiny_data, tmp_path):
    rows = table2.run(tiny_data, str(tmp_path), epochs=1, models=("vgg-like", "gru-s"),
                      train_limit=30)
    status = {(r["model"], r["sparsity"]): r["status"] for r in rows}
    assert status == {("vgg-like", 0.0): "not run", ("vgg-like", 0.97): "not run",
                      ("gru-s", 0.0): "run", ("gru-s", 0.95): "run"}
    assert "not run (needs a GPU)" in open(tmp_path / "table2.md").read()
    assert not any("test_error" in r for r in rows if r["status"] == "not run")


def test_table2_cifar_row_on_a_few_steps(tiny_data, tmp_path):
    rows = table2.run(tiny_data, str(tmp_path), epochs=1, models=("vgg-like",),
                      include_cifar=True)
    assert [r["status"] for r in rows] == ["run", "run"]
    assert abs(rows[1]["reached_sparsity"] - 0.97) < 1e-4


# The other CIFAR rows' command on two steps each: builds, scores and trains every model of the
# paper's CIFAR rows (WRN steps take seconds each here: the slow run).
@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m, dataset, *_ in table2.ROWS
                                   if dataset == "cifar10" and m != "vgg-like"])
def test_table2_every_cifar_row_on_two_steps(tiny_data, tmp_path, model):
    rows = table2.run(tiny_data, str(tmp_path), iterations=2, models=(model,),
                      include_cifar=True)
    sparsity = next(s for m, _, s, *_ in table2.ROWS if m == model)
    assert [(r["status"], r["iterations"]) for r in rows] == [("run", 2), ("run", 2)]
    assert abs(rows[1]["reached_sparsity"] - sparsity) < 1e-4


def test_criteria_comparison(tiny_data, tmp_path, monkeypatch):
    from snip_tf.experiments import criteria_comparison

    rows = criteria_comparison.run(tiny_data, str(tmp_path), epochs=1, train_limit=60,
                                   models=("lenet-5-caffe", "reber-gru"),
                                   criteria=("snip", "random", "dense"),
                                   sparsities=(0.99,))
    assert [(r["model"], r["criterion"]) for r in rows] == [
        ("lenet-5-caffe", "dense"), ("lenet-5-caffe", "snip"), ("lenet-5-caffe", "random"),
        ("reber-gru", "dense"), ("reber-gru", "snip"), ("reber-gru", "random")]
    assert all(r["status"] == "ok" for r in rows)
    dense = [r for r in rows if r["criterion"] == "dense"]
    assert all(r["sparsity"] == 0 and r["reached_sparsity"] == 0 for r in dense)
    assert all(abs(r["reached_sparsity"] - 0.99) < 1e-3 for r in rows if r not in dense)
    table = open(tmp_path / "comparison.md").read().splitlines()
    dense_row = next(line for line in table if line.startswith("| reber-gru | 0 % (dense)"))
    cells = dense_row.strip("| ").split(" | ")[2:]
    assert len(cells) == 2 and len(set(cells)) == 1  # the dense error under every criterion
    outputs(str(tmp_path), "comparison.csv", "comparison.md", "comparison.png")
    assert len(list((tmp_path / "runs").glob("*.json"))) == 6  # each run kept as it finished
    monkeypatch.setattr(common.training, "run", _must_not_train)
    monkeypatch.setattr(criteria_comparison, "_reber_run", _must_not_train)
    again = criteria_comparison.run(tiny_data, str(tmp_path), epochs=1, train_limit=60,
                                    models=("lenet-5-caffe", "reber-gru"),
                                    criteria=("snip", "random", "dense"),
                                    sparsities=(0.99,))
    assert [r["test_error"] for r in again] == [r["test_error"] for r in rows]


def test_a_run_another_process_trains_is_not_trained_again_alongside(tiny_data, tmp_path,
                                                                   monkeypatch):
    import fcntl

    monkeypatch.setattr(common.training, "run", _must_not_train)
    cfg = common.config("lenet-300-100", 0.9, iterations=2)
    runs = tmp_path / "runs"
    runs.mkdir()
    name = common.training.run_name(common._named(cfg))
    with open(runs / f"{name}.lock", "w") as held:  # as the other process holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match="another process is training this run"):
            common.run_all([cfg], tiny_data, str(tmp_path))


def test_a_run_finished_while_waiting_for_its_lock_is_not_trained_again(tiny_data, tmp_path,
                                                                        monkeypatch):
    cfg = common._named(common.config("lenet-300-100", 0.9, iterations=2, train_limit=60))
    runs = tmp_path / "runs"
    runs.mkdir()
    path = common._train(cfg.to_json(), tiny_data, str(runs), 0)
    assert list(runs.glob("*.lock")) == []  # the lock's file goes with the run
    kept = open(path).read()
    # a second process that saw no result, then got the lock after the first one finished
    monkeypatch.setattr(common.training, "run", _must_not_train)
    assert common._train(cfg.to_json(), tiny_data, str(runs), 0) == path
    assert open(path).read() == kept and list(runs.glob("*.lock")) == []
    # a file under the run's name that holds another config's result is not taken for it
    other = json.loads(kept)
    other["config"]["seed"] += 1
    common.atomic.write_json(path, other)
    with pytest.raises(AssertionError, match="a kept run was trained again"):
        common._train(cfg.to_json(), tiny_data, str(runs), 0)
    # a lock file removed by hand while its run trains does not fail the run at its end
    def run_whose_lock_file_is_removed(cfg, results_dir, **kwargs):
        os.remove(os.path.join(results_dir, f"{common.training.run_name(cfg)}.lock"))
        return {"results_path": "done"}

    monkeypatch.setattr(common.training, "run", run_whose_lock_file_is_removed)
    os.remove(path)
    assert common._train(cfg.to_json(), tiny_data, str(runs), 0) == "done"


def test_a_worker_exits_when_its_command_is_killed(tmp_path):
    import subprocess
    import sys
    import time

    worker = ("import os, time; from snip_tf.experiments.common import exit_with_parent; "
              "exit_with_parent(os.getppid(), every=0.1); print(os.getpid(), flush=True); "
              "time.sleep(120)")
    command = ("import subprocess, sys, os; "
               f"w = subprocess.Popen([sys.executable, '-c', {worker!r}], stdout=subprocess.PIPE); "
               "print(w.stdout.readline().decode().strip(), flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True,
                         timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    pid = int(out.stdout.strip())

    def alive():
        try:
            with open(f"/proc/{pid}/status") as f:
                return "\tZ" not in next(line for line in f if line.startswith("State"))
        except FileNotFoundError:
            return False

    deadline = time.time() + 30
    while alive() and time.time() < deadline:
        time.sleep(0.2)
    assert not alive()


def test_run_all_keeps_a_failed_run_as_failed(tiny_data, tmp_path, monkeypatch):
    calls = []

    def failing(cfg, **kwargs):
        calls.append(cfg.name)
        if cfg.sparsity == 0.9:
            raise snip_tf.ScoresError("SynFlow scores are not finite")
        raise ValueError("a bug")

    monkeypatch.setattr(common.training, "run", failing)
    cfg = common.config("lenet-300-100", 0.9, iterations=2, **{"snip.criterion": "synflow"})
    (row,) = common.run_all([cfg], tiny_data, str(tmp_path), failures_ok=True)
    assert row["status"] == "failed: SynFlow scores are not finite" and row["seed"] == 0
    (again,) = common.run_all([cfg], tiny_data, str(tmp_path), failures_ok=True)
    assert again == row and len(calls) == 1  # kept: not tried again
    with pytest.raises(snip_tf.ScoresError):  # without failures_ok: raised
        common.run_all([common.config("lenet-300-100", 0.9, iterations=3)], tiny_data,
                       str(tmp_path))
    with pytest.raises(ValueError, match="a bug"):  # any other error: raised, not kept
        common.run_all([common.config("lenet-300-100", 0.8, iterations=2)], tiny_data,
                       str(tmp_path), failures_ok=True)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1


def test_gate_usage(tiny_data, tmp_path):
    from snip_tf.experiments import gate_usage

    report = gate_usage.run(tiny_data, str(tmp_path), models_=("gru-s",), sparsity=0.9)
    rows = report["gru-s"]
    assert [r["weight"].split("/")[-1] for r in rows] == ["kernel", "recurrent_kernel"]
    assert set(rows[0]) == {"weight", "total_per_gate", "kept_z", "kept_r", "kept_h"}
    assert rows[0]["total_per_gate"] == 128 * 128
    outputs(str(tmp_path), "gate_usage.json", "gate_usage.md")


def test_single_seed_commands_refuse_several_seeds():
    from absl import app
    from absl.testing import flagsaver

    from snip_tf.experiments import common

    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--seeds=3"])
        assert common.one_seed("figure2") == 3
        common.FLAGS(["prog", "--seeds=0,1"])
        expected = "figure2 runs one seed at a time; got --seeds=0,1"
        with pytest.raises(app.UsageError, match=expected):
            common.one_seed("figure2")


def test_rnn_controls(tiny_data, tmp_path):
    from snip_tf.experiments import rnn_controls

    rows = rnn_controls.run(tiny_data, str(tmp_path), seeds=(0,), iterations=2,
                            models=("gru-s",), variants=("gate", "baseline", "long"))
    assert [(r["variant"], r["iterations"]) for r in rows] == [
        ("gate", 2), ("baseline", 2), ("long", 6)]
    summary = json.loads((tmp_path / "rnn_controls.json").read_text())["summary"]
    base = next(s["test_error_mean"] for s in summary if s["variant"] == "baseline")
    gate = next(s for s in summary if s["variant"] == "gate")  # listed before the baseline
    assert gate["change"] == pytest.approx(gate["test_error_mean"] - base)
    table = (tmp_path / "rnn_controls.md").read_text()
    assert "| gru-s | gate |" in table and "| gru-s | baseline |" in table
    # trained without checkpoint evaluation: the authors' rule and validation-selected read "–"
    line = next(line for line in table.splitlines() if line.startswith("| gru-s | baseline |"))
    assert [c.strip() for c in line.split("|")[3:6]] == [
        common.pct(next(r for r in rows if r["variant"] == "baseline")["test_error"]), "–", "–"]
    # each run's own line: its validation and last-epoch training errors beside the test error
    (long,) = [r for r in rows if r["variant"] == "long"]
    (kept,) = [result for result in (json.loads(p.read_text())
                                     for p in (tmp_path / "runs").glob("*.json"))
               if result["iterations"] == 6]
    assert long["train_error"] == pytest.approx(1 - kept["history"]["accuracy"][-1], abs=1e-6)
    assert (f"| gru-s | long | 0 | {common.pct(long['test_error'])} | – | – | "
            f"{common.pct(long['validation_error'])} | {long['train_loss']:.3f} | "
            f"{common.pct(long['train_error'])} |") in table
    with pytest.raises(ValueError, match="unknown variants"):
        rnn_controls.run(tiny_data, str(tmp_path), variants=("adamw",))


def test_rnn_controls_sgd_wd_adds_the_papers_weight_decay_to_every_kernel():
    from snip_tf import models
    from snip_tf.experiments import common, rnn_controls

    cfgs = {v: common.config("lstm-s", 0.95, protocol="short", **rnn_controls.VARIANTS[v])
            for v in ("sgd", "sgd-wd")}
    assert cfgs["sgd"].l2 == 0.0 and cfgs["sgd-wd"].l2 == pytest.approx(2.5e-4)
    assert {k: cfgs["sgd-wd"][k] for k in ("optimizer", "learning_rate", "momentum")} == \
        {k: cfgs["sgd"][k] for k in ("optimizer", "learning_rate", "momentum")}
    model = models.get("lstm-s", input_shape=(28, 28), num_classes=10, l2=cfgs["sgd-wd"].l2)
    lstm = next(layer for layer in model.layers if "lstm" in layer.name)
    cell = getattr(lstm, "cell", lstm)
    assert cell.kernel_regularizer.l2 == pytest.approx(2.5e-4)
    assert cell.recurrent_regularizer.l2 == pytest.approx(2.5e-4)


def test_rnn_controls_report_only_tables_the_kept_runs(tiny_data, tmp_path):
    from snip_tf.experiments import rnn_controls

    settings = dict(seeds=(0, 1), iterations=2, models=("gru-s",), variants=("baseline", "gate"))
    rnn_controls.run(tiny_data, str(tmp_path), **{**settings, "seeds": (0,)})
    rows = rnn_controls.run(tiny_data, str(tmp_path), **settings, report_only=True)
    assert [(r["variant"], r["seed"]) for r in rows] == [("baseline", 0), ("gate", 0)]
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2  # nothing trained
    table = (tmp_path / "rnn_controls.md").read_text()
    assert "| gru-s | gate |" in table and "| 1 |" in table


def test_set_changes_one_field_of_every_run_and_checks_it():
    from absl import app
    from absl.testing import flagsaver

    assert common.settings(["momentum=0", "snip.batch_size=100", "optimizer=adam"]) == {
        "momentum": 0.0, "snip.batch_size": 100, "optimizer": "adam"}
    for bad, message in [("nope=1", "not a field"), ("momentum", "takes key=value"),
                         ("momentum=fast", "'momentum' takes a float"),
                         ("snip.nope=1", "not a field")]:
        with pytest.raises(app.UsageError, match=message):
            common.settings([bad])
    with flagsaver.flagsaver():
        common.FLAGS(["prog", "--set=momentum=0.0", "--set=learning_rate=0.01"])
        cfg = common.config("lenet-5-caffe", 0.5, seed=1)
        assert (cfg.momentum, cfg.learning_rate, cfg.seed) == (0.0, 0.01, 1)
        with pytest.raises(app.UsageError, match="sets itself"):
            common.config("lenet-5-caffe", 0.5, learning_rate=0.1)
        assert common.protocol_label("paper") == \
            "'paper' with --set momentum=0.0, learning_rate=0.01"
        # the runs' optimizers as trained, after --set
        short = common.config("gru-s", 0.9, protocol="short")
        assert common.protocol_label("paper", [cfg, short]) == (
            "'paper' with --set momentum=0.0, learning_rate=0.01 "
            "(lenet-5-caffe: sgd 0.01, momentum 0, l2 0.00025; gru-s: adam 0.01)")
    assert common.protocol_label("paper") == "'paper'"


def test_criteria_comparison_trains_lstm_s_with_adam(monkeypatch, tmp_path):
    # its LSTM-s tables are Adam runs; --protocol=paper's change to SGD must not reach them
    from snip_tf.experiments import criteria_comparison

    class Seen(Exception):
        pass

    def capture(cfgs, *args, **kwargs):
        raise Seen(cfgs)
    monkeypatch.setattr(common, "run_all", capture)
    with pytest.raises(Seen) as seen:
        criteria_comparison.run(None, str(tmp_path), models=("lstm-s",), criteria=["snip"],
                                sparsities=(0.9,))
    assert [(c.model, c.optimizer, c.l2) for c in seen.value.args[0]] == [("lstm-s", "adam", 0.0)]


def test_protocols_of_the_recurrent_models():
    from snip_tf.experiments import rnn_controls

    paper, short = (common.config("lstm-s", 0.95, iterations=100000, protocol=p)
                    for p in ("paper", "short"))
    assert (paper.optimizer, paper.learning_rate, paper.momentum, paper.l2) == (
        "sgd", 0.1, 0.9, common.WEIGHT_DECAY_L2)
    assert (short.optimizer, short.learning_rate, short.l2) == ("adam", 1e-3, 0.0)
    # "paper" is rnn_controls' sgd-wd and "short" its baseline, to the digest: kept runs stay
    sgd_wd = common.config("lstm-s", 0.95, iterations=100000, protocol="short",
                           **rnn_controls.VARIANTS["sgd-wd"])
    assert common._digest(paper.to_dict()) == common._digest(sgd_wd.to_dict())
    assert common._digest(short.to_dict()) != common._digest(paper.to_dict())
    lenet = [common.config("lenet-300-100", 0.9, protocol=p) for p in ("paper", "short")]
    assert lenet[0] == lenet[1]                     # "short" changes the recurrent models only
    with pytest.raises(ValueError, match="unknown protocol 'adam'"):
        common.config("lstm-s", 0.95, protocol="adam")
