"""What the experiments share: flags, the paper's protocol as configs, result files, plots."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import statistics
import sys
import time
from typing import Iterable, Optional

import ml_collections
from absl import app, flags

from snip_tf import config as snip_config
from snip_tf.config import base_config
from snip_tf import atomic, training

flags.DEFINE_string("data_dir", None, "Local data folder (default $SNIP_TF_DATA_DIR, else tfds).")
flags.DEFINE_string("results_dir", None, "Output folder (default results/<experiment>).")
flags.DEFINE_list("seeds", ["0"], "Seeds; each configuration is run once per seed.")
flags.DEFINE_integer("epochs", None, "Training epochs per run (default: the experiment's).")
flags.DEFINE_integer("train_limit", 0, "Use only this many training examples (0: all).")
PROTOCOLS = ("paper", "short", "authors")
flags.DEFINE_enum("protocol", "paper", list(PROTOCOLS),
                  "paper: as the paper states it (the recurrent models: its SGD and weight decay, "
                  "common.RNN); short: the same for the LeNets, Adam for the recurrent models "
                  "(common.RNN_SHORT: Table 2's 8-epoch and Table 3's 5-epoch runs); authors: "
                  "details of the authors' code "
                  "(score one draw and train a fresh one, biases ranked and L2-penalized with "
                  "0.00025*sum(w^2), variance-scaling fan_in initialization).")
flags.DEFINE_list("models", [], "Only these models (default: all of the experiment's).")
flags.DEFINE_list("criteria", [], "Only these criteria (default: the experiment's; table1 and "
                  "criteria_comparison).")
flags.DEFINE_integer("iterations", None, "Training iterations per run (default: the "
                     "experiment's; overrides --epochs).")
flags.DEFINE_integer("workers", 1, "Runs trained side by side, each in a process of its own with "
                     "an equal share of the CPU threads (1: one after another). The graph study: "
                     "networks trained at a time, in threads (default there: one per CPU core).")
flags.DEFINE_multi_string("set", [], "Change one field of every run's config: key=value, a dotted "
                          "key for a nested field (e.g. --set=momentum=0.0 --set=learning_rate="
                          "0.01); the value is read as a Python literal. Repeat for several.")
flags.DEFINE_bool("report_only", False, "Train nothing: table the runs already kept in the "
                  "results folder (e.g. while a long command is still running, or after it was "
                  "stopped); the missing runs are counted, not trained.")
FLAGS = flags.FLAGS
SHARED_FLAGS = ("data_dir", "results_dir", "seeds", "epochs", "iterations", "train_limit",
                "protocol", "models", "criteria", "workers", "set", "report_only")

# The paper's weight decay of 0.0005 is a gradient coefficient: the authors' code adds
# 0.00025 * sum(w^2) to the loss (snip/model.py), so the L2 penalty is l2=2.5e-4.
WEIGHT_DECAY_L2 = 2.5e-4
# The paper's LeNet protocol: batch 100, SGD momentum 0.9, weight decay 0.0005, the learning
# rate 0.1 divided by 10 every 25k iterations; 10 % of the training set held out for validation.
# We run 100k iterations (PAPER_ITERATIONS: decays at 25k, 50k and 75k); a shorter budget
# (--iterations, --epochs) decays at the same fractions of the run. Validation and test error are
# taken at checkpoints every 1000 iterations, the last 10 (the authors' rule reads the last 5 of
# them, the checkpoints their saver kept: training.checkpoint_summary).
PAPER_ITERATIONS = 100_000
LENET = dict(batch_size=100, optimizer="sgd", learning_rate=0.1, momentum=0.9,
             lr_decay_fractions=(0.25, 0.5, 0.75), l2=WEIGHT_DECAY_L2, eval_every=1000,
             eval_last=10)
# Sequential MNIST for the recurrent models: the paper's optimizer and weight decay (SGD, momentum
# 0.9, lr 0.1, 0.00025 * sum(w^2) on every kernel), with gradient-norm clipping at 5 and decays at
# half and three quarters of the run, where the paper divides the learning rate every 25k and
# states no clipping. On 100k iterations this meets the paper's LSTM-s and GRU-s numbers at 95 %
# (docs/results/rnn-controls.md: rnn_controls' "sgd-wd", the same config).
RNN = dict(batch_size=100, optimizer="sgd", learning_rate=0.1, momentum=0.9,
           l2=WEIGHT_DECAY_L2, clipnorm=5.0, sequential=True, lr_decay_fractions=(0.5, 0.75))
# The "short" protocol's recurrent models: Adam, which fits far faster on a short budget than
# SGD (Table 2's 8-epoch and Table 3's 5-epoch runs; rnn_controls' baseline). The LeNets train as
# in "paper".
RNN_SHORT = dict(batch_size=100, optimizer="adam", learning_rate=1e-3, l2=0.0, clipnorm=5.0,
                 sequential=True, lr_decay_fractions=(0.5, 0.75))


def run_app(main, unused=()) -> None:
    """``absl.app.run(main)`` for an experiment command: its ``--help`` shows the command's
    docstring as written (absl %-formats it) and the flags shared from this module that it reads
    beside its own. ``unused``: the shared flags the command does not read; given on its command
    line, each is a usage error (``refuse_unused``) rather than silently ignored."""
    module = sys.modules["__main__"]
    if module.__doc__:
        module.__doc__ = module.__doc__.replace("%", "%%")
    command = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    for name in SHARED_FLAGS:
        if name not in unused:
            FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])

    def checked_main(argv):
        refuse_unused(command, unused)
        return main(argv)
    app.run(checked_main)


def refuse_unused(command: str, unused) -> None:
    """A usage error naming each flag of ``unused`` that the command line gave: ``command`` does
    not read it, so running on would ignore what the user asked for."""
    unknown = [name for name in unused if name not in SHARED_FLAGS]
    if unknown:
        raise ValueError(f"unused names {unknown}, which are not shared flags {SHARED_FLAGS}.")
    given = [f"--{name}" for name in unused if FLAGS[name].present]
    if given:
        reads = [f"--{name}" for name in SHARED_FLAGS if name not in unused]
        raise app.UsageError(f"{command} does not read {', '.join(given)}; of the shared flags "
                             f"it reads {', '.join(reads)} (and its own: see --help).")


def chosen(flag: str, known) -> tuple:
    """The names the user gave with ``--<flag>`` (default: all of ``known``); an unknown one is a
    usage error that names the flag and lists ``known``."""
    try:
        return check_names(flag, FLAGS[flag].value, known) or tuple(known)
    except ValueError as e:
        raise app.UsageError(f"--{flag}: {e}") from None


def check_names(what: str, given, known) -> tuple:
    """``given`` as a tuple, each name one of ``known``; an unknown one is a ValueError that
    names it and lists ``known`` (``what``: the kind of name, e.g. "initializers").

    >>> check_names("initializers", ["tn"], ("rn", "tn"))
    ('tn',)
    >>> check_names("initializers", ["he"], ("rn", "tn"))
    Traceback (most recent call last):
    ValueError: unknown initializers ['he']; the initializers are ['rn', 'tn'].
    """
    unknown = [name for name in given if name not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; the {what} are {list(known)}.")
    return tuple(given)


def config(model: str, sparsity: float, *, dataset: str = "mnist", seed: int = 0,
           epochs: int = 20, train_limit: int = 0, protocol: str = "paper",
           iterations: int = 0, **overrides):
    """A run config for ``model`` with ``protocol``'s settings for its family (the LeNets:
    ``LENET``; the recurrent models: ``RNN``, or ``RNN_SHORT`` for "short"; "authors" adds the
    authors' code's details): ``iterations`` iterations if given (else ``epochs`` epochs), the
    learning rate decayed at the family's fractions of the run, then ``overrides`` and --set."""
    c = base_config()
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; the protocols are {PROTOCOLS}.")
    recurrent = model.startswith(("lstm", "gru"))
    family = (RNN_SHORT if protocol == "short" else RNN) if recurrent else LENET
    c.update({"name": f"{model}_{dataset}", "model": model, "dataset": dataset,
              "sparsity": float(sparsity), "seed": int(seed), "epochs": int(epochs),
              "iterations": int(iterations), "train_limit": int(train_limit), **family})
    if protocol == "authors":
        c.snip.fresh_init = True
        c.snip.include_bias = True
        c.l2 = WEIGHT_DECAY_L2
        c.l2_bias = True
        c.initializer = "lecun"
    given = settings(FLAGS.set) if FLAGS.is_parsed() else {}
    clash = sorted(set(given) & set(overrides))
    if clash:
        raise app.UsageError(f"--set changes {clash}, which this experiment sets itself for its "
                             "runs; leave them out of --set.")
    for key, value in {**overrides, **given}.items():
        target = c
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    snip_config.validate(c)  # a bad field (e.g. from --set) is refused before any run starts
    return c


