"""Cell-site windows at a snapshot t and the weekly regional demand, edge by edge.

Outage hours count the part of each outage inside the window (t - d days, t]: an outage
still open at t, or closed after it, counts up to t; one starting at t is not known yet.
Quality days count when they lie in [t - 30 days, t). Weekly figures hold only complete
weeks (Monday to Monday), each with the hours and events inside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import build
from features.build import first_month
from features.engine import EngineSettings, connect, read_table
from tests.features.parity import assert_same_table
from tests.features.reference_build import (
    PACKAGES,
    _site_quality,
    cell_site_quality,
    demand_weeks,
    region_weekly_demand,
    site_outage_hours,
    weekly_outage_hours,
)

T = pd.Timestamp("2026-03-01", tz="UTC")
SECOND = pd.Timedelta(seconds=1)
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
UTC_NS = "datetime64[ns, UTC]"


def _events(rows: list[tuple[str, pd.Timestamp, pd.Timestamp | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["cell_site_id", "started_at", "ended_at"])
    return frame.astype({"cell_site_id": str, "started_at": UTC_NS, "ended_at": UTC_NS})


def _quality(rows: list[tuple[str, pd.Timestamp, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["cell_site_id", "day", "drop_rate", "load"])
    return frame.astype({"cell_site_id": str, "day": UTC_NS, "drop_rate": float, "load": float})


EVENTS = _events(
    [
        ("s", T - 2 * HOUR, T + 5 * HOUR),  # closed after t: 2 h up to t
        ("s", T - 31 * DAY, T - 30 * DAY + 3 * HOUR),  # 3 h inside 30 days, 27 h inside 90
        ("s", T - 40 * DAY, T - 35 * DAY),  # ended before the 30-day window: none of it
        ("s", T - 10 * DAY, None),  # still open at t: 240 h
        ("s", T, T + HOUR),  # started at t: not known
        ("u", T, None),  # the only outage of u started at t
        ("v", T - SECOND, None),  # open for a second before t
        ("w", T - 30 * DAY - SECOND, T - 30 * DAY - SECOND),  # no duration, out of 30 days
    ]
)


def test_outage_hours_count_the_part_of_each_outage_inside_the_window_up_to_t() -> None:
    assert site_outage_hours(EVENTS, T, 30).to_dict() == {
        "s": 2.0 + 3.0 + 0.0 + 240.0,
        "v": SECOND / HOUR,
        "w": 0.0,
    }
    assert site_outage_hours(EVENTS, T, 90).to_dict() == {
        "s": 2.0 + 27.0 + 120.0 + 240.0,
        "v": SECOND / HOUR,
        "w": 0.0,
    }


def test_an_outage_starting_at_the_snapshot_is_unknown_at_it() -> None:
    assert "u" not in site_outage_hours(EVENTS, T, 30).index
    assert site_outage_hours(EVENTS, T + HOUR, 30)["u"] == 1.0


QUALITY = _quality(
    [
        ("s", T - DAY, 0.5, 0.75),
        ("s", T, 1.0, 9.0),  # the day starting at t: not over yet
        ("s", T - 30 * DAY, 0.25, 0.25),  # the window's first day
        ("s", T - 31 * DAY, 0.75, 9.0),  # out
        ("q", T - 2 * DAY, 0.125, 0.5),
    ]
)
STARTS = _events(
    [
        ("s", T - SECOND, T - SECOND),
        ("s", T - 30 * DAY, T - 30 * DAY),
        ("s", T - 30 * DAY - SECOND, T - 30 * DAY - SECOND),  # out
        ("s", T, T),  # at t: out
    ]
)


def test_site_quality_takes_the_30_days_before_the_snapshot() -> None:
    frame = _site_quality(QUALITY, STARTS, T)
    assert frame.loc["s"].to_dict() == {
        "drop_rate_mean_30d": (0.5 + 0.25) / 2,
        "drop_rate_max_30d": 0.5,
        "load_mean_30d": (0.75 + 0.25) / 2,
        "outage_hours_30d": 0.0,
        "outage_hours_90d": 0.0,
        "outage_events_30d": 2,  # started a second before t and exactly 30 days before
    }


def test_a_site_without_outages_has_zero_hours_and_events_in_int64() -> None:
    frame = _site_quality(QUALITY, STARTS, T)
    counted = ["outage_hours_30d", "outage_hours_90d", "outage_events_30d"]
    assert frame.loc["q", counted].tolist() == [0.0, 0.0, 0]
    assert frame["outage_events_30d"].dtype == "int64"


def test_outage_hours_reach_a_site_whose_quality_days_are_missing() -> None:
    """A site down all month may report no quality day; its outage hours still count."""
    events = _events([("dark", T - 100 * DAY, None), ("dark", T - 10 * DAY, T - 9 * DAY)])
    frame = _site_quality(QUALITY, events, T)
    assert frame.loc["dark", ["outage_hours_30d", "outage_hours_90d"]].tolist() == [
        30 * 24.0 + 24.0,
        90 * 24.0 + 24.0,  # the open outage from its 90th day before t on
    ]
    assert frame.loc["dark", "outage_events_30d"] == 1
    assert pd.isna(frame.loc["dark", "drop_rate_mean_30d"])


def test_cell_site_quality_has_one_row_per_site_and_snapshot_with_zeros_for_quiet_sites() -> None:
    tables = {
        "cell_sites": pd.DataFrame({"cell_site_id": ["s", "q", "z"], "region": "r"}),
        "cell_quality_daily": QUALITY,
        "network_events": EVENTS,
    }
    snapshots = pd.DatetimeIndex([T, T + HOUR])
    quality = cell_site_quality(tables, snapshots)
    assert quality[["cell_site_id", "event_timestamp"]].to_numpy().tolist() == [
        ["s", T],
        ["q", T],
        ["z", T],
        ["s", T + HOUR],
        ["q", T + HOUR],
        ["z", T + HOUR],
    ]
    z = quality[quality["cell_site_id"] == "z"]
    assert z[["outage_hours_30d", "outage_hours_90d", "outage_events_30d"]].to_numpy().tolist() == [
        [0.0, 0.0, 0],
        [0.0, 0.0, 0],
    ]
    assert z["drop_rate_mean_30d"].isna().all()
    s = quality[quality["cell_site_id"] == "s"].set_index("event_timestamp")
    assert s.loc[T, "outage_hours_30d"] == 245.0
    # an hour later: 3 h of the first outage, 2 h of the second (the window moved), 241 h of
    # the open one, and the hour of the outage that started at T
    assert s.loc[T + HOUR, "outage_hours_30d"] == 3.0 + 2.0 + 241.0 + 1.0
    assert quality["outage_events_30d"].dtype == "int64"
    assert quality.index.equals(pd.RangeIndex(6))  # one label per row across snapshots


# --- properties -------------------------------------------------------------------------

_OFFSET = st.one_of(
    st.sampled_from([d * 86_400 + s for d in (0, 30, 90) for s in (-1, 0, 1)]),
    st.integers(-100 * 86_400, 3 * 86_400),
)
_SITE = st.sampled_from(["s", "q"])
_DURATION = st.one_of(st.none(), st.integers(0, 40 * 86_400))


def _at(seconds_before: int) -> pd.Timestamp:
    return T - pd.Timedelta(seconds=seconds_before)


@settings(max_examples=20)
@given(rows=st.lists(st.tuples(_SITE, _OFFSET, _DURATION), max_size=8))
def test_nothing_starting_or_ending_after_the_snapshot_changes_a_site_feature(
    rows: list[tuple[str, int, int | None]],
) -> None:
    """Outages starting at or after t are dropped, endings after t read as still open."""
    events = _events(
        [
            (site, _at(s), None if d is None else _at(s) + pd.Timedelta(seconds=d))
            for site, s, d in rows
        ]
    )
    known = events[events["started_at"] < T].assign(
        ended_at=lambda f: f["ended_at"].where(f["ended_at"] <= T)
    )
    quality = pd.concat(
        [QUALITY, _quality([("s", T + DAY, 0.9, 9.0), ("q", T, 0.9, 9.0)])], ignore_index=True
    )
    frame = _site_quality(quality, events, T)
    pd.testing.assert_frame_equal(frame, _site_quality(QUALITY, known, T))
    assert (frame["outage_hours_90d"] >= frame["outage_hours_30d"]).all()


# --- weekly outage hours and demand ---------------------------------------------------------

MONDAY = pd.Timestamp("2026-01-05", tz="UTC")
WEEK = 7 * DAY


def test_a_weekly_outage_split_gives_each_week_only_its_own_hours() -> None:
    events = _events(
        [
            ("a", MONDAY + 2 * DAY, MONDAY + WEEK + WEEK + DAY),  # Wednesday to Tuesday 2 weeks on
            ("b", MONDAY - 4 * HOUR, MONDAY),  # ends exactly as a week starts: none in that week
            ("c", MONDAY + WEEK - HOUR, MONDAY + 5 * WEEK),  # ends after as-of: counted to as-of
        ]
    )
    weekly = weekly_outage_hours(events, MONDAY + WEEK + 2 * HOUR)
    hours = weekly.groupby(["cell_site_id", "week_start"])["hours"].sum()
    assert {k: v for k, v in hours.items() if v} == {
        ("a", MONDAY): 5 * 24.0,
        ("a", MONDAY + WEEK): 2.0,  # up to as-of
        ("b", MONDAY - WEEK): 4.0,
        ("c", MONDAY): 1.0,
        ("c", MONDAY + WEEK): 2.0,
    }
    assert hours.get(("b", MONDAY), 0.0) == 0.0
    assert set(hours.index) <= {
        ("a", MONDAY),
        ("a", MONDAY + WEEK),
        ("b", MONDAY - WEEK),
        ("b", MONDAY),
        ("c", MONDAY),
        ("c", MONDAY + WEEK),
    }


def test_an_outage_has_one_row_per_week_it_covered() -> None:
    events = _events(
        [
            ("a", MONDAY + 6 * DAY, MONDAY + 2 * WEEK + DAY),  # Sunday to Tuesday two weeks on
            ("b", MONDAY + DAY, MONDAY + DAY + 3 * HOUR),  # inside one week
        ]
    )
    weekly = weekly_outage_hours(events, MONDAY + 10 * WEEK)
    assert weekly.to_dict("list") == {
        "cell_site_id": ["a", "a", "a", "b"],
        "week_start": [MONDAY, MONDAY + WEEK, MONDAY + 2 * WEEK, MONDAY],
        "hours": [24.0, 7 * 24.0, 24.0, 3.0],
    }


def test_an_outage_starting_after_as_of_adds_no_hours() -> None:
    """Built as of an earlier instant, a later outage (same week or weeks on) counts nothing."""
    events = _events([("a", MONDAY + 3 * HOUR, MONDAY + 4 * HOUR), ("a", MONDAY + 3 * WEEK, None)])
    weekly = weekly_outage_hours(events, MONDAY + 2 * HOUR)
    assert weekly["hours"].sum() == 0.0
    assert (weekly["hours"] == 0.0).all()


def test_demand_weeks_are_the_complete_weeks_from_the_history_start_to_as_of() -> None:
    as_of = MONDAY + 4 * WEEK
    assert demand_weeks(MONDAY, as_of).tolist() == [MONDAY + k * WEEK for k in range(4)]
    assert demand_weeks(MONDAY - DAY, as_of)[0] == MONDAY  # from a Sunday: the next Monday
    assert demand_weeks(MONDAY + DAY, as_of)[0] == MONDAY + WEEK  # a Tuesday: the week is cut
    assert demand_weeks(MONDAY, as_of - SECOND)[-1] == MONDAY + 2 * WEEK  # the last is not over


def _tickets(
    rows: list[tuple[str, str, pd.Timestamp, pd.Timestamp | None]],
) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "ticket_type", "opened_at", "closed_at"])
    return frame.astype({"opened_at": UTC_NS, "closed_at": UTC_NS})


def _region_tables() -> dict[str, pd.DataFrame]:
    w1, w2, w3 = MONDAY, MONDAY + WEEK, MONDAY + 2 * WEEK
    customers = pd.DataFrame(
        {
            "customer_id": ["n1", "n2", "s1", "s2"],
            "region": ["north", "north", "south", "south"],
            "cell_site_id": ["N", "N", "S", "S"],
            "is_student": [True, False, True, False],
            "signup_at": [pd.Timestamp("2025-12-01", tz="UTC"), w2, w1 - DAY, w1 - SECOND],
        }
    ).astype({"signup_at": UTC_NS})
    purchases = pd.DataFrame(
        [
            ("n1", "daily_pass", w1),
            ("n1", "roaming_pack", w2 - SECOND),
            ("n1", "daily_pass", w1 - SECOND),  # before the first week
            ("s1", "daily_pass", w2),
            ("s2", "campus_data_pack", w3 + WEEK),  # in the week not over at as-of
        ],
        columns=["customer_id", "package_id", "purchased_at"],
    ).astype({"purchased_at": UTC_NS})
    tickets = _tickets(
        [
            ("n1", "network_fault", w1, w1 + HOUR),
            ("s2", "complaint", w3 - SECOND, None),
            ("s2", "network_fault", w3, w3 + DAY),
        ]
    )
    return {
        "customers": customers,
        "churn_events": pd.DataFrame({"customer_id": ["s1"], "churned_at": [w2]}),
        "usage_monthly": pd.DataFrame({"month": [pd.Timestamp("2026-01-01", tz="UTC")]}),
        "package_purchases": purchases,
        "service_tickets": tickets,
        "cell_sites": pd.DataFrame(
            {"cell_site_id": ["N", "M", "S"], "region": ["north", "north", "south"]}
        ),
        "network_events": _events(
            [
                ("N", w2 - 2 * HOUR, w2 + 3 * HOUR),  # across the week's end: 2 h, then 3 h
                ("S", w3 - 4 * HOUR, w3),  # ends as week 3 starts
                ("S", w3 + 6 * DAY + 12 * HOUR, None),  # open at as-of: 12 h
            ]
        ),
    }


def test_region_weekly_demand_counts_each_complete_week_per_region() -> None:
    """The base counts customers signed up before the week starts and not gone by then."""
    demand = region_weekly_demand(_region_tables(), MONDAY + 3 * WEEK)
    w1, w2, w3 = MONDAY, MONDAY + WEEK, MONDAY + 2 * WEEK
    columns = [
        "region",
        "week_start",
        *(f"purchases_{p}" for p in PACKAGES),
        "service_contacts",
        "network_fault_contacts",
        "active_customers",
        "active_students",
        "open_tickets",
        "outage_hours",
        "outage_customer_hours",
        "event_timestamp",
        "week_of_year",
    ]
    assert list(demand.columns) == columns
    # purchases: campus, roaming, daily, family; one customer per outage site and week
    assert demand.to_numpy().tolist() == [
        ["north", w1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 2.0, 2.0, w2, 2],
        ["north", w2, 0, 0, 0, 0, 0, 0, 1, 1, 0, 3.0, 3.0, w3, 3],  # n2 signed up at w2: not yet
        ["north", w3, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0.0, 0.0, w3 + WEEK, 4],
        ["south", w1, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0.0, 0.0, w2, 2],
        ["south", w2, 0, 0, 1, 0, 1, 0, 1, 0, 1, 4.0, 4.0, w3, 3],  # s1 churned at w2: gone
        ["south", w3, 0, 0, 0, 0, 1, 1, 1, 0, 1, 12.0, 12.0, w3 + WEEK, 4],
    ]
    counts = [*columns[2:-5], "week_of_year"]
    assert (demand[counts].dtypes == "int64").all()
    assert (demand[["outage_hours", "outage_customer_hours"]].dtypes == "float64").all()


def _with_customers(
    tables: dict[str, pd.DataFrame],
    rows: list[tuple[str, str, str, pd.Timestamp, pd.Timestamp | None]],
) -> dict[str, pd.DataFrame]:
    """`tables` with more customers: (id, region, home site, signup, churn or None)."""
    extra = pd.DataFrame(
        [(c, region, site, False, signup) for c, region, site, signup, _ in rows],
        columns=["customer_id", "region", "cell_site_id", "is_student", "signup_at"],
    ).astype({"signup_at": UTC_NS})
    churned = pd.DataFrame(
        [(c, gone) for c, *_, gone in rows if gone is not None],
        columns=["customer_id", "churned_at"],
    )
    return {
        **tables,
        "customers": pd.concat([tables["customers"], extra], ignore_index=True),
        "churn_events": pd.concat([tables["churn_events"], churned], ignore_index=True).astype(
            {"churned_at": UTC_NS}
        ),
    }


def _outage_tables() -> dict[str, pd.DataFrame]:
    """N's outage crosses the end of week 1 (2 h in it, 3 h in week 2), with customers of N
    coming and going around the weeks' starts."""
    w1, w2 = MONDAY, MONDAY + WEEK
    long_ago = pd.Timestamp("2025-06-01", tz="UTC")
    return _with_customers(
        _region_tables(),  # n1 on N all along, n2 on N from w2 (not active at its start)
        [
            ("n3", "north", "N", long_ago, w1 - DAY),  # churned before week 1: never
            ("n4", "north", "N", long_ago, w2 + DAY),  # churned during week 2: in weeks 1, 2
            ("n5", "north", "N", w1 + DAY, None),  # signed up after week 1 started: from w2
            ("n6", "north", "M", long_ago, None),  # another site of the region: never
        ],
    )


