"""The daily run in MLflow holds the day's figures, summary and aggregate plots; the list
(customers, reasons, actions) stays where marketing reads it, and goes to MLflow only with
`log_customer_rows`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from serving.daily import run_daily
from serving.settings import DailySettings
from tests.mlflow_files import customer_ids_in, run_files
from tests.serving.conftest import Served

DAY = date(2026, 11, 2)  # the day after the served project's last snapshot


@pytest.mark.parametrize("include", [False, True], ids=["default", "log_customer_rows"])
def test_a_daily_run_holds_customer_ids_only_when_the_setting_asks(
    served: Served, tmp_path: Path, include: bool
) -> None:
    daily = DailySettings(
        output_dir=tmp_path / "risk_lists",
        table_rows=20,
        experiment=f"daily-privacy-{include}",
        log_customer_rows=include,
    )
    _, folder, run_id = run_daily(
        DAY, served.settings, daily, served.features, served.tracking, None
    )
    customers = pd.read_parquet(served.features.tables_dir / "customer_profile.parquet")
    ids = set(customers["customer_id"])
    listed = set(pd.read_parquet(folder / "risk_list.parquet")["customer_id"])
    assert listed and listed <= ids  # the list on disk, for marketing, names them
    files = run_files(run_id, tmp_path / "run")
    names = {p.name for p in files}
    assert {"summary.json", "risk_distribution.svg", "risk_by_region.svg"} <= names
    found = customer_ids_in(files, ids)
    if include:
        assert {"risk_list.parquet", "risk_list.csv", "report.html"} <= set(found)
        assert found["risk_list.parquet"] == len(listed)
    else:
        assert found == {}
