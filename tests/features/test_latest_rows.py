"""Materialization's streamed read of the latest rows (DuckDB over the file) equals the
in-memory reference (Arrow), whatever the file's timestamp unit or layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.store import latest_rows, latest_rows_streamed

T = pd.Timestamp("2026-06-01", tz="UTC")
MONTH = pd.DateOffset(months=1)


def _history() -> pd.DataFrame:
    """a: three snapshots; b: gone after the first; c: only after `until`; d: exactly at it."""
    rows = [
        ("a", T - 2 * MONTH, 1.0),
        ("a", T - MONTH, 2.0),
        ("a", T + MONTH, 3.0),
        ("b", T - 2 * MONTH, 4.0),
        ("c", T + MONTH, 5.0),
        ("d", T, 6.0),
        ("d", T - MONTH, None),
    ]
    return pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "value"])


@pytest.mark.parametrize("unit", ["ns", "us"])
@pytest.mark.parametrize("layout", ["file", "folder"])
def test_streamed_latest_rows_equal_the_reference(unit: str, layout: str, tmp_path: Path) -> None:
    frame = _history()
    frame["event_timestamp"] = frame["event_timestamp"].astype(f"datetime64[{unit}, UTC]")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if layout == "file":
        location = str(tmp_path / "t.parquet")
        pq.write_table(table, location)
    else:
        (tmp_path / "t").mkdir()
        pq.write_table(table.slice(0, 3), tmp_path / "t" / "part-0.parquet")
        pq.write_table(table.slice(3), tmp_path / "t" / "part-1.parquet")
        location = str(tmp_path / "t" / "*.parquet")
    columns = ["customer_id", "event_timestamp", "value"]
    for until in (T, T - MONTH, T + 2 * MONTH):
        ours = latest_rows_streamed(location, columns, ["customer_id"], "event_timestamp", until)
        reference = latest_rows(table, ["customer_id"], "event_timestamp", until)
        left = ours.to_pandas().sort_values("customer_id", ignore_index=True)
        right = reference.to_pandas().sort_values("customer_id", ignore_index=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False)
    at_t = latest_rows_streamed(location, columns, ["customer_id"], "event_timestamp", T)
    assert sorted(at_t.column("customer_id").to_pylist()) == ["a", "b", "d"]
