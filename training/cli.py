"""`retain train churn|demand`, `retain promote churn|demand` and `retain forecast`."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from features.labels import label_column
from features.settings import FeatureSettings
from features.store import open_store
from features.training_set import churn_training_set, effect_training_set
from retain.base.settings import load_settings
from training.byod import DEFAULT_BUDGET_S, DatasetError, DatasetSpec, cross_validate
from training.churn import TrainedChurn, train_churn
from training.demand.backtest import BacktestResult
from training.demand.dataset import DemandDataError
from training.demand.jobs import forecast_demand, train_demand
from training.demand.settings import DemandSettings
from training.demand.staffing import peaks, plan_staffing
from training.demand.tracking import promote_demand
from training.effects.settings import EffectSettings
from training.effects.tracking import log_effect_run, promote_effects
from training.effects.training import describe, randomized, train_effects
from training.experiments import connect
from training.lifetime_check import lifetime_check
from training.oracle import oracle_roc_auc
from training.settings import TrainingSettings
from training.tracking import log_training_run, promote
from training.tuning import TuningError, check_budget

train_app = typer.Typer(help="Train models.", no_args_is_help=True)
promote_app = typer.Typer(
    help="Promote a challenger to champion when it is better.", no_args_is_help=True
)
console = Console(stderr=True)
HEADLINE = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_10pct", "capture_top_10pct")


def build_training_set(features: FeatureSettings, training: TrainingSettings) -> pd.DataFrame:
    """The churn training set through Feast (point in time), saved beside the other outputs."""
    with console.status(f"joining {training.feature_service} point in time"):
        frame = churn_training_set(
            open_store(features),
            features.lifecycle_dir,
            features.label_horizon_days,
            training.feature_service,
            features.negative_sampling,
        )
    features.training_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(features.training_dir / f"{training.feature_service}.parquet", index=False)
    return frame


def read_training_set(path: Path) -> pd.DataFrame:
    """`--training-set`: a parquet file, or a clear error naming it."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # missing, a folder, not parquet (ArrowInvalid)
        reason = " ".join(str(error).split())
        typer.echo(f"error: --training-set {path}: not readable as parquet ({reason})", err=True)
        raise typer.Exit(2) from None


def _metrics_table(title: str, columns: dict[str, dict[str, float]]) -> Table:
    table = Table("metric", *columns, title=title)
    for metric in HEADLINE:
        table.add_row(metric, *(f"{values[metric]:.4f}" for values in columns.values()))
    return table


