"""Bring your own dataset: the shipped specs on the real data, and clear spec errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from retain.cli import app
from tests.conftest import REPO, SHARED_DATA
from training.byod import DatasetError, DatasetSpec, cross_validate, load_dataset
from training.settings import Economics

IBM = REPO / "configs" / "datasets" / "ibm_telco.yaml"
BIGML = REPO / "configs" / "datasets" / "bigml_churn.yaml"
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not found")


@pytest.fixture(autouse=True)
def _run_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # spec paths are relative to where retain runs


@pytest.mark.slow
@needs_shared_data
def test_ibm_telco_reaches_the_target_and_beats_the_logistic_baseline() -> None:
    folds = cross_validate(DatasetSpec.load(IBM), Economics())
    lightgbm, baseline = folds["lightgbm"]["roc_auc"], folds["logistic_baseline"]["roc_auc"]
    assert len(lightgbm) == 5
    assert lightgbm.mean() >= 0.85
    assert lightgbm.mean() > baseline.mean()


@pytest.mark.slow
@needs_shared_data
def test_bigml_cross_validation_beats_the_baseline() -> None:
    folds = cross_validate(DatasetSpec.load(BIGML), Economics())
    assert folds["lightgbm"]["roc_auc"].mean() > folds["logistic_baseline"]["roc_auc"].mean() + 0.05


@pytest.mark.slow
@needs_shared_data
def test_the_cli_prints_mean_and_std_for_both_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAIN_TRAINING_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("RETAIN_TRAINING_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    result = CliRunner().invoke(app, ["train", "churn", "--dataset", str(IBM)])
    assert result.exit_code == 0, result.output
    assert (
        "ibm_telco: ROC-AUC LightGBM 0.8" in result.output
        and "logistic baseline 0.8" in result.output
    )
    assert "±" in result.output


def _spec(tmp_path: Path, **changes: object) -> DatasetSpec:
    spec = yaml.safe_load(IBM.read_text())
    spec.update(changes)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return DatasetSpec.load(path)


@needs_shared_data
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"drop": ["Gender"]}, "drop names column 'Gender'"),
        ({"id_column": "customer_id"}, "id_column names column 'customer_id'"),
        (
            {"label": {"column": "Churned", "positive": "Yes"}},
            "label.column names column 'Churned'",
        ),
        ({"label": {"column": "Churn", "positive": "Y"}}, "label column 'Churn' is unusable"),
        ({"types": {"PaymentMethod": "numeric"}}, "column 'PaymentMethod' is declared numeric"),
        ({"paths": ["../shared/data/nope.csv"]}, "not found"),
    ],
)
def test_spec_errors_name_the_column(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")):
        load_dataset(_spec(tmp_path, **changes))


def test_files_with_other_columns_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,x,churn\n1,2,yes\n2,3,no\n")
    (tmp_path / "b.csv").write_text("id,y,churn\n3,4,yes\n")
    spec = DatasetSpec.model_validate(
        {
            "name": "t",
            "paths": [tmp_path / "a.csv", tmp_path / "b.csv"],
            "label": {"column": "churn", "positive": "yes"},
        }
    )
    with pytest.raises(DatasetError, match=r"other columns than .*\['x', 'y'\]"):
        load_dataset(spec)


def test_an_unquoted_yes_asks_for_quotes() -> None:
    with pytest.raises(ValueError, match="in quotes"):
        DatasetSpec.model_validate(
            yaml.safe_load("name: t\npaths: x.csv\nlabel: {column: churn, positive: yes}")
        )


def test_an_unknown_spec_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colums"):
        _spec(tmp_path, colums=["x"])
