"""Agents per region, day and hour from the service-load forecast (Erlang C)."""

from __future__ import annotations

import math
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from features.lifecycle.validate import manifest_as_of
from training.cli import staffing_command
from training.demand.settings import AgentStaffing, DemandCalendar, HolidayMode, Staffing
from training.demand.staffing import (
    GREEN,
    agents_needed,
    average_speed_of_answer,
    contact_profiles,
    erlang_b,
    erlang_c,
    holiday_days,
    peaks,
    service_level,
    staffing_plan,
    staffing_view,
)

REPO = Path(__file__).resolve().parents[2]
MONDAY = pd.Timestamp("2026-03-02", tz="UTC")  # weeks in the tests start on this Monday


def _erlang_c_by_sums(traffic: float, agents: int) -> float:
    """The textbook formula, summed term by term: independent of the B recursion."""
    below = sum(traffic**k / math.factorial(k) for k in range(agents))
    top = traffic**agents / math.factorial(agents) * agents / (agents - traffic)
    return top / (below + top)


@pytest.mark.parametrize(
    ("traffic", "agents"), [(0.5, 1), (2.0, 3), (10.0, 11), (10.0, 14), (37.5, 45), (80.0, 95)]
)
def test_erlang_c_matches_the_textbook_sum(traffic: float, agents: int) -> None:
    assert erlang_c(traffic, agents) == pytest.approx(_erlang_c_by_sums(traffic, agents), rel=1e-9)


def test_the_textbook_call_centre_needs_fourteen_agents() -> None:
    # 200 calls an hour of 180 s (10 erlangs), 80 % within 20 s: 14 agents, who make
    # 17.4 % of callers wait and answer 88.8 % within 20 s, 6.97 s on average
    assert agents_needed(200, 180, 0.8, 20) == 14
    assert erlang_c(10.0, 14) == pytest.approx(0.1741, abs=1e-4)
    assert service_level(10.0, 14, 180, 20) == pytest.approx(0.8884, abs=1e-4)
    assert average_speed_of_answer(10.0, 14, 180) == pytest.approx(7.83, abs=0.01)
    assert service_level(10.0, 13, 180, 20) < 0.8  # 13 would miss the target


def test_erlang_b_is_the_blocking_formula() -> None:
    def by_sums(a: float, n: int) -> float:
        return (a**n / math.factorial(n)) / sum(a**k / math.factorial(k) for k in range(n + 1))

    for a, n in [(1.0, 1), (5.0, 7), (20.0, 18)]:
        assert erlang_b(a, n) == pytest.approx(by_sums(a, n), rel=1e-9)


def test_thousands_of_calls_an_hour_stay_finite_and_minimal() -> None:
    # 20,000 calls of 300 s: 1,667 erlangs, far beyond where factorials overflow
    n = int(agents_needed(20_000, 300, 0.8, 15)[()])
    traffic = 20_000 * 300 / 3600
    assert traffic < n < traffic * 1.05
    assert service_level(traffic, n, 300, 15) >= 0.8 > service_level(traffic, n - 1, 300, 15)
    assert 0 < erlang_c(traffic, n) < 1


def test_agents_cannot_keep_up_when_fewer_than_the_traffic() -> None:
    assert erlang_c(10.0, 10) == 1.0
    assert service_level(10.0, 9, 180, 20) == 0.0
    assert average_speed_of_answer(10.0, 10, 180) == np.inf


def test_more_calls_never_need_fewer_agents() -> None:
    calls = np.linspace(0, 3000, 301)
    needed = agents_needed(calls, 240, 0.8, 15, max_occupancy=0.85)
    assert needed[0] == 0 and np.all(np.diff(needed) >= 0)
    assert np.all(calls[1:] * 240 / 3600 / needed[1:] <= 0.85)  # occupancy capped


def test_a_tighter_target_never_needs_fewer_agents() -> None:
    targets = np.linspace(0.5, 0.99, 50)
    by_level = agents_needed(500, 300, targets, 15)
    by_answer = agents_needed(500, 300, 0.8, np.linspace(60, 1, 60))
    by_occupancy = agents_needed(500, 300, 0.8, 15, max_occupancy=0.7)
    assert np.all(np.diff(by_level) >= 0) and np.all(np.diff(by_answer) >= 0)
    assert by_occupancy >= agents_needed(500, 300, 0.8, 15)
    assert by_level[-1] > by_level[0] and by_answer[-1] > by_answer[0]