def _backlog_tables() -> dict[str, pd.DataFrame]:
    w1, w2, w3 = MONDAY, MONDAY + WEEK, MONDAY + 2 * WEEK
    tables = _region_tables()
    tables["service_tickets"] = _tickets(
        [
            ("n1", "complaint", w1 + DAY, w2 + DAY),  # open across week 1's end only
            ("n1", "complaint", w1 + 2 * DAY, w2 - HOUR),  # closed before week 1's end: never
            ("n1", "network_fault", w1 + 3 * DAY, None),  # never closed: every week from 1
            ("n1", "complaint", w2 + HOUR, w3),  # closed exactly at week 2's end: never
            ("n1", "complaint", w3 + WEEK, None),  # opened exactly at week 3's end: not in it
            ("s2", "billing_dispute", w1 + 4 * DAY, w3 + DAY),  # open at the ends of weeks 1, 2
        ]
    )
    return tables


def test_outage_customer_hours_weigh_each_weeks_hours_by_the_sites_customers_at_its_start() -> None:
    demand = region_weekly_demand(_outage_tables(), MONDAY + 3 * WEEK)
    by_week = demand.set_index(["region", "week_start"])
    north = by_week.loc["north"]
    assert north["outage_hours"].tolist() == [2.0, 3.0, 0.0]
    assert north["outage_customer_hours"].tolist() == [
        2.0 * 2,  # n1, n4
        3.0 * 3,  # n1, n4, n5
        0.0,
    ]
    assert north["active_customers"].tolist() == [3, 4, 4]  # n6 is active, but not on N
    # the south is untouched: s2 alone on S (s1 churned at w2)
    assert by_week.loc["south", "outage_customer_hours"].tolist() == [0.0, 4.0, 12.0]
    assert demand["outage_customer_hours"].dtype == "float64"


