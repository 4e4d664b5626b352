"""The forecasts kept by origin: what each week was forecast to be before it happened."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.demand.jobs import forecast_history


def _forecast(origin: str, p90: float, horizons: int = 2) -> pd.DataFrame:
    start = pd.Timestamp(origin, tz="UTC")
    return pd.DataFrame(
        {
            "region": "harbour",
            "series": "service_load",
            "origin": start,
            "horizon": range(1, horizons + 1),
            "week_start": [start + pd.Timedelta(weeks=h - 1) for h in range(1, horizons + 1)],
            "p90": p90,
        }
    )


def test_each_origin_is_kept_once_the_latest_run_winning_and_old_ones_dropped(
    tmp_path: Path,
) -> None:
    first = forecast_history(tmp_path, _forecast("2024-01-01", 1.0))
    assert len(first) == 2  # nothing published before: the new forecast alone
    first.to_parquet(tmp_path / "forecast_history.parquet", index=False)
    _forecast("2026-10-19", 2.0).to_parquet(tmp_path / "forecast.parquet", index=False)

    found = forecast_history(tmp_path, _forecast("2026-10-26", 3.0))
    assert sorted(found["origin"].dt.date.astype(str).unique()) == ["2026-10-19", "2026-10-26"]
    again = forecast_history(tmp_path, _forecast("2026-10-19", 5.0))  # the same origin rerun
    assert set(again.loc[again["origin"] == pd.Timestamp("2026-10-19", tz="UTC"), "p90"]) == {5.0}
    assert len(again) == 2  # 2024 is older than two years before 2026-10-19
