"""Request-time features: one function for training snapshots and live requests."""

from __future__ import annotations

import pandas as pd

from features.request_time import request_time_features


def _at(signup: str, contract: str, request: str) -> pd.Series:
    frame = pd.DataFrame(
        {
            "signup_epoch_s": [int(pd.Timestamp(signup, tz="UTC").timestamp())],
            "contract_type": [contract],
            "request_epoch_s": [int(pd.Timestamp(request, tz="UTC").timestamp())],
        }
    )
    return request_time_features(frame).iloc[0]


def test_tenure_counts_whole_days() -> None:
    assert _at("2026-01-01", "month_to_month", "2026-01-31T23:00:00")["tenure_days"] == 30


def test_days_to_the_end_of_the_running_term() -> None:
    # a one-year contract signed 2025-03-10 renews 2026-03-10, then 2027-03-10
    assert _at("2025-03-10", "one_year", "2026-03-01")["days_to_contract_end"] == 9.0
    assert _at("2025-03-10", "one_year", "2026-03-10")["days_to_contract_end"] == 365.0
    assert _at("2024-02-29", "two_year", "2026-02-27")["days_to_contract_end"] == 1.0


def test_month_to_month_has_no_contract_end() -> None:
    assert _at("2025-03-10", "month_to_month", "2026-03-01")["days_to_contract_end"] == 0.0


def test_an_unknown_customer_gets_missing_values_not_an_error() -> None:
    frame = pd.DataFrame(
        {
            "signup_epoch_s": [None, 1_700_000_000],
            "contract_type": [None, "one_year"],
            "request_epoch_s": [1_750_000_000, 1_750_000_000],
        }
    )
    result = request_time_features(frame)
    assert result["tenure_days"].isna().tolist() == [True, False]
    assert result["days_to_contract_end"].isna().tolist() == [True, False]
