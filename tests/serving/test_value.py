"""Customer value from expected remaining lifetime: the feature advance, the hazard path
against a pandas reference, the request path against the batch path, and the served API."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.request_time import request_time_values
from serving.domain import CustomerScore, CustomerValue
from serving.policy import best_offer, customer_value
from serving.settings import ActionPolicy, CustomerValueSettings
from serving.value import CachedValues, customer_values
from tests.serving.builders import contact, score
from tests.serving.conftest import Served, active_ids, open_scorer
from training import value
from training.model import Calibrator, ChurnModel, FeatureSchema
from training.value import MONTH_DAYS, advance, discount_factors, hazards, lifetimes

CONTRACTS = ["month_to_month", "one_year", "two_year"]
SETTINGS = CustomerValueSettings(horizon_months=24, margin_rate=0.5, annual_discount_rate=0.1)


def _customers(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contract = rng.choice(CONTRACTS, n)
    term = pd.Series(contract).map({"month_to_month": 0, "one_year": 12, "two_year": 24})
    term = term.to_numpy(dtype="float64")
    return pd.DataFrame(
        {
            "tenure_days": rng.integers(0, 2000, n).astype("float64"),
            "days_to_contract_end": np.where(term > 0, rng.uniform(0, 1, n) * term * 30 + 1, 0.0),
            "monthly_fee": rng.uniform(10, 150, n),
            "contract_type": contract,
        }
    )


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    """A small booster whose hazard falls with tenure, rises near a contract's end and is
    highest month-to-month, as the simulator's does."""
    frame = _customers(4000)
    logit = (
        -3.0
        + 1.2 * np.exp(-frame["tenure_days"] / 240)
        + 1.3 * (frame["contract_type"] != "month_to_month") * (frame["days_to_contract_end"] < 60)
        + frame["contract_type"].map({"month_to_month": 1.0, "one_year": -0.5, "two_year": -1.4})
    )
    labels = np.random.default_rng(1).random(len(frame)) < 1 / (1 + np.exp(-logit))
    schema = FeatureSchema.infer(frame, list(frame.columns))
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 7, "seed": 1},
        lgb.Dataset(schema.transform(frame), labels.astype(int)),
        num_boost_round=40,
    )
    raw = np.asarray(booster.predict(schema.transform(frame)))
    return ChurnModel(schema, booster, Calibrator("sigmoid").fit(raw, labels.astype(int)))


def test_tenure_grows_and_a_term_counts_down_then_renews_on_its_anniversary() -> None:
    frame = pd.DataFrame(
        {
            "tenure_days": [100.0, 400.0, np.nan],
            "days_to_contract_end": [0.0, 10.0, 45.0],
            "contract_type": ["month_to_month", "two_year", "one_year"],
        }
    )
    schema = FeatureSchema.infer(frame, list(frame.columns))
    moved = advance(schema, schema.frame_matrix(frame), 3)  # (steps, customers, features)
    tenure, left = schema.columns.index("tenure_days"), schema.columns.index("days_to_contract_end")
    np.testing.assert_array_equal(moved[:, 0, tenure], [100, 130, 160])
    np.testing.assert_array_equal(moved[:, 0, left], [0, 0, 0])  # free to leave, always
    two_years = 24 * MONTH_DAYS
    np.testing.assert_allclose(moved[:, 1, left], [10, two_years - 20, two_years - 50])
    assert np.isnan(moved[:, 2, tenure]).all()  # unknown stays unknown
    np.testing.assert_allclose(moved[:, 2, left], [45, 15, 12 * MONTH_DAYS - 15])


def test_the_advance_follows_the_feature_pipelines_contract_calendar() -> None:
    """Advancing a row 30 days at a time lands within two days of what the request-time
    features say at that later instant (calendar months are 28 to 31 days long), the
    renewals included."""
    rng = np.random.default_rng(3)
    at = pd.Timestamp("2026-11-02T08:00", tz="UTC").timestamp()
    signup = at - rng.uniform(1, 3000, 300) * 86_400
    contract = rng.choice(["one_year", "two_year"], 300)
    tenure, left = request_time_values(signup, list(contract), np.full(300, at))
    frame = pd.DataFrame(
        {"tenure_days": tenure, "days_to_contract_end": left, "contract_type": contract}
    )
    schema = FeatureSchema.infer(frame, list(frame.columns))
    moved = advance(schema, schema.frame_matrix(frame), 24)
    j = schema.columns.index("days_to_contract_end")
    term = np.where(contract == "one_year", 12, 24) * MONTH_DAYS
    for step in range(24):
        later = np.full(300, at + 30 * 86_400 * step)
        _, truth = request_time_values(signup, list(contract), later)
        gap = np.abs(moved[step, :, j] - truth)
        # on the circle of the term: a day before a renewal is a day from a full new term
        assert np.minimum(gap, np.abs(term - gap)).max() <= 2.0, step


def test_hazards_and_lifetimes_equal_a_pandas_reference(model: ChurnModel) -> None:
    frame = _customers(25, seed=5)
    horizon = 24
    found = lifetimes(
        model, model.schema.frame_matrix(frame), frame["monthly_fee"], horizon, 0.5, 0.1
    )
    for i, row in frame.iterrows():
        steps = pd.DataFrame([row] * horizon).reset_index(drop=True)
        shift = 30.0 * np.arange(horizon)
        steps["tenure_days"] = row["tenure_days"] + shift
        if row["contract_type"] != "month_to_month":
            term = (12 if row["contract_type"] == "one_year" else 24) * MONTH_DAYS
            left = row["days_to_contract_end"] - shift
            steps["days_to_contract_end"] = np.where(left > 0, left, term - np.mod(-left, term))
        h = model.predict_proba(steps)  # the pandas path, row by row
        np.testing.assert_allclose(found.hazards[i], h, rtol=1e-12)
        survival = np.cumprod(1 - h)
        assert found.months[i] == pytest.approx(survival.sum(), rel=1e-12)
        margin = sum(
            survival[k] * row["monthly_fee"] * 0.5 / 1.1 ** ((k + 1) / 12) for k in range(horizon)
        )
        assert found.margin[i] == pytest.approx(margin, rel=1e-12)