def _cross_validation(spec_path: Path, settings: TrainingSettings, budget_s: float) -> None:
    try:
        check_budget(budget_s, "--budget")
        spec = DatasetSpec.load(spec_path)
        started = time.perf_counter()
        result = cross_validate(spec, settings.economics, budget_s)
    except ValidationError as error:  # one line per field, naming the spec
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "the spec"
            typer.echo(f"error: {spec_path}: {where}: {problem['msg']}", err=True)
        raise typer.Exit(2) from error
    except (DatasetError, TuningError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    for note in result.notes:
        typer.echo(f"note: {spec.name}: {note}", err=True)
    folds = result.metrics
    table = Table(
        "metric",
        *(f"{m} (mean ± std)" for m in folds),
        title=f"{spec.name}: {spec.cv.folds}-fold nested CV",
    )
    for metric in HEADLINE:
        table.add_row(
            metric,
            *(f"{f[metric].mean():.4f} ± {f[metric].std(ddof=0):.4f}" for f in folds.values()),
        )
    Console(width=140).print(table)
    connect(settings.model_copy(update={"experiment": f"churn-byod-{spec.name}"}))
    with (
        mlflow.start_run(run_name=f"{spec.name} {spec.cv.folds}-fold nested CV"),
        tempfile.TemporaryDirectory() as out,
    ):
        chosen = result.choices.to_dict(orient="records")
        mlflow.log_params(
            {
                "dataset": spec.name,
                "folds": spec.cv.folds,
                "cv_seed": spec.cv.seed,
                "search": "optuna TPE, inner CV" if spec.lightgbm is None else "pinned by the spec",
                "budget_s": budget_s,
                **{f"fold{i}_{k}": v for i, row in enumerate(chosen) for k, v in row.items()},
            }
        )
        for model, frame in folds.items():
            mlflow.log_metrics({f"{model}_{m}_mean": frame[m].mean() for m in frame.columns})
            mlflow.log_metrics({f"{model}_{m}_std": frame[m].std(ddof=0) for m in frame.columns})
            frame.to_csv(Path(out) / f"{model}_folds.csv", index_label="fold")
        result.choices.to_csv(Path(out) / "chosen_params.csv")
        mlflow.log_artifacts(out, artifact_path="cross_validation")
    auc = {model: frame["roc_auc"] for model, frame in folds.items()}
    typer.echo(
        f"{spec.name}: ROC-AUC "
        + ", ".join(f"{m} {a.mean():.4f} ± {a.std(ddof=0):.4f}" for m, a in auc.items())
        + f" over {spec.cv.folds} folds (search budget {budget_s:g}s) "
        f"in {time.perf_counter() - started:.1f}s"
    )


@train_app.command("churn")
def train_churn_command(
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="A dataset spec (configs/datasets/*.yaml): cross-validate on that CSV instead."
        ),
    ] = None,
    budget: Annotated[
        float,
        typer.Option(
            help="Seconds of LightGBM parameter search: with --dataset shared by the folds, "
            "with --tune on the validation months."
        ),
    ] = DEFAULT_BUDGET_S,
    tune: Annotated[
        bool,
        typer.Option(
            help="Search the lifecycle model's LightGBM parameters (validation months as "
            "the inner split) instead of using configs/training.yaml's."
        ),
    ] = False,
    training_set_path: Annotated[
        Path | None,
        typer.Option(
            "--training-set",
            help="Reuse a saved training set instead of building it through Feast.",
        ),
    ] = None,
) -> None:
    """Train, calibrate and evaluate the churn model; log to MLflow; register it as challenger."""
    settings = load_settings(TrainingSettings)
    if dataset is not None:
        _cross_validation(dataset, settings, budget)
        return
    if tune:
        try:
            check_budget(budget, "--budget")
        except TuningError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
    features = load_settings(FeatureSettings)
    started = time.perf_counter()
    frame = (
        read_training_set(training_set_path)
        if training_set_path
        else build_training_set(features, settings)
    )
    label = label_column(features.label_horizon_days)
    try:
        with console.status(f"training on {len(frame):,} rows"):
            result = train_churn(frame, label, settings, budget if tune else None)
    except ValueError as error:  # too short a history, one class in a part: said, not traced
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if result.split.shortened:
        typer.echo(f"warning: {result.split.shortened}", err=True)
    with console.status("logging to MLflow"):
        logged = log_training_run(result, frame, settings)
    Console(width=120).print(
        _metrics_table(
            f"test months {', '.join(result.split.months('test'))}",
            {"LightGBM": result.test_metrics, "logistic baseline": result.baseline_test_metrics},
        )
    )
    m = result.test_metrics
    typer.echo(
        f"trained churn model version {logged.version} (alias challenger, run {logged.run_id}) in "
        f"{time.perf_counter() - started:.1f}s: test ROC-AUC {m['roc_auc']:.4f} "
        f"(baseline {result.baseline_test_metrics['roc_auc']:.4f}), PR-AUC {m['pr_auc']:.4f}, "
        f"Brier {m['brier']:.5f}, top-decile lift {m['lift_top_10pct']:.2f}"
    )
    candidates = ", ".join(
        f"{row.method} {row.log_loss:.5f}" for row in result.calibration.itertuples()
    )
    typer.echo(
        f"calibration: {result.model.calibrator.method} (validation log loss out of fold: "
        f"{candidates}); test ECE {m['ece']:.4f}, largest probability {m['max_probability']:.1%}, "
        f"largest share of customers on one probability {m['largest_tie_share']:.2%}"
    )
    if result.tuned is not None:
        chosen = ", ".join(f"{k} {v:g}" for k, v in result.tuned.searched().items())
        typer.echo(
            f"tuned in {budget:g}s ({result.tuned.trials} trials): validation ROC-AUC "
            f"{result.tuned.score:.4f} against {result.tuned.first_score:.4f} for the "
            f"configured parameters; chosen {chosen}"
        )
    _print_truth_checks(result, features)


