"""The true hazard's ROC-AUC on held-out rows: read from the simulator's truth, or None."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.oracle import oracle_roc_auc, window_hazard

JULY, AUGUST = pd.Timestamp("2026-07-01", tz="UTC"), pd.Timestamp("2026-08-01", tz="UTC")


def _truth(lifecycle: Path, rows: list[tuple[str, pd.Timestamp, float]]) -> None:
    (lifecycle / "truth").mkdir(parents=True)
    frame = pd.DataFrame(rows, columns=["customer_id", "month", "hazard"])
    frame["hazard"] = frame["hazard"].astype("float32")
    frame.to_parquet(lifecycle / "truth" / "churn_hazard.parquet")


def _rows(ids: list[str], at: pd.Timestamp, labels: list[bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": ids, "event_timestamp": at, "churned_within_30d": labels, "x": 1.0}
    )


def test_a_world_without_truth_has_no_oracle(tmp_path: Path) -> None:
    assert oracle_roc_auc(_rows(["a", "b"], JULY, [True, False]), tmp_path) is None


def test_the_oracle_ranks_the_same_rows_by_the_hazard_of_their_snapshot_month(
    tmp_path: Path,
) -> None:
    hazards = {"a": 0.30, "b": 0.02, "c": 0.10, "d": 0.05}
    _truth(
        tmp_path,
        [(c, JULY, h) for c, h in hazards.items()]
        + [(c, AUGUST, 1 - h) for c, h in hazards.items()],  # reversed: out of the window
    )
    rows = _rows(list(hazards), JULY, [True, True, False, False])
    expected = roc_auc_score([1, 1, 0, 0], list(hazards.values()))
    assert oracle_roc_auc(rows, tmp_path) == pytest.approx(expected)
    assert expected == 0.5  # a: 0.30 churned, b: 0.02 churned, c and d in between


def test_a_window_running_into_the_next_month_counts_its_share_of_that_month() -> None:
    february, march = pd.Timestamp("2026-02-01", tz="UTC"), pd.Timestamp("2026-03-01", tz="UTC")
    hazard = pd.DataFrame(
        {"customer_id": ["a", "a"], "month": [february, march], "hazard": [0.1, 0.5]}
    )
    rows = pd.DataFrame({"customer_id": ["a"], "event_timestamp": [february]})
    # 28 days of February, then 2 of March's 31
    survival = 0.9 * 0.5 ** (2 / 31)
    assert window_hazard(rows, hazard, 30).iloc[0] == pytest.approx(1 - survival)


def test_rows_without_a_true_hazard_are_named(tmp_path: Path) -> None:
    _truth(tmp_path, [("a", JULY, 0.1), ("b", JULY, 0.2)])
    rows = _rows(["a", "b", "zz"], JULY, [True, False, False])
    message = r"no true hazard for 1 of 3 test rows, e\.g\. customer zz"
    with pytest.raises(ValueError, match=message):
        oracle_roc_auc(rows, tmp_path)


def test_the_label_column_must_be_there_once(tmp_path: Path) -> None:
    _truth(tmp_path, [("a", JULY, 0.1)])
    rows = _rows(["a"], JULY, [True]).drop(columns="churned_within_30d")
    with pytest.raises(ValueError, match="exactly one label column"):
        oracle_roc_auc(rows, tmp_path)
    rows = rows.assign(churned_within_30d=True, churned_within_60d=True)
    with pytest.raises(ValueError, match="found 2: churned_within_30d, churned_within_60d"):
        oracle_roc_auc(rows, tmp_path)


def test_on_a_simulated_world_the_truth_ranks_better_than_chance(
    small_data: Path,
) -> None:
    hazard = pd.read_parquet(small_data / "truth" / "churn_hazard.parquet")
    churn = pd.read_parquet(small_data / "churn_events.parquet")
    months = hazard["month"].drop_duplicates().sort_values().iloc[-4:-1]  # windows ended
    rows = hazard.loc[hazard["month"].isin(months), ["customer_id", "month"]]
    rows = rows.rename(columns={"month": "event_timestamp"})
    ends = churn.set_index("customer_id")["churned_at"].reindex(rows["customer_id"])
    t = rows["event_timestamp"].set_axis(ends.index)
    left = (ends > t) & (ends <= t + pd.Timedelta(days=30))
    rows["churned_within_30d"] = left.to_numpy()
    auc = oracle_roc_auc(rows, small_data)
    assert auc is not None and auc > 0.7
    assert np.isfinite(auc)
