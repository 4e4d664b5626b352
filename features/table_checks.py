"""Feature tables checked before anything joins or loads them.

A point-in-time join over a table holding two rows for one entity at one instant picks
one of them silently (which one depends on the engine), and a missing table fails deep in
Feast with a path and no hint. Both are refused here, naming the table, its key and what
to do, by one DuckDB query per table (a group-by over the key: seconds at tens of
millions of rows, without loading the table into Python).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import duckdb
from feast import FeatureStore, FileSource


class FeatureTableError(ValueError):
    """A feature table that cannot be used; the message names it and its key."""


@dataclass(frozen=True)
class TableKey:
    view: str
    path: Path
    key: list[str]  # the entity join keys, then the event timestamp


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
        found.append(TableKey(view.name, Path(path), keys))
    return found


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_table(table: TableKey) -> None:
    """Refuse a missing table, or one holding a key twice (the first such key named)."""
    if not table.path.is_file():
        raise FeatureTableError(
            f"feature table {table.path.name} of view {table.view} is missing from "
            f"{table.path.parent} (retain features build writes it)"
        )
    columns = ", ".join(_quote(k) for k in table.key)
    query = (
        f"SELECT {columns}, count(*) AS n FROM read_parquet(?) "
        f"GROUP BY {columns} HAVING count(*) > 1 ORDER BY n DESC LIMIT 1"
    )
    try:
        duplicate = duckdb.execute(query, [str(table.path)]).fetchone()
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
