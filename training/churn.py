"""Churn model training with a time-based evaluation.

The training set is a panel (customer x month-end snapshot), so rows of one customer in
neighbouring months are nearly identical: a shuffled split would leak. Instead the
latest `test_months` snapshots are held out, the `valid_months` before them drive early
stopping and fit the calibration, and everything earlier trains the booster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.sampling import WEIGHT
from training.calibration import SMOOTH_METHODS, choose_calibration
from training.metrics import evaluate
from training.model import ChurnModel, FeatureSchema
from training.settings import LightGBMParams, TrainingSettings
from training.tuning import Tuned, tune_time_split

SNAPSHOT = "event_timestamp"
NOT_FEATURES = ("customer_id", SNAPSHOT, "request_epoch_s", WEIGHT)


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    shortened: str = ""  # why fewer validation or test months than configured, if so

    def months(self, part: str) -> list[str]:
        frame = getattr(self, part)
        return sorted(frame[SNAPSHOT].dt.strftime("%Y-%m-%d").unique().tolist())


MIN_TRAIN_MONTHS = 2


def held_out_months(snapshots: int, valid_months: int, test_months: int) -> tuple[int, int]:
    """The validation and test months a history of `snapshots` months allows.

    The configured ones when `MIN_TRAIN_MONTHS` are left to train on; a shorter history
    (a young operator, a small simulated world) holds out fewer, the test months giving
    way first to at most half of what can be held out, and never fewer than one of each.
    Fewer than four months is an error: nothing would be left to learn from or judge on.
    """
    available = snapshots - MIN_TRAIN_MONTHS
    if available < 2:
        raise ValueError(
            f"{snapshots} snapshot months are too few to train on: at least "
            f"{MIN_TRAIN_MONTHS + 2} are needed ({MIN_TRAIN_MONTHS} to train on, 1 to "
            "validate, 1 to test); the history needs more months"
        )
    if valid_months + test_months <= available:
        return valid_months, test_months
    test = max(1, min(test_months, (available + 1) // 2))
    return max(1, min(valid_months, available - test)), test


def time_split(frame: pd.DataFrame, valid_months: int, test_months: int) -> TimeSplit:
    """Oldest snapshots train, the next `valid_months` validate, the latest `test_months`
    test; fewer of both when the history is short (`held_out_months`), said in `shortened`."""
    snapshots = np.sort(frame[SNAPSHOT].unique())
    valid, test = held_out_months(len(snapshots), valid_months, test_months)
    shortened = ""
    if (valid, test) != (valid_months, test_months):
        shortened = (
            f"{len(snapshots)} snapshot months: {valid} validation and {test} test months "
            f"held out instead of the configured {valid_months} and {test_months}, "
            f"{len(snapshots) - valid - test} left to train on"
        )
    test_from = snapshots[-test]
    valid_from = snapshots[-(test + valid)]
    return TimeSplit(
        train=frame[frame[SNAPSHOT] < valid_from],
        valid=frame[(frame[SNAPSHOT] >= valid_from) & (frame[SNAPSHOT] < test_from)],
        test=frame[frame[SNAPSHOT] >= test_from],
        shortened=shortened,
    )


def sample_weights(split: TimeSplit) -> np.ndarray | None:
    """The training months' inverse-probability weights, if the rows were sampled; the
    validation and test months must be whole, or early stopping, calibration and every
    held-out metric would describe a population that does not exist."""
    if WEIGHT not in split.train:
        return None
    for part in ("valid", "test"):
        if (getattr(split, part)[WEIGHT] != 1.0).any():
            raise ValueError(
                f"the training set's {part} months ({', '.join(split.months(part))}) were "
                "negative-sampled: set negative_sampling.keep_latest_months to at least "
                "valid_months + test_months and rebuild it"
            )
    return split.train[WEIGHT].to_numpy(dtype="float64")


def check_both_classes(split: TimeSplit, label: str) -> None:
    """Every part needs churners and stayers, or its metrics mean nothing."""
    for part in ("train", "valid", "test"):
        if getattr(split, part)[label].nunique() < 2:
            months = ", ".join(split.months(part))
            raise ValueError(f"the {part} months ({months}) hold a single class of {label}")


def feature_columns(frame: pd.DataFrame, label: str) -> list[str]:
    return [c for c in frame.columns if c not in (*NOT_FEATURES, label)]


def lightgbm_params(
    params: LightGBMParams, schema: FeatureSchema, monotone: Mapping[str, int], seed: int
) -> dict[str, Any]:
    """`lightgbm.train` parameters, with monotone constraints aligned to the schema's columns."""
    extra = params.model_dump(exclude={"max_rounds", "early_stopping_rounds"})
    constraints = [monotone.get(column, 0) for column in schema.columns]
    return {
        "objective": "binary",
        "metric": "auc",
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 0,
        **extra,
        **(
            {"monotone_constraints": constraints, "monotone_constraints_method": "advanced"}
            if any(constraints)
            else {}
        ),
    }


