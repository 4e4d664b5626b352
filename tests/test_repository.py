"""Promises the repository makes to a newcomer: layout, two commands, CI, contract docs."""

from __future__ import annotations

import tomllib
from pathlib import Path

from features.lifecycle.contract import contract_markdown

REPO = Path(__file__).resolve().parents[1]


def test_layout_from_the_design_card() -> None:
    for folder in (
        "features",
        "training",
        "serving",
        "notebooks",
        "configs",
        "tests",
        "bench",
        ".ci",
    ):
        assert (REPO / folder).is_dir(), folder
    for file in (
        "MLproject",
        "README.md",
        "pyproject.toml",
        "Makefile",
        ".ci/run",
        "requirements.lock",
    ):
        assert (REPO / file).is_file(), file


def test_readme_gives_the_two_commands_first() -> None:
    readme = (REPO / "README.md").read_text()
    first_section = readme.split("\n## ", 2)[1]
    assert "make run" in first_section and "make test" in first_section


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_contract_docs_match_the_contract() -> None:
    docs = (REPO / "features" / "README.md").read_text()
    assert contract_markdown() in docs, (
        "run `retain data contract` and paste it into features/README.md"
    )


def test_dependencies_are_pinned() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        assert "==" in requirement, requirement
