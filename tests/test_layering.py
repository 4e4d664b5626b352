"""The layering the design promises, checked: the import contracts in pyproject.toml hold,
they fail when a forbidden import is added, and the decision rules load no framework."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("retain", "features", "training", "serving")
HEAVY = ("mlflow", "feast", "lightgbm", "sqlalchemy", "fastapi", "pandas", "numpy")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the packages under `root`, with `root`'s pyproject.toml."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_import_contract_holds() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    planted = {
        "features/build.py": "import serving.decisions  # noqa\n",  # a lower stage reaching up
        "serving/policy.py": "import sqlalchemy  # noqa\n",  # a pure rule reaching for a database
    }
    for name, line in planted.items():
        path = tmp_path / name
        path.write_text(path.read_text() + line)
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "2 broken" in result.stdout
    assert "features.build -> serving.decisions" in result.stdout
    assert "serving.policy -> sqlalchemy" in result.stdout


def test_the_decision_rules_load_no_model_store_or_database() -> None:
    modules = ("serving.domain", "serving.policy", "serving.contact", "serving.action_log.keys")
    probe = (
        f"import sys; import {', '.join(modules)}; "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert not [heavy for heavy in HEAVY if f"'{heavy}'" in loaded], loaded