def test_one_customer_at_a_time_equals_the_chunked_batch(
    model: ChurnModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API values a request's rows, the daily list thousands in chunks: the same."""
    frame = _customers(300, seed=8)
    matrix = model.schema.matrix({c: frame[c].tolist() for c in model.schema.columns})
    fees = frame["monthly_fee"].to_numpy()
    monkeypatch.setattr(value, "CHUNK_ROWS", 24 * 7)  # seven customers a chunk: 43 chunks
    batch = customer_values(model, matrix, fees, SETTINGS)
    single = [
        customer_values(model, matrix[i : i + 1], fees[i : i + 1], SETTINGS)[0] for i in range(300)
    ]
    for one, many in zip(single, batch, strict=True):
        assert one.expected_margin == pytest.approx(many.expected_margin, rel=1e-12)
        assert one.expected_months == pytest.approx(many.expected_months, rel=1e-12)
        assert one.horizon_months == many.horizon_months == 24


def test_the_apis_cache_returns_what_it_would_compute(model: ChurnModel) -> None:
    frame = _customers(50, seed=9)
    matrix = model.schema.frame_matrix(frame)
    fees = frame["monthly_fee"].to_numpy()
    computed = customer_values(model, matrix, fees, SETTINGS)
    cached = CachedValues(model, SETTINGS.model_copy(update={"cache": 1000}))
    first = [cached(matrix[i : i + 1], fees[i : i + 1])[0] for i in range(50)]
    again = cached(matrix, fees)  # every row a hit: the very values computed first
    assert first == computed and all(a is b for a, b in zip(again, first, strict=True))
    dearer = cached(matrix[:1], fees[:1] * 2)[0]  # another fee: another input
    assert dearer.expected_margin == pytest.approx(2 * first[0].expected_margin)
    uncached = CachedValues(model, SETTINGS.model_copy(update={"cache": 0}))
    assert uncached(matrix, fees) == computed and len(uncached.cache) == 0


def test_value_falls_with_risk_and_a_two_year_customer_is_worth_more(model: ChurnModel) -> None:
    same = {"tenure_days": 900.0, "monthly_fee": 100.0}
    frame = pd.DataFrame(
        [
            {**same, "contract_type": "month_to_month", "days_to_contract_end": 0.0},
            {**same, "contract_type": "two_year", "days_to_contract_end": 400.0},
        ]
    )
    monthly, two_year = customer_values(
        model, model.schema.frame_matrix(frame), frame["monthly_fee"].to_numpy(), SETTINGS
    )
    h = hazards(model, model.schema.frame_matrix(frame), 1)[:, 0]
    assert h[0] > h[1] and monthly.expected_margin < two_year.expected_margin
    # a certain stayer is worth the discounted margin of every month, no more
    ceiling = 100 * 0.5 * discount_factors(24, 0.1).sum()
    assert two_year.expected_margin < ceiling and 0 < monthly.expected_months < 24


def test_an_unknown_fee_is_worth_nothing_and_no_rows_no_values(model: ChurnModel) -> None:
    frame = _customers(2)
    matrix = model.schema.frame_matrix(frame)
    worth = customer_values(model, matrix, np.array([np.nan, 50.0]), SETTINGS)
    assert worth[0].expected_margin == 0 and worth[1].expected_margin > 0
    assert customer_values(model, matrix[:0], np.array([]), SETTINGS) == []


def test_the_decision_rules_read_the_scores_value_not_the_fee() -> None:
    cheap, dear = score(0.25, value=400.0), score(0.25, value=4000.0)  # the same fee of 100
    policy = ActionPolicy()
    assert best_offer(cheap, contact(), policy) is None or (
        best_offer(dear, contact(), policy).expected_value  # type: ignore[union-attr]
        > best_offer(cheap, contact(), policy).expected_value  # type: ignore[union-attr]
    )
    made = best_offer(dear, contact(), policy)
    assert made is not None and "value 4000 (expected 24-month margin)" in made.reason
    unvalued = CustomerScore("C9", 0.3, "high", [], contact())
    with pytest.raises(ValueError, match="C9 was scored without a customer value"):
        customer_value(unvalued)


def test_the_api_scores_carry_the_value_of_the_batch_path(served: Served) -> None:
    scorer = open_scorer(served)
    ids = active_ids(served)[:40]
    at = pd.Timestamp("2026-11-02T08:00", tz="UTC")
    scored = [s for s in scorer.score(ids, at) if isinstance(s, CustomerScore)]
    assert len(scored) == 40
    rows = scorer.reader.read(ids, at)
    model = scorer.loaded.model
    matrix = model.schema.matrix({c: list(rows.columns[c]) for c in model.schema.columns})
    fees = np.array([float(f) for f in rows.columns["monthly_fee"]])
    batch = customer_values(model, matrix, fees, served.settings.actions.value)
    for item, expected in zip(scored, batch, strict=True):
        assert isinstance(item.value, CustomerValue)
        assert item.value.expected_margin == pytest.approx(expected.expected_margin, rel=1e-12)
        assert 0 < item.value.expected_months <= 24
