"""What `retain forecast` publishes and the decisions read: callback capacity per region
and day, and the ranked candidates of each seasonal-package campaign.

`retain forecast` republishes its folder daily; a running API follows without a restart
(`Refreshing` re-reads a file when it changes, and keeps the last good value when a new
one cannot be read).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd

from serving.domain import PackageCandidate

log = logging.getLogger("retain.serving")
T = TypeVar("T")


class Refreshing(Generic[T]):
    """A value read from a file and read again when the file changes.

    The file's identity (resolved path, size, modification time) is checked at most every
    `every_s` seconds; a missing file gives `empty`.
    """

    def __init__(
        self, path: Path, load: Callable[[Path], T], empty: T, every_s: float = 30.0
    ) -> None:
        self.path, self.load, self.empty, self.every_s = path, load, empty, every_s
        self._value: T = empty
        self._identity: tuple[Any, ...] | None = None
        self._checked = -math.inf
        self._lock = threading.Lock()

    def get(self) -> T:
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return self._value
        with self._lock:
            self._checked = now
            try:
                resolved = self.path.resolve(strict=True)
                stat = resolved.stat()
                identity: tuple[Any, ...] | None = (resolved, stat.st_size, stat.st_mtime_ns)
            except OSError:
                identity = None
            if identity == self._identity:
                return self._value
            try:  # the file checked, not whatever the link points to a moment later
                value = self.load(identity[0]) if identity is not None else self.empty
            except Exception:  # a bad file must not fail requests: keep the last good one
                log.exception("cannot read %s; keeping what was read before", self.path)
                return self._value
            self._value, self._identity = value, identity
        return self._value


def read_capacity(path: Path) -> dict[tuple[str, str], int]:
    """`retain forecast`'s callbacks available per (region, YYYY-MM-DD)."""
    table = pd.read_parquet(path)
    days = pd.to_datetime(table["date"], utc=True).dt.strftime("%Y-%m-%d")
    return dict(
        zip(zip(table["region"], days, strict=True), table["callbacks_available"], strict=True)
    )


class CapacityForecast:
    """Account-manager callbacks per region and day, from `retain forecast` when present."""

    def __init__(self, path: Path, default: int) -> None:
        self.default = default
        self.table: Refreshing[dict[tuple[str, str], int]] = Refreshing(path, read_capacity, {})

    def for_day(self, region: str, day: str) -> int:
        return int(self.table.get().get((region, day), self.default))


def read_candidates(path: Path) -> dict[str, list[PackageCandidate]]:
    """`retain forecast`'s campaign candidates, per customer."""
    table = pd.read_parquet(
        path, columns=["customer_id", "package", "region", "week_start", "propensity"]
    )
    found: dict[str, list[PackageCandidate]] = {}
    for row in table.itertuples(index=False):
        week = pd.Timestamp(row.week_start)
        week = week.tz_localize("UTC") if week.tzinfo is None else week.tz_convert("UTC")
        found.setdefault(str(row.customer_id), []).append(
            PackageCandidate(
                str(row.package), str(row.region), week.to_pydatetime(), float(row.propensity)
            )
        )
    return found


def read_do_not_call(path: Path) -> frozenset[str]:
    """The do-not-call list: a CSV with a `customer_id` column."""
    found = pd.read_csv(path, dtype=str)
    if "customer_id" not in found.columns:
        raise ValueError(f"{path}: a customer_id column is expected, found {list(found.columns)}")
    return frozenset(found["customer_id"].dropna().str.strip())
