"""Customer data stays out of MLflow: a churn training run holds metrics, plots,
aggregates and a made-up input example; its held-out rows are kept on this disk for
promotion, and copied into the run only with `log_customer_rows`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow.models import Model

from tests.mlflow_files import customer_ids_in, model_files, run_files
from tests.training.conftest import LABEL
from training.churn import train_churn
from training.settings import LightGBMParams, TrainingSettings
from training.tracking import LoggedRun, heldout_path, log_training_run, promote

WEAK = LightGBMParams(max_rounds=2, num_leaves=2, learning_rate=0.01, early_stopping_rounds=1)


def _log(frame: pd.DataFrame, settings: TrainingSettings) -> LoggedRun:
    return log_training_run(train_churn(frame, LABEL, settings), frame, settings)


@pytest.mark.slow
def test_by_default_a_training_run_holds_no_customer_id_and_no_customers_row(
    small_training_set: pd.DataFrame, tracking: TrainingSettings, tmp_path: Path
) -> None:
    settings = tracking.model_copy(update={"params": WEAK})
    logged = _log(small_training_set, settings)
    files = run_files(logged.run_id, tmp_path / "run")
    files += model_files(settings.registered_model, logged.version, tmp_path / "model")
    names = {p.name for p in files}
    assert {"roc.png", "profit_curve.csv", "MLmodel", "input_example.json"} <= names
    assert "test_set.parquet" not in names
    assert customer_ids_in(files, set(small_training_set["customer_id"])) == {}
    # the input example is one row of typical values, not a customer's
    folder = next(p.parent for p in files if p.name == "MLmodel")
    example = Model.load(folder).load_input_example(str(folder))
    assert isinstance(example, pd.DataFrame) and len(example) == 1
    test = train_churn(small_training_set, LABEL, settings).split.test
    for column in ("tenure_days", "monthly_fee", "tickets_complaint_90d"):
        median = test[column].median()
        expected = round(median) if pd.api.types.is_integer_dtype(test[column]) else median
        assert example[column].iloc[0] == pytest.approx(expected)
    # the held-out rows are kept on this disk, where promotion reads them
    assert heldout_path(settings.heldout_dir, "churn", logged.run_id).exists()
    assert promote(settings).promoted
    shutil.rmtree(settings.heldout_dir)  # promoted elsewhere than where it was trained
    with pytest.raises(LookupError, match=r"churn v1: its held-out rows are neither at .* nor"):
        promote(settings)


@pytest.mark.slow
def test_with_log_customer_rows_the_run_holds_the_held_out_rows(
    small_training_set: pd.DataFrame, tracking: TrainingSettings, tmp_path: Path
) -> None:
    settings = tracking.model_copy(update={"params": WEAK, "log_customer_rows": True})
    first = _log(small_training_set, settings)
    second = _log(small_training_set, settings)
    files = run_files(second.run_id, tmp_path / "run")
    files += model_files(settings.registered_model, second.version, tmp_path / "model")
    found = customer_ids_in(files, set(small_training_set["customer_id"]))
    assert set(found) == {"test_set.parquet"} and found["test_set.parquet"] > 100
    # on disk only the current challenger's rows are kept
    kept = [p.name for p in (settings.heldout_dir / "churn").iterdir()]
    assert kept == [second.run_id] and first.run_id != second.run_id
    shutil.rmtree(settings.heldout_dir)
    assert promote(settings).challenger == second.version  # from the run's artifacts
