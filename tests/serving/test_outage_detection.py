"""Automatic fault detection: planted spikes, quiet sites, the MAD floor, the two
implementations agreeing, and the backtest against simulated outages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from retain.base.settings import load_settings
from serving.home_cells import HomeCells
from serving.outage_detection import (
    DetectionSettings,
    OutageDataError,
    OutageSettings,
    affected_customers,
    detect_outages,
    detection_backtest,
    score_site_days,
    score_site_days_reference,
)

REPO = Path(__file__).resolve().parents[2]
DAY0 = pd.Timestamp("2026-01-01")
SETTINGS = DetectionSettings()


def quality(sites: int = 4, days: int = 90, seed: int = 0, noise: float = 0.0008) -> pd.DataFrame:
    """Quiet synthetic `cell_quality_daily`: a base drop rate per site plus half-normal
    noise, as the simulator draws it, and a steady load."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(np.log(0.007), 0.35, size=(sites, 1))
    drop = base + np.abs(rng.normal(0, noise, size=(sites, days)))
    load = rng.uniform(0.4, 0.7, size=(sites, 1)) * rng.lognormal(0, 0.06, size=(sites, days))
    return pd.DataFrame(
        {
            "cell_site_id": np.repeat([f"S{i:03d}" for i in range(sites)], days),
            "day": np.tile(pd.date_range(DAY0, periods=days, freq="D", tz="UTC"), sites),
            "drop_rate": drop.ravel(),
            "load": load.ravel(),
        }
    )


def plant(frame: pd.DataFrame, site: str, day: int, add: float, column: str = "drop_rate") -> None:
    """Add `add` to one site-day (day counted from DAY0), in place."""
    at = (frame["cell_site_id"] == site) & (
        frame["day"] == DAY0.tz_localize("UTC") + pd.Timedelta(days=day)
    )
    assert at.sum() == 1
    frame.loc[at, column] += add


def flagged(scored: pd.DataFrame) -> set[tuple[str, int]]:
    rows = scored[scored["flagged"]]
    return {(s, (d - DAY0).days) for s, d in zip(rows["cell_site_id"], rows["day"], strict=True)}


def test_planted_spikes_are_found_on_their_day_and_nowhere_else() -> None:
    frame = quality()
    planted = {("S000", 40): 0.03, ("S001", 55): 0.012, ("S002", 70): 0.25, ("S003", 30): 0.06}
    for (site, day), add in planted.items():
        plant(frame, site, day, add)

    scored = score_site_days(frame, SETTINGS)

    assert flagged(scored) == set(planted)
    severity = dict(
        zip(
            zip(scored["cell_site_id"], scored["day"], strict=True), scored["severity"], strict=True
        )
    )
    assert severity["S000", DAY0 + pd.Timedelta(days=40)] == "major"
    assert severity["S001", DAY0 + pd.Timedelta(days=55)] == "minor"
    assert severity["S002", DAY0 + pd.Timedelta(days=70)] == "critical"


def test_quiet_sites_never_alarm() -> None:
    scored = score_site_days(quality(sites=20, days=200, seed=1), SETTINGS)

    assert not scored["flagged"].any()
    assert scored["z"].max() < SETTINGS.z_threshold


def test_a_site_with_too_little_history_is_not_judged() -> None:
    frame = quality(sites=1, days=40)
    plant(frame, "S000", SETTINGS.min_history_days - 1, 0.2)

    scored = score_site_days(frame, SETTINGS)

    assert scored["baseline"].iloc[: SETTINGS.min_history_days].isna().all()
    assert scored["baseline"].iloc[SETTINGS.min_history_days :].notna().all()
    assert not scored["flagged"].any()


def test_the_mad_floor_bounds_the_z_score_of_a_steady_site() -> None:
    frame = quality(sites=1, days=60, noise=0.0)  # a constant drop rate: MAD 0
    plant(frame, "S000", 45, 0.004)
    lenient = SETTINGS.model_copy(update={"min_excess": 0.0})

    scored = score_site_days(frame, lenient)
    day45 = scored.iloc[45]
    assert day45["z"] == pytest.approx(0.004 / lenient.mad_floor)
    assert flagged(scored) == {("S000", 45)}
    # a higher floor: the same bump is within noise
    assert not score_site_days(frame, lenient.model_copy(update={"mad_floor": 0.001}))[
        "flagged"
    ].any()