def _print_truth_checks(result: TrainedChurn, features: FeatureSettings) -> None:
    """On simulated data, what the truth says of the held-out months: the true hazard's
    ROC-AUC on the same rows (the ceiling) and expected against realised lifetimes."""
    oracle = oracle_roc_auc(result.split.test, features.lifecycle_dir)
    if oracle is not None:
        typer.echo(
            f"held-out ROC-AUC {result.test_metrics['roc_auc']:.4f}; the simulator's true "
            f"hazard ranks the same rows at {oracle:.4f}"
        )
    if not (features.lifecycle_dir / "churn_events.parquet").exists():
        return
    sample = result.split.test.sample(
        min(len(result.split.test), 20_000), random_state=0
    )  # 24 booster rows per customer: a sample says as much
    check = lifetime_check(result.model, sample, features.lifecycle_dir)
    truth = (
        f", Spearman {check['spearman_vs_truth']:.3f} against the truth's lifetimes"
        if "spearman_vs_truth" in check
        else ""
    )
    typer.echo(
        f"expected lifetime within the observed months {check['expected_months']:.3f} against "
        f"{check['realised_months']:.3f} realised ({len(sample):,} held-out rows), largest "
        f"decile gap {check['max_decile_gap_months']:.3f} months{truth}"
    )


@promote_app.command("churn")
def promote_churn_command() -> None:
    """Compare challenger and champion on the challenger's held-out months; promote if better."""
    settings = load_settings(TrainingSettings)
    try:
        decision = promote(settings)
    except LookupError as error:  # no challenger, or its held-out rows are not here
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    columns = {f"challenger v{decision.challenger}": decision.challenger_metrics}
    if decision.champion_metrics is not None and decision.champion != decision.challenger:
        columns[f"champion v{decision.champion}"] = decision.champion_metrics
    Console(width=120).print(_metrics_table("same held-out months", columns))
    verdict = "promoted to champion" if decision.promoted else "not promoted; champion stays"
    typer.echo(f"churn model version {decision.challenger}: {verdict} ({decision.reason})")


@train_app.command("effects")
def train_effects_command() -> None:
    """Learn what each retention action does to each customer's churn, from randomized
    campaign history; evaluate on the latest months; register it as challenger."""
    settings = load_settings(EffectSettings)
    features = load_settings(FeatureSettings)
    started = time.perf_counter()
    label = label_column(settings.horizon_days)
    with console.status(f"joining {settings.feature_service} to the campaign assignments"):
        engine_rows = (
            pd.read_parquet(settings.outcomes_file) if settings.outcomes_file.exists() else None
        )
        if engine_rows is not None and label not in engine_rows:
            typer.echo(f"({settings.outcomes_file} holds no {label}: not used)", err=True)
            engine_rows = None
        try:
            frame = effect_training_set(
                open_store(features),
                features.lifecycle_dir,
                settings.horizon_days,
                settings.feature_service,
                engine_rows,
                settings.baseline_rows,
                settings.seed,
            )
        except ValueError as error:
            typer.echo(f"no treatment-effect model trained: {error}", err=True)
            raise typer.Exit(1) from error
    settings.training_set_file.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(settings.training_set_file, index=False)
    assignments = int(randomized(frame).sum())
    with console.status(f"training on {assignments:,} assignments"):
        try:
            trained = train_effects(frame, label, settings)
        except ValueError as error:
            typer.echo(f"no treatment-effect model trained: {error}", err=True)
            raise typer.Exit(1) from error
    with console.status("logging to MLflow"):
        logged = log_effect_run(trained, frame, label, settings)
    typer.echo(
        f"trained treatment-effect model version {logged.version} (alias challenger, run "
        f"{logged.run_id}) in {time.perf_counter() - started:.1f}s on {assignments:,} "
        f"assignments and {len(frame) - assignments:,} untreated customer-months; "
        f"{describe(trained.metrics)}"
    )