def budget_label(iterations: Optional[int], epochs: Optional[int]) -> str:
    """How a table's footnote names the training budget of each run.

    >>> budget_label(100000, None), budget_label(None, 5)
    ('100000 iterations', '5 epochs')
    """
    return f"{iterations} iterations" if iterations else f"{epochs} epochs"


def protocol_label(protocol: str, cfgs: Iterable = ()) -> str:
    """How a table's footnote names the protocol of its runs: ``'paper'``, and the fields that
    ``--set`` changed, e.g. ``'paper' with --set momentum=0.0``. Given the runs' ``cfgs``, it also
    names each model's optimizer as trained: a table that mixes the LeNets with the recurrent
    models (which the "short" protocol trains with Adam) says so.

    >>> cfgs = [config("lenet-300-100", 0.9), config("lstm-s", 0.9, protocol="short")]
    >>> protocol_label("short", cfgs)
    "'short' (lenet-300-100: sgd 0.1, momentum 0.9, l2 0.00025; lstm-s: adam 0.001)"
    """
    given = FLAGS.set if FLAGS.is_parsed() else []
    label = f"'{protocol}'" + (f" with --set {', '.join(given)}" if given else "")
    optimizers = dict.fromkeys(
        f"{c.model}: {c.optimizer} {c.learning_rate:g}"
        + (f", momentum {c.momentum:g}" if c.optimizer == "sgd" else "")
        + (f", l2 {c.l2:g}" if c.l2 else "") for c in cfgs)
    return label + (f" ({'; '.join(optimizers)})" if optimizers else "")


