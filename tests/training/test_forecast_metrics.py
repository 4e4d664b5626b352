"""Forecast measures and naive baselines, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecast_metrics import (
    interval_coverage,
    mase,
    moving_average,
    pinball_loss,
    seasonal_naive,
    wape,
)


def test_wape_is_total_error_over_total_volume() -> None:
    assert wape(np.array([10, 0, 30]), np.array([12, 1, 27])) == pytest.approx(6 / 40)
    assert np.isnan(wape(np.array([0, 0]), np.array([1, 1])))


def test_mase_scales_by_the_naive_in_sample_error() -> None:
    history = np.array([1.0, 3.0, 2.0, 4.0])  # naive one-step errors 2, 1, 2: mean 5/3
    assert mase(np.array([5.0, 5.0]), np.array([4.0, 7.0]), history) == pytest.approx(1.5 / (5 / 3))
    assert np.isnan(mase(np.array([1.0]), np.array([1.0]), np.array([2.0]), season=52))


def test_interval_coverage_counts_the_bounds_as_inside() -> None:
    assert interval_coverage(
        np.array([1, 5, 9]), np.array([1, 6, 0]), np.array([2, 8, 9])
    ) == pytest.approx(2 / 3)


def test_pinball_loss_penalises_under_forecasts_of_a_high_quantile_more() -> None:
    assert pinball_loss(np.array([10.0]), np.array([8.0]), 0.9) == pytest.approx(1.8)
    assert pinball_loss(np.array([10.0]), np.array([12.0]), 0.9) == pytest.approx(0.2)


def test_seasonal_naive_uses_last_year_where_it_can_and_the_last_value_otherwise() -> None:
    history = pd.Series(np.arange(60, dtype=float))  # week t has value t
    # horizon 1 is week 60: a season earlier is week 8
    assert seasonal_naive(history, 3, season=52).tolist() == [8.0, 9.0, 10.0]
    short = pd.Series([5.0, 7.0])
    assert seasonal_naive(short, 2, season=52).tolist() == [7.0, 7.0]


def test_moving_average_repeats_the_recent_mean() -> None:
    assert moving_average(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]), 2, window=4).tolist() == [3.5, 3.5]
