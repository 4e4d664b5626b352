"""The demand model's two jobs: train (backtest, fit, log, register) and forecast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.lifecycle.contract import TABLES
from features.lifecycle.validate import resolve_as_of
from features.settings import FeatureSettings
from features.store import open_store
from features.training_set import demand_history
from retain.base.publish import publish_folder
from training.demand.backtest import BacktestResult, backtest
from training.demand.campaigns import campaign_candidates, find_surges
from training.demand.capacity import callback_capacity
from training.demand.dataset import forecasting_rows, long_history
from training.demand.model import DemandModel, DemandRecipe, fit_forecaster
from training.demand.propensity import customer_snapshots, train_propensity
from training.demand.settings import DemandSettings
from training.demand.tracking import LoggedRun, load_demand_model, log_demand_run, log_forecast

Step = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class TrainedDemand:
    backtest: BacktestResult
    model: DemandModel
    logged: LoggedRun
    history: pd.DataFrame


def train_demand(
    features: FeatureSettings, settings: DemandSettings, on_step: Step = _quiet
) -> TrainedDemand:
    """Backtest the recipe, fit it on all history, fit the propensity model, log both."""
    on_step(f"reading region-week history through {settings.feature_service}")
    history = demand_history(open_store(features), features.lifecycle_dir, settings.feature_service)
    recipe = DemandRecipe.of(settings)
    on_step(f"rolling-origin backtest ({settings.backtest.origins} origins)")
    result = backtest(history, recipe, settings.backtest)
    on_step("fitting the forecaster on all history")
    rows = forecasting_rows(long_history(history), recipe.horizon_weeks, recipe.calendar)
    forecaster = fit_forecaster(rows, recipe)
    on_step("fitting the package propensity model")
    as_of = resolve_as_of(features.lifecycle_dir, None)
    propensity = train_propensity(
        customer_snapshots(features.tables_dir),
        pd.read_parquet(features.lifecycle_dir / TABLES["package_purchases"].file_name),
        as_of,
        settings.propensity,
        settings.calendar,
        settings.seed,
    )
    model = DemandModel(forecaster, propensity)
    on_step("logging to MLflow")
    logged = log_demand_run(result, model, history, settings)
    return TrainedDemand(result, model, logged, history)


@dataclass(frozen=True)
class Forecast:
    tables: dict[str, pd.DataFrame]  # forecast, surges, campaign_candidates, callback_capacity
    folder: Path
    model_version: str
    run_id: str


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write every table as parquet and CSV; the folder is replaced atomically."""

    def write(staging: Path) -> None:
        for name, table in tables.items():
            table.to_parquet(staging / f"{name}.parquet", index=False)
            table.to_csv(staging / f"{name}.csv", index=False)

    publish_folder(folder, write)


HISTORY_WEEKS = 104  # forecasts kept by their origin: two years of weekly runs
FORECAST_KEY = ["region", "series", "origin", "horizon"]


def forecast_history(folder: Path, forecast: pd.DataFrame) -> pd.DataFrame:
    """Every forecast published so far (the folder's history and its latest forecast) with
    the new one, by origin: what a week was forecast to be before it happened, which the
    service KPIs compare the actual contacts with. Origins older than two years are dropped;
    a forecast made again for the same origin replaces the earlier one."""
    earlier = [
        pd.read_parquet(path)
        for path in (folder / "forecast_history.parquet", folder / "forecast.parquet")
        if path.is_file()
    ]
    found = pd.concat([*earlier, forecast], ignore_index=True)
    for column in ("origin", "week_start", "week_end"):  # one time unit whatever wrote them
        if column in found.columns:
            found[column] = pd.to_datetime(found[column], utc=True)
    found = found.drop_duplicates(FORECAST_KEY, keep="last")
    kept = found["origin"] >= found["origin"].max() - pd.Timedelta(weeks=HISTORY_WEEKS)
    return found[kept].sort_values(FORECAST_KEY).reset_index(drop=True)


def forecast_demand(
    features: FeatureSettings, settings: DemandSettings, weeks: int, on_step: Step = _quiet
) -> Forecast:
    """Forecast the next `weeks` weeks with the champion; find surges, candidates, capacity."""
    model, version = load_demand_model(settings)
    on_step(f"reading region-week history through {settings.feature_service}")
    history = demand_history(open_store(features), features.lifecycle_dir, settings.feature_service)
    on_step(f"forecasting {weeks} weeks with demand model version {version}")
    forecast = model.forecaster.forecast(history, weeks)
    surges = find_surges(forecast, history, settings.surges)
    as_of = resolve_as_of(features.lifecycle_dir, None)
    customers = customer_snapshots(features.tables_dir, as_of)
    on_step(f"ranking campaign candidates for {len(surges)} surging region-package weeks")
    tables = {
        "forecast": forecast,
        "surges": surges,
        "campaign_candidates": campaign_candidates(
            surges, customers, model.propensity, settings.surges.candidates_per_surge
        ),
        "callback_capacity": callback_capacity(forecast, settings.staffing),
        "forecast_history": forecast_history(settings.forecast_dir, forecast),
    }
    write_tables(tables, settings.forecast_dir)
    run_id = log_forecast(tables, version, settings)
    return Forecast(tables, settings.forecast_dir, version, run_id)