def fit_booster(
    train: pd.DataFrame,
    train_labels: np.ndarray,
    valid: pd.DataFrame,
    valid_labels: np.ndarray,
    schema: FeatureSchema,
    settings: TrainingSettings,
    train_weights: np.ndarray | None = None,
    tuned: Tuned | None = None,
) -> lgb.Booster:
    """LightGBM on the (prepared) training months, early-stopped on the validation months;
    `train_weights` undo a negative sampling of the training months (features.sampling);
    `tuned` parameters, searched on the same months, replace the configured ones."""
    params = (
        tuned.params
        if tuned is not None
        else lightgbm_params(settings.params, schema, settings.monotone, settings.seed)
    )
    train_set = lgb.Dataset(train, train_labels, weight=train_weights)
    valid_set = lgb.Dataset(valid, valid_labels, reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=max(settings.params.max_rounds, tuned.rounds if tuned else 0),
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(settings.params.early_stopping_rounds, verbose=False)],
    )


def logistic_baseline(schema: FeatureSchema) -> Pipeline:
    """One-hot categoricals, imputed and standardised numerics, L2 logistic regression (C=1)."""
    columns = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                schema.numeric,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                list(schema.categories),
            ),
        ]
    )
    return make_pipeline(columns, LogisticRegression(C=1.0, max_iter=2000))


def baseline_input(schema: FeatureSchema, prepared: pd.DataFrame) -> pd.DataFrame:
    """The model's prepared input, with categoricals as plain text for scikit-learn."""
    return prepared.astype({column: "object" for column in schema.categories})


@dataclass
class TrainedChurn:
    model: ChurnModel
    split: TimeSplit
    label: str
    test_metrics: dict[str, float]
    valid_metrics: dict[str, float]
    baseline_test_metrics: dict[str, float]
    test_raw: np.ndarray
    test_calibrated: np.ndarray
    test_baseline: np.ndarray
    calibration: pd.DataFrame  # the candidate methods' out-of-fold validation log loss and ECE
    tuned: Tuned | None = None  # the searched parameters, when a search was asked for


def train_churn(
    frame: pd.DataFrame,
    label: str,
    settings: TrainingSettings,
    tuning_budget_s: float | None = None,
) -> TrainedChurn:
    """Fit, calibrate and evaluate on the held-out months; also the logistic baseline.

    With a `tuning_budget_s`, LightGBM's parameters are first searched for that many
    seconds with the validation months as the inner split (`training.tuning`): the test
    months stay unseen by the search, so their metrics stay honest."""
    split = time_split(frame, settings.valid_months, settings.test_months)
    check_both_classes(split, label)
    unknown = sorted(set(settings.monotone) - set(feature_columns(frame, label)))
    if unknown:
        raise ValueError(f"monotone constraints name features the training set lacks: {unknown}")
    schema = FeatureSchema.infer(split.train, feature_columns(frame, label))
    parts = ("train", "valid", "test")
    x = {part: schema.transform(getattr(split, part)) for part in parts}  # prepared once each
    y = {part: getattr(split, part)[label].to_numpy().astype(int) for part in parts}
    weights = sample_weights(split)
    tuned = None
    if tuning_budget_s is not None:
        configured = lightgbm_params(settings.params, schema, settings.monotone, settings.seed)
        tuned = tune_time_split(
            x["train"], y["train"], x["valid"], y["valid"], configured, tuning_budget_s,
            settings.seed, weights,
        )  # fmt: skip
    booster = fit_booster(
        x["train"], y["train"], x["valid"], y["valid"], schema, settings, weights, tuned
    )
    raw = {part: np.asarray(booster.predict(x[part])) for part in ("valid", "test")}
    methods = SMOOTH_METHODS if settings.calibration == "auto" else (settings.calibration,)
    choice = choose_calibration(raw["valid"], y["valid"], methods, seed=settings.seed)
    model = ChurnModel(schema, booster, choice.calibrator)
    calibrated = {part: model.calibrate(raw[part]) for part in ("valid", "test")}

    # the baseline is a yardstick: a sample of the training months is plenty for it
    rows = np.random.default_rng(settings.seed).permutation(len(x["train"]))[
        : settings.baseline_rows
    ]
    baseline = logistic_baseline(schema).fit(
        baseline_input(schema, x["train"].iloc[rows]),
        y["train"][rows],
        logisticregression__sample_weight=None if weights is None else weights[rows],
    )
    test_baseline = baseline.predict_proba(baseline_input(schema, x["test"]))[:, 1]
    return TrainedChurn(
        model=model,
        split=split,
        label=label,
        test_metrics=evaluate(y["test"], calibrated["test"], settings.economics),
        valid_metrics=evaluate(y["valid"], calibrated["valid"], settings.economics),
        baseline_test_metrics=evaluate(y["test"], test_baseline, settings.economics),
        test_raw=raw["test"],
        test_calibrated=calibrated["test"],
        test_baseline=test_baseline,
        calibration=choice.candidates,
        tuned=tuned,
    )
