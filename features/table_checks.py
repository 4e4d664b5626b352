"""Feature tables checked before anything joins or loads them.

A point-in-time join over a table holding two rows for one entity at one instant picks
one of them silently (which one depends on the engine), a missing table fails deep in
Feast with a path and no hint, and a table that lost a partition (a month's snapshot, or
part files of a Spark write that stopped half-way) quietly hands the rows of that month
an older snapshot. All are refused here, naming the table, its key or the missing
snapshot and what to do, by DuckDB queries per table (a group-by over the key: seconds at
tens of millions of rows, without loading the table into Python).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
from feast import FeatureStore, FileSource

from features.repo.feature_views import SNAPSHOTS_TAG
from features.snapshots import as_utc
from features.sql_names import quote_identifier

_STEPS = {"monthly": pd.offsets.MonthBegin(1), "weekly": pd.Timedelta(days=7)}


class FeatureTableError(ValueError):
    """A feature table that cannot be used; the message names it and its key."""


@dataclass(frozen=True)
class TableKey:
    view: str
    path: Path
    key: list[str]  # the entity join keys, then the event timestamp
    snapshots: str | None = None  # "monthly" or "weekly": every step must be present


def table_keys(store: FeatureStore) -> list[TableKey]:
    """Every batch feature view's parquet file and the key its rows must be unique on."""
    found = []
    for view in store.list_feature_views():
        source = view.batch_source
        if not isinstance(source, FileSource):
            continue
        path = FileSource.get_uri_for_file_path(store.config.repo_path, source.path)
        if "://" in path:  # remote tables are checked where they are written
            continue
        keys = [c.name for c in view.entity_columns] + [source.timestamp_field]
        found.append(TableKey(view.name, Path(path), keys, view.tags.get(SNAPSHOTS_TAG)))
    return found


def parquet_location(table: TableKey) -> str:
    """What DuckDB reads for the table: its file, or the part files of a folder written
    whole by Spark (the `_SUCCESS` marker is written last)."""
    if table.path.is_file():
        return str(table.path)
    if table.path.is_dir():
        if not (table.path / "_SUCCESS").is_file():
            raise FeatureTableError(
                f"feature table {table.path.name} of view {table.view} in {table.path.parent} "
                "is an unfinished write (its folder has no _SUCCESS marker: partitions may be "
                "missing); rebuild it with retain features build"
            )
        return str(table.path / "*.parquet")
    raise FeatureTableError(
        f"feature table {table.path.name} of view {table.view} is missing from "
        f"{table.path.parent} (retain features build writes it)"
    )


def missing_snapshots(stamps: list[pd.Timestamp], every: str) -> list[pd.Timestamp]:
    """The snapshots a monthly (month starts) or weekly table lacks between its first and
    last; a monthly table's latest instant may be the as-of day, off the month starts."""
    if every == "monthly":
        stamps = [s for s in stamps if s == s.normalize() and s.day == 1]
    if len(stamps) < 2:
        return []
    expected = pd.date_range(stamps[0], stamps[-1], freq=_STEPS[every])
    return sorted(set(expected) - set(stamps))


def check_snapshots(table: TableKey, location: str) -> None:
    if table.snapshots not in _STEPS:
        return
    column = quote_identifier(table.key[-1])
    rows = duckdb.execute(
        f"SELECT DISTINCT {column} FROM read_parquet(?) ORDER BY 1", [location]
    ).fetchall()
    stamps = [as_utc(pd.Timestamp(row[0])) for row in rows]
    gaps = missing_snapshots(stamps, table.snapshots)
    if gaps:
        shown = ", ".join(f"{g:%Y-%m-%d}" for g in gaps[:3]) + (" ..." if len(gaps) > 3 else "")
        raise FeatureTableError(
            f"feature table {table.path.name} of view {table.view} lacks {len(gaps)} "
            f"{table.snapshots} snapshot(s) of {table.key[-1]} between "
            f"{stamps[0]:%Y-%m-%d} and {stamps[-1]:%Y-%m-%d}: {shown} (a partition is "
            "missing); rebuild it with retain features build"
        )


def check_table(table: TableKey) -> None:
    """Refuse a missing or half-written table, one holding a key twice (the first such key
    named), and one missing a snapshot of its cadence."""
    location = parquet_location(table)
    columns = ", ".join(quote_identifier(k) for k in table.key)
    query = (
        f"SELECT {columns}, count(*) AS n FROM read_parquet(?) "
        f"GROUP BY {columns} HAVING count(*) > 1 ORDER BY n DESC LIMIT 1"
    )
    try:
        duplicate = duckdb.execute(query, [location]).fetchone()
    except duckdb.Error as error:
        raise FeatureTableError(
            f"feature table {table.path} of view {table.view} cannot be read as parquet with "
            f"columns {', '.join(table.key)}: {error}"
        ) from error
    if duplicate is not None:
        *values, count = duplicate
        where = ", ".join(f"{k}={v}" for k, v in zip(table.key, values, strict=True))
        raise FeatureTableError(
            f"feature table {table.path.name} of view {table.view} holds {count} rows for "
            f"one key ({', '.join(table.key)}): {where}; a key must be unique, rebuild it "
            "with retain features build"
        )
    check_snapshots(table, location)


def check_tables(store: FeatureStore, views: Collection[str] | None = None) -> None:
    """Check the local feature tables of the store's batch views (of `views` only, when
    given), each file once even where several views read it."""
    checked: set[tuple[Path, tuple[str, ...]]] = set()
    for table in table_keys(store):
        if views is not None and table.view not in views:
            continue
        if (table.path, tuple(table.key)) not in checked:
            check_table(table)
            checked.add((table.path, tuple(table.key)))
