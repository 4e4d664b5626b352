"""The demand model in MLflow: what a run logs, challenger -> champion, and forecasting."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.settings import FeatureSettings
from retain.cli import app
from training.demand.dataset import SERIES
from training.demand.jobs import forecast_demand, train_demand
from training.demand.model import pyfunc_input
from training.demand.settings import DemandSettings
from training.demand.tracking import load_demand_model, promote_demand
from training.tracking import CHALLENGER, CHAMPION

runner = CliRunner()


@pytest.fixture
def demand(tmp_path: Path) -> DemandSettings:
    """Fast demand settings whose MLflow backend and outputs live in this test's folder."""
    return DemandSettings.model_validate(
        {
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifact_root": tmp_path / "artifacts",
            "forecast_dir": tmp_path / "forecasts",
            "params": {"num_rounds": 100, "early_stopping_rounds": 10},
            "backtest": {"origins": 2, "step_weeks": 4},
            "propensity": {"num_rounds": 40},
        }
    )


@pytest.mark.slow
def test_train_promote_forecast(demo_project: FeatureSettings, demand: DemandSettings) -> None:
    first = train_demand(demo_project, demand)
    client = MlflowClient()
    run = client.get_run(first.logged.run_id)
    for scope in ("package", "service_load", *SERIES):
        for method in ("model", "seasonal_naive", "moving_average"):
            assert f"{scope}_{method}_wape" in run.data.metrics
            assert f"{scope}_{method}_mase" in run.data.metrics
        assert f"{scope}_model_coverage_p10_p90" in run.data.metrics
    assert "propensity_auc_campus_data_pack" in run.data.metrics
    assert run.data.tags["feature_service"] == "demand_v2"
    assert run.data.params["backtest_origin_weeks"].count(",") == 1
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    for series in SERIES:
        assert f"evaluation/backtest_{series}.png" in artifacts
    assert {"evaluation/history.parquet", "evaluation/backtest_metrics.csv"} <= artifacts

    # the registered model forecasts from a region-week history, through MLflow's own API
    pyfunc = mlflow.pyfunc.load_model(f"models:/{demand.registered_model}@{CHALLENGER}")
    forecast = pyfunc.predict(pyfunc_input(first.history))
    assert len(forecast) == first.history["region"].nunique() * len(SERIES) * 8

    with pytest.raises(LookupError, match="has no 'champion'"):
        load_demand_model(demand)
    decision = promote_demand(demand)
    assert decision.promoted and decision.champion is None

    # the same recipe again: promotion backtests the champion's recipe on the challenger's
    # history and origins, reproduces the challenger's figures, and keeps the champion
    train_demand(demo_project, demand)
    decision = promote_demand(demand)
    assert decision.challenger == "2" and decision.champion == "1" and not decision.promoted
    assert decision.champion_metrics is not None
    for metric in ("package_wape", "package_coverage", "service_load_wape"):
        assert decision.champion_metrics[metric] == pytest.approx(
            decision.challenger_metrics[metric], rel=1e-6
        )
    assert "0.0000 (needs <= -0.0020)" in decision.reason  # no gain: the champion stays
    aliases = client.get_registered_model(demand.registered_model).aliases
    assert str(aliases[CHAMPION]) == "1" and str(aliases[CHALLENGER]) == "2"

    # a challenger with another horizon is not compared on different weeks: it is refused
    shorter = demand.model_copy(update={"horizon_weeks": 4})
    train_demand(demo_project, shorter)
    decision = promote_demand(shorter)
    assert not decision.promoted and "not comparable" in decision.reason

    result = forecast_demand(demo_project, demand, weeks=8)
    for name in ("forecast", "surges", "campaign_candidates", "callback_capacity"):
        assert (demand.forecast_dir / f"{name}.parquet").exists()
        assert (demand.forecast_dir / f"{name}.csv").exists()
    written = pd.read_parquet(demand.forecast_dir / "forecast.parquet")
    assert list(written.columns[:3]) == ["region", "series", "group"]
    assert {"week_start", "week_end", "p10", "p50", "p90"} <= set(written.columns)
    assert written["horizon"].max() == 8 and written["origin"].nunique() == 1
    logged = client.get_run(result.run_id)
    assert logged.data.tags["model_version"] == "1"
    files = {a.path for a in client.list_artifacts(result.run_id, "forecast")}
    assert "forecast/forecast.parquet" in files
    assert "forecast/campaign_candidates.parquet" not in files  # names customers: on disk only
    capacity = result.tables["callback_capacity"]
    assert (capacity["callbacks_available"] >= 0).all() and capacity["date"].nunique() == 40


def test_forecast_cli_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_DEMAND_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("RETAIN_DEMAND_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    too_far = runner.invoke(app, ["forecast", "--weeks", "27"])
    assert too_far.exit_code == 2 and "--weeks" in too_far.output
    no_model = runner.invoke(app, ["forecast", "--weeks", "4"])
    assert no_model.exit_code == 1
    assert "model 'demand' has no 'champion'" in no_model.output
