"""The planted shift (a rival's price war): off by default, nothing changes before it
starts, and from its month the targeted customers call, use less data and leave more."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.lifecycle.validate import validate_directory

WAR = {"regions": ["metro_central"], "start": "2026-09-15", "enquiry_rate": 1.0}
WAR_MONTH = pd.Timestamp("2026-09-01", tz="UTC")  # the war runs from the start's month


def _with_region(world: Path, table: str) -> pd.DataFrame:
    rows = pd.read_parquet(world / f"{table}.parquet")
    regions = pd.read_parquet(world / "customers.parquet", columns=["customer_id", "region"])
    return rows.merge(regions, on="customer_id")


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 1,500 customers x 6 months (to 2026-11-01), without and with the war."""
    root = tmp_path_factory.mktemp("shift")
    base = {"customers": 1_500, "months": 6, "seed": 12}
    generate(DataSettings.model_validate({**base, "out_dir": root / "quiet"}))
    generate(DataSettings.model_validate({**base, "out_dir": root / "war", "shift": WAR}))
    return root / "quiet", root / "war"


def test_no_shift_is_planted_by_default(small_data: Path) -> None:
    assert DataSettings().shift is None
    assert "shift" not in json.loads((small_data / "manifest.json").read_text())


def test_the_shifted_world_is_valid_and_records_its_shift(worlds: tuple[Path, Path]) -> None:
    _, war = worlds
    assert validate_directory(war).ok
    assert json.loads((war / "manifest.json").read_text())["shift"]["regions"] == ["metro_central"]


def test_nothing_changes_before_the_war(worlds: tuple[Path, Path]) -> None:
    quiet, war = worlds
    for table, at in (("service_tickets", "opened_at"), ("usage_monthly", "month")):
        before = [pd.read_parquet(w / f"{table}.parquet") for w in (quiet, war)]
        before = [t[t[at] < WAR_MONTH].reset_index(drop=True) for t in before]
        pd.testing.assert_frame_equal(before[0], before[1])


def test_the_war_regions_customers_call_and_move_data_away(worlds: tuple[Path, Path]) -> None:
    quiet, war = worlds

    def complaints(world: Path) -> pd.Series:
        tickets = _with_region(world, "service_tickets")
        during = tickets[
            (tickets["opened_at"] >= WAR_MONTH) & (tickets["ticket_type"] == "complaint")
        ]
        return during["region"].value_counts()

    calm, called = complaints(quiet), complaints(war)
    assert called["metro_central"] > 5 * calm.get("metro_central", 1)
    elsewhere = called.drop("metro_central").sum()
    assert elsewhere < 2 * calm.drop("metro_central", errors="ignore").sum() + 10

    def data_use(world: Path) -> float:
        usage = _with_region(world, "usage_monthly")
        month = usage[(usage["month"] == WAR_MONTH) & (usage["region"] == "metro_central")]
        return float(month["data_gb"].mean())

    assert data_use(war) < 0.9 * data_use(quiet)


def test_the_war_raises_churn_in_its_regions(worlds: tuple[Path, Path]) -> None:
    quiet, war = worlds

    def churned(world: Path) -> int:
        churn = _with_region(world, "churn_events")
        return int(
            ((churn["churned_at"] >= WAR_MONTH) & (churn["region"] == "metro_central")).sum()
        )

    assert churned(war) > churned(quiet)


def test_an_unknown_region_is_refused_by_name(make_data: Callable[..., Path]) -> None:
    with pytest.raises(ValueError, match=r"unknown region.*atlantis"):
        make_data(customers=200, months=6, shift={"regions": ["atlantis"], "start": "2026-09-01"})
