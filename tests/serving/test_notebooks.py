"""The notebooks run, top to bottom, on the small served project: they cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.serving.conftest import Served

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("name") == "stdout"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("01-lifecycle-data", "active customers, monthly churn"),
        ("02-churn-model", "captures"),
        ("03-retention-policy", "best of the grid"),
    ],
)
@pytest.mark.slow
def test_notebook_runs_on_the_project(
    name: str, expected: str, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = served.features.repo_path.parents[1]
    # the kernel inherits these: the notebooks read the served project, not data/
    monkeypatch.setenv("RETAIN_FEATURES_REPO_PATH", str(served.features.repo_path))
    monkeypatch.setenv("RETAIN_FEATURES_LIFECYCLE_DIR", str(served.features.lifecycle_dir))
    monkeypatch.setenv("RETAIN_FEATURES_TRAINING_DIR", str(root / "data" / "training"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.tracking.resolved_tracking_uri())
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}
    ).execute()  # raises on the first failing cell, naming it
    printed = _printed(notebook)
    assert expected in printed and str(served.features.lifecycle_dir.resolve()) in printed
    plots = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert plots  # every notebook draws its figures