def test_agents_needed_refuses_impossible_targets() -> None:
    with pytest.raises(ValueError, match="service level"):
        agents_needed(100, 300, 1.0, 15)
    with pytest.raises(ValueError, match="finite"):  # would otherwise search forever
        agents_needed([100, float("nan")], 300, 0.8, 15)


@pytest.mark.parametrize(
    "bad",
    [
        {"service_level": 1.0},
        {"service_level": 0.0},
        {"answer_seconds": 0},
        {"shrinkage": 1.0},
        {"shrinkage": -0.1},
        {"lines": {"hotline": {"sources": ["hotline"], "aht_seconds": 0}}},
        {
            "lines": {
                "a": {"sources": ["app"], "aht_seconds": 60},
                "b": {"sources": ["app"], "aht_seconds": 60},
            }
        },
        {"holidays": {"green_channel": {"line": "fax"}}},
        {"holidays": {"yearly": ["13-01"]}},
    ],
)
def test_settings_refuse_impossible_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AgentStaffing.model_validate(bad)


# --- profiles and the plan on synthetic tickets ----------------------------------------------
def _tickets(weeks: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two regions; hotline calls at 10:00 on weekdays, twice as many on Mondays; app tickets
    at 20:00 every day; store visits at noon (no line answers them)."""
    rows = []
    for day in pd.date_range(MONDAY - weeks * pd.Timedelta(days=7), MONDAY, inclusive="left"):
        for region in ("north", "south"):
            customer = f"C-{region}"
            if day.dayofweek < 5:
                for _ in range(2 if day.dayofweek == 0 else 1):
                    rows.append((customer, day + pd.Timedelta(hours=10), "hotline"))
            rows.append((customer, day + pd.Timedelta(hours=20), "app"))
            rows.append((customer, day + pd.Timedelta(hours=12), "store"))
    tickets = pd.DataFrame(rows, columns=["customer_id", "opened_at", "channel"])
    regions = pd.DataFrame({"customer_id": ["C-north", "C-south"], "region": ["north", "south"]})
    return tickets, regions


def _forecast(p50: float = 700.0, p90: float = 1400.0, weeks: int = 2) -> pd.DataFrame:
    starts = [MONDAY + w * pd.Timedelta(days=7) for w in range(weeks)]
    rows = [
        {
            "region": region,
            "series": series,
            "group": series,
            "week_start": start,
            "week_end": start + pd.Timedelta(days=7),
            "p10": p50 / 2,
            "p50": p50,
            "p90": p90,
        }
        for region in ("north", "south")
        for start in starts
        for series in ("service_load", "daily_pass")
    ]
    return pd.DataFrame(rows)


def _staffing(**agents: object) -> Staffing:
    quiet = {"yearly": [], "spring_festival_days": 0, "term_start_days": 0}
    holidays = {**quiet, **agents.pop("holidays", {})}  # type: ignore[dict-item]
    return Staffing.model_validate({"agents": {"holidays": holidays, **agents}})


def test_profile_shares_sum_to_one() -> None:
    tickets, regions = _tickets()
    profiles = contact_profiles(tickets, regions, _staffing().agents, MONDAY)
    for frame in (profiles.day_of_week, profiles.hour_of_day):
        assert frame.groupby("line")["share"].sum().to_numpy() == pytest.approx([1.0, 1.0])
    day = profiles.day_of_week.set_index(["line", "weekday"])["share"]
    assert day["hotline", 0] == pytest.approx(2 / 6) and day["hotline", 6] == 0
    assert day["online", 3] == pytest.approx(1 / 7)
    hour = profiles.hour_of_day.set_index(["line", "hour"])["share"]
    assert hour["hotline", 10] == 1.0 and hour["online", 20] == 1.0
    # the lines' shares leave out the store: 6 hotline, 7 app and 7 store tickets a week
    share = profiles.line_share.set_index(["region", "line"])["share"]
    assert share["north", "hotline"] == pytest.approx(6 / 20)
    assert share["north", "online"] == pytest.approx(7 / 20)


def test_a_line_without_tickets_cannot_be_profiled() -> None:
    tickets, regions = _tickets()
    with pytest.raises(ValueError, match="no service_tickets of line"):
        contact_profiles(tickets[tickets["channel"] != "app"], regions, _staffing().agents, MONDAY)


def test_the_plan_spreads_the_chosen_forecast_over_days_and_hours() -> None:
    tickets, regions = _tickets()
    calendar = DemandCalendar()
    p90 = staffing_plan(_forecast(), tickets, regions, _staffing(), calendar, MONDAY)
    p50 = staffing_plan(
        _forecast(), tickets, regions, _staffing().model_copy(update={"plan_for": "p50"}),
        calendar, MONDAY,
    )  # fmt: skip
    week = p90.daily[p90.daily["week_start"] == MONDAY.tz_localize(None)]
    by_line = week.groupby(["region", "line"])["contacts"].sum()
    assert by_line["north", "hotline"] == pytest.approx(1400 * 6 / 20)
    assert by_line["north", "online"] == pytest.approx(1400 * 7 / 20)
    assert p50.daily["contacts"].sum() == pytest.approx(p90.daily["contacts"].sum() / 2)
    assert (p90.daily["staff"] >= p50.daily["staff"]).all()
    monday = p90.daily[
        (p90.daily["date"] == MONDAY.tz_localize(None)) & (p90.daily["line"] == "hotline")
    ]
    assert (monday["peak_hour"] == 10).all()
    assert (monday["peak_agents"] > 1).all()  # 140 calls at 10:00 need more than the minimum
    assert len(p90.hourly) == 2 * 7 * 24 * 2  # regions x 7 days x 24 hours x lines
    assert not p90.hourly.isna().any().any() and not p90.daily.isna().any().any()
    quiet = p90.hourly[p90.hourly["contacts"] == 0]
    assert (quiet["agents"] == 1).all()  # min_agents keeps each line open
    busy = p90.hourly[p90.hourly["contacts"] > 0]
    assert (busy["service_level"] >= 0.8).all() and (busy["occupancy"] <= 0.85).all()
    assert (p90.hourly["scheduled"] >= p90.hourly["agents"] / 0.7 - 1e-9).all()


def test_the_plan_starts_at_its_start_day() -> None:
    tickets, regions = _tickets()
    wednesday = MONDAY + pd.Timedelta(days=2)
    plan = staffing_plan(_forecast(), tickets, regions, _staffing(), DemandCalendar(), wednesday)
    assert plan.daily["date"].min() == wednesday.tz_localize(None)
    assert plan.hourly["date"].max() == (wednesday + pd.Timedelta(days=6)).tz_localize(None)


def test_holiday_mode_lifts_the_day_and_opens_the_green_channel() -> None:
    tickets, regions = _tickets()
    holiday = MONDAY + pd.Timedelta(days=7)  # the second Monday
    staffing = _staffing(holidays={"dates": [holiday.date()], "uplift": 1.5})
    plan = staffing_plan(_forecast(), tickets, regions, staffing, DemandCalendar(), MONDAY)
    daily = plan.daily.set_index(["region", "date", "line"])
    first, second = MONDAY.tz_localize(None), holiday.tz_localize(None)
    ordinary = daily.loc[("north", first, "hotline"), "contacts"]
    lifted = daily.loc[("north", second, "hotline"), "contacts"]
    green = daily.loc[("north", second, GREEN), "contacts"]
    assert lifted + green == pytest.approx(1.5 * ordinary)
    assert green == pytest.approx(0.2 * 1.5 * ordinary)
    assert daily.loc[("north", second, "online"), "contacts"] == pytest.approx(
        1.5 * daily.loc[("north", first, "online"), "contacts"]
    )
    assert daily.loc[("north", second, GREEN), "holiday_reason"] == "public holiday"
    assert set(plan.daily.loc[plan.daily["line"] == GREEN, "date"]) == {second}
    assert (plan.daily.loc[plan.daily["line"] == GREEN, "target"] == 0.9).all()
    assert not plan.hourly.isna().any().any()


def test_holiday_days_come_from_dates_festival_and_term_starts() -> None:
    mode = HolidayMode(
        dates=[pd.Timestamp("2027-03-10").date()],
        yearly=["10-01"],
        spring_festival_days=2,
        term_start_days=1,
    )
    agents = AgentStaffing(holidays=mode)
    calendar = DemandCalendar(term_starts=["03-01"])
    days = holiday_days(pd.Timestamp("2026-09-01"), pd.Timestamp("2027-03-31"), agents, calendar)
    assert days.to_dict() == {
        pd.Timestamp("2026-10-01"): "public holiday",
        pd.Timestamp("2027-02-06"): "Spring Festival",
        pd.Timestamp("2027-02-07"): "Spring Festival",
        pd.Timestamp("2027-03-01"): "term start",
        pd.Timestamp("2027-03-10"): "public holiday",
    }


def test_the_view_lists_the_next_days_and_the_snippet_escapes_them() -> None:
    tickets, regions = _tickets()
    regions["region"] = regions["region"].replace("north", "<b>north</b>")
    forecast = _forecast().replace("north", "<b>north</b>")
    plan = staffing_plan(forecast, tickets, regions, _staffing(), DemandCalendar(), MONDAY)
    view = staffing_view(plan.daily)
    assert len(view["rows"]) == 2 * 7 and view["first"] == "2026-03-02"
    assert [line["name"] for line in view["lines"]] == ["hotline", "online"]
    assert view["lines"][0]["target"] == "80% within 15 s"
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(REPO / "serving" / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    html = environment.get_template("_staffing.html.j2").render(staffing=view)
    assert "&lt;b&gt;north&lt;/b&gt;" in html and "<b>north" not in html
    assert "10:00" in html and "P90" in html
    empty = environment.get_template("_staffing.html.j2").render(
        staffing=staffing_view(plan.daily.iloc[:0])
    )
    assert "retain staffing" in empty


def test_peaks_name_the_busiest_week_and_day() -> None:
    tickets, regions = _tickets()
    forecast = _forecast()
    forecast.loc[forecast["week_start"] > MONDAY, "p90"] *= 3
    plan = staffing_plan(forecast, tickets, regions, _staffing(), DemandCalendar(), MONDAY)
    found = peaks(plan.daily).set_index("region")
    assert (found["peak_week"] == (MONDAY + pd.Timedelta(days=7)).tz_localize(None)).all()
    assert (found["peak_day"].dt.dayofweek == 0).all()  # Mondays hold twice the calls


# --- the command on a small world ------------------------------------------------------------
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("staffing")(staffing_command)
    app.command("noop", hidden=True)(lambda: None)  # two commands keep "staffing" a subcommand
    return app


def _configs(tmp_path: Path, lifecycle: Path) -> Path:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "demand.yaml").write_text(f"forecast_dir: {tmp_path / 'forecasts'}\n")
    (configs / "features.yaml").write_text(f"lifecycle_dir: {lifecycle}\n")
    return configs


def test_the_command_writes_the_plan_next_to_the_forecast(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_of = manifest_as_of(small_data)
    assert as_of is not None
    regions = pd.read_parquet(small_data / "customers.parquet", columns=["region"])
    monday = as_of.normalize() - pd.Timedelta(days=as_of.dayofweek)
    forecast = pd.DataFrame(
        [
            {"region": region, "series": "service_load", "group": "service_load",
             "week_start": monday + w * pd.Timedelta(days=7), "p10": 50.0, "p50": 80.0,
             "p90": 120.0 + w}
            for region in sorted(regions["region"].unique())
            for w in range(3)
        ]
    )  # fmt: skip
    (tmp_path / "forecasts").mkdir()
    forecast.to_parquet(tmp_path / "forecasts" / "forecast.parquet")
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(_configs(tmp_path, small_data)))
    result = runner.invoke(_app(), ["staffing"])
    assert result.exit_code == 0, result.output
    assert "peak week" in result.output and "staffing plan" in result.output
    written = sorted(p.name for p in (tmp_path / "forecasts").iterdir())
    assert written == [
        "forecast.parquet", "staffing.csv", "staffing.parquet",
        "staffing_hourly.csv", "staffing_hourly.parquet",
    ]  # fmt: skip  # and no temporary file left behind
    daily = pd.read_parquet(tmp_path / "forecasts" / "staffing.parquet")
    assert daily["date"].min() == as_of.ceil("D").tz_localize(None)
    assert set(daily["region"]) == set(regions["region"])
    assert len(pd.read_csv(tmp_path / "forecasts" / "staffing.csv")) == len(daily)


@pytest.mark.parametrize(
    ("forecast", "message"),
    [
        (None, "no forecast at"),
        (_forecast().query("series != 'service_load'"), "no 'service_load'"),
    ],
)
def test_the_command_refuses_a_missing_forecast_or_service_load(
    small_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    forecast: pd.DataFrame | None,
    message: str,
) -> None:
    (tmp_path / "forecasts").mkdir()
    if forecast is not None:
        forecast.to_parquet(tmp_path / "forecasts" / "forecast.parquet")
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(_configs(tmp_path, small_data)))
    result = runner.invoke(_app(), ["staffing"])
    assert result.exit_code == 2
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output
