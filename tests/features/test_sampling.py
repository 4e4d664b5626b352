"""Negative sampling keeps every churner and the latest months whole, and its weights make
the sample stand for the whole panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.labels import SNAPSHOT
from features.sampling import WEIGHT, NegativeSampling, sample_negatives

LABEL = "churned_within_30d"


def _panel(customers: int = 4_000, months: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    snapshots = pd.date_range("2025-01-01", periods=months, freq="MS", tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": np.tile([f"c{i}" for i in range(customers)], months),
            SNAPSHOT: np.repeat(snapshots, customers),
            LABEL: rng.random(customers * months) < 0.03,
        }
    )


def test_rate_one_returns_the_rows_untouched() -> None:
    rows = _panel(100, 3)
    assert sample_negatives(rows, LABEL, NegativeSampling()) is rows


def test_every_churner_and_every_row_of_the_latest_months_is_kept_with_weight_one() -> None:
    rows = _panel()
    sampled = sample_negatives(rows, LABEL, NegativeSampling(rate=0.1, keep_latest_months=5))
    latest = np.sort(rows[SNAPSHOT].unique())[-5:]
    assert sampled[LABEL].sum() == rows[LABEL].sum()
    recent = sampled[sampled[SNAPSHOT].isin(latest)]
    assert len(recent) == rows[SNAPSHOT].isin(latest).sum()
    assert (recent[WEIGHT] == 1.0).all() and (sampled.loc[sampled[LABEL], WEIGHT] == 1.0).all()
    older_stayers = sampled[~sampled[SNAPSHOT].isin(latest) & ~sampled[LABEL]]
    assert (older_stayers[WEIGHT] == 10.0).all()


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_the_weighted_sample_stands_for_the_whole_panel(rate: float) -> None:
    rows = _panel()
    sampled = sample_negatives(rows, LABEL, NegativeSampling(rate=rate, keep_latest_months=2))
    assert len(sampled) < len(rows)
    total = sampled[WEIGHT].sum()
    assert total == pytest.approx(len(rows), rel=0.03)  # binomial: ~1 % sd at these sizes
    weighted_rate = (sampled[LABEL] * sampled[WEIGHT]).sum() / total
    assert weighted_rate == pytest.approx(rows[LABEL].mean(), rel=0.05)


def test_the_same_seed_draws_the_same_sample_and_another_seed_another() -> None:
    rows = _panel(500, 6)
    first = sample_negatives(rows, LABEL, NegativeSampling(rate=0.3, seed=1))
    assert first.equals(sample_negatives(rows, LABEL, NegativeSampling(rate=0.3, seed=1)))
    assert not first.equals(sample_negatives(rows, LABEL, NegativeSampling(rate=0.3, seed=2)))
