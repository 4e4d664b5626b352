"""`retain outages` and `retain followups`: the service side's daily jobs, thin over the
decision service (`serving.outage_service`, `serving.follow_ups`) and the detector
(`serving.outage_detection`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, get_args

import pandas as pd
import typer

from features.settings import FeatureSettings
from features.store import open_store
from retain.base.settings import load_settings
from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.cli import today
from serving.decisions import DecisionService, decision_service
from serving.follow_ups import closed_tickets
from serving.kpi_job import read_table
from serving.kpis import KpiDataError
from serving.outage_detection import (
    OutageDataError,
    OutageSettings,
    SuspectedOutage,
    detect_outages,
)
from serving.outages import OPEN, Outage, State
from serving.scoring import ModelLoadError, Scorer, load_champion
from serving.settings import ServingSettings
from training.settings import TrainingSettings

outages_app = typer.Typer(help="The outage lifecycle: detect suspected outages, list them.")
DayOption = Annotated[
    str | None,
    typer.Option(
        "--day",
        help="The day, YYYY-MM-DD (default: today in the customers' time zone; a simulated "
        "world's jobs pass its last day).",
    ),
]


def _day(value: str | None, settings: ServingSettings) -> date:
    try:
        return date.fromisoformat(value) if value else today(settings)
    except ValueError as error:
        typer.echo(f"error: --day {value!r}: expected YYYY-MM-DD", err=True)
        raise typer.Exit(2) from error


def _service(settings: ServingSettings, scored: bool) -> DecisionService:
    """The decision service over the action log; with the champion's scorer when customers
    are to be reached."""
    features = load_settings(FeatureSettings)
    scorer = None
    if scored:
        try:
            scorer = Scorer(
                load_champion(settings, load_settings(TrainingSettings)),
                open_store(features),
                settings,
            )
        except ModelLoadError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from error
    log = ActionLog(open_engine(settings.action_db_url))
    return decision_service(scorer, settings, log, features.tables_dir)


def _table(folder: Path, name: str) -> pd.DataFrame:
    try:
        return read_table(folder, name)
    except KpiDataError as error:  # missing, a folder, or not parquet: it names the file
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def _known(outages: list[Outage]) -> pd.DataFrame:
    """Outages the log holds (open or not) as the detector's known events, one row a site."""
    rows = [
        {"cell_site_id": site, "started_at": o.start, "ended_at": o.ended_at or o.expected_end}
        for o in outages
        for site in o.sites
    ]
    return pd.DataFrame(rows, columns=["cell_site_id", "started_at", "ended_at"])


def event_id(found: SuspectedOutage) -> str:
    """One suspected outage per site and day: running the detector again opens nothing new."""
    return f"DET-{found.cell_site_id}-{found.day.isoformat()}"


@outages_app.command("detect")
def detect_command(
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="The day of cell quality to read, YYYY-MM-DD (default: yesterday in the "
            "customers' time zone, the last complete day, or the table's last day if earlier).",
        ),
    ] = None,
) -> None:
    """Read a day's cell quality, open a suspected outage for each site whose drop rate
    departs from its own normal (configs/outages.yaml), for operations to confirm or
    dismiss (`POST /v1/events/outage/{id}/confirm`). Sites with an outage already in the
    log are left out."""
    settings = load_settings(ServingSettings)
    detection = load_settings(OutageSettings).detection
    folder = load_settings(FeatureSettings).lifecycle_dir
    quality = _table(folder, "cell_quality_daily")
    if day:
        when = _day(day, settings)
    else:  # a world that ends earlier (a simulated one, a late export): its last day
        last = pd.to_datetime(quality["day"], utc=True).max()
        yesterday = today(settings) - timedelta(days=1)
        when = min(yesterday, last.date()) if pd.notna(last) else yesterday
    notify = settings.actions.outages.notify_suspected
    service = _service(settings, scored=notify)
    known = _known(service._log().outages.listed(None, 10_000))
    try:
        found = detect_outages(quality, when, detection, known)
    except OutageDataError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    now = min(datetime.now(UTC), datetime.combine(when + timedelta(days=1), time(), UTC))
    opened = 0
    for suspected in found:
        start = datetime.combine(suspected.day, time(), UTC)
        result = service.outages.suspect(
            event_id(suspected),
            [suspected.cell_site_id],
            start,
            suspected.severity,
            now,
            suspected.reason,
        )
        opened += int(not result.duplicate)
        typer.echo(
            f"{event_id(suspected)}: {suspected.severity}, drop rate {suspected.drop_rate:.4f} "
            f"against {suspected.baseline:.4f} (z {suspected.z:.1f}); "
            f"{'opened' if not result.duplicate else 'known'}"
        )
    typer.echo(f"{when}: {len(found)} site(s) suspected, {opened} new suspected outage(s)")


@outages_app.command("list")
def list_command(
    state: Annotated[
        str, typer.Option(help="open (suspected or confirmed), a state, or all.")
    ] = "open",
) -> None:
    """The outages in the log, newest first."""
    known = ["open", "all", *get_args(State)]
    if state not in known:
        typer.echo(f"error: --state {state!r}: expected one of {', '.join(known)}", err=True)
        raise typer.Exit(2)
    states = {"open": sorted(OPEN), "all": None}.get(state, [state])
    settings = load_settings(ServingSettings)
    for outage in _service(settings, scored=False)._log().outages.listed(states, 1000):
        typer.echo(
            f"{outage.event_id}: {outage.state}, {outage.severity} {outage.kind}, "
            f"sites {', '.join(outage.sites)}, detected {outage.detected_at:%Y-%m-%d %H:%M}"
        )


def followups_command(day: DayOption = None) -> None:
    """Open a follow-up for each complaint or fault ticket closed in the configured look-back
    before the end of the day (one per ticket, ever), and escalate the open follow-ups
    past their deadline (the API does this every minute too)."""
    settings = load_settings(ServingSettings)
    when = _day(day, settings)
    folder = load_settings(FeatureSettings).lifecycle_dir
    tickets = _table(folder, "service_tickets")
    rule = settings.actions.follow_ups
    now = min(datetime.now(UTC), datetime.combine(when + timedelta(days=1), time(), UTC))
    try:
        closed = closed_tickets(
            tickets, now - timedelta(days=rule.lookback_days), now, rule.ticket_types
        )
    except ValueError as error:
        typer.echo(f"error: {folder / 'service_tickets.parquet'}: {error}", err=True)
        raise typer.Exit(2) from error
    service = _service(settings, scored=True)
    opened = service.follow_ups.open(closed, now) if closed else []
    made = sum(o.created for o in opened)
    escalated = service.follow_ups.escalate_overdue(now)
    counts = service.follow_ups.last_counts
    typer.echo(
        f"{when}: {len(closed)} ticket(s) closed in {rule.lookback_days} days, "
        f"{made} new follow-up(s), {len(escalated)} escalated now; follow-ups open "
        f"{counts.get('open', 0)}, overdue {counts.get('overdue', 0)}, escalated "
        f"{counts.get('escalated', 0)}"
    )
