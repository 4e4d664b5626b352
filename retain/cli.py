"""The `retain` command: one sub-command group per stage, plus `run` for the main job."""

from __future__ import annotations

import logging
import os
import warnings
from datetime import UTC, date

import typer
from mlflow.utils.logging_utils import disable_logging
from pydantic import ValidationError

from features import cli as features_cli
from features.batch_rows import SnapshotError
from features.engine import EngineUnavailable
from features.lifecycle import cli as data_cli
from features.lifecycle.settings import DataSettings
from features.online_rows import OnlineStoreUnavailable
from features.settings import FeatureSettings
from features.table_checks import FeatureTableError
from retain.base.settings import load_settings
from serving import cli as serving_cli
from serving import loop as loop_cli
from serving import service_cli
from serving.monitoring import ReferenceMissing
from serving.settings import ServingSettings
from training import cli as training_cli
from training.demand.settings import DemandSettings

app = typer.Typer(
    help="Churn prediction and proactive service engine for telecom operators.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(features_cli.app, name="features")
app.add_typer(training_cli.train_app, name="train")
app.add_typer(training_cli.promote_app, name="promote")
app.command("forecast")(training_cli.forecast_command)
app.command("staffing")(training_cli.staffing_command)
app.command("serve")(serving_cli.serve_command)
app.command("campaign")(serving_cli.campaign_command)
app.command("daily")(serving_cli.daily_command)
app.command("monitor")(serving_cli.monitor_command)
app.command("kpis")(serving_cli.kpis_command)
app.add_typer(service_cli.outages_app, name="outages")
app.command("followups")(service_cli.followups_command)
app.add_typer(serving_cli.action_log_app, name="action-log")
app.command("housekeeping")(serving_cli.housekeeping_command)
app.command("deliver")(loop_cli.deliver_command)
app.command("attribute")(loop_cli.attribute_command)
app.command("results")(loop_cli.results_command)
data_cli.app.command("advance")(loop_cli.advance_command)


@app.command()
def run() -> None:
    """The main job end to end on the configured defaults.

    Generate and validate the lifecycle data, build the feature tables, apply the Feast
    repository, materialize the latest values into the online store, train the churn,
    treatment-effect and demand models (registered as challengers) and promote each if it
    beats its champion,
    then forecast the next 8 weeks of demand with the champion and plan the agents from it,
    publish today's risk list (risk_lists/<date>/), monitor the same day
    (risk_lists/monitoring/<date>.json), open suspected outages and complaint follow-ups
    and publish the service KPIs (risk_lists/kpis/<date>.json).
    """
    data = load_settings(DataSettings)
    summary = data_cli.run_generation(data)
    report = data_cli.run_validation(summary.out_dir)
    data_cli.print_report(report)
    if not report.ok:
        raise typer.Exit(1)
    features = load_settings(FeatureSettings, {"lifecycle_dir": summary.out_dir})
    features_cli.run_build(features)
    features_cli.run_apply(features)
    features_cli.run_materialize(features)
    training_cli.train_churn_command(dataset=None, training_set_path=None)
    training_cli.promote_churn_command()
    try:
        training_cli.train_effects_command()
        training_cli.promote_effects_command()
    except typer.Exit:  # too little randomized history: decisions use the constant save rates
        typer.echo("(decisions use the constant save rates until effects can be learnt)")
    training_cli.train_demand_command()
    training_cli.promote_demand_command()
    horizon = load_settings(DemandSettings).horizon_weeks
    training_cli.forecast_command(weeks=min(8, horizon))
    training_cli.staffing_command()  # hotline and online agents from the service-load forecast
    # today's list; the simulated world ends at `as_of`: once its features are too old
    # for today (the activity TTL), the list is the one for the world's last day
    serving = load_settings(ServingSettings)
    # the service KPIs first, so that the day's page shows them (they are as of the data's
    # last day at the latest)
    last = min(serving_cli.today(serving), data.as_of.astimezone(UTC).date())
    serving_cli.kpis_command(weeks=None, day=last.isoformat())
    try:
        day = serving_cli.today(serving)
        serving_cli.publish_daily_list(day, serving)
    except SnapshotError as error:
        day = data.as_of.astimezone(UTC).date()
        typer.echo(f"({error}: the list for the data's last day, {day}, instead)")
        serving_cli.publish_daily_list(day, serving)
    monitor_the_day(day, serving)
    # the service side of the same day: suspected outages, complaint follow-ups
    # the detector reads the last complete day of cell quality
    service_cli.detect_command(day=None)
    service_cli.followups_command(day=day.isoformat())
    typer.echo(
        f"done: lifecycle data in {summary.out_dir.resolve()}, feature tables in "
        f"{features.tables_dir.resolve()}, online store per {features.store_yaml_path}"
    )


def monitor_the_day(day: date, serving: ServingSettings) -> None:
    """`retain monitor` for the run's day (drift and performance); a champion kept from
    before its reference's format cannot be monitored until a model is trained and
    promoted again, which the run says and goes on."""
    try:
        serving_cli.publish_monitoring(day, serving)
    except ReferenceMissing as error:
        typer.echo(f"(monitoring skipped: {error})")


def quiet_libraries() -> None:
    """People read this command's output: one summary line per stage. The libraries'
    warnings, INFO lines and progress bars are silenced here, at the entry point (the
    tests keep them); warnings raised by our own packages still show."""
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=r"(retain|features|training|serving)(\.|$)")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    disable_logging()  # MLflow's own stream: "Successfully registered model ...", INFO lines
    for library in ("mlflow", "alembic", "feast", "urllib3"):
        logging.getLogger(library).setLevel(logging.ERROR)


def main() -> None:
    """Entry point: errors in settings, feature tables or the online store's address become
    one clear line and exit code 2, not a traceback."""
    quiet_libraries()
    try:
        app()
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']} (got {e.get('input')!r})"
            for e in error.errors()
        )
        typer.echo(f"error: invalid {error.title}: {details}", err=True)
        raise SystemExit(2) from None
    except (FeatureTableError, OnlineStoreUnavailable, EngineUnavailable) as error:  # they name it
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
