"""`retain kpis`: the service KPIs of the last complete weeks, published and alerted.

Reads the lifecycle tables (service tickets, customers, churn events) and the demand
forecast, computes the KPIs (`serving.kpis`), publishes the result atomically to
`<daily output_dir>/kpis/D.json` beside the risk lists (aggregates only, no customer),
and raises its alerts as `retain monitor` does: a structured log line each and, when
configured, one webhook POST.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rich.console import Console
from rich.table import Table

from retain.base.publish import publish_file
from serving.alerts import send_alerts
from serving.kpi_settings import KpiSettings
from serving.kpis import (
    KpiDataError,
    alert_text,
    cells,
    service_kpis,
    table_columns,
    time_to_notify,
)

log = logging.getLogger("retain.kpis")

KPIS_DIR = "kpis"
TABLES = ("service_tickets", "customers", "churn_events")


@dataclass(frozen=True)
class KpiRun:
    """A day's KPI result and where it was published."""

    result: dict[str, Any]
    path: Path


def read_table(lifecycle_dir: Path, name: str) -> pd.DataFrame:
    """A lifecycle table, or a KpiDataError naming the file that is missing or unreadable."""
    path = lifecycle_dir / f"{name}.parquet"
    if not path.exists():
        raise KpiDataError(f"no {name} table: {path} is missing (run `retain data generate`)")
    if not path.is_file():
        raise KpiDataError(f"{path}: not a file; the {name} table is one parquet file")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise KpiDataError(f"{path}: not a readable parquet table ({error})") from error


def read_forecast(path: Path) -> pd.DataFrame | None:
    """`retain forecast`'s forecasts, every origin it kept beside `path`
    (`forecast_history.parquet`) where there is that history, or None when there are none
    yet: a week's contacts are judged against the forecast made before it."""
    history = path.with_name("forecast_history.parquet")
    path = history if history.is_file() else path
    if not path.is_file():
        log.info("no forecast at %s: contacts are shown without a target", path)
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise KpiDataError(f"{path}: not a readable parquet table ({error})") from error


def data_until(lifecycle_dir: Path, day: date) -> pd.Timestamp:
    """The instant the KPIs are as of: the start of `day` (UTC), or the lifecycle
    export's as-of instant when that is earlier (nothing is known after it)."""
    start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))
    try:
        as_of = json.loads((lifecycle_dir / "manifest.json").read_text())["as_of"]
        return min(start, pd.Timestamp(as_of).tz_convert("UTC"))
    except (OSError, ValueError, KeyError, TypeError):
        return start