@promote_app.command("effects")
def promote_effects_command() -> None:
    """Promote the effect challenger if its policy is worth more on its held-out campaigns."""
    settings = load_settings(EffectSettings)
    try:
        decision = promote_effects(settings, label_column(settings.horizon_days))
    except LookupError as error:  # no challenger, or its held-out rows are not here
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    verdict = "promoted to champion" if decision.promoted else "not promoted; champion stays"
    value = decision.challenger_metrics["policy_value_dr"]
    typer.echo(
        f"treatment-effect model version {decision.challenger}: {verdict} ({decision.reason}; "
        f"challenger's DR policy value {value:.2f} per customer)"
    )


def _backtest_table(result: BacktestResult) -> Table:
    first, last = result.origins[0], result.origins[-1]
    table = Table(
        "series",
        "method",
        "WAPE",
        "MASE",
        "P10-P90 coverage",
        title=f"rolling-origin backtest: {len(result.origins)} origins "
        f"{first:%Y-%m-%d}..{last:%Y-%m-%d}",
    )
    for row in result.metrics.itertuples(index=False):
        coverage = "" if pd.isna(row.coverage_p10_p90) else f"{row.coverage_p10_p90:.1%}"
        table.add_row(row.scope, row.method, f"{row.wape:.4f}", f"{row.mase:.3f}", coverage)
    return table


def demand_verdict(result: BacktestResult, settings: DemandSettings) -> str:
    """The acceptance line: P50 WAPE vs seasonal naive, and interval coverage."""
    lines = []
    for scope in ("package", "service_load"):
        model = result.figure(scope, "model", "wape")
        naive = result.figure(scope, "seasonal_naive", "wape")
        average = result.figure(scope, "moving_average", "wape")
        coverage = result.figure(scope, "model", "coverage_p10_p90")
        lines.append(
            f"{scope}: P50 WAPE {model:.4f}, {1 - model / naive:.1%} below seasonal naive "
            f"({naive:.4f}) and {1 - model / average:.1%} below the moving average "
            f"({average:.4f}); P10-P90 coverage {coverage:.1%}"
        )
    low, high = settings.promotion.coverage_band
    lines.append(
        "(targets: package WAPE >= 20% below seasonal naive, service load >= 10% below the "
        f"moving average, coverage 75%-85%; promotion needs coverage in {low:.0%}-{high:.0%})"
    )
    return "\n".join(lines)


@train_app.command("demand")
def train_demand_command() -> None:
    """Backtest and train the demand forecasters; log to MLflow; register as challenger."""
    settings = load_settings(DemandSettings)
    features = load_settings(FeatureSettings)
    started = time.perf_counter()
    try:
        with console.status("training demand") as status:
            trained = train_demand(features, settings, lambda step: status.update(step))
    except DemandDataError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    Console(width=120).print(_backtest_table(trained.backtest))
    for note in trained.backtest.notes:
        typer.echo(f"warning: {note}", err=True)
    if len(trained.backtest.origins) < settings.backtest.origins:
        typer.echo(
            f"warning: the history allows {len(trained.backtest.origins)} of the "
            f"{settings.backtest.origins} configured backtest origins",
            err=True,
        )
    typer.echo(demand_verdict(trained.backtest, settings))
    auc = ", ".join(f"{k} {v:.3f}" for k, v in trained.model.propensity.holdout_auc.items())
    typer.echo(f"package propensity ROC-AUC on the latest labelled month: {auc}")
    typer.echo(
        f"trained demand model version {trained.logged.version} (alias challenger, run "
        f"{trained.logged.run_id}) in {time.perf_counter() - started:.1f}s"
    )


