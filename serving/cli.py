"""`retain serve`: the scoring API under uvicorn."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import pandas as pd
import typer
import uvicorn

from features.batch_rows import SnapshotError
from features.lifecycle.cli import parse_instant
from features.settings import FeatureSettings
from features.store import open_store
from retain.base.settings import load_settings
from serving.action_log.database import (
    ActionLogSchemaError,
    check_schema,
    log_engine,
    log_exists,
    open_engine,
)
from serving.action_log.log import ActionLog
from serving.action_log.migrations import current_revision, head_revision, upgrade
from serving.api.logs import log_config
from serving.auth import KeyConfigError, load_keys, write_keys_file
from serving.daily import run_daily
from serving.decisions import decision_service
from serving.housekeeping import RetentionError, housekeeping
from serving.kpi_job import print_kpis, run_kpis
from serving.kpi_settings import KpiSettings
from serving.kpis import KpiDataError
from serving.monitoring import MonitoringSettings, ReferenceMissing, print_monitored, run_monitor
from serving.scoring import ModelLoadError, Scorer, load_champion
from serving.settings import DailySettings, ServingSettings
from training.settings import TrainingSettings


def serve_command(
    host: Annotated[str | None, typer.Option(help="Interface (default: loopback).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    local_keys: Annotated[
        Path | None,
        typer.Option(
            help="A keys file for this machine: created with a new key per role if missing "
            "(mode 0600), and used as serving.api_keys_file (what `make run` does)."
        ),
    ] = None,
) -> None:
    """Start the scoring API (OpenAPI docs at /docs)."""
    overrides: dict[str, object] = {"host": host, "port": port, "workers": workers}
    if local_keys is not None:
        if not local_keys.exists():
            write_keys_file(local_keys)
            typer.echo(f"new API keys, one per role, in {local_keys} (readable by you only)")
        overrides["api_keys_file"] = local_keys
        os.environ["RETAIN_SERVING_API_KEYS_FILE"] = str(local_keys)  # for the workers
    settings = load_settings(ServingSettings, overrides)
    try:
        load_keys(settings.api_keys_file, settings.dev_mode)  # refuse before binding a port
    except (KeyConfigError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"serving on {base}")
    typer.echo(f"  API docs:   {base}/docs")
    typer.echo(f"  risk list:  {base}/risk-list (marketing key in X-API-Key), e.g.")
    typer.echo(f"              curl -H 'X-API-Key: <marketing key>' {base}/risk-list > report.html")
    daily = load_settings(DailySettings)
    latest = sorted(daily.output_dir.glob("????-??-??/report.html"))
    if latest:
        typer.echo(f"              or open {latest[-1].absolute()} (no server needed)")
    tracking = load_settings(TrainingSettings)
    typer.echo(f"  MLflow UI:  mlflow ui --backend-store-uri {tracking.resolved_tracking_uri()}")
    if settings.api_keys_file:
        typer.echo(f"  API keys:   {settings.api_keys_file}")
    # no access log: request paths can carry customer ids, which are never logged in clear
    uvicorn.run(
        "serving.api.main:build_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # uvicorn's default (5 s) kills workers still importing MLflow and Feast on a
        # busy 2-core machine, over and over
        timeout_worker_healthcheck=settings.worker_start_timeout_s,
        access_log=False,
        log_config=log_config(),  # JSON lines with timestamps and request ids
        # slow or idle clients: a kept-alive connection idle this long is closed, and past
        # `max_connections` per worker uvicorn answers 503 at once instead of queueing
        # (header timeouts against slowloris belong to the proxy in front: see README)
        timeout_keep_alive=settings.limits.keep_alive_s,
        limit_concurrency=settings.limits.max_connections,
    )


def campaign_command(
    package: Annotated[
        str | None, typer.Option(help="Only this package's campaign (default: every one due).")
    ] = None,
) -> None:
    """Notify the candidates of the seasonal-package campaigns due now, under the contact
    policy (`retain forecast` ranks the candidates). Nobody is notified twice per campaign;
    the API's delivery worker sends what is queued."""
    settings = load_settings(ServingSettings)
    features = load_settings(FeatureSettings)
    tracking = load_settings(TrainingSettings)
    try:
        scorer = Scorer(load_champion(settings, tracking), open_store(features), settings)
    except ModelLoadError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    log = ActionLog(open_engine(settings.action_db_url))
    decisions = decision_service(scorer, settings, log, features.tables_dir)
    counts = decisions.campaign(datetime.now(UTC), package)
    typer.echo(", ".join(f"{name} {count}" for name, count in counts.items()))