def settings(pairs) -> dict:
    """``--set`` pairs (``key=value``) as ``{key: value}``, each value read as a Python literal
    (a bare word stays a string), each key checked against the run config's fields.

    >>> settings(["momentum=0.0", "snip.batch_size=100", "optimizer=adam"])
    {'momentum': 0.0, 'snip.batch_size': 100, 'optimizer': 'adam'}
    """
    import ast

    fields, out = base_config(), {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise app.UsageError(f"--set takes key=value; got {pair!r}.")
        *parents, leaf = key.split(".")
        node = fields
        for part in parents + [leaf]:
            if not hasattr(node, "keys") or part not in node:
                raise app.UsageError(f"--set names {key!r}, which is not a field of a run's "
                                     f"config (snip_tf.config.base_config).")
            parent, node = node, node[part]
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        try:
            parent[leaf] = value  # the config's own type check, on a copy
        except TypeError:
            raise app.UsageError(f"--set {key}={text.strip()}: {key!r} takes a "
                                 f"{type(node).__name__}, not {value!r}.") from None
        out[key] = parent[leaf]
    return out


def method(cfg) -> str:
    """The criterion a run prunes with, or "dense" for an unpruned run."""
    return cfg.snip.criterion if cfg.sparsity > 0 else "dense"


def row_of(cfg, result: dict) -> dict:
    """The summary row an experiment tables, from a run's result (``training.run``'s)."""
    metrics = result["metrics"]
    # read again from the records: a run kept from before a change to the rules gets today's
    checked = training.checkpoint_summary(result.get("checkpoints") or [])
    return {"model": cfg.model, "dataset": cfg.dataset, "sparsity": cfg.sparsity,
            "criterion": method(cfg), "seed": cfg.seed,
            "test_error": metrics["test_error"],
            "test_error_authors_rule": checked["test_error_authors_rule"],
            "test_error_validation_selected": checked["test_error_validation_selected"],
            "validation_error": metrics["validation_error"],
            "train_loss": metrics["train_loss"],
            # the running training error over the last epoch (what the progress lines show)
            "train_error": last_epoch_error(result),
            "reached_sparsity": result["sparsity"]["sparsity"],
            "collapsed": ";".join(result["sparsity"]["collapsed"]),
            "epochs": result["epochs"], "iterations": result["iterations"],
            "diverged_at": result.get("diverged_at"),
            "train_size": result["train_size"], "wall_time_s": round(result["wall_time_s"], 1)}


def last_epoch_error(result: dict) -> Optional[float]:
    """A run's training error over its last epoch (1 − the epoch's running accuracy, from its
    ``history``), or None where it has none.

    >>> last_epoch_error({"history": {"accuracy": [0.9, 0.995]}})
    0.005
    """
    accuracy = (result.get("history") or {}).get("accuracy") or [None]
    return None if accuracy[-1] is None else round(1.0 - float(accuracy[-1]), 6)


def label(cfg) -> str:
    """How progress lines name a run."""
    noise = f", {cfg.label_noise} labels, L2 {cfg.l2:g}" if cfg.label_noise != "none" else ""
    return f"{cfg.model} {method(cfg)} {100 * cfg.sparsity:g}% seed {cfg.seed}{noise}"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def _digest(config: dict) -> str:
    """A digest of the fields where ``config`` (a dict) differs from ``base_config()``, its
    name aside: the same for two configs of the same run, also when one was written before a
    field was added to the config (at its default)."""
    import hashlib

    base = _flat(base_config().to_dict())
    changed = {k: v for k, v in _flat(config).items()
               if k != "name" and (k not in base or base[k] != v)}
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:10]


