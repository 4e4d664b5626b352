"""Calibration is what the churn model serves: the rules of `training.model`, on a tiny booster.

The served probability is `calibrate(raw)`: the booster's raw score through the calibrator
that `train_churn` fits on the validation months (isotonic with a 1e-6 tie-break slope,
or Platt), clipped to [0, 1]. The model's input preparation (`FeatureSchema`) is pinned
here too, since every probability goes through it. A few hundred synthetic rows and ~20
trees: no simulator, no Feast store, no MLflow run.
"""

from __future__ import annotations

import functools
import pickle
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from training import churn as churn_module
from training.calibration import choose_calibration, out_of_fold
from training.churn import TrainedChurn, train_churn
from training.metrics import expected_calibration_error, largest_tie_share
from training.model import (
    Calibrator,
    ChurnModel,
    ChurnPyfunc,
    FeatureSchema,
    _level_codes,
    _missing,
    _number,
)
from training.settings import TrainingSettings

LABEL = "churned"
LEVELS = ["annual", "monthly", "two_year"]
SCHEMA_COLUMNS = ["tickets", "fee", "contract"]
MONTHS = pd.date_range("2025-01-31", periods=6, freq="ME")
TIE_BREAK = 1e-6


def _panel(customers: int = 400, seed: int = 0) -> pd.DataFrame:
    """Customers x 6 month-ends. The last two months churn more than the features explain
    (a shift the booster, fitted on the first four, cannot know): raw scores there are
    too low, and only a calibrator fitted on those months brings them to the churn rate."""
    rng = np.random.default_rng(seed)
    parts = []
    for m, month in enumerate(MONTHS):
        tickets = rng.poisson(1.0, customers).astype(float)  # many zeros
        fee = rng.uniform(10, 80, customers)
        fee[rng.uniform(size=customers) < 0.1] = np.nan
        contract = rng.choice(LEVELS, customers).astype(object)
        contract[rng.uniform(size=customers) < 0.05] = None
        shift = 1.5 if m >= 4 else 0.0
        logit = -2.5 + 0.9 * tickets - 0.02 * np.nan_to_num(fee, nan=45.0)
        logit += np.where(contract == "monthly", 1.0, 0.0) + shift
        churned = rng.uniform(size=customers) < 1 / (1 + np.exp(-logit))
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": [f"C{i:05d}" for i in range(customers)],
                    "event_timestamp": month,
                    "tickets": tickets,
                    "fee": fee,
                    "contract": contract,
                    LABEL: churned.astype(int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _prepared(frame: pd.DataFrame) -> pd.DataFrame:
    """What `FeatureSchema.transform` makes of `_panel` rows, written out by hand (the
    booster below is cached across tests, so it must not depend on the code under test)."""
    return pd.DataFrame(
        {
            "tickets": frame["tickets"].astype("float64"),
            "fee": frame["fee"].astype("float64"),
            "contract": pd.Categorical(frame["contract"], categories=LEVELS),
        },
        index=frame.index,
    )


@functools.cache
def _booster() -> lgb.Booster:
    """20 trees on the first four months; deterministic, one thread."""
    train = _panel().query("event_timestamp < @MONTHS[4]")
    params = {
        "objective": "binary",
        "verbosity": -1,
        "num_threads": 1,
        "deterministic": True,
        "seed": 1,
        "num_leaves": 7,
        "min_child_samples": 10,
        "learning_rate": 0.2,
    }
    return lgb.train(params, lgb.Dataset(_prepared(train), train[LABEL]), num_boost_round=20)


def _schema() -> FeatureSchema:
    return FeatureSchema(numeric=["tickets", "fee"], categories={"contract": list(LEVELS)})


def _late_rows() -> pd.DataFrame:
    """The shifted months (what `train_churn` would call validation and test)."""
    return _panel().query("event_timestamp >= @MONTHS[4]")


def _fitted_model(method: str = "isotonic") -> ChurnModel:
    late = _late_rows()
    booster = _booster()
    raw = np.asarray(booster.predict(_prepared(late)))
    return ChurnModel(_schema(), booster, Calibrator(method).fit(raw, late[LABEL].to_numpy()))


# --- the isotonic calibrator ------------------------------------------------------------

# four scores and labels whose isotonic fit is 0, 0.5, 0.5, 1 (the middle two pool)
HAND_RAW = np.array([0.1, 0.3, 0.5, 0.7])
HAND_LABELS = np.array([0, 1, 0, 1])


def test_isotonic_calibration_of_hand_made_scores_is_the_step_fit_plus_the_tie_break() -> None:
    calibrator = Calibrator("isotonic").fit(HAND_RAW, HAND_LABELS)
    queries = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    fitted = np.array([0.0, 0.25, 0.5, 0.5, 0.5, 0.75, 1.0])  # linear between the steps
    np.testing.assert_allclose(
        calibrator(queries), fitted + TIE_BREAK * queries, rtol=0, atol=1e-15
    )


def test_isotonic_scores_outside_the_fitted_range_take_the_end_steps() -> None:
    calibrator = Calibrator("isotonic").fit(HAND_RAW, HAND_LABELS)
    below, above = np.array([0.0, 0.05, -0.5]), np.array([0.8, 1.0, 1.5])
    # the step is clipped, the tie-break slope is not
    np.testing.assert_allclose(calibrator(below), TIE_BREAK * below, rtol=0, atol=1e-15)
    np.testing.assert_allclose(calibrator(above), 1.0 + TIE_BREAK * above, rtol=0, atol=1e-15)


def test_the_model_clips_calibrated_probabilities_to_the_unit_interval() -> None:
    model = ChurnModel(_schema(), _booster(), Calibrator("isotonic").fit(HAND_RAW, HAND_LABELS))
    raw = np.array([-0.5, 0.0, 0.2, 0.7, 0.9, 1.5])
    # 0 - 5e-7 and 1 + 7e-7, 1 + 9e-7, 1 + 1.5e-6 leave [0, 1]: they clip to its ends
    expected = [0.0, 0.0, 0.25 + TIE_BREAK * 0.2, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(model.calibrate(raw), expected, rtol=0, atol=1e-15)
    assert model.calibrate(raw)[[0, 3, 4, 5]].tolist() == [0.0, 1.0, 1.0, 1.0]


scores = st.lists(
    st.floats(0.0, 1.0, allow_nan=False).map(lambda v: round(v, 3)), min_size=2, max_size=40
)


@given(raw=scores, coins=st.lists(st.booleans(), min_size=40, max_size=40), queries=scores)
def test_isotonic_calibration_is_sklearns_clipped_isotonic_fit_plus_1e6_times_the_score(
    raw: list[float], coins: list[bool], queries: list[float]
) -> None:
    labels = np.array(coins[: len(raw)], dtype=int)
    fitted = Calibrator("isotonic").fit(np.array(raw), labels)
    x = np.array([*queries, -0.25, 1.25])  # and outside every fitted range
    reference = IsotonicRegression(out_of_bounds="clip").fit(np.array(raw), labels)
    assert np.array_equal(fitted(x), reference.predict(x) + TIE_BREAK * x)


@given(raw=scores, coins=st.lists(st.booleans(), min_size=40, max_size=40), queries=scores)
def test_isotonic_calibration_is_monotone_and_breaks_every_tie(
    raw: list[float], coins: list[bool], queries: list[float]
) -> None:
    labels = np.array(coins[: len(raw)], dtype=int)
    fitted = Calibrator("isotonic").fit(np.array(raw), labels)
    x = np.unique(queries)  # sorted, distinct (at least 1e-3 apart)
    calibrated = fitted(x)
    assert (np.diff(calibrated) > 0).all()  # strictly: the booster's ranking is kept
    assert ((calibrated >= 0) & (calibrated <= 1 + TIE_BREAK)).all()


@pytest.mark.parametrize("method", ["isotonic", "sigmoid", "beta"])
def test_calibration_before_fitting_is_refused(method: str) -> None:
    with pytest.raises(AssertionError, match=r"^calibrator used before fit$"):
        Calibrator(method)(np.array([0.5]))


def test_an_unknown_method_is_named() -> None:
    with pytest.raises(ValueError, match="'venn': expected sigmoid, beta or isotonic"):
        Calibrator("venn").fit(HAND_RAW, HAND_LABELS)


# --- Platt scaling ------------------------------------------------------------------------


# The logit Platt reads: log(p / (1 - p)) inside (0, 1); a score of 0 or 1 has none, so
# the score is kept within [1e-9, 1 - 1e-9] and its complement at least 1e-9
LOGIT_OF_0 = np.log(1e-9)
LOGIT_OF_1 = np.log((1 - 1e-9) / 1e-9)


def _logit(p: np.ndarray) -> np.ndarray:
    """The logit of scores inside (0, 1), as a column."""
    return np.log(p / (1 - p)).reshape(-1, 1)


def _platt_data() -> tuple[np.ndarray, np.ndarray]:
    """Scores that say little (churn rises from ~0.3 to ~0.45 across them): a flat fit, so
    even the ends map to mid-range probabilities, where every bit of the logit shows."""
    rng = np.random.default_rng(4)
    raw = np.concatenate([[0.0, 1.0], rng.uniform(0.01, 0.99, 300)])
    labels = (rng.uniform(size=len(raw)) < 0.3 + 0.15 * raw).astype(int)
    return raw, labels


def test_platt_calibration_is_a_logistic_regression_on_the_logit_of_the_score() -> None:
    raw, labels = _platt_data()
    fitted = Calibrator("sigmoid").fit(raw, labels)
    logits = np.concatenate([[[LOGIT_OF_0], [LOGIT_OF_1]], _logit(raw[2:])])
    reference = LogisticRegression(C=1e6).fit(logits, labels)
    inside = np.array([1e-6, 0.001, 0.05, 0.2, 0.5, 0.9, 0.999])
    close = functools.partial(np.testing.assert_allclose, rtol=1e-10, atol=0)
    close(fitted(inside), reference.predict_proba(_logit(inside))[:, 1])
    ends = reference.predict_proba(np.array([[LOGIT_OF_0], [LOGIT_OF_1]]))[:, 1]
    close(fitted(np.array([0.0, 1.0])), ends)
    assert 0.1 < ends[0] < ends[1] < 0.9  # mid-range: the fit is flat, not the identity
    # scores outside [0, 1] calibrate like the nearest end
    assert np.array_equal(fitted(np.array([-0.5, 1.5])), fitted(np.array([0.0, 1.0])))


def test_platt_fits_scores_outside_the_unit_interval_like_the_nearest_end() -> None:
    raw, labels = _platt_data()
    outside = raw.copy()
    outside[:2] = [-0.5, 1.5]  # in place of 0 and 1
    probe = np.linspace(0, 1, 11)
    reference = Calibrator("sigmoid").fit(raw, labels)
    assert np.array_equal(Calibrator("sigmoid").fit(outside, labels)(probe), reference(probe))


# --- the model: what it serves -------------------------------------------------------------


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_predict_proba_is_the_calibrated_raw_score(method: str) -> None:
    model = _fitted_model(method)
    rows = _late_rows()
    raw = model.raw_proba(rows)
    assert np.array_equal(raw, _booster().predict(_prepared(rows)))
    served = model.predict_proba(rows)
    assert np.array_equal(served, np.clip(model.calibrator(raw), 0.0, 1.0))
    assert np.array_equal(served, model.calibrate(raw))
    # and calibration moved them: the late months churn more than the booster says
    assert np.abs(served - raw).min() > 0
    assert served.mean() - raw.mean() > 0.05


def test_the_pyfunc_serves_the_calibrated_probability_per_row() -> None:
    model = _fitted_model()
    rows = _late_rows().iloc[::7]
    out = ChurnPyfunc(model).predict(None, rows)
    assert list(out.columns) == ["churn_probability"]
    assert out.index.equals(rows.index)
    assert np.array_equal(out["churn_probability"].to_numpy(), model.predict_proba(rows))


def test_contributions_are_the_boosters_treeshap_per_feature_plus_bias() -> None:
    model = _fitted_model()
    rows = _late_rows().iloc[:40]
    contributions = model.contributions(rows)
    assert list(contributions.columns) == [*SCHEMA_COLUMNS, "bias"]
    assert contributions.index.equals(rows.index)
    stock = _booster().predict(_prepared(rows), pred_contrib=True)
    assert np.array_equal(contributions.to_numpy(), stock)
    raw = model.raw_proba(rows)
    np.testing.assert_allclose(1 / (1 + np.exp(-contributions.sum(axis=1))), raw, rtol=1e-12)


# --- the model's input: how rows become what the booster reads ---------------------------


def test_infer_makes_text_columns_categoricals_with_their_sorted_levels() -> None:
    frame = pd.DataFrame(
        {
            "plan": ["b", None, "a", "b"],
            "code": pd.Series([10, 2, None, 1], dtype=object),  # numbers as objects: text levels
            "region": pd.Series(["n", "s", "n", None], dtype="string"),
            "band": pd.Categorical(["hi", "lo", "hi", "lo"]),
            "n": [1, 2, 3, 4],
            "fee": [1.5, None, 2.5, 3.0],
            "flag": [True, False, True, True],
            "ignored": ["x", "y", "z", "w"],
        }
    )
    schema = FeatureSchema.infer(frame, ["n", "plan", "code", "fee", "region", "band", "flag"])
    assert schema.numeric == ["n", "fee", "flag"]
    assert schema.categories == {
        "plan": ["a", "b"],
        "code": ["1", "10", "2"],  # sorted as text
        "region": ["n", "s"],
        "band": ["hi", "lo"],
    }
    assert schema.columns == ["n", "fee", "flag", "plan", "code", "region", "band"]


def _ugly_rows() -> pd.DataFrame:
    """Served rows as they come: numbers as text, booleans, gaps, unseen and numeric levels."""
    return pd.DataFrame(
        {
            "contract": ["monthly", None, "lifetime", "two_year", np.nan, "annual"],
            "fee": ["35.5", "abc", None, 12, True, 0.0],
            "tickets": [0, 2, 1, 3, 0, 1],
            "extra": [1, 2, 3, 4, 5, 6],  # not a model column
        }
    ).astype({"fee": object})


def test_transform_gives_the_schema_columns_in_order_as_numbers_and_categories() -> None:
    prepared = _schema().transform(_ugly_rows())
    assert list(prepared.columns) == SCHEMA_COLUMNS
    assert prepared["tickets"].dtype == "float64" and prepared["fee"].dtype == "float64"
    fee = prepared["fee"].tolist()
    assert fee[0] == 35.5 and fee[3] == 12.0 and fee[4] == 1.0 and fee[5] == 0.0
    assert np.isnan(fee[1]) and np.isnan(fee[2])  # not a number, missing
    assert list(prepared["contract"].cat.categories) == LEVELS
    contract = prepared["contract"].tolist()
    assert contract[0] == "monthly" and contract[3] == "two_year" and contract[5] == "annual"
    assert all(pd.isna(contract[i]) for i in (1, 2, 4))  # missing, unseen, missing


def test_transform_names_every_missing_feature_column() -> None:
    with pytest.raises(KeyError, match="lacks feature column\\(s\\): fee, contract"):
        _schema().transform(pd.DataFrame({"tickets": [1.0]}))


def test_the_matrix_holds_numbers_and_category_codes_in_schema_order() -> None:
    rows = _ugly_rows()
    matrix = _schema().matrix({c: rows[c].tolist() for c in rows.columns})
    nan = np.nan
    expected = np.array(
        [
            [0.0, 35.5, 1.0],  # tickets, fee, contract code (monthly is level 1)
            [2.0, nan, nan],
            [1.0, nan, nan],  # an unseen level is missing
            [3.0, 12.0, 2.0],
            [0.0, 1.0, nan],
            [1.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(_schema().frame_matrix(rows), expected)


def test_missing_values_stay_missing_where_a_level_is_spelled_like_one() -> None:
    schema = FeatureSchema(numeric=["n"], categories={"tag": ["<NA>", "None", "nan", "x"]})
    rows = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "tag": [None, pd.NA, np.nan, "nan"]})
    matrix = schema.matrix({"n": rows["n"].tolist(), "tag": rows["tag"].tolist()})
    np.testing.assert_array_equal(matrix[:, 1], [np.nan, np.nan, np.nan, 2.0])
    np.testing.assert_array_equal(schema.frame_matrix(rows), matrix)


@settings(max_examples=30)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2.5, -3, "4", "x", None, np.nan, True, False, "", "1e3"]),
            st.sampled_from([*LEVELS, "lifetime", None, np.nan, 1, ""]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_fast_matrix_equals_the_pandas_path_value_for_value(
    values: list[tuple[object, object]],
) -> None:
    fee = [v for v, _ in values]
    contract = [c for _, c in values]
    tickets = [float(i) for i in range(len(values))]
    frame = pd.DataFrame({"tickets": tickets, "fee": fee, "contract": contract}).astype(
        {"fee": object, "contract": object}
    )
    schema = _schema()
    fast = schema.matrix({"tickets": tickets, "fee": fee, "contract": contract})
    np.testing.assert_array_equal(fast, schema.frame_matrix(frame))
    # and the booster reads the matrix exactly as it reads the prepared frame
    assert np.array_equal(_booster().predict(fast), _booster().predict(schema.transform(frame)))


def test_no_rows_make_an_empty_matrix() -> None:
    assert _schema().matrix({c: [] for c in SCHEMA_COLUMNS}).shape == (0, 3)
    assert FeatureSchema(numeric=[]).matrix({}).shape == (0, 0)
    assert _schema().frame_matrix(_ugly_rows().iloc[:0]).shape == (0, 3)


@pytest.mark.parametrize(
    ("value", "number"),
    [("2.5", 2.5), (3, 3.0), (True, 1.0), (-0.0, -0.0), ("1e3", 1000.0), (np.float32(1.5), 1.5)],
)
def test_a_numeric_value_is_read_as_its_number(value: object, number: float) -> None:
    assert _number(value) == number and not _missing(value)


@pytest.mark.parametrize("value", [None, pd.NA, np.nan, float("nan"), "abc", "", [1.0], object()])
def test_a_missing_or_unreadable_numeric_value_is_nan(value: object) -> None:
    assert np.isnan(_number(value))


def test_missing_means_none_na_or_nan_and_nothing_else() -> None:
    assert _missing(None) and _missing(pd.NA) and _missing(np.nan) and _missing(np.float64("nan"))
    assert not any(_missing(v) for v in (0.0, "", "nan", "None", 0, False, -0.0))


def test_level_codes_number_levels_in_their_order() -> None:
    assert _level_codes(("b", "a", "c")) == {"b": 0.0, "a": 1.0, "c": 2.0}
    assert _level_codes(()) == {}


# --- train_churn: the calibrator is fitted on the validation months --------------------


def _settings(calibration: str = "isotonic") -> TrainingSettings:
    return TrainingSettings.model_validate(
        {
            "valid_months": 1,
            "test_months": 1,
            "calibration": calibration,
            "baseline_rows": 1000,
            "monotone": {},
            "params": {
                "learning_rate": 0.2,
                "num_leaves": 7,
                "min_child_samples": 10,
                "feature_fraction": 1.0,
                "bagging_fraction": 1.0,
                "bagging_freq": 0,
                "lambda_l2": 1.0,
                "max_rounds": 20,
                "early_stopping_rounds": 20,
                "num_threads": 1,
            },
        }
    )


@pytest.fixture(scope="module")
def trained() -> TrainedChurn:
    return train_churn(_panel(), LABEL, _settings())


def test_calibration_is_not_skipped_training_reports_and_the_model_serves_calibrated_scores(
    trained: TrainedChurn,
) -> None:
    """Skipping calibration (`calibrate` returning raw scores, an identity or unfitted
    calibrator in `train_churn`, `predict_proba` serving the raw score) fails here."""
    model, split = trained.model, trained.split
    raw_test = np.asarray(model.booster.predict(model.schema.transform(split.test)))
    assert np.array_equal(trained.test_raw, raw_test)
    assert np.array_equal(trained.test_calibrated, model.calibrate(raw_test))
    assert np.array_equal(model.predict_proba(split.test), trained.test_calibrated)
    assert np.abs(trained.test_calibrated - trained.test_raw).min() > 0  # every row moved
    metrics = trained.test_metrics
    assert metrics["mean_probability"] == pytest.approx(
        np.clip(trained.test_calibrated, 1e-6, 1 - 1e-6).mean(), abs=1e-15
    )
    # the shifted months churn more than the booster says; calibration brings the level up
    base = metrics["base_rate"]
    assert abs(metrics["mean_probability"] - base) < 0.1 * abs(raw_test.mean() - base)


def test_train_churn_fits_the_calibrator_on_the_validation_months(trained: TrainedChurn) -> None:
    model, split = trained.model, trained.split
    assert split.months("valid") == [MONTHS[4].strftime("%Y-%m-%d")]
    raw_valid = np.asarray(model.booster.predict(model.schema.transform(split.valid)))
    labels = split.valid[LABEL].to_numpy()
    refit = Calibrator("isotonic").fit(raw_valid, labels)
    probe = np.linspace(0, 1, 101)
    assert np.array_equal(model.calibrator(probe), refit(probe))
    assert np.array_equal(trained.test_calibrated, np.clip(refit(trained.test_raw), 0, 1))
    # isotonic regression keeps the mean of what it was fitted on: on the validation rows
    # the mean calibrated probability is the churn rate, up to the 1e-6 tie-break slope
    calibrated = model.predict_proba(split.valid)
    gap = calibrated.mean() - labels.mean()
    assert 0 <= gap <= TIE_BREAK * raw_valid.mean() + 1e-12
    assert abs(raw_valid.mean() - labels.mean()) > 0.05  # which the raw scores are not
    valid = trained.valid_metrics  # (evaluate clips to [1e-6, 1 - 1e-6])
    assert abs(valid["mean_probability"] - valid["base_rate"]) <= 2e-6


def test_platt_calibration_in_training_matches_the_validation_churn_rate() -> None:
    trained = train_churn(_panel(), LABEL, _settings("sigmoid"))
    model, split = trained.model, trained.split
    labels = split.valid[LABEL].to_numpy()
    raw_valid = np.asarray(model.booster.predict(model.schema.transform(split.valid)))
    refit = Calibrator("sigmoid").fit(raw_valid, labels)
    assert np.array_equal(trained.test_calibrated, refit(trained.test_raw))
    # a logistic fit with an intercept matches the mean of what it was fitted on
    assert model.predict_proba(split.valid).mean() == pytest.approx(labels.mean(), abs=1e-3)


# --- beta calibration and the choice between smooth maps ----------------------------------


def _beta_world(n: int = 20_000, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose true map is beta-shaped, not Platt: P(churn | p) = expit(0.6 ln p
    - 2.5 ln(1 - p) - 0.5): the booster is under-confident at the low end (slope 0.6)
    and over-confident at the top (2.5), which one Platt slope cannot express."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.005, 0.995, n)
    truth = 1 / (1 + np.exp(-(0.6 * np.log(raw) - 2.5 * np.log1p(-raw) - 0.5)))
    return raw, (rng.uniform(size=n) < truth).astype(int)


def test_beta_calibration_recovers_a_beta_shaped_map_and_platt_cannot() -> None:
    raw, labels = _beta_world()
    beta = Calibrator("beta").fit(raw, labels)
    assert beta._coef is not None
    np.testing.assert_allclose(beta._coef, [0.6, 2.5], atol=0.2)
    assert beta._intercept == pytest.approx(-0.5, abs=0.2)
    choice = choose_calibration(raw, labels, seed=1)
    table = choice.candidates.set_index("method")
    assert (
        choice.method == "beta" and table.loc["beta", "log_loss"] < table.loc["sigmoid", "log_loss"]
    )


def test_beta_calibration_is_platt_when_the_world_is_platts() -> None:
    """With a = b, beta calibration is Platt's: on a world whose true map is Platt's
    (expit(0.8 logit p - 0.3)) both fits agree."""
    rng = np.random.default_rng(6)
    raw = rng.uniform(0.005, 0.995, 20_000)
    truth = 1 / (1 + np.exp(-(0.8 * np.log(raw / (1 - raw)) - 0.3)))
    labels = (rng.uniform(size=len(raw)) < truth).astype(int)
    probe = np.linspace(0.01, 0.99, 50)
    beta, platt = Calibrator("beta").fit(raw, labels), Calibrator("sigmoid").fit(raw, labels)
    np.testing.assert_allclose(beta(probe), platt(probe), atol=0.03)


@given(
    raw=st.lists(st.floats(0.001, 0.999), min_size=30, max_size=200),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_smooth_maps_never_invert_the_ranking(raw: list[float], seed: int) -> None:
    """Whatever the scores and labels (tiny, separable, backwards), the map is monotone."""
    scores = np.array(raw)
    labels = (np.random.default_rng(seed).uniform(size=len(scores)) < scores).astype(int)
    if labels.min() == labels.max():
        labels[0] = 1 - labels[0]
    probe = np.linspace(0.0, 1.0, 201)
    for method in ("sigmoid", "beta"):
        calibrated = Calibrator(method).fit(scores, labels)(probe)
        assert (np.diff(calibrated) >= 0).all()
        assert ((calibrated >= 0) & (calibrated <= 1)).all()


def test_beta_drops_a_slope_that_would_invert_the_ranking() -> None:
    """Churn falls with the score at the low end and rises at the top: an unconstrained
    fit gives ln p a negative slope; the calibrator keeps the map increasing instead."""
    rng = np.random.default_rng(2)
    raw = rng.uniform(0.001, 0.999, 20_000)
    truth = np.where(raw < 0.5, 0.3 - 0.4 * raw, raw - 0.4)
    labels = (rng.uniform(size=len(raw)) < np.clip(truth, 0.01, 0.99)).astype(int)
    beta = Calibrator("beta").fit(raw, labels)
    assert beta._coef is not None and (beta._coef >= 0).all() and beta._coef.max() > 0
    assert (np.diff(beta(np.linspace(0.001, 0.999, 500))) > 0).all()


def test_the_choice_is_judged_out_of_fold_and_the_winner_refitted_on_every_row() -> None:
    raw, labels = _platt_data()
    choice = choose_calibration(raw, labels, seed=3)
    table = choice.candidates.set_index("method")
    for method in ("sigmoid", "beta"):
        held_out = out_of_fold(method, raw, labels, 5, 3)
        assert table.loc[method, "log_loss"] == pytest.approx(
            log_loss(labels, np.clip(held_out, 1e-12, 1 - 1e-12))
        )
        assert table.loc[method, "ece"] == pytest.approx(
            expected_calibration_error(labels, held_out)
        )
    assert choice.method == table["log_loss"].idxmin()
    probe = np.linspace(0, 1, 21)
    np.testing.assert_array_equal(
        choice.calibrator(probe), Calibrator(choice.method).fit(raw, labels)(probe)
    )


def test_one_method_is_fitted_without_a_contest_and_one_class_is_refused() -> None:
    raw, labels = _platt_data()
    assert choose_calibration(raw, labels, ("sigmoid",)).method == "sigmoid"
    with pytest.raises(ValueError, match="1 row\\(s\\) of one class"):
        choose_calibration(raw, np.r_[1, np.zeros(len(raw) - 1, dtype=int)])


def test_a_model_pickled_with_a_scikit_learn_platt_regression_still_serves() -> None:
    """Models registered before the coefficients were stored carry `_platt`."""
    raw, labels = _platt_data()
    old = Calibrator("sigmoid")
    old.__dict__ = {
        "method": "sigmoid",
        "_isotonic": None,
        "_platt": LogisticRegression(C=1e6).fit(_logit(np.clip(raw, 1e-3, 1 - 1e-3)), labels),
    }
    loaded = pickle.loads(pickle.dumps(old))
    probe = np.linspace(0.01, 0.99, 9)
    np.testing.assert_allclose(
        loaded(probe), old.__dict__["_platt"].predict_proba(_logit(probe))[:, 1], rtol=1e-12
    )


# --- the readability measures --------------------------------------------------------------


def test_ece_of_hand_made_bins() -> None:
    # two bins of two: predicted 0.1 and 0.1 with one churner (gap 0.4), 0.8 and 0.8 with two
    predicted = np.array([0.1, 0.1, 0.8, 0.8])
    observed = np.array([1, 0, 1, 1])
    assert expected_calibration_error(observed, predicted, bins=2) == pytest.approx(
        0.5 * 0.4 + 0.5 * 0.2
    )


def test_ece_is_near_zero_when_calibrated_and_the_shift_when_not() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(0.0, 0.3, 200_000)
    labels = (rng.uniform(size=len(p)) < p).astype(int)
    assert expected_calibration_error(labels, p) < 0.003
    assert expected_calibration_error(labels, p + 0.05) == pytest.approx(0.05, abs=0.003)


def test_the_largest_tie_share_sees_plateaus_under_a_negligible_slope() -> None:
    raw, labels = _beta_world()
    isotonic = Calibrator("isotonic").fit(raw, labels)(raw)
    beta = Calibrator("beta").fit(raw, labels)(raw)
    assert largest_tie_share(isotonic) > 0.05  # steps, despite the 1e-6 tie-break
    assert largest_tie_share(beta) < 0.01
    assert largest_tie_share(np.array([0.1, 0.1000001, 0.2])) == pytest.approx(2 / 3)
    assert largest_tie_share(np.array([])) == 0.0


def test_scores_that_rank_backwards_get_the_churn_rate_not_an_inverted_map() -> None:
    rng = np.random.default_rng(9)
    raw = rng.uniform(0.01, 0.99, 5000)
    labels = (rng.uniform(size=len(raw)) < 0.6 - 0.5 * raw).astype(int)
    for method in ("sigmoid", "beta"):
        calibrated = Calibrator(method).fit(raw, labels)(np.array([0.05, 0.5, 0.95]))
        np.testing.assert_allclose(calibrated, labels.mean(), rtol=1e-9)


# --- the lifecycle model's parameter search --------------------------------------------------


def test_a_tuned_lifecycle_model_searches_on_the_validation_months_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int]] = []
    real = churn_module.tune_time_split

    def spy(x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, *rest: Any,
            **named: Any) -> Any:  # fmt: skip
        seen.append((len(x_train), len(x_valid)))
        return real(x_train, y_train, x_valid, *rest, **named)

    monkeypatch.setattr(churn_module, "tune_time_split", spy)
    trained = train_churn(_panel(), LABEL, _settings(), tuning_budget_s=2.0)
    split = trained.split
    assert seen == [(len(split.train), len(split.valid))]  # the test months stay unseen
    assert trained.tuned is not None and trained.tuned.trials >= 1
    booster_leaves = trained.model.booster.params["num_leaves"]
    assert booster_leaves == trained.tuned.params["num_leaves"]
    assert train_churn(_panel(), LABEL, _settings()).tuned is None
