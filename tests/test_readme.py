"""README.md is what a newcomer runs first: every Python block in it runs, and it stays short."""

import os
import re

import pytest

from conftest import REPO

README = os.path.join(REPO, "README.md")


def _blocks(path):
    text = open(path, encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_is_at_most_200_lines():
    with open(README, encoding="utf-8") as f:
        assert len(f.read().splitlines()) <= 200


@pytest.mark.parametrize("index", range(len(_blocks(README))))
def test_every_python_block_in_the_readme_runs(index, capsys):
    code = _blocks(README)[index]
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "readme"})
    assert "98.00%" in capsys.readouterr().out or index > 0


def test_readme_links_point_to_existing_files():
    text = open(README, encoding="utf-8").read()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert os.path.exists(os.path.join(REPO, target)), target


def test_results_page_is_short_and_its_detail_pages_exist():
    results = os.path.join(REPO, "RESULTS.md")
    text = open(results, encoding="utf-8").read()
    assert len(text.splitlines()) <= 400
    for target in re.findall(r"\]\((docs/results/[^)#]+)", text):
        assert os.path.exists(os.path.join(REPO, target)), target
    for page in ("thesis-study1.md", "thesis-study2.md", "beyond-the-paper.md"):
        assert f"docs/results/{page}" in text
