"""`retain data advance`: the same world one month on, answering the engine's actions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.lifecycle.settings import ChurnDrivers, DataSettings
from features.lifecycle.simulator import generate
from features.lifecycle.simulator.advance import AdvanceError, World, advance_month
from features.lifecycle.validate import validate_directory

SEED = 5


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("advance") / "lifecycle"
    generate(
        DataSettings.model_validate(
            {"out_dir": out, "customers": 1_200, "months": 10, "seed": SEED}
        )
    )
    return out


@pytest.fixture
def copy(world: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(world, tmp_path / "lifecycle"))


def actions(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "action": [r[1] for r in rows],
            "sent_at": pd.to_datetime([r[2] for r in rows], utc=True),
            "assignment_probability": [r[3] for r in rows],
        }
    )


def active_ids(world: Path, count: int) -> list[str]:
    customers = pd.read_parquet(world / "customers.parquet")
    gone = set(pd.read_parquet(world / "churn_events.parquet")["customer_id"])
    return [c for c in customers["customer_id"] if c not in gone][:count]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_a_month_is_appended_answering_the_actions(copy: Path) -> None:
    before = json.loads((copy / "manifest.json").read_text())
    ids = active_ids(copy, 4)
    given = actions(
        [
            (ids[0], "loyalty_discount", "2026-11-01T09:00:00Z", 0.9),
            (ids[1], "callback", "2026-11-03T10:00:00Z", 0.9),
            (ids[2], "none", "2026-11-01T09:00:00Z", 0.05),
            (ids[3], "outage_notice", "2026-11-02T09:00:00Z", 1.0),  # a service message: no effect
        ]
    )
    world = World.open(copy, seed=SEED)
    summary = advance_month(world, given, ChurnDrivers(), month="2026-11")
    after = json.loads((copy / "manifest.json").read_text())
    assert summary.month == "2026-11"
    assert summary.applied == {"loyalty_discount": 1, "callback": 1, "none": 1}
    assert pd.Timestamp(after["as_of"]) == pd.Timestamp("2026-12-01T00:00:00Z")
    assert after["months"] == before["months"] + 1
    assert after["advanced"] == [{"month": "2026-11", "actions": summary.applied}]
    assert validate_directory(copy).ok
    usage = pd.read_parquet(copy / "usage_monthly.parquet")
    assert (
        pd.to_datetime(usage["month"], utc=True) == pd.Timestamp("2026-11-01", tz="UTC")
    ).sum() > 500
    for table in ("usage_monthly", "cell_quality_daily", "truth/churn_hazard"):
        assert after["row_counts"][table] > before["row_counts"][table]
    campaigns = pd.read_parquet(copy / "campaigns.parquet")
    engine = campaigns[campaigns["campaign_id"].str.startswith("ENG-2026-11")].set_index(
        "customer_id"
    )
    assert set(engine.index) == set(ids[:3])
    assert engine.loc[ids[2], "offer_id"] == "none" and not engine.loc[ids[2], "treated"]
    assert engine.loc[ids[0], "assignment_probability"] == pytest.approx(0.9)
    truth = pd.read_parquet(copy / "truth" / "treatment_effects.parquet")
    mine = truth[truth["campaign_id"].str.startswith("ENG-")].set_index("customer_id")
    assert mine.loc[ids[2], "true_effect"] == 0.0
    assert mine.loc[ids[0], "true_effect"] != 0.0
    # nothing of the old months changed: the history is appended to, not rewritten
    old = pd.read_parquet(copy / "churn_events.parquet")
    assert (
        pd.to_datetime(old["churned_at"], utc=True) < pd.Timestamp("2026-11-01", tz="UTC")
    ).sum() == before["row_counts"]["churn_events"]


def test_advancing_is_deterministic_and_follows_the_actions(world: Path, tmp_path: Path) -> None:
    ids = active_ids(world, 300)
    given = actions([(c, "loyalty_discount", "2026-11-01T09:00:00Z", 1.0) for c in ids])
    copies = [Path(shutil.copytree(world, tmp_path / name)) for name in ("a", "b", "c")]
    for folder in copies[:2]:
        advance_month(World.open(folder), given, ChurnDrivers())
    advance_month(World.open(copies[2]), given.iloc[:0], ChurnDrivers())
    first, second, untreated = (snapshot(f) for f in copies)
    assert first == second  # same seed, same actions: the same month
    assert first["churn_events.parquet"] != untreated["churn_events.parquet"]


def test_two_months_in_a_row_stay_valid(copy: Path) -> None:
    for month in ("2026-11", "2026-12"):
        advance_month(World.open(copy), actions([]), ChurnDrivers(), month=month)
    report = validate_directory(copy)
    assert report.ok, report.violations
    tickets = pd.read_parquet(copy / "service_tickets.parquet")
    assert tickets["ticket_id"].is_unique
    events = pd.read_parquet(copy / "network_events.parquet")
    assert not events.duplicated(["event_id", "cell_site_id"]).any()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("C00000001", "free_phone", "2026-11-01T09:00:00Z", 1.0)],
            "unknown action(s) free_phone",
        ),
        (
            [("C09999999", "data_boost", "2026-11-01T09:00:00Z", 1.0)],
            "customers this world does not have",
        ),
        (
            [("C00000001", "data_boost", "2026-10-31T09:00:00Z", 1.0)],
            "sent outside the month advanced",
        ),
        (
            [("C00000001", "data_boost", "2026-11-01T09:00:00Z", 0.0)],
            "assignment_probability outside",
        ),
        (
            [("C00000001", "data_boost", "2026-11-01T09:00:00Z", 1.0)] * 2,
            "repeat a customer's action",
        ),
        (
            [
                ("C00000001", "none", "2026-11-01T09:00:00Z", 0.05),
                ("C00000001", "callback", "2026-11-02T09:00:00Z", 0.9),
            ],
            "both held out (none) and contacted",
        ),
    ],
)
def test_bad_actions_are_refused_and_nothing_is_written(
    copy: Path, rows: list[tuple[str, str, str, float]], message: str
) -> None:
    before = snapshot(copy)
    with pytest.raises(AdvanceError, match=re.escape(message)):
        advance_month(World.open(copy), actions(rows), ChurnDrivers())
    assert snapshot(copy) == before


def test_a_month_twice_another_seed_and_a_missing_column_are_refused(copy: Path) -> None:
    advance_month(World.open(copy), actions([]), ChurnDrivers(), month="2026-11")
    before = snapshot(copy)
    with pytest.raises(AdvanceError, match="already holds 2026-11"):
        advance_month(World.open(copy), actions([]), ChurnDrivers(), month="2026-11")
    with pytest.raises(AdvanceError, match="cannot skip to 2027-02"):
        advance_month(World.open(copy), actions([]), ChurnDrivers(), month="2027-02")
    with pytest.raises(AdvanceError, match=f"world of seed {SEED}, not of seed 9"):
        World.open(copy, seed=9)
    with pytest.raises(AdvanceError, match="missing column"):
        advance_month(World.open(copy), actions([]).drop(columns="action"), ChurnDrivers())
    assert snapshot(copy) == before


def test_a_folder_without_simulator_state_is_refused(copy: Path) -> None:
    shutil.rmtree(copy / "state")
    with pytest.raises(AdvanceError, match="no simulator state"):
        World.open(copy)


def test_an_action_that_was_not_randomized_goes_in_without_a_probability(copy: Path) -> None:
    (customer,) = active_ids(copy, 1)
    given = actions([(customer, "callback", "2026-11-01T09:00:00Z", 1.0)])
    given["assignment_probability"] = None  # an outage callback: a service, not an experiment
    advance_month(World.open(copy), given, ChurnDrivers())
    campaigns = pd.read_parquet(copy / "campaigns.parquet")
    row = campaigns[campaigns["campaign_id"] == "ENG-2026-11-callback"]
    assert len(row) == 1 and row["assignment_probability"].isna().all()
    assert validate_directory(copy).ok


def test_a_sent_at_that_is_not_a_time_is_named(copy: Path) -> None:
    given = actions([("C00000001", "data_boost", "2026-11-01T09:00:00Z", 1.0)])
    given["sent_at"] = ["next tuesday"]
    with pytest.raises(AdvanceError, match="sent_at that is not a time"):
        advance_month(World.open(copy), given, ChurnDrivers())