def _named(cfg):
    """``cfg`` named after its model, criterion and :func:`_digest`."""
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    cfg.name = f"{cfg.model}_{method(cfg)}_{_digest(cfg.to_dict())}"
    return cfg


def _kept_runs(runs: str) -> dict:
    """``{digest: (path, result)}`` of the finished runs in the folder ``runs``, recognized by
    the config each result holds (so also under another name)."""
    kept = {}
    for entry in sorted(os.listdir(runs)) if os.path.isdir(runs) else ():
        path = os.path.join(runs, entry)
        result = _kept_result(path)
        if result is not None:
            kept[_digest(result["config"])] = (path, result)
    return kept


def _kept_result(path: str) -> Optional[dict]:
    """The finished run's result in the file ``path`` (a JSON object that holds its config), or
    None where ``path`` holds none."""
    if not path.endswith(".json") or not os.path.isfile(path):
        return None
    try:
        result = atomic.read_json(path, expect=dict)
    except (ValueError, TypeError):
        return None  # not a run's result
    return result if "config" in result else None


def use_threads(threads: int, parent: Optional[int] = None) -> None:
    """Limit this process's TensorFlow to ``threads`` CPU threads (a worker's initializer: it
    must run before TensorFlow does anything); with ``parent``, exit when that process does."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if parent is not None:
        exit_with_parent(parent)


def exit_with_parent(parent: int, every: float = 2.0) -> None:
    """End this process once ``parent`` is gone (it is then re-parented). A worker whose command
    was killed must not go on training a run that the command, started again, trains too."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit_with_parent").start()


