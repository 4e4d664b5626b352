"""The feature pipeline: exact windows, nothing after the snapshot, schemas in sync with Feast."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from feast.types import Bool, Float64, Int64, String

from features.repo import feature_views
from tests.features.conftest import project_settings
from tests.features.reference_build import _ticket_windows, site_outage_hours, weekly_outage_hours

T = pd.Timestamp("2026-06-01", tz="UTC")
DAY = pd.Timedelta(days=1)
_DTYPE_OF = {Int64: "int64", Float64: "float64", String: "object", Bool: "bool"}


@pytest.mark.parametrize(
    "views",
    [
        [feature_views.customer_profile, feature_views.customer_contact],  # one table, two views
        [feature_views.customer_activity],
        [feature_views.cell_site_quality],
        [feature_views.region_weekly_demand],
    ],
    ids=lambda views: views[0].name,
)
def test_feature_view_schemas_match_the_built_tables(built_project: Path, views: list) -> None:
    table = pd.read_parquet(project_settings(built_project).tables_dir / f"{views[0].name}.parquet")
    declared = {f.name: _DTYPE_OF[f.dtype] for view in views for f in view.features}
    built = {c: str(t) for c, t in table.dtypes.items()}
    assert {name: built.get(name) for name in declared} == declared
    join_keys = {"customer": "customer_id", "cell_site": "cell_site_id", "region": "region"}
    keys = {join_keys[e] for e in views[0].entities} | {"event_timestamp", "week_start"}
    assert set(built) - keys - set(declared) == set()  # nothing built and left out of Feast


def _ticket(
    opened: pd.Timestamp, closed: pd.Timestamp | None = None, kind: str = "complaint"
) -> dict:
    return {
        "customer_id": "c",
        "opened_at": opened,
        "closed_at": closed,
        "ticket_type": kind,
        "is_repeat": False,
        "sentiment": -0.5,
        "first_contact_resolved": False,
    }


def test_ticket_windows_are_exact_and_stop_at_the_snapshot() -> None:
    tickets = pd.DataFrame(
        [
            _ticket(T - 90 * DAY),  # in the 90-day window
            _ticket(T - 90 * DAY - pd.Timedelta(seconds=1)),  # just outside it
            _ticket(T - DAY, closed=T + DAY),  # closed after the snapshot: still open at it
            _ticket(T + pd.Timedelta(seconds=1)),  # after the snapshot: invisible
        ]
    ).astype({"closed_at": "datetime64[ns, UTC]"})
    row = _ticket_windows(tickets, pd.Index(["c"], name="customer_id"), T).loc["c"]
    assert row["tickets_complaint_90d"] == 2
    assert row["tickets_180d"] == 3
    assert row["unresolved_tickets"] == 3  # none of the three was closed by the snapshot
    assert row["days_since_last_complaint"] == 1.0


def test_outage_hours_are_clipped_to_the_window_and_the_snapshot() -> None:
    events = pd.DataFrame(
        {
            "cell_site_id": ["s", "s", "s"],
            "started_at": [T - 2 * pd.Timedelta(hours=1), T - 31 * DAY, T + DAY],
            "ended_at": [
                T + 5 * pd.Timedelta(hours=1),
                T - 30 * DAY + pd.Timedelta(hours=3),
                pd.NaT,
            ],
        }
    ).astype({"ended_at": "datetime64[ns, UTC]"})
    # 2 h before the snapshot (not the 5 after it) + 3 h inside the window; the future one: none
    assert site_outage_hours(events, T, 30)["s"] == pytest.approx(5.0)


def test_weeks_are_whole_and_end_before_as_of(built_project: Path) -> None:
    weekly = pd.read_parquet(
        project_settings(built_project).tables_dir / "region_weekly_demand.parquet"
    )
    usage = pd.read_parquet(built_project / "data" / "lifecycle" / "usage_monthly.parquet")
    assert weekly["week_start"].min() >= usage["month"].min()
    assert (weekly["week_start"].dt.weekday == 0).all()
    assert weekly["event_timestamp"].max() <= pd.Timestamp("2026-11-01", tz="UTC")


def test_weekly_outage_hours_split_an_outage_over_the_weeks_it_covered() -> None:
    """A week's outage hours are final when the week ends: none from after it."""
    events = pd.DataFrame(
        {
            "cell_site_id": ["a", "b", "c"],
            "started_at": pd.to_datetime(
                ["2026-01-04 20:00", "2026-01-06 00:00", "2026-01-10 12:00"], utc=True
            ),  # a Sunday evening, a Tuesday, a Saturday noon still open at as-of
            "ended_at": pd.to_datetime(["2026-01-05 04:00", "2026-01-06 05:00", None], utc=True),
        }
    )
    weekly = weekly_outage_hours(events, pd.Timestamp("2026-01-13", tz="UTC"))
    hours = weekly.set_index(["cell_site_id", weekly["week_start"].dt.strftime("%m-%d")])["hours"]
    assert hours.to_dict() == {
        ("a", "12-29"): 4.0,  # Sunday 20:00 to midnight
        ("a", "01-05"): 4.0,  # Monday 00:00 to 04:00
        ("b", "01-05"): 5.0,
        ("c", "01-05"): 36.0,  # Saturday noon to Monday
        ("c", "01-12"): 24.0,  # open: counted up to as-of, not beyond
    }