def test_a_tiny_bump_on_a_steady_site_stays_below_the_minimum_excess() -> None:
    frame = quality(sites=1, days=60, noise=0.0001)
    plant(frame, "S000", 45, 0.006)

    scored = score_site_days(frame, SETTINGS)

    assert scored.iloc[45]["z"] > SETTINGS.z_threshold
    assert not scored["flagged"].any()


def test_a_lasting_step_alarms_on_its_first_days_only() -> None:
    frame = quality(sites=1, days=120)
    step = frame.index[frame["day"] >= DAY0.tz_localize("UTC") + pd.Timedelta(days=60)]
    frame.loc[step, "drop_rate"] += 0.015  # ageing hardware: months at a higher level

    days = sorted(day for _, day in flagged(score_site_days(frame, SETTINGS)))

    assert days and days[0] == 60
    assert len(days) <= 2


def test_congestion_is_marked_and_said() -> None:
    frame = quality(sites=1, days=60)
    plant(frame, "S000", 50, 0.03)
    plant(frame, "S000", 50, 0.5, column="load")

    [outage] = detect_outages(frame, date(2026, 2, 20), SETTINGS)

    assert outage.congested
    assert "congestion" in outage.reason
    assert outage.load > SETTINGS.load_threshold


def test_the_vectorised_scores_equal_the_site_by_site_reference() -> None:
    frame = quality(sites=3, days=70, seed=5)
    plant(frame, "S000", 40, 0.03)
    plant(frame, "S001", 20, 0.011)
    plant(frame, "S002", 66, 0.2)
    frame = frame.drop(frame.sample(frac=0.1, random_state=2).index)  # days not reported
    frame.loc[frame.index[::17], "load"] = np.nan
    settings = SETTINGS.model_copy(update={"min_history_days": 10})

    fast = score_site_days(frame, settings)
    reference = score_site_days_reference(frame, settings)

    pd.testing.assert_frame_equal(fast, reference)
    assert fast["flagged"].sum() >= 2


def test_detect_outages_reads_up_to_the_day_and_skips_known_events() -> None:
    frame = quality()
    plant(frame, "S000", 50, 0.05)
    plant(frame, "S001", 50, 0.03)
    plant(frame, "S002", 51, 0.05)  # the day after: not seen on day 50
    known = pd.DataFrame(
        {
            "cell_site_id": ["S001"],
            "started_at": [pd.Timestamp("2026-02-20T08:00", tz="UTC")],
            "ended_at": [pd.NaT],  # still open
        }
    )

    found = detect_outages(frame, date(2026, 2, 20), SETTINGS)
    assert [o.cell_site_id for o in found] == ["S000", "S001"]  # largest excess first
    assert found[0].day == date(2026, 2, 20)
    assert found[0].severity == "major"
    assert found[0].excess == pytest.approx(found[0].drop_rate - found[0].baseline)
    assert "drop rate" in found[0].reason

    without_known = detect_outages(frame, date(2026, 2, 20), SETTINGS, known_events=known)
    assert [o.cell_site_id for o in without_known] == ["S000"]


def test_bad_input_names_the_table_and_column() -> None:
    with pytest.raises(OutageDataError, match=r"cell_quality_daily: missing column.*load"):
        score_site_days(quality().drop(columns="load"), SETTINGS)
    doubled = quality(sites=1, days=20)
    with pytest.raises(OutageDataError, match=r"duplicate .* S000"):
        score_site_days(pd.concat([doubled, doubled.iloc[[3]]]), SETTINGS)
    with pytest.raises(OutageDataError, match=r"network_events: missing column.*started_at"):
        detect_outages(quality(), date(2026, 2, 1), SETTINGS, pd.DataFrame({"cell_site_id": []}))
    with pytest.raises(OutageDataError, match="no rows for 2026-06-01"):
        detect_outages(quality(), date(2026, 6, 1), SETTINGS)