def today(serving: ServingSettings) -> date:
    """Today in the customers' time zone."""
    return datetime.now(ZoneInfo(serving.contact.timezone)).date()


def daily_command(
    day: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="The list's day, YYYY-MM-DD (default: today in the customers' time zone).",
        ),
    ] = None,
    act: Annotated[
        bool,
        typer.Option(
            "--act",
            help="Also record the day's decisions in the action log, to be delivered (as "
            "/v1/decide would); without it the list only suggests.",
        ),
    ] = False,
) -> None:
    """Score every active customer, explain and match the at-risk ones with an action, and
    publish risk_lists/<date>/ (parquet, csv, report.html); logged to MLflow."""
    serving = load_settings(ServingSettings)
    try:  # "today" is the customers' day (the contact policy's time zone), not UTC's
        when = date.fromisoformat(day) if day else today(serving)
    except ValueError as error:
        typer.echo(f"error: --date {day!r}: expected YYYY-MM-DD", err=True)
        raise typer.Exit(2) from error
    try:
        publish_daily_list(when, serving, act)
    except (ModelLoadError, SnapshotError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def publish_daily_list(when: date, serving: ServingSettings, act: bool = False) -> None:
    """`retain daily` for `when`, with the configured settings; prints one summary line.
    Raises SnapshotError when the features are too old for that day."""
    daily = load_settings(DailySettings)
    features = load_settings(FeatureSettings)
    tracking = load_settings(TrainingSettings)
    url = serving.action_db_url
    # the contact history, when there is an action log (created only to record decisions)
    action_log = ActionLog(open_engine(url)) if act or log_exists(url) else None
    risk, folder, run_id = run_daily(when, serving, daily, features, tracking, action_log, act)
    summary = risk.summary
    typer.echo(
        f"{summary['date']}: {summary['scored']:,} customers scored, "
        f"{summary['at_risk']['high']:,} high and {summary['at_risk']['medium']:,} medium risk; "
        f"{folder / 'report.html'} (MLflow run {run_id})"
    )


def monitor_command(
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="The day to monitor, YYYY-MM-DD (default: today in the customers' time zone).",
        ),
    ] = None,
) -> None:
    """Compare today's features and scores with the champion's training reference (PSI,
    KS, score drift, expected and realised performance), publish the result beside the
    risk lists (monitoring/<day>.json), log it to MLflow and raise alerts."""
    serving = load_settings(ServingSettings)
    try:
        when = date.fromisoformat(day) if day else today(serving)
    except ValueError as error:
        typer.echo(f"error: --day {day!r}: expected YYYY-MM-DD", err=True)
        raise typer.Exit(2) from error
    try:
        publish_monitoring(when, serving)
    except ReferenceMissing as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    except (ModelLoadError, SnapshotError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def publish_monitoring(when: date, serving: ServingSettings) -> None:
    """`retain monitor` for `when`, with the configured settings; prints the drift table."""
    daily = load_settings(DailySettings)
    url = serving.action_db_url
    done = run_monitor(
        when,
        load_settings(MonitoringSettings),
        serving,
        daily,
        load_settings(FeatureSettings),
        load_settings(TrainingSettings),
        ActionLog(open_engine(url)) if log_exists(url) else None,
    )
    print_monitored(done)


def housekeeping_command(
    now: Annotated[
        str | None,
        typer.Option(help="Apply the retention periods as of this instant (default: now)."),
    ] = None,
) -> None:
    """Delete risk lists and delivered messages older than their retention period and
    pseudonymize the action log's older decisions (configs/serving.yaml `retention`); run
    it daily. Running it again changes nothing."""
    serving = load_settings(ServingSettings)
    daily = load_settings(DailySettings)
    at = parse_instant(now, "--now").to_pydatetime() if now else datetime.now(UTC)
    url = serving.action_db_url
    try:
        log = ActionLog(open_engine(url)) if log_exists(url) else None
        done = housekeeping(serving, daily, log, at)
    except RetentionError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    retention = serving.retention
    days = ", ".join(done.risk_list_days) or "none"
    typer.echo(
        f"risk lists older than {retention.risk_lists_days} days: {len(done.risk_list_days)} "
        f"deleted ({days})"
    )
    typer.echo(
        f"delivered messages older than {retention.delivered_messages_days} days: "
        f"{done.messages:,} removed from {serving.delivery.file_path}"
    )
    since = (at - timedelta(days=retention.action_log_personal_days)).date().isoformat()
    typer.echo(
        f"action log, decisions before {since}: {done.actions:,} pseudonymized "
        f"({done.outcomes:,} outcome rows, {done.audit:,} audit rows)"
        if log is not None
        else "action log: none yet"
    )


action_log_app = typer.Typer(
    help="The action log's schema: its revision, and migrating it.", no_args_is_help=True
)


@action_log_app.command("upgrade")
def action_log_upgrade_command() -> None:
    """Migrate the configured action log to this version's schema.

    What every command using the log does first, one process at a time; prints the revision
    it was at and the one it is at now."""
    engine = log_engine(load_settings(ServingSettings).action_db_url)
    try:
        done = upgrade(engine)
        check_schema(engine)
    except ActionLogSchemaError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    was = done.before or "new"
    if done.stamped:
        was += " (made before migrations, stamped)"
    shown = engine.url.render_as_string(hide_password=True)
    typer.echo(f"action log {shown}: {was} -> {done.after}")


@action_log_app.command("current")
def action_log_current_command() -> None:
    """Print the configured action log's revision, and this version's."""
    url = load_settings(ServingSettings).action_db_url
    if not log_exists(url):
        typer.echo(f"error: no action log at {url}", err=True)
        raise typer.Exit(1)
    engine = log_engine(url)
    revision = current_revision(engine) or "none (made before migrations)"
    typer.echo(
        f"action log {engine.url.render_as_string(hide_password=True)}: {revision} "
        f"(this version's: {head_revision()})"
    )


def kpis_command(
    weeks: Annotated[
        int | None, typer.Option(min=1, max=104, help="Complete weeks shown (default: config).")
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="KPIs of the weeks complete by this day, YYYY-MM-DD (default: today in the "
            "customers' time zone).",
        ),
    ] = None,
) -> None:
    """Service KPIs by region and week against their targets (configs/kpis.yaml), and the
    alerts: a KPI missing its target two weeks running, contacts above the service-load
    forecast, each with the ticket types and cell sites that grew most. Published to
    risk_lists/kpis/<day>.json."""
    serving = load_settings(ServingSettings)
    try:
        when = date.fromisoformat(day) if day else today(serving)
    except ValueError as error:
        typer.echo(f"error: --day {day!r}: expected YYYY-MM-DD", err=True)
        raise typer.Exit(2) from error
    features = load_settings(FeatureSettings)
    settings = load_settings(KpiSettings)
    notices = outage_notices(serving, when, weeks or settings.weeks)
    try:
        done = run_kpis(
            when, settings, features.lifecycle_dir,
            load_settings(DailySettings).output_dir, weeks, notices,
        )  # fmt: skip
    except KpiDataError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    print_kpis(done)


def outage_notices(serving: ServingSettings, day: date, weeks: int) -> pd.DataFrame | None:
    """The start notices of the outages detected in the weeks up to `day` from the action
    log, for time to notify; None where there is no action log yet (none is made here)."""
    if not log_exists(serving.action_db_url):
        return None
    until = datetime.combine(day + timedelta(days=1), time(), UTC)
    since = until - timedelta(weeks=weeks + 1)
    log = ActionLog(open_engine(serving.action_db_url))
    rows = log.outages.start_notices(since, until)
    return pd.DataFrame(rows, columns=["event_id", "region", "started_at", "first_notice_at"])