def compute_kpis(
    day: date,
    settings: KpiSettings,
    lifecycle_dir: Path,
    weeks: int | None = None,
    notices: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The KPI result as of `day` from the tables on disk, and time to notify from the
    outages' start notices (`notices`, from the action log) when given. Nothing is written."""
    tables = {name: read_table(lifecycle_dir, name) for name in TABLES}
    result = service_kpis(
        tables["service_tickets"], tables["customers"], tables["churn_events"],
        read_forecast(settings.forecast_file), day, data_until(lifecycle_dir, day), settings,
        weeks,
    )  # fmt: skip
    result["time_to_notify"] = []
    if notices is not None and not notices.empty:
        found = time_to_notify(notices)
        found["week_start"] = found["week_start"].map(lambda w: pd.Timestamp(w).date().isoformat())
        result["time_to_notify"] = json.loads(found.to_json(orient="records"))
    return result


def publish_kpis(result: dict[str, Any], output_dir: Path) -> Path:
    """Write `<output_dir>/kpis/D.json` atomically (renamed into place)."""
    path = output_dir / KPIS_DIR / f"{result['date']}.json"
    text = json.dumps(result, indent=2, default=str, allow_nan=False)

    def write(target: Path) -> None:
        target.write_text(text)

    return publish_file(path, write)


def latest_kpis(output_dir: Path, day: date | None = None) -> dict[str, Any] | None:
    """The latest published KPI result (on or before `day` when given); None if none."""
    days = sorted(
        p
        for p in (output_dir / KPIS_DIR).glob("????-??-??.json")
        if day is None or p.stem <= day.isoformat()
    )
    for path in reversed(days):
        try:
            found: dict[str, Any] = json.loads(path.read_text())
            return found
        except (OSError, ValueError):
            log.warning("skipping unreadable KPI result %s", path)
    return None


class KpiCollector(Collector):
    """Gauges of the latest published KPI result's latest week, read at each scrape (a
    small JSON file: nothing is recomputed); none before the first `retain kpis`. The API
    registers it beside the monitoring gauges."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir

    def collect(self) -> Iterator[Metric]:
        result = latest_kpis(self.output_dir)
        if result is None:
            return
        labels = ["region", "kpi", "ticket_type"]
        value = GaugeMetricFamily(
            "retain_service_kpi", "A service KPI of the latest complete week", labels=labels
        )
        missed = GaugeMetricFamily(
            "retain_service_kpi_missed",
            "1 when the KPI missed its target in the latest complete week",
            labels=labels,
        )
        week = result["weeks"][-1]
        for row in result["kpis"]:
            if row["week_start"] != week:
                continue
            key = [row["region"], row["kpi"], row["ticket_type"] or ""]
            if row["value"] is not None:
                value.add_metric(key, row["value"])
            if row["missed"] is not None:
                missed.add_metric(key, float(row["missed"]))
        yield value
        yield missed
        yield GaugeMetricFamily(
            "retain_service_kpi_alerts",
            "Alerts of the latest KPI result",
            value=float(len(result["alerts"])),
        )


def raise_kpi_alerts(result: dict[str, Any], settings: KpiSettings) -> None:
    """One structured log line per alert; the day's alerts POSTed to the webhook once per
    set of alerts (a rerun with the same alerts is the same delivery)."""
    keys = sorted(f"{a['kind']}:{a['region']}:{a.get('kpi', '')}:{a.get('ticket_type') or ''}"
                  for a in result["alerts"])  # fmt: skip
    week = result["weeks"][-1]
    send_alerts(
        "kpi_alert",
        {"date": result["date"], "week_start": week},
        result["alerts"],
        {"date": result["date"], "week_start": week, "alerts": result["alerts"]},
        (settings.alert_webhook_url, settings.alert_webhook_timeout_s),
        f"kpis-{week}-{hashlib.sha256(' '.join(keys).encode()).hexdigest()[:16]}",
        log,
    )


def run_kpis(
    day: date,
    settings: KpiSettings,
    lifecycle_dir: Path,
    output_dir: Path,
    weeks: int | None = None,
    notices: pd.DataFrame | None = None,
) -> KpiRun:
    """Compute the KPIs as of `day`, publish them, raise their alerts."""
    result = compute_kpis(day, settings, lifecycle_dir, weeks, notices)
    path = publish_kpis(result, output_dir)
    raise_kpi_alerts(result, settings)
    return KpiRun(result, path)


def print_kpis(done: KpiRun) -> None:
    """The table (region and week by KPI, misses in red with their target) and the alerts."""
    result = done.result
    table = Table(title=f"Service KPIs, weeks of {result['weeks'][0]} to {result['weeks'][-1]}")
    table.add_column("region")
    table.add_column("week")
    for _, _, label in table_columns(result):
        table.add_column(label, justify="right")
    for (region, week), found in cells(result).items():
        table.add_row(
            region, week,
            *(f"[red]{c['text']} x[/] ({c['target']})" if c["missed"] else c["text"]
              for c in found),
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print("x: missed its target (shown in brackets)", highlight=False)
    for row in result.get("time_to_notify", []):
        console.print(
            f"time to notify, {row['region']} week of {row['week_start']}: "
            f"{row['events']} outage(s), {row['notified']} told, median "
            f"{row['median_minutes']:.1f} min, P95 {row['p95_minutes']:.1f} min"
            if row["notified"]
            else f"time to notify, {row['region']} week of {row['week_start']}: "
            f"{row['not_notified']} not told yet",
            highlight=False,
            soft_wrap=True,
        )
    for alert in result["alerts"]:
        console.print(f"alert: {alert_text(alert)}", highlight=False, soft_wrap=True)
    console.print(f"{len(result['alerts'])} alert(s); {done.path}", highlight=False, soft_wrap=True)
