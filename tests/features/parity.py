"""Helpers of the engine parity tests: a world with events planted on every window's edge,
and a value-for-value comparison of built feature tables against the pandas reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.lifecycle.profile import load_tables
from features.snapshots import DAY, FEATURE_TABLES
from tests.features import reference_build

SECOND = pd.Timedelta(seconds=1)
KEYS = {
    "customer_profile": ["customer_id"],
    "customer_activity": ["event_timestamp", "customer_id"],
    "cell_site_quality": ["event_timestamp", "cell_site_id"],
    "region_weekly_demand": ["region", "week_start"],
}


def _alive(tables: dict[str, pd.DataFrame], since: pd.Timestamp) -> list[str]:
    customers, churn = tables["customers"], tables["churn_events"]
    gone = set(churn["customer_id"])
    old = customers[(customers["signup_at"] < since) & ~customers["customer_id"].isin(gone)]
    return old["customer_id"].tolist()


def _append(frame: pd.DataFrame, rows: list[dict[str, object]]) -> pd.DataFrame:
    template = frame.iloc[[0] * len(rows)].reset_index(drop=True)
    for i, row in enumerate(rows):
        for column, value in row.items():
            template.loc[i, column] = value
    return pd.concat([frame, template.astype(frame.dtypes.to_dict())], ignore_index=True)


def plant_edges(lifecycle: Path, t: pd.Timestamp) -> None:
    """Rewrite the lifecycle tables of `lifecycle` with events on the edges of every window
    around the snapshot `t`: exactly at t, exactly 30/90/180 days (and 7 days for offers)
    before it, one second either side, open tickets and outages, a churn and a signup at t,
    an outage spanning three weeks, a quality day at t, a missing bill, bills of zero."""
    tables = load_tables(lifecycle)
    a, b, c, free = _alive(tables, t - 400 * DAY)[:4]
    cell = tables["customers"].set_index("customer_id").loc[a, "cell_site_id"]

    opened = [t, t - 30 * DAY, t - 90 * DAY, t - 90 * DAY - SECOND, t - 180 * DAY]
    opened += [t - 180 * DAY - SECOND, t - SECOND]
    closed = [t, t + SECOND, None, t - DAY, t, None, t]
    kinds = ["complaint", "network_fault", "billing_dispute", "complaint", "relocation"]
    kinds += ["technical_support", "package_question"]
    tables["service_tickets"] = _append(
        tables["service_tickets"],
        [
            {
                "ticket_id": f"EDGE-{i}",
                "customer_id": a,
                "opened_at": o,
                "closed_at": pd.NaT if cl is None else cl,
                "ticket_type": k,
                "is_repeat": i % 2 == 0,
                "first_contact_resolved": i % 3 == 0,
                "sentiment": -0.5 + i / 10,
            }
            for i, (o, cl, k) in enumerate(zip(opened, closed, kinds, strict=True))
        ],
    )
    sent = [t - 7 * DAY, t - 7 * DAY + SECOND, t - 180 * DAY, t - 180 * DAY - SECOND, t]
    tables["campaigns"] = _append(
        tables["campaigns"],
        [{"customer_id": a, "sent_at": s, "treated": True, "accepted": True} for s in sent]
        + [{"customer_id": a, "sent_at": t - DAY, "treated": False, "accepted": True}],
    )
    bought = [t - 90 * DAY, t - 90 * DAY - SECOND, t - 180 * DAY, t - SECOND, t]
    tables["package_purchases"] = _append(
        tables["package_purchases"],
        [
            {"customer_id": a, "purchased_at": p, "package_id": pkg, "price": 2.5}
            for p, pkg in zip(
                bought,
                ["daily_pass", "roaming_pack", "family_upgrade", "campus_data_pack", "daily_pass"],
                strict=True,
            )
        ],
    )
    # Sunday 23:00 to three weeks later, an open outage, one on the 30- and 90-day edges
    sunday = t - pd.Timedelta(days=(t.weekday() + 1) % 7 or 7) - 25 * DAY + pd.Timedelta(hours=23)
    outages = [
        (t - 30 * DAY, t - 29 * DAY),
        (t - 95 * DAY, t - 85 * DAY),
        (t - 2 * DAY, None),
        (sunday, sunday + 15 * DAY),
        (t, t + DAY),
    ]
    tables["network_events"] = _append(
        tables["network_events"],
        [
            {
                "event_id": f"EDGE-OUT-{i}",
                "cell_site_id": cell,
                "started_at": s,
                "ended_at": pd.NaT if e is None else e,
            }
            for i, (s, e) in enumerate(outages)
        ],
    )
    tables["cell_quality_daily"] = _append(
        tables["cell_quality_daily"],
        [
            {"cell_site_id": cell, "day": t - 30 * DAY - DAY, "drop_rate": 0.9, "load": 0.9},
            {"cell_site_id": cell, "day": t, "drop_rate": 0.95, "load": 0.95},
        ],
    )
    usage = tables["usage_monthly"]
    last_billed = t - pd.offsets.MonthBegin(1)
    usage = usage[~((usage["customer_id"] == a) & (usage["month"] == last_billed))].copy()
    # nothing billed before the last month: the bill change has no base (0 / 0 and x / 0)
    usage.loc[usage["customer_id"].isin([free, b]), "bill_amount"] = 0.0
    usage.loc[(usage["customer_id"] == free) & (usage["month"] == last_billed), "bill_amount"] = (
        50.0
    )
    tables["usage_monthly"] = usage
    churn = tables["churn_events"]
    tables["churn_events"] = _append(churn, [{"customer_id": b, "churned_at": t}])
    tables["customers"].loc[tables["customers"]["customer_id"] == c, "signup_at"] = t
    for name, frame in tables.items():
        frame.to_parquet(lifecycle / f"{name}.parquet", index=False)


def reference_tables(lifecycle: Path, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    built = reference_build.build_feature_tables(load_tables(lifecycle), as_of)
    return dict(built.items())


def read_built(tables_dir: Path) -> dict[str, pd.DataFrame]:
    """Feature tables as written by an engine (a file from DuckDB, a folder from Spark)."""
    return {name: pd.read_parquet(tables_dir / f"{name}.parquet") for name in FEATURE_TABLES}


def assert_same_table(name: str, expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    """Same columns in the same order, same rows, every value equal: integers, strings,
    booleans and timestamps exactly, nulls in the same places, floats up to summation
    order (1e-12 relative or absolute)."""
    assert list(actual.columns) == list(expected.columns), name
    assert len(actual) == len(expected), name
    keys = KEYS[name]
    left = expected.sort_values(keys, ignore_index=True)
    right = actual.sort_values(keys, ignore_index=True)
    for column in expected.columns:
        x, y = left[column], right[column]
        where = f"{name}.{column}"
        if x.dtype.kind == "M":
            assert y.dtype.kind == "M", where
            assert (x.dt.tz_convert("UTC").to_numpy() == y.dt.tz_convert("UTC").to_numpy()).all()
        elif x.dtype.kind == "f":
            assert y.dtype.kind == "f", f"{where}: {y.dtype}"
            assert np.array_equal(x.isna(), y.isna()), where
            np.testing.assert_allclose(
                y.to_numpy(), x.to_numpy(), rtol=1e-12, atol=1e-12, err_msg=where
            )
        else:
            assert x.dtype == y.dtype or (x.dtype == object and y.dtype == object), (
                f"{where}: {x.dtype} != {y.dtype}"
            )
            assert x.tolist() == y.tolist(), where
