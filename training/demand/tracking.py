"""MLflow for the demand model: log a training run, register it, promote it, log forecasts.

The same challenger/champion flow as churn. A forecaster is judged by how well its
recipe forecasts unseen weeks, so promotion backtests the champion's recipe (its
parameters, calendar and horizon) on the challenger's history, the same origins and the
same weeks, and compares package P50 WAPE and P10-P90 coverage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from training import plots
from training.demand.backtest import BacktestResult, backtest
from training.demand.dataset import SERIES, WEEK_END
from training.demand.model import DemandModel, DemandPyfunc, DemandRecipe, pyfunc_input
from training.demand.settings import DemandSettings
from training.experiments import connect
from training.registry import RegistryError, aliased, load_python_model, model_aliases
from training.tracking import (
    CHALLENGER,
    CHAMPION,
    Decision,
    LoggedRun,
    data_digest,
    git_commit,
    record_decision,
    register_challenger,
)

HISTORY = "evaluation/history.parquet"
HEADLINE_SCOPE = "package"


def log_demand_run(
    result: BacktestResult, model: DemandModel, history: pd.DataFrame, settings: DemandSettings
) -> LoggedRun:
    """Log the backtest, plots and model; register the model as challenger."""
    client = connect(settings)
    recipe = model.forecaster.recipe
    with mlflow.start_run(run_name=f"demand {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M}"):
        mlflow.log_params(
            {
                **{f"lgbm_{k}": v for k, v in recipe.params.model_dump().items()},
                "horizon_weeks": recipe.horizon_weeks,
                "strategy": "direct, pooled over series and horizons",
                "quantiles": "0.1,0.5,0.9",
                "festival_driven": ",".join(recipe.calendar.festival_driven),
                "term_starts": ",".join(recipe.calendar.term_starts),
                "backtest_origin_weeks": ",".join(f"{o:%Y-%m-%d}" for o in result.origins),
                **{f"backtest_{k}": v for k, v in settings.backtest.model_dump().items()},
                "feature_service": settings.feature_service,
                "series": ",".join(SERIES),
                "regions": history["region"].nunique(),
                **{f"intervals_{k}": v for k, v in recipe.intervals.model_dump().items()},
                **{f"reference_{k}": v for k, v in model.forecaster.references.items()},
                "count_model_series": ",".join(sorted(model.forecaster.sparse)) or "none",
                "weeks": history[WEEK_END].nunique(),
            }
        )
        mlflow.set_tags(
            {
                "feature_service": settings.feature_service,
                "training_data_digest": data_digest(history),
                "git_commit": git_commit(),
                "training_time_range": (
                    f"{history[WEEK_END].min():%Y-%m-%d}..{history[WEEK_END].max():%Y-%m-%d}"
                ),
            }
        )
        mlflow.log_metrics(result.flat_metrics())
        mlflow.log_metrics(
            {f"propensity_auc_{k}": v for k, v in model.propensity.holdout_auc.items()}
        )
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder)
            for series in SERIES:
                plots.forecast_vs_actual(result.forecasts, series, out / f"backtest_{series}.png")
            result.metrics.to_csv(out / "backtest_metrics.csv", index=False)
            # each series' model, reference, P50 shrinkage and interval calibration
            model.forecaster.described().to_csv(out / "series_models.csv", index=False)
            result.forecasts.to_parquet(out / "backtest_forecasts.parquet", index=False)
            history.to_parquet(out / "history.parquet", index=False)
            mlflow.log_artifacts(str(out), artifact_path="evaluation")
        example = pyfunc_input(history.head(5))
        output = model.forecaster.forecast(history).head(5)
        return register_challenger(client, settings, DemandPyfunc(model), example, output)


def load_demand_model(settings: DemandSettings, alias: str = CHAMPION) -> tuple[DemandModel, str]:
    """The registered demand model behind `alias`, and its version."""
    name = settings.registered_model
    try:
        version = aliased(settings, name, alias).version
    except RegistryError as error:
        raise LookupError(
            f"model {name!r} has no {alias!r}: run `retain train demand` and "
            "`retain promote demand` first"
        ) from error
    return load_python_model(settings, name, version).model, version


# what promotion compares: name -> (scope, method, metric) of the backtest
HEADLINE = {
    "package_wape": (HEADLINE_SCOPE, "model", "wape"),
    "package_coverage": (HEADLINE_SCOPE, "model", "coverage_p10_p90"),
    "service_load_wape": ("service_load", "model", "wape"),
    "package_seasonal_naive_wape": (HEADLINE_SCOPE, "seasonal_naive", "wape"),
}


def _headline(result: BacktestResult) -> dict[str, float]:
    return {name: result.figure(*where) for name, where in HEADLINE.items()}


def _logged_headline(metrics: dict[str, float]) -> dict[str, float]:
    """The same figures as a training run logged them (`BacktestResult.flat_metrics`)."""
    return {name: metrics["_".join(where)] for name, where in HEADLINE.items()}


def promote_demand(settings: DemandSettings) -> Decision:
    """Make the challenger champion if its recipe forecasts the same weeks better."""
    client = connect(settings)
    name = settings.registered_model
    aliases = model_aliases(client, name, "retain train demand")
    if CHALLENGER not in aliases:
        raise LookupError(f"model {name!r} has no {CHALLENGER!r}: run `retain train demand` first")
    challenger = client.get_model_version(name, str(aliases[CHALLENGER]))
    run = client.get_run(str(challenger.run_id))
    new = _logged_headline(run.data.metrics)
    low, high = settings.promotion.coverage_band
    covered = low <= new["package_coverage"] <= high
    new_version = str(challenger.version)
    old_version = str(aliases[CHAMPION]) if CHAMPION in aliases else None
    if old_version is None:
        reason = "no champion yet: the first model becomes champion" + (
            "" if covered else f" (warning: P10-P90 coverage is outside {low:.0%}-{high:.0%})"
        )
        decision = Decision(True, new_version, None, new, None, reason)
    elif old_version == new_version:
        reason = "the challenger already is the champion"
        decision = Decision(False, new_version, old_version, new, new, reason)
    else:
        history = pd.read_parquet(
            mlflow.artifacts.download_artifacts(run_id=challenger.run_id, artifact_path=HISTORY)
        )
        champion, _ = load_demand_model(settings, CHAMPION)
        # a champion pickled by an earlier version lacks the fields added since: validated
        # again, it gets today's defaults for them
        recipe = DemandRecipe.model_validate(dict(champion.forecaster.recipe.__dict__))
        horizon = int(run.data.params["horizon_weeks"])
        if recipe.horizon_weeks != horizon:
            reason = (
                f"not comparable: the champion forecasts {recipe.horizon_weeks} weeks ahead, "
                f"the challenger {horizon}; promote by hand if the new horizon is wanted"
            )
            decision = Decision(False, new_version, old_version, new, None, reason)
            return record_decision(client, name, decision)
        origins = [
            pd.Timestamp(day, tz="UTC")
            for day in run.data.params["backtest_origin_weeks"].split(",")
        ]  # the challenger's own origins, whatever the settings say today
        old = _headline(backtest(history, recipe, settings.backtest, origins=origins))
        gain = old["package_wape"] - new["package_wape"]
        wins = covered and gain >= settings.promotion.min_wape_gain
        reason = (
            f"package WAPE {-gain:+.4f} (needs <= {-settings.promotion.min_wape_gain:+.4f}), "
            f"coverage {new['package_coverage']:.1%} (needs {low:.0%}-{high:.0%})"
        )
        decision = Decision(wins, new_version, old_version, new, old, reason)
    return record_decision(client, name, decision)


def log_forecast(tables: dict[str, pd.DataFrame], version: str, settings: DemandSettings) -> str:
    """Log a forecast run into the demand experiment: its tables as artifacts, except
    those naming customers (the campaign candidates), which only with
    `log_customer_rows`."""
    connect(settings)
    forecast = tables["forecast"]
    with mlflow.start_run(run_name=f"forecast from {forecast['origin'].max():%Y-%m-%d}") as run:
        mlflow.set_tags(
            {"kind": "forecast", "model_version": version, "model": settings.registered_model}
        )
        mlflow.log_params(
            {"weeks": int(forecast["horizon"].max()), "origin": f"{forecast['origin'].max()}"}
        )
        mlflow.log_metrics({f"{name}_rows": len(table) for name, table in tables.items()})
        with tempfile.TemporaryDirectory() as folder:
            for name, table in tables.items():
                if "customer_id" in table.columns and not settings.log_customer_rows:
                    continue
                if name == "forecast_history":  # the earlier runs' forecasts: logged by them
                    continue
                table.to_parquet(Path(folder) / f"{name}.parquet", index=False)
            mlflow.log_artifacts(folder, artifact_path="forecast")
    return run.info.run_id
