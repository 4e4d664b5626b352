"""The churn model: better than a logistic baseline, directional, reproducible, calibrated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.sampling import WEIGHT, NegativeSampling, sample_negatives
from tests.training.conftest import LABEL
from training.churn import (
    TrainedChurn,
    held_out_months,
    sample_weights,
    time_split,
    train_churn,
)
from training.metrics import largest_tie_share
from training.settings import TrainingSettings


@pytest.fixture(scope="module")
def demo_model(demo_training_set: pd.DataFrame) -> TrainedChurn:
    return train_churn(demo_training_set, LABEL, TrainingSettings())


def test_beats_the_logistic_baseline_on_the_held_out_months(demo_model: TrainedChurn) -> None:
    assert demo_model.test_metrics["roc_auc"] > demo_model.baseline_test_metrics["roc_auc"]
    # ranking at the top, threshold-free (a single decile's lift moves with a few churners)
    assert demo_model.test_metrics["pr_auc"] > demo_model.baseline_test_metrics["pr_auc"]
    assert demo_model.test_metrics["roc_auc"] > 0.75


def test_the_split_is_by_time(demo_model: TrainedChurn) -> None:
    split = demo_model.split
    assert split.train["event_timestamp"].max() < split.valid["event_timestamp"].min()
    assert split.valid["event_timestamp"].max() < split.test["event_timestamp"].min()
    assert len(split.months("test")) == 3 and len(split.months("valid")) == 2


@pytest.mark.parametrize(
    ("snapshots", "expected"),
    [(12, (2, 3)), (7, (2, 3)), (6, (2, 2)), (5, (1, 2)), (4, (1, 1))],
)
def test_a_short_history_holds_out_fewer_months_and_keeps_two_to_train_on(
    snapshots: int, expected: tuple[int, int]
) -> None:
    assert held_out_months(snapshots, 2, 3) == expected
    valid, test = expected
    assert snapshots - valid - test >= 2


def test_a_history_of_three_months_is_refused_saying_how_many_are_needed() -> None:
    with pytest.raises(ValueError, match="3 snapshot months are too few to train on: at least 4"):
        held_out_months(3, 2, 3)


def test_a_shortened_split_says_so_and_stays_in_time_order(
    demo_training_set: pd.DataFrame,
) -> None:
    snapshots = np.sort(demo_training_set["event_timestamp"].unique())
    five = demo_training_set[demo_training_set["event_timestamp"].isin(snapshots[-5:])]
    split = time_split(five, 2, 3)
    assert (len(split.months("train")), len(split.months("valid")), len(split.months("test"))) == (
        2,
        1,
        2,
    )
    assert split.train["event_timestamp"].max() < split.valid["event_timestamp"].min()
    assert "1 validation and 2 test months held out instead of the configured 2 and 3" in (
        split.shortened
    )
    assert time_split(demo_training_set, 2, 3).shortened == ""


def test_probabilities_are_calibrated(demo_model: TrainedChurn) -> None:
    # on the validation months, which the logistic-type calibrator was fitted on, the mean
    # probability is the churn rate (a fit with an intercept keeps the mean of its data);
    # raw scores (calibration skipped) are nowhere near that
    valid = demo_model.valid_metrics
    assert valid["mean_probability"] == pytest.approx(valid["base_rate"], rel=0.01)
    metrics = demo_model.test_metrics
    assert abs(metrics["mean_probability"] - metrics["base_rate"]) < 0.25 * metrics["base_rate"]
    assert metrics["brier"] < metrics["base_rate"] * (
        1 - metrics["base_rate"]
    )  # beats the base rate
    assert metrics["ece"] < 0.2 * metrics["base_rate"]


def test_the_scores_a_person_reads_have_no_plateaus_and_no_certainties(
    demo_model: TrainedChurn,
) -> None:
    """What the daily list and the API print: the latest month's customers. Isotonic
    calibration put an eighth of them on one probability and some at 100 %."""
    assert demo_model.model.calibrator.method in ("sigmoid", "beta")
    assert set(demo_model.calibration["method"]) == {"sigmoid", "beta"}
    latest = demo_model.split.test
    latest = latest[latest["event_timestamp"] == latest["event_timestamp"].max()]
    scored = demo_model.model.predict_proba(latest)
    assert scored.max() < 0.99
    # no probability shared (to a thousandth of a percentage point) by more than 1 % of
    # the customers: the booster is not that flat anywhere on the demo
    assert largest_tie_share(scored) <= 0.01


@pytest.mark.parametrize(
    ("feature", "change"),
    [
        ("unresolved_tickets", 1),
        ("tickets_complaint_90d", 1),
        ("home_cell_outage_hours_30d", 12.0),
        ("home_cell_outage_hours_90d", 24.0),
        ("repeat_complaints_90d", 1),
        ("days_to_contract_end", -30.0),
    ],
)
def test_more_trouble_never_lowers_the_risk(
    demo_model: TrainedChurn, feature: str, change: float
) -> None:
    rows = demo_model.split.test.sample(2000, random_state=3)
    worse = rows.copy()
    worse[feature] = (
        (worse[feature] + change).clip(lower=0) if change < 0 else worse[feature] + change
    )
    before = demo_model.model.predict_proba(rows)
    after = demo_model.model.predict_proba(worse)
    assert (after >= before - 1e-12).all()
    assert (after > before).any()


def test_the_same_seed_gives_the_same_model(small_training_set: pd.DataFrame) -> None:
    settings = TrainingSettings()
    first = train_churn(small_training_set, LABEL, settings)
    second = train_churn(small_training_set, LABEL, settings)
    np.testing.assert_array_equal(first.test_calibrated, second.test_calibrated)
    assert first.model.booster.model_to_string() == second.model.booster.model_to_string()


def test_too_few_months_is_a_clear_error(small_training_set: pd.DataFrame) -> None:
    snapshots = np.sort(small_training_set["event_timestamp"].unique())
    three = small_training_set[small_training_set["event_timestamp"].isin(snapshots[-3:])]
    with pytest.raises(ValueError, match="3 snapshot months are too few to train on"):
        time_split(three, valid_months=1, test_months=1)
    asked_too_much = time_split(small_training_set, valid_months=6, test_months=6)
    assert len(asked_too_much.months("train")) == 2 and asked_too_much.shortened


def test_contributions_add_up_to_the_raw_score(demo_model: TrainedChurn) -> None:
    rows = demo_model.split.test.head(50)
    contributions = demo_model.model.contributions(rows)
    raw = demo_model.model.raw_proba(rows)
    np.testing.assert_allclose(1 / (1 + np.exp(-contributions.sum(axis=1))), raw, rtol=1e-6)


def test_a_negative_sampled_training_set_trains_with_its_weights(
    small_training_set: pd.DataFrame,
) -> None:
    """Sampled older stayers, weighted: the booster sees fewer rows, the held-out months are
    whole, and the weights are not a feature."""
    settings = TrainingSettings()
    sampled = sample_negatives(
        small_training_set,
        LABEL,
        NegativeSampling(rate=0.3, keep_latest_months=settings.valid_months + settings.test_months),
    )
    trained = train_churn(sampled, LABEL, settings)
    assert WEIGHT not in trained.model.schema.columns
    assert len(trained.split.train) < len(time_split(small_training_set, 2, 3).train)
    assert len(trained.split.test) == len(time_split(small_training_set, 2, 3).test)
    assert sample_weights(trained.split) is not None
    assert 0.5 < trained.test_metrics["roc_auc"] <= 1.0


def test_a_training_set_sampled_in_its_held_out_months_is_refused(
    small_training_set: pd.DataFrame,
) -> None:
    sampled = sample_negatives(
        small_training_set, LABEL, NegativeSampling(rate=0.3, keep_latest_months=1)
    )
    with pytest.raises(ValueError, match=r"valid months .* were negative-sampled"):
        train_churn(sampled, LABEL, TrainingSettings())