def _locked(runs: str, cfg):
    """Hold ``<runs>/<run name>.lock`` while the run trains: a second process that starts the
    same run (another command on the same results folder) stops with an error instead of training
    it alongside and writing the same backup and result files. The lock goes with the process;
    :func:`_train` removes its file when the run ends."""
    import fcntl

    path = os.path.join(runs, f"{training.run_name(cfg)}.lock")
    handle = open(path, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(f"{label(cfg)}: another process is training this run ({path} is "
                           "locked). Stop it, or wait for it, before starting the run again.")
    return handle


def _train(cfg_json: str, data_dir, runs: str, progress: int, failures_ok: bool = False) -> str:
    """One run, resumable, with ``progress`` progress lines (a worker's task): its result
    file's path. With ``failures_ok``, a run whose criterion cannot rank the model
    (:class:`snip_tf.pruning.ScoresError`, e.g. non-finite SynFlow scores) is kept as failed,
    with its error; any other error is raised."""
    from snip_tf import pruning

    cfg = ml_collections.ConfigDict(json.loads(cfg_json))
    path = os.path.join(runs, f"{training.run_name(cfg)}.json")
    lock = _locked(runs, cfg)
    try:
        kept = _kept_result(path)  # another process may have finished it since this one looked
        if kept is not None and _digest(kept["config"]) == _digest(cfg.to_dict()):
            return path
        result = training.run(cfg, data_dir=data_dir, results_dir=runs, resume=True,
                              progress=progress, label=label(cfg))
    except pruning.ScoresError as error:
        if not failures_ok:
            raise
        print(f"{label(cfg)}: failed: {error}", flush=True)
        return atomic.write_json(path, {"config": cfg.to_dict(), "failed": str(error)[:500]})
    finally:
        # unlinked while held: a process that opened the old file gets its lock only after this
        # one has closed it, and then finds the result file above (a file someone removed by hand
        # meanwhile must not fail the run)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock.name)
        lock.close()
    return result["results_path"]


def failed_row(cfg, result: dict) -> dict:
    """The row of a run kept as failed (``run_all(failures_ok=True)``)."""
    return {"model": cfg.model, "dataset": cfg.dataset, "sparsity": cfg.sparsity,
            "criterion": method(cfg), "seed": cfg.seed,
            "status": f"failed: {result['failed']}"[:200]}


def run_all(cfgs, data_dir: Optional[str], out: str, workers: int = 1, log=print,
            report_only: Optional[bool] = None, partial_ok: bool = False, row_of=row_of,
            failures_ok: bool = False) -> list:
    """Train every config of ``cfgs`` once; their rows (``row_of(cfg, result)``, by
    default this module's), in order.

    Resumable at every level: each run's result goes to ``<out>/runs/`` as it finishes (written
    atomically, under a name that carries a digest of its config), a config whose result is
    there (recognized by the config it holds) is not trained again, and a run killed midway continues from its last finished
    epoch (``training.run(resume=True)``). Each run prints a progress line every tenth of its
    iterations. ``workers`` runs train side by side, each in a process of its own ("spawn"ed)
    with an equal share of the CPU threads. ``report_only`` (default: the --report_only flag)
    trains nothing: where ``partial_ok``, a missing run's row is None; otherwise an error if any run is
    missing. ``failures_ok`` keeps a run whose criterion cannot rank the model
    (:class:`snip_tf.pruning.ScoresError`) as failed, under its result's name, so that it is not
    tried again: its row is :func:`failed_row` (delete the file to try it again)."""
    import concurrent.futures
    import multiprocessing

    runs = os.path.join(out, "runs")
    named = [_named(c) for c in cfgs]
    kept = _kept_runs(runs)
    found = [kept.get(_digest(c.to_dict())) for c in named]
    paths = [f[0] if f else os.path.join(runs, f"{training.run_name(c)}.json")
             for c, f in zip(named, found)]
    todo = [i for i, f in enumerate(found) if f is None]
    if report_only is None:
        report_only = FLAGS.is_parsed() and FLAGS.report_only
    if report_only:
        if todo and not partial_ok:
            raise app.UsageError(f"--report_only: {len(todo)} of {len(named)} runs are not in "
                                 f"{runs} yet, and this experiment tables complete results "
                                 f"only; run it without --report_only to train them.")
        if named and len(todo) == len(named):
            raise app.UsageError(f"--report_only: none of the {len(named)} runs is in {runs} yet; "
                                 "there is nothing to table. Run the command without "
                                 "--report_only to train them.")
        if log:
            log(f"{len(named) - len(todo)} of {len(named)} runs kept in {runs}; {len(todo)} "
                f"missing, not trained (report only)")
        missing, todo = set(todo), []
    else:
        missing = set()
    if log and not report_only and len(todo) < len(named):
        log(f"{len(named) - len(todo)} of {len(named)} runs already in {runs}; "
            f"training the other {len(todo)}")

    if todo:
        os.makedirs(runs, exist_ok=True)

    def task(i):
        return named[i].to_json(), data_dir, runs, 10, failures_ok

    if workers <= 1:
        for i in todo:
            _train(*task(i))
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=use_threads, initargs=(threads, os.getpid())) as pool:
            for future in concurrent.futures.as_completed([pool.submit(_train, *task(i))
                                                           for i in todo]):
                future.result()
    rows = []
    for i, (cfg, path) in enumerate(zip(named, paths)):
        if i in missing:
            rows.append(None)
            continue
        if found[i] is not None:
            result = found[i][1]
        else:
            result = atomic.read_json(path, expect=dict)
        if "failed" in result:
            rows.append(failed_row(cfg, result))
            if log:
                log(f"{label(cfg)}: {rows[-1]['status']}")
            continue
        rows.append(row_of(cfg, result))
        if log:
            row = rows[-1]
            log(f"{label(cfg)}: test error {pct(row['test_error'])}% (last iteration)"
                + (f", {pct(row['test_error_validation_selected'])}% (validation-selected)"
                   if row["test_error_validation_selected"] is not None else ""))
    return rows