@promote_app.command("demand")
def promote_demand_command() -> None:
    """Backtest the champion's recipe on the challenger's history; promote the better."""
    settings = load_settings(DemandSettings)
    try:
        with console.status("comparing challenger and champion"):
            decision = promote_demand(settings)
    except LookupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    columns = {f"challenger v{decision.challenger}": decision.challenger_metrics}
    if decision.champion_metrics is not None and decision.champion != decision.challenger:
        columns[f"champion v{decision.champion}"] = decision.champion_metrics
    table = Table("metric", *columns, title="same history, same backtest origins")
    for metric in decision.challenger_metrics:
        table.add_row(metric, *(f"{values[metric]:.4f}" for values in columns.values()))
    Console(width=120).print(table)
    verdict = "promoted to champion" if decision.promoted else "not promoted"
    typer.echo(f"demand model version {decision.challenger}: {verdict} ({decision.reason})")


def forecast_command(
    weeks: Annotated[int, typer.Option(min=1, max=26, help="Weeks ahead to forecast.")] = 8,
) -> None:
    """Forecast demand with the champion; write forecast, surges, candidates and capacity."""
    settings = load_settings(DemandSettings)
    features = load_settings(FeatureSettings)
    try:
        with console.status("forecasting") as status:
            result = forecast_demand(features, settings, weeks, lambda step: status.update(step))
    except (LookupError, DemandDataError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    tables = result.tables
    forecast = tables["forecast"]
    typer.echo(
        f"forecast {forecast['week_start'].min():%Y-%m-%d}..{forecast['week_end'].max():%Y-%m-%d} "
        f"({weeks} weeks, {forecast['region'].nunique()} regions x "
        f"{forecast['series'].nunique()} series) with demand model v{result.model_version}: "
        f"{len(tables['surges'])} surging region-package weeks, "
        f"{len(tables['campaign_candidates'])} campaign candidates, callback capacity for "
        f"{tables['callback_capacity']['date'].nunique()} days; written to "
        f"{result.folder.absolute()} (MLflow run {result.run_id})"
    )


def staffing_command() -> None:
    """Plan hotline and online agents per region, day and hour from the service-load forecast."""
    settings = load_settings(DemandSettings)
    features = load_settings(FeatureSettings)
    agents = settings.staffing.agents
    try:
        with console.status("planning agents"):
            plan = plan_staffing(
                settings.forecast_dir, features.lifecycle_dir, settings.staffing, settings.calendar
            )
    except DemandDataError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    daily = plan.daily
    table = Table(
        "region",
        "peak week",
        "contacts",
        "staff shifts",
        "peak day",
        "contacts",
        "staff shifts",
        "agents at peak hours",
        title=f"agents for {agents.service_level:.0%} answered within "
        f"{agents.answer_seconds:g} s on the {settings.staffing.plan_for.upper()} forecast",
    )
    for row in peaks(daily).itertuples(index=False):
        table.add_row(
            row.region,
            f"{row.peak_week:%Y-%m-%d}",
            f"{row.week_contacts:,.0f}",
            f"{row.week_staff:,}",
            f"{row.peak_day:%a %Y-%m-%d}",
            f"{row.day_contacts:,.0f}",
            f"{row.day_staff:,}",
            f"{row.day_peak_agents:,}",
        )
    Console(width=120).print(table)
    holidays = daily.loc[daily["holiday"], "date"].nunique()
    typer.echo(
        f"staffing plan {daily['date'].min():%Y-%m-%d}..{daily['date'].max():%Y-%m-%d} "
        f"({daily['region'].nunique()} regions, lines {', '.join(sorted(daily['line'].unique()))}; "
        f"{holidays} holiday-mode days), hourly for the first {agents.hourly_days} days; "
        f"written to {(settings.forecast_dir / 'staffing.parquet').absolute()} and .csv"
    )
