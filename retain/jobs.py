"""`retain run`, the main job: every stage in turn on the configured defaults. The `retain`
command imports this module (and with it every stage) only when the job runs."""

from __future__ import annotations

from datetime import UTC, date

import typer

from features import cli as features_cli
from features.batch_rows import SnapshotError
from features.lifecycle import cli as data_cli
from features.lifecycle.settings import DataSettings
from features.settings import FeatureSettings
from retain.base.settings import load_settings
from serving import cli as serving_cli
from serving import service_cli
from serving.monitoring import ReferenceMissing
from serving.settings import ServingSettings
from training import cli as training_cli
from training.demand.settings import DemandSettings


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