def mean_std(values: Iterable[float]) -> tuple:
    values = list(values)
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def diverged_note(rows, detail: Optional[str] = None) -> str:
    """A table's footnote naming its runs whose training loss became NaN or infinite (they stop
    there, ``training.StopOnDivergence``; their error is the diverged network's), or "".
    ``detail``: the row key of the table's own axis (e.g. "initializer"), named per group."""
    bad = [r for r in rows if r.get("diverged_at") is not None]
    if not bad:
        return ""
    groups = {}
    for r in bad:
        name = f"{r['model']} {method_label(r)}"
        if detail is not None:
            name += f" {detail} {r.get(detail)}"
        groups.setdefault(name, []).append(r)
    names = "; ".join(f"{name}: seed{'s' if len(g) > 1 else ''} "
                      f"{', '.join(str(r['seed']) for r in g)} (by iteration "
                      f"{max(r['diverged_at'] for r in g)})" for name, g in groups.items())
    return (f"\n**{len(bad)} of {len(rows)} runs diverged** (training loss NaN or infinite; "
            f"each stopped at the end of that epoch, and its error is the diverged network's): "
            f"{names}.\n")


def method_label(row) -> str:
    """"dense" or "<criterion> <sparsity> %" for a row."""
    if row.get("criterion") == "dense" or not row.get("sparsity"):
        return "dense"
    return f"{row.get('criterion', 'snip')} {100 * row['sparsity']:g} %"


def spread(values: Iterable[float]) -> str:
    """A table cell for test errors (fractions) over seeds, in percent: "mean ± std", or the value
    alone for one run (which has no spread to show), or "–" for none.

    >>> spread([0.0138, 0.0140, 0.0136]), spread([0.01]), spread([])
    ('1.38 ± 0.02', '1.00', '–')
    """
    values = list(values)
    if not values:
        return "–"
    mean, std = mean_std(values)
    return pct(mean) if len(values) < 2 else f"{pct(mean)} ± {pct(std)}"


# The three test errors of a run (row keys of ``row_of``), as the tables label them: at the last
# iteration; by the authors' rule (the best of the last 5 checkpoints, selected on the test set);
# at the checkpoint with the best validation error. The last two need checkpoint evaluation
# (``config.eval_every``).
ERRORS = {"test_error": "last iteration", "test_error_authors_rule": "authors' rule",
          "test_error_validation_selected": "validation-selected"}


# The footnote of a table with ``error_cells``: why a checkpoint figure can read "–".
CHECKPOINT_NOTE = ("The authors' rule and the validation-selected error need checkpoint "
                   "evaluation (`--set=eval_every=1000`): \"–\" where a run was trained "
                   "without it.")


def cell(values) -> str:
    """:func:`spread` of a figure over a group of runs, or "–" where a run lacks it (None: e.g.
    the checkpoint figures of a run trained without checkpoint evaluation), never a mean over
    some of the runs.

    >>> cell([0.012, 0.011]), cell([0.012, None])
    ('1.15 ± 0.07', '–')
    """
    values = list(values)
    return "–" if None in values else spread(values)


