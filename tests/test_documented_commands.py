"""Every command in README.md, RESULTS.md and docs/ names an entry point that exists and flags that
entry point defines: documented commands keep working when code moves.

Read from the sources (absl DEFINE_* calls, argparse add_argument calls, the config's fields), so
the check is instant and needs no data.
"""

import glob
import os
import re

import pytest

from conftest import REPO
from snip_tf import config as snip_config

DOCS = [os.path.join(REPO, "README.md"), os.path.join(REPO, "RESULTS.md")] + sorted(
    glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))
ABSL_BUILTINS = {"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok", "logtostderr",
                 "alsologtostderr", "verbosity", "v", "only_check_args", "pdb_post_mortem",
                 "run_with_profiling", "log_dir"}


def _commands():
    found = []
    for path in DOCS:
        text = open(path, encoding="utf-8").read().replace("\\\n", " ")
        for line in re.findall(r"python (?:-m snip_tf\.[\w.]+|train\.py|benchmarks/\w+\.py)[^`\n|]*",
                               text):
            if "NAME" not in line:
                found.append((os.path.relpath(path, REPO), line.strip()))
    return found


def _source(relative):
    return open(os.path.join(REPO, relative), encoding="utf-8").read()


def _imported_snip_tf_files(source):
    """The snip_tf modules a source imports, as paths (``from snip_tf.a import b`` -> a/b.py)."""
    out = []
    for package, names in re.findall(r"^from (snip_tf(?:\.\w+)*) import ([\w, ]+)", source,
                                     flags=re.M):
        for name in names.split(","):
            name = name.strip().split(" as ")[0]
            for candidate in (f"{package}/{name}", package):
                path = candidate.replace(".", "/") + ".py"
                if os.path.exists(os.path.join(REPO, path)):
                    out.append(path)
                    break
    return out


def _absl_flags(relative):
    names, bools = set(), set()
    for path in [relative] + _imported_snip_tf_files(_source(relative)):
        source = _source(path)
        names |= set(re.findall(r"DEFINE_\w+\(\s*[\"'](\w+)[\"']", source))
        bools |= set(re.findall(r"DEFINE_bool(?:ean)?\(\s*[\"'](\w+)[\"']", source))
    return names | ABSL_BUILTINS, bools


def _argparse_flags(relative):
    source = _source(relative)
    names = set(re.findall(r"add_argument\(\s*[\"']--([\w-]+)[\"']", source))
    for imported in re.findall(r"^import (\w+)|^from (\w+) import", source, flags=re.M):
        module = next(m for m in imported if m)
        sibling = os.path.join(os.path.dirname(relative), module + ".py")
        if os.path.exists(os.path.join(REPO, sibling)):
            names |= set(re.findall(r"add_argument\(\s*[\"']--([\w-]+)[\"']", _source(sibling)))
    return names | {"help"}


COMMANDS = _commands()
# Benchmarks listed under "Retired benchmarks" in docs/performance.md (kept in git history).
_PERFORMANCE = _source("docs/performance.md")
RETIRED = set(re.findall(r"^\| `(benchmarks/\w+\.py)` \|", _PERFORMANCE.split("## Retired")[-1],
                         flags=re.M)) if "## Retired" in _PERFORMANCE else set()


# The graph study's retired bank trainer: commands that ran with it keep its flags, and
# docs/thesis.md names the commit that has it.
RETIRED_TRAINER = "--trainer=bank"


def test_the_retired_trainer_is_retired_and_its_commit_named():
    from snip_tf.studies import graph_architectures

    assert RETIRED_TRAINER.split("=")[1] not in graph_architectures.TRAINERS
    assert re.search(r"bank trainer.*last at commit `8ae92d8`", _source("docs/thesis.md"), re.S)
    assert any(RETIRED_TRAINER in command for _, command in COMMANDS)


def test_retired_benchmarks_name_the_commit_that_has_them():
    retired = _PERFORMANCE.split("## Retired")[-1]
    commit = re.search(r"commit `([0-9a-f]{7,40})`", retired)
    assert RETIRED and commit, "the retired benchmarks section names the commit that has them"
    assert re.fullmatch(r"[0-9a-f]+", commit.group(1))


def test_the_docs_document_commands():
    assert len(COMMANDS) > 50


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{w}:{c[:60]}" for w, c in COMMANDS])
def test_documented_command_exists_and_takes_its_flags(where, command):
    words = command.split()
    target = words[2] if words[1] == "-m" else words[1]
    flags = [w[2:].split("=", 1)[0] for w in words if w.startswith("--")]
    if target == "train.py":
        defined, bools = _absl_flags("train.py")
        for flag in flags:
            if flag.startswith(("config.", "tune.")):
                field = flag if flag.startswith("config.") else "config." + flag
                snip_config.check_override(field[len("config."):])
            else:
                assert flag in defined | {"tune", "config"}, f"{where}: {command!r}: --{flag}"
        return
    if RETIRED_TRAINER in words:             # ran at the commit docs/thesis.md names
        return
    if target.startswith("snip_tf."):
        relative = target.replace(".", "/") + ".py"
        assert os.path.exists(os.path.join(REPO, relative)), f"{where}: no module {target}"
        defined, bools = _absl_flags(relative)
        unused = re.search(r"^UNUSED_FLAGS = \(([^)]*)\)", _source(relative), re.M)
        refused = set(re.findall(r"\"(\w+)\"", unused.group(1))) if unused else set()
        for flag in flags:
            ok = flag in defined or (flag.startswith("no") and flag[2:] in bools)
            assert ok, f"{where}: {command!r}: {target} has no flag --{flag}"
            assert flag not in refused, f"{where}: {command!r}: {target} does not read --{flag}"
        return
    if target in RETIRED:                    # reported figures keep their commands
        assert not os.path.exists(os.path.join(REPO, target)), f"{target} is listed as retired"
        return
    assert os.path.exists(os.path.join(REPO, target)), f"{where}: no script {target}"
    defined = _argparse_flags(target)
    for flag in flags:
        assert flag in defined, f"{where}: {command!r}: {target} has no flag --{flag}"
