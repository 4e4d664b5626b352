"""Service KPIs and their alerts: known answers on small synthetic frames, the page
snippet, and `retain kpis` on the small simulated world."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import pytest
import typer
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from serving.cli import kpis_command
from serving.kpi_job import KpiCollector, latest_kpis, publish_kpis, raise_kpi_alerts, read_table
from serving.kpi_settings import KpiSettings
from serving.kpis import (
    KpiDataError,
    active_customers,
    complete_weeks,
    forecast_targets,
    judge,
    kpis_view,
    prepare_tickets,
    service_kpis,
    time_to_notify,
    weekly_kpis,
)

REPO = Path(__file__).resolve().parents[2]
UNTIL = pd.Timestamp("2026-10-19", tz="UTC")  # a Monday: the last complete week is 10-12
WEEK_3, WEEK_2, LAST = (
    pd.Timestamp(d, tz="UTC") for d in ("2026-09-28", "2026-10-05", "2026-10-12")
)
SETTINGS = KpiSettings.model_validate({"alerts": {"min_count": 1, "baseline_weeks": 2}})


def _customers() -> pd.DataFrame:
    """north: n1 (cell N1), n2 (cell N2); south: s1 (cell S1), s2 churns, s3 joins late."""
    signup = pd.Timestamp("2025-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": ["n1", "n2", "s1", "s2", "s3"],
            "region": ["north", "north", "south", "south", "south"],
            "cell_site_id": ["N1", "N2", "S1", "S1", "S1"],
            "signup_at": [signup, signup, signup, signup, pd.Timestamp("2026-10-06", tz="UTC")],
        }
    )


def _churn() -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": ["s2"], "churned_at": [pd.Timestamp("2026-10-01", tz="UTC")]}
    )


def _tickets(*specs: dict[str, Any]) -> pd.DataFrame:
    """One ticket per spec: customer, week (its Monday), hours open (None: still open),
    type, fcr, repeat, at (hours into the week it opened; default the last week)."""
    rows = []
    for number, spec in enumerate(specs):
        opened = spec.get("week", LAST) + pd.Timedelta(hours=spec.get("at", 10))
        hours = spec.get("hours", 1.0)
        rows.append(
            {
                "ticket_id": f"T{number}",
                "customer_id": spec["customer"],
                "opened_at": opened,
                "closed_at": pd.NaT if hours is None else opened + pd.Timedelta(hours=hours),
                "ticket_type": spec.get("type", "complaint"),
                "channel": "hotline",
                "first_contact_resolved": spec.get("fcr", True),
                "is_repeat": spec.get("repeat", False),
                "sentiment": 0.0,
            }
        )
    return pd.DataFrame(rows)


def _many(count: int, **spec: Any) -> list[dict[str, Any]]:
    return [dict(spec) for _ in range(count)]


def _kpis(tickets: pd.DataFrame, weeks: pd.DatetimeIndex) -> pd.DataFrame:
    deadlines = {t: d.hours for t, d in SETTINGS.targets.deadlines.items()}
    prepared = prepare_tickets(tickets, _customers(), UNTIL, SETTINGS.complaint_types, deadlines)
    active = active_customers(_customers(), _churn(), weeks)
    return judge(weekly_kpis(prepared, active, weeks, SETTINGS), SETTINGS.alerts.min_count)


def _value(kpis: pd.DataFrame, region: str, kpi: str, ticket_type: str | None = None) -> Any:
    rows = kpis[(kpis["region"] == region) & (kpis["kpi"] == kpi) & (kpis["week_start"] == LAST)]
    if ticket_type is not None:
        rows = rows[rows["ticket_type"] == ticket_type]
    assert len(rows) == 1
    return rows.iloc[0]


def test_the_last_complete_weeks_end_before_the_instant() -> None:
    assert list(complete_weeks(UNTIL, 3)) == [WEEK_3, WEEK_2, LAST]
    one_day_less = complete_weeks(UNTIL - pd.Timedelta(days=1), 1)
    assert list(one_day_less) == [WEEK_2]


def test_first_contact_resolution_and_repeat_complaints_per_region() -> None:
    tickets = _tickets(
        *_many(9, customer="n1", type="package_question"),
        *_many(1, customer="n1", type="package_question", fcr=False),
        *_many(8, customer="s1", type="complaint"),
        *_many(2, customer="s1", type="complaint", fcr=False, repeat=True),
        *_many(1, customer="s1", type="package_question", repeat=True),  # no complaint
    )
    kpis = _kpis(tickets, pd.DatetimeIndex([LAST]))
    north = _value(kpis, "north", "first_contact_resolution")
    assert (north["value"], north["count"], north["missed"]) == (0.9, 10, False)
    south = _value(kpis, "south", "first_contact_resolution")
    assert south["value"] == pytest.approx(9 / 11) and south["missed"] is True
    repeat = _value(kpis, "south", "repeat_complaint_rate")
    assert (repeat["value"], repeat["count"], repeat["missed"]) == (0.2, 10, True)
    assert pd.isna(_value(kpis, "north", "repeat_complaint_rate")["value"])  # no complaint
    assert _value(kpis, "north", "repeat_complaint_rate")["missed"] is None


def test_complaints_per_1k_count_the_customers_active_when_the_week_starts() -> None:
    tickets = _tickets(*_many(3, customer="s1"), *_many(1, customer="s3"))
    kpis = _kpis(tickets, pd.DatetimeIndex([LAST]))
    per_1k = _value(kpis, "south", "complaints_per_1k")
    # s2 churned before the week and s3 joined in an earlier week: s1 and s3 are active
    assert (per_1k["value"], per_1k["count"]) == (2000.0, 2)
    assert per_1k["missed"] is None  # no target configured


def test_resolution_hours_and_the_share_resolved_within_the_deadline() -> None:
    tickets = _tickets(
        *(
            {"customer": "n1", "type": "network_fault", "hours": h, "fcr": False}
            for h in range(1, 11)
        ),
        {"customer": "n1", "type": "network_fault", "hours": None},  # open, 4 h long past
        # open, opened 1 h before the instant: not due yet
        {"customer": "n1", "type": "network_fault", "hours": None, "at": 7 * 24 - 1},
        # closed after the instant: open then, and long overdue
        {"customer": "n1", "type": "network_fault", "hours": 200},
    )
    kpis = _kpis(tickets, pd.DatetimeIndex([LAST]))
    median = _value(kpis, "north", "resolution_median_hours", "network_fault")
    p90 = _value(kpis, "north", "resolution_p90_hours", "network_fault")
    assert (median["value"], median["count"]) == (5.5, 10)
    assert p90["value"] == pytest.approx(9.1)  # linear between the 9th and 10th of 10
    in_time = _value(kpis, "north", "resolved_in_time", "network_fault")
    assert in_time["count"] == 12 and in_time["value"] == pytest.approx(4 / 12)
    assert in_time["target"] == 0.9 and in_time["missed"] is True


def test_a_rate_over_too_few_tickets_is_shown_but_not_judged() -> None:
    tickets = _tickets(*_many(3, customer="n1", fcr=False))
    kpis = weekly_kpis(
        prepare_tickets(tickets, _customers(), UNTIL, ["complaint"], {}),
        active_customers(_customers(), _churn(), pd.DatetimeIndex([LAST])),
        pd.DatetimeIndex([LAST]),
        SETTINGS,
    )
    judged = judge(kpis, min_count=20)
    row = _value(judged, "north", "first_contact_resolution")
    assert row["value"] == 0.0 and row["missed"] is None


def test_a_kpi_missing_two_weeks_running_alerts_with_the_types_and_cells_that_grew() -> None:
    tickets = _tickets(
        # north misses first-contact resolution in both of the last two weeks; the last
        # week's unresolved tickets grew in billing disputes on cell N2
        *_many(2, customer="n1", week=WEEK_3, type="package_question", fcr=False),
        *_many(2, customer="n1", week=WEEK_2, type="package_question", fcr=False),
        *_many(2, customer="n1", week=LAST, type="package_question", fcr=False),
        *_many(5, customer="n2", week=LAST, type="billing_dispute", fcr=False),
        # south misses it in the last week only
        *_many(4, customer="s1", week=WEEK_2, type="package_question"),
        *_many(4, customer="s1", week=LAST, type="package_question", fcr=False),
    )
    result = service_kpis(
        tickets, _customers(), _churn(), None, date(2026, 10, 19), UNTIL, SETTINGS, weeks=2
    )
    assert result["weeks"] == ["2026-10-05", "2026-10-12"]
    fcr_alerts = [a for a in result["alerts"] if a["kpi"] == "first_contact_resolution"]
    assert [a["region"] for a in fcr_alerts] == ["north"]
    alert = fcr_alerts[0]
    assert alert["weeks"] == ["2026-10-05", "2026-10-12"] and alert["values"] == [0.0, 0.0]
    assert alert["target"] == 0.9
    # against the mean of the 2 weeks before (2 unresolved package questions a week)
    assert alert["drivers"]["ticket_types"] == [
        {"ticket_type": "billing_dispute", "count": 5, "baseline": 0.0, "growth": 5.0}
    ]
    assert alert["drivers"]["cell_sites"] == [
        {"cell_site_id": "N2", "count": 5, "baseline": 0.0, "growth": 5.0}
    ]


def _forecast(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """(region, origin, week_start, p90) rows of the service_load series."""
    return pd.DataFrame(
        {
            "region": [r[0] for r in rows],
            "series": "service_load",
            "group": "service_load",
            "origin": [pd.Timestamp(r[1], tz="UTC") for r in rows],
            "horizon": 1,
            "week_start": [pd.Timestamp(r[2], tz="UTC") for r in rows],
            "week_end": [pd.Timestamp(r[2], tz="UTC") + pd.Timedelta(days=7) for r in rows],
            "p10": 0.0,
            "p50": [r[3] / 2 for r in rows],
            "p90": [r[3] for r in rows],
        }
    )


def test_the_latest_forecast_made_before_the_week_is_its_target() -> None:
    forecast = _forecast(
        [
            ("north", "2026-09-28", "2026-10-12", 100.0),  # older
            ("north", "2026-10-05", "2026-10-12", 8.0),  # the latest made before the week
            ("north", "2026-10-19", "2026-10-12", 1.0),  # made after the week began
        ]
    )
    targets = forecast_targets(forecast, pd.DatetimeIndex([LAST]), "p90")
    assert targets.to_dict("records") == [
        {
            "region": "north",
            "week_start": LAST,
            "target": 8.0,
            "origin": pd.Timestamp("2026-10-05", tz="UTC"),
        }
    ]


def test_contacts_above_the_forecast_p90_alert_with_the_types_and_cells_that_grew() -> None:
    tickets = _tickets(
        *_many(3, customer="n1", week=WEEK_3, type="package_question"),
        *_many(3, customer="n1", week=WEEK_2, type="package_question"),
        *_many(3, customer="n1", week=LAST, type="package_question"),
        *_many(6, customer="n2", week=LAST, type="network_fault"),  # the spike
        *_many(3, customer="s1", week=LAST, type="package_question"),
    )
    forecast = _forecast(
        [("north", "2026-10-05", "2026-10-12", 8.0), ("south", "2026-10-05", "2026-10-12", 8.0)]
    )
    result = service_kpis(
        tickets, _customers(), _churn(), forecast, date(2026, 10, 19), UNTIL, SETTINGS, weeks=1
    )
    over = [a for a in result["alerts"] if a["kind"] == "contacts_over_forecast"]
    assert len(over) == 1
    alert = over[0]
    assert (alert["region"], alert["contacts"], alert["forecast"]) == ("north", 9, 8.0)
    assert alert["origin"] == "2026-10-05T00:00:00+00:00" and alert["quantile"] == "p90"
    assert alert["drivers"]["ticket_types"] == [
        {"ticket_type": "network_fault", "count": 6, "baseline": 0.0, "growth": 6.0}
    ]
    assert [c["cell_site_id"] for c in alert["drivers"]["cell_sites"]] == ["N2"]
    contacts = [r for r in result["kpis"] if r["kpi"] == "contacts"]
    assert [(r["region"], r["value"], r["target"], r["missed"]) for r in contacts] == [
        ("north", 9.0, 8.0, True),
        ("south", 3.0, 8.0, False),
    ]
    json.dumps(result, allow_nan=False)  # publishable as it is


def test_time_to_notify_by_region_and_week_of_the_outage() -> None:
    start = pd.Timestamp("2026-10-13 10:00", tz="UTC")
    notices = pd.DataFrame(
        {
            "event_id": ["e1"] * 5 + ["e2"],
            "region": ["north"] * 5 + ["south"],
            "started_at": [start] * 5 + [start + pd.Timedelta(days=7)],
            "first_notice_at": [
                *(start + pd.Timedelta(minutes=m) for m in (5, 10, 15, 20)),
                pd.NaT,
                start + pd.Timedelta(days=7, minutes=-30),  # told ahead of planned work
            ],
        }
    )
    found = time_to_notify(notices).set_index("region")
    north = found.loc["north"]
    assert north["week_start"] == LAST
    assert (north["events"], north["notified"], north["not_notified"]) == (1, 4, 1)
    assert north["median_minutes"] == 12.5
    assert north["p95_minutes"] == pytest.approx(19.25)
    assert found.loc["south", "median_minutes"] == -30.0


def test_a_table_without_a_column_is_refused_naming_it() -> None:
    tickets = _tickets({"customer": "n1", "week": LAST}).drop(columns="is_repeat")
    with pytest.raises(KpiDataError, match=r"service_tickets lacks column\(s\) is_repeat"):
        prepare_tickets(tickets, _customers(), UNTIL, ["complaint"], {})
    twice = pd.concat([_customers(), _customers().head(1)])
    with pytest.raises(KpiDataError, match="customer n1 appears twice"):
        prepare_tickets(_tickets({"customer": "n1"}), twice, UNTIL, ["complaint"], {})
    with pytest.raises(KpiDataError, match=r"notices lacks column\(s\) first_notice_at"):
        time_to_notify(pd.DataFrame({"event_id": [], "region": [], "started_at": []}))


def test_the_page_shows_the_latest_week_with_its_misses_and_alerts() -> None:
    tickets = _tickets(
        *_many(2, customer="n1", week=WEEK_2, fcr=False),
        *_many(2, customer="n1", week=LAST, fcr=False),
        *_many(2, customer="s1", week=LAST),
    )
    result = service_kpis(
        tickets, _customers(), _churn(), None, date(2026, 10, 19), UNTIL, SETTINGS, weeks=2
    )
    view = kpis_view(result)
    assert view["week"] == "2026-10-12" and [r["region"] for r in view["rows"]] == [
        "north",
        "south",
    ]
    fcr = view["columns"].index("FCR")
    assert view["rows"][0]["cells"][fcr] == {"text": "0.0 %", "target": ">= 90.0 %", "missed": True}
    assert view["rows"][1]["cells"][fcr]["missed"] is False
    html = (
        jinja2.Environment(
            loader=jinja2.PackageLoader("serving", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        .get_template("_kpis.html.j2")
        .render(kpis=view)
    )
    assert 'id="service-kpis"' in html and 'class="n missed">0.0 % <small>&gt;= 90.0 %' in html
    assert "north: first_contact_resolution missed its target 90.0 % 2 weeks running" in html


def test_alerts_are_logged_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    alert = {"kind": "kpi_missed", "region": "north", "kpi": "first_contact_resolution",
             "ticket_type": None}  # fmt: skip
    result = {"date": "2026-10-19", "weeks": ["2026-10-12"], "alerts": [alert]}
    with caplog.at_level(logging.WARNING, "retain.kpis"):
        raise_kpi_alerts(result, SETTINGS)
    line = json.loads(caplog.records[0].getMessage())
    assert line == {"event": "kpi_alert", "date": "2026-10-19", "week_start": "2026-10-12", **alert}


def test_the_published_result_feeds_the_metrics_gauges(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(KpiCollector(tmp_path))
    assert b"retain_service_kpi" not in generate_latest(registry)  # nothing published yet
    tickets = _tickets(*_many(2, customer="n1", week=WEEK_2, fcr=False),
                       *_many(2, customer="n1", week=LAST, fcr=False))  # fmt: skip
    result = service_kpis(
        tickets, _customers(), _churn(), None, date(2026, 10, 19), UNTIL, SETTINGS, weeks=2
    )
    publish_kpis(result, tmp_path)
    assert latest_kpis(tmp_path) == result
    text = generate_latest(registry).decode()
    fcr = 'kpi="first_contact_resolution",region="north",ticket_type=""'
    assert f"retain_service_kpi{{{fcr}}} 0.0" in text
    assert f"retain_service_kpi_missed{{{fcr}}} 1.0" in text
    assert "retain_service_kpi_alerts 1.0" in text


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("kpis")(kpis_command)
    return app


def test_the_command_prints_and_publishes_the_weeks_and_refuses_bad_input(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifecycle = Path(shutil.copytree(small_data, tmp_path / "lifecycle"))
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(REPO / "configs"))
    monkeypatch.setenv("RETAIN_FEATURES_LIFECYCLE_DIR", str(lifecycle))
    monkeypatch.setenv("RETAIN_DAILY_OUTPUT_DIR", str(tmp_path / "risk_lists"))
    monkeypatch.setenv("RETAIN_KPIS_FORECAST_FILE", str(tmp_path / "no_forecast.parquet"))
    as_of = pd.Timestamp(json.loads((lifecycle / "manifest.json").read_text())["as_of"])
    day = (as_of + pd.Timedelta(days=30)).date()  # later than the data: capped at its end
    runner = CliRunner()
    done = runner.invoke(_cli(), ["--weeks", "2", "--day", day.isoformat()], env={"COLUMNS": "300"})
    assert done.exit_code == 0, done.output
    published = json.loads((tmp_path / "risk_lists" / "kpis" / f"{day}.json").read_text())
    assert published["weeks"] == [w.date().isoformat() for w in complete_weeks(as_of, 2)]
    regions = set(pd.read_parquet(lifecycle / "customers.parquet")["region"])
    assert {r["region"] for r in published["kpis"]} == regions
    assert all(region in done.output for region in regions)
    assert f"{len(published['alerts'])} alert(s)" in done.output
    bad = runner.invoke(_cli(), ["--day", "19/10/2026"])
    assert bad.exit_code == 2 and "error: --day '19/10/2026': expected YYYY-MM-DD" in bad.output
    (lifecycle / "service_tickets.parquet").unlink()
    missing = runner.invoke(_cli(), ["--day", day.isoformat()])
    assert missing.exit_code == 2
    assert "error: no service_tickets table" in missing.output


def test_a_lifecycle_table_that_is_missing_a_folder_or_not_parquet_is_named(
    tmp_path: Path,
) -> None:
    with pytest.raises(KpiDataError, match=r"no service_tickets table: .* is missing"):
        read_table(tmp_path, "service_tickets")
    (tmp_path / "service_tickets.parquet").mkdir()
    with pytest.raises(KpiDataError, match=r"service_tickets\.parquet: not a file"):
        read_table(tmp_path, "service_tickets")
    (tmp_path / "customers.parquet").write_text("not parquet")
    with pytest.raises(KpiDataError, match=r"customers\.parquet: not a readable parquet table"):
        read_table(tmp_path, "customers")