def test_open_tickets_are_the_backlog_at_each_weeks_end() -> None:
    demand = region_weekly_demand(_backlog_tables(), MONDAY + 3 * WEEK)
    by_week = demand.set_index(["region", "week_start"])
    assert by_week.loc["north", "open_tickets"].tolist() == [2, 1, 1]
    assert by_week.loc["south", "open_tickets"].tolist() == [1, 1, 0]
    assert by_week.loc["north", "service_contacts"].tolist() == [3, 1, 0]  # opened, by week
    assert demand["open_tickets"].dtype == "int64"


@pytest.mark.parametrize(
    "planted", [_region_tables, _outage_tables, _backlog_tables], ids=lambda f: f.__name__[1:]
)
def test_duckdb_builds_the_planted_weeks_as_the_reference(
    planted: Callable[[], dict[str, pd.DataFrame]], tmp_path: Path
) -> None:
    """The product's ibis build of the planted tables equals the reference, value for value."""
    tables = planted()
    as_of = MONDAY + 3 * WEEK
    for name, frame in tables.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    with connect(EngineSettings()) as con:
        read = {name: read_table(con, tmp_path / f"{name}.parquet", name) for name in tables}
        weeks = demand_weeks(first_month(read), as_of)
        built = build.region_weekly_demand(read, weeks).to_pandas()
    expected = region_weekly_demand(tables, as_of)
    assert_same_table("region_weekly_demand", expected, built)
