"""The package as a user installs it: every module imports, and every third-party module it imports
is declared in setup.py (so a fresh machine that installs the project can run it)."""

import ast
import importlib
import importlib.metadata
import pathlib
import pkgutil
import re
import sys

import pytest

import snip_tf

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules():
    return sorted(m.name for m in pkgutil.walk_packages(snip_tf.__path__, "snip_tf."))


@pytest.mark.parametrize("name", _modules())
def test_every_module_imports(name):
    importlib.import_module(name)


def _imported_top_level(paths):
    found = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _declared_modules(extras=()):
    """Top-level module names provided by the distributions snip_tf declares (and their extras)."""
    requirements = importlib.metadata.requires("snip_tf") or []
    dists = set()
    for req in requirements:
        name, _, marker = req.partition(";")
        extra = re.search(r'extra\s*==\s*"([^"]+)"', marker)
        if extra and extra.group(1) not in extras:
            continue
        dists.add(re.split(r"[<>=!~\[ ]", name.strip())[0].lower().replace("_", "-"))
    modules = set()
    for module, providers in importlib.metadata.packages_distributions().items():
        if any(p.lower().replace("_", "-") in dists for p in providers):
            modules.add(module)
    return modules


def test_every_third_party_import_is_declared():
    library = list((ROOT / "snip_tf").rglob("*.py")) + [ROOT / "train.py"] + \
        list((ROOT / "configs").glob("*.py"))
    imported = _imported_top_level(library)
    declared = _declared_modules()
    undeclared = {m: where for m, where in imported.items()
                  if m not in sys.stdlib_module_names and m != "snip_tf" and m not in declared}
    assert not undeclared, f"imported but not declared in setup.py install_requires: {undeclared}"


def test_test_imports_are_declared_in_dev_extra():
    tests = list((ROOT / "tests").glob("*.py")) + [ROOT / "conftest.py"]
    imported = _imported_top_level(tests)
    declared = _declared_modules(extras=("dev",))
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"conftest", "snip_tf", "configs"}
    undeclared = {m: where for m, where in imported.items()
                  if m not in sys.stdlib_module_names and m not in local and m not in declared}
    assert not undeclared, f"tests import modules no extra declares: {undeclared}"