def test_settings_load_from_the_config_file_and_refuse_inconsistent_values() -> None:
    loaded = load_settings(OutageSettings, directory=REPO / "configs").detection
    assert loaded.window_days == 28
    assert loaded.min_excess == pytest.approx(0.01)
    with pytest.raises(ValidationError, match="min_history_days"):
        DetectionSettings(window_days=10, min_history_days=14)
    with pytest.raises(ValidationError, match="critical_excess"):
        DetectionSettings(major_excess=0.3)


def test_affected_customers_are_the_active_ones_homed_on_each_site(tmp_path: Path) -> None:
    pd.DataFrame(
        {"customer_id": ["C1", "C2", "C3", "C4"], "cell_site_id": ["S000", "S000", "S001", "S000"]}
    ).to_parquet(tmp_path / "customer_profile.parquet")
    snapshot = pd.Timestamp("2026-03-01", tz="UTC")
    pd.DataFrame(  # C4 left before the latest snapshot
        {"customer_id": ["C1", "C2", "C3", "C4"], "event_timestamp": [snapshot] * 3 + [DAY0]}
    ).to_parquet(tmp_path / "customer_activity.parquet")
    frame = quality()
    plant(frame, "S000", 50, 0.05)
    plant(frame, "S002", 50, 0.05)
    outages = detect_outages(frame, date(2026, 2, 20), SETTINGS)
    home_cells = HomeCells.of(tmp_path)
    assert home_cells is not None

    assert affected_customers(outages, home_cells) == {"S000": ["C1", "C2"], "S002": []}


def test_the_backtest_counts_detections_by_delay_and_false_alarms() -> None:
    frame = quality(sites=3, days=100)
    plant(frame, "S000", 40, 0.01 * 0.2)  # an outage too small to see: missed
    plant(frame, "S001", 60, 0.004)  # starts late in the day: seen the next day
    plant(frame, "S001", 61, 0.05)
    plant(frame, "S002", 80, 0.06)  # no event recorded: a false alarm
    plant(frame, "S002", 5, 0.06)  # before the site has history: not judged
    events = pd.DataFrame(
        {
            "cell_site_id": ["S000", "S001", "S002"],
            "started_at": pd.to_datetime(
                ["2026-02-10T10:00", "2026-03-02T23:00", "2026-01-06T09:00"], utc=True
            ),
            "ended_at": pd.to_datetime(
                ["2026-02-10T13:00", "2026-03-03T12:00", "2026-01-06T12:00"], utc=True
            ),
            "severity": ["major", "major", "major"],
        }
    )

    report = detection_backtest(frame, events, SETTINGS)

    major = report.by_severity["major"]
    assert (major.outages, major.same_day, major.next_day, major.not_judged) == (2, 0, 1, 1)
    assert major.rate == pytest.approx(0.5)
    assert report.false_alarms == 1
    # quiet: judged site-days with no event within a day (S000: 39-41, S001: 59-62 excluded)
    judged = 3 * (100 - SETTINGS.min_history_days)
    assert report.quiet_site_days == judged - 3 - 4
    assert report.false_alarms_per_100_site_weeks == pytest.approx(
        100 / (report.quiet_site_days / 7)
    )


@pytest.mark.parametrize("world", [{}, {"customers": 3_000, "months": 12, "seed": 11}])
def test_on_simulated_worlds_most_major_outages_are_found_within_a_day_with_few_false_alarms(
    world: dict[str, int], small_data: Path, make_data: Callable[..., Path]
) -> None:
    folder = make_data(**world) if world else small_data
    report = detection_backtest(
        pd.read_parquet(folder / "cell_quality_daily.parquet"),
        pd.read_parquet(folder / "network_events.parquet"),
        SETTINGS,
    )

    assert report.severe.outages >= 10
    assert report.severe.rate >= 0.8
    assert report.false_alarms_per_100_site_weeks <= 1.0
