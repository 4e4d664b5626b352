"""Which active customers are homed on each cell site: who an outage reaches."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import pandas as pd

FEATURE_TABLES = ("customer_profile.parquet", "customer_activity.parquet")


class OutageIndexError(RuntimeError):
    """Affected customers cannot be found: the feature tables are missing."""


class HomeCells:
    """Active customers (the latest activity snapshot) per home cell site.

    Built at the first outage, not at start-up: reading the snapshot is outage work.
    """

    def __init__(self, tables_dir: Path) -> None:
        self.tables_dir = tables_dir

    @classmethod
    def of(cls, tables_dir: Path) -> HomeCells | None:
        """The index over `tables_dir`, or None when the feature tables are not there."""
        return cls(tables_dir) if all((tables_dir / t).exists() for t in FEATURE_TABLES) else None

    @cached_property
    def by_site(self) -> dict[str, list[str]]:
        profile = pd.read_parquet(
            self.tables_dir / "customer_profile.parquet", columns=["customer_id", "cell_site_id"]
        )
        latest = pd.read_parquet(
            self.tables_dir / "customer_activity.parquet",
            columns=["customer_id", "event_timestamp"],
        )
        latest = latest[latest["event_timestamp"] == latest["event_timestamp"].max()]
        active = profile[profile["customer_id"].isin(latest["customer_id"])]
        sites = active.groupby("cell_site_id")["customer_id"]
        return {str(site): list(customers) for site, customers in sites}

    def customers(self, sites: Sequence[str]) -> list[str]:
        return sorted({c for site in sites for c in self.by_site.get(site, [])})
