"""Small, exact checks of the metric formulas and of the model's input preparation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.metrics import lift_and_capture, profit_curve
from training.model import Calibrator, FeatureSchema
from training.settings import Economics


def test_lift_and_capture_on_a_hand_computed_case() -> None:
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    lift, capture = lift_and_capture(labels, scores, 0.2)  # top 2 rows, both churners
    assert lift == pytest.approx(1.0 / 0.3)
    assert capture == pytest.approx(2 / 3)


def test_profit_curve_counts_offers_and_saves() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    economics = Economics(offer_cost=10, customer_value=100, save_rate=0.5)
    curve = profit_curve(labels, scores, economics, points=4)
    # top 1: one churner reached (50) - 1 offer; top 2: 50 - 20; top 3: 100 - 30; all: 100 - 40
    assert curve["net_value"].tolist() == [40.0, 30.0, 70.0, 60.0]


def test_the_schema_reads_numbers_stored_as_text_categories_and_unseen_levels() -> None:
    train = pd.DataFrame({"plan": ["a", "b", None], "code": [1, 2, 1], "n": [1, 2, 3]}).astype(
        {"code": object}
    )
    schema = FeatureSchema.infer(train, ["plan", "code", "n"])
    assert set(schema.categories) == {"plan", "code"} and schema.numeric == ["n"]
    served = pd.DataFrame({"plan": ["b", "zzz"], "code": [2, 3], "n": [None, 4]}).astype(
        {"code": object}
    )
    prepared = schema.transform(served)
    assert prepared["plan"].tolist()[0] == "b" and pd.isna(prepared["plan"].tolist()[1])
    assert prepared["code"].tolist()[0] == "2"  # a number matches its text level
    assert np.isnan(prepared["n"].iloc[0]) and prepared["n"].iloc[1] == 4.0


def test_isotonic_calibration_keeps_the_ranking_and_the_level() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 0.2, 5000)
    labels = (rng.uniform(size=5000) < raw).astype(int)
    calibrated = Calibrator("isotonic").fit(raw, labels)(raw)
    assert len(np.unique(calibrated)) == len(np.unique(raw))  # no ties: order is the booster's
    assert abs(calibrated.mean() - labels.mean()) < 0.002