def error_cells(rows) -> list:
    """The :func:`cell` of each of the three test errors (``ERRORS``, in its order) of a group of
    runs.

    >>> error_cells([{"test_error": 0.012, "test_error_authors_rule": 0.011,
    ...               "test_error_validation_selected": None}])
    ['1.20', '1.10', '–']
    """
    rows = list(rows)
    return [cell(r.get(key) for r in rows) for key in ERRORS]


def evaluations_table(groups: dict, headers) -> str:
    """A markdown table of the three test errors (``ERRORS``) per group of runs, with the
    ``CHECKPOINT_NOTE``: ``groups`` maps a tuple of cells (one per header) to the group's rows.

    >>> print(evaluations_table({("a",): [{"test_error": 0.012, "test_error_authors_rule": 0.011,
    ...                                    "test_error_validation_selected": 0.013}]}, ["model"]))
    ... # doctest: +ELLIPSIS
    | model | test error % (last iteration) | test error % (authors' rule) | ... | seeds |
    |---|---|---|---|---|
    | a | 1.20 | 1.10 | 1.30 | 1 |
    <BLANKLINE>
    The authors' rule and the validation-selected error need checkpoint evaluation ...
    """
    headers = list(headers) + [f"test error % ({v})" for v in ERRORS.values()] + ["seeds"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, rows in groups.items():
        rows = list(rows)
        lines.append("| " + " | ".join([*map(str, label), *error_cells(rows), str(len(rows))])
                     + " |")
    return "\n".join(lines) + "\n\n" + CHECKPOINT_NOTE + "\n"


def out_dir(name: str, results_dir: Optional[str]) -> str:
    """The results folder of the command ``name``: ``results_dir``, or ``results/<name>``.
    Nothing is created here: each writer (``write_rows``, ``write_json``, ``write_text``,
    ``save_figure``, ``run_all``) creates the folder when it first writes into it, so a command
    that fails before writing leaves no empty folder behind.

    >>> out_dir("table1", None), out_dir("table1", "/tmp/mine")
    ('results/table1', '/tmp/mine')
    """
    return results_dir or os.path.join("results", name)


def changed_settings(before: dict, settings: dict) -> dict:
    """{key: (value in ``before``, value in ``settings``)} for each key of ``settings`` whose
    value differs in ``before`` (a key ``before`` lacks counts as changed)."""
    return {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}


def require_same_settings(before: dict, settings: dict, folder: str) -> None:
    """Raise if ``settings`` differ from ``before``, those of the results in ``folder`` that a
    resumed run would add to: results of two settings must not mix."""
    changed = changed_settings(before, settings)
    if changed:
        raise ValueError(f"--resume with settings other than those of the results in {folder}: "
                         + ", ".join(f"{k} was {a!r}, now {b!r}"
                                     for k, (a, b) in changed.items()))


def write_rows(path: str, rows: list) -> str:
    if not rows:
        raise ValueError("no rows to write")
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return atomic.write_bytes(path, buffer.getvalue().encode("utf-8"))


def write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` atomically."""
    return atomic.write_bytes(path, text.encode("utf-8"))


def write_json(path: str, payload: dict) -> str:
    payload = {**payload, "hardware": training.hardware(),
               "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    return atomic.write_json(path, payload, default=str)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> str:
    """Lay out, write (atomically, in the format of ``path``'s ending) and close a matplotlib
    figure."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=os.path.splitext(path)[1][1:] or "png", dpi=120)
    pyplot().close(fig)
    return atomic.write_bytes(path, buffer.getvalue())


def seeds() -> list:
    """The --seeds flag as integers."""
    return [int(s) for s in FLAGS.seeds]


def one_seed(command: str) -> int:
    """The --seeds flag of a command that runs a single seed; several are an error rather than
    silently all but the first ignored."""
    given = seeds()
    if len(given) != 1:
        raise app.UsageError(f"{command} runs one seed at a time; got "
                             f"--seeds={','.join(FLAGS.seeds)}. Run it once per seed (each with "
                             f"its own --results_dir).")
    return given[0]


def pct(x: float) -> str:
    return f"{100 * x:.2f}"
