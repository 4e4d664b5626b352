"""The time-boxed LightGBM search: defaults first, never worse than them, training rows only."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from training.tuning import (
    DEFAULTS,
    MAX_ROUNDS,
    SEARCHED,
    TuningError,
    binary_params,
    inner_splits,
    patience,
    tune_cv,
    tune_time_split,
)


def _frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A small churn-like frame: two informative columns, a categorical one, noise."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, rows).astype("float64"),
            "complaints": rng.poisson(1.0, rows).astype("float64"),
            "noise": rng.normal(size=rows),
            "plan": pd.Categorical(rng.choice(["a", "b", "c"], rows), categories=["a", "b", "c"]),
        }
    )
    logit = -1.0 - 0.04 * x["tenure"] + 0.8 * x["complaints"] + 0.7 * (x["plan"] == "c")
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y.to_numpy()


def test_the_first_trial_is_lightgbms_defaults() -> None:
    x, y = _frame(400, 0)
    tuned = tune_cv(x, y, budget_s=30, seed=1, max_trials=1)
    assert tuned.trials == 1
    assert {k: tuned.params[k] for k in SEARCHED} == DEFAULTS
    assert tuned.score == tuned.first_score


def test_a_tiny_budget_still_scores_at_least_the_defaults() -> None:
    x, y = _frame(600, 1)
    tuned = tune_cv(x, y, budget_s=2, seed=1)
    assert tuned.trials >= 1
    assert tuned.score >= tuned.first_score
    assert 0.5 < tuned.score <= 1.0
    assert tuned.rounds >= 1
    assert set(tuned.searched()) == {*SEARCHED, "rounds"}
    assert tuned.params["objective"] == "binary"


def test_the_refit_gets_the_inner_rounds_scaled_to_all_the_rows() -> None:
    """The inner models learn from two thirds of the rows: the refit on all of them gets
    half as many rounds again as their early stopping chose."""
    x, y = _frame(600, 5)
    tuned = tune_cv(x, y, budget_s=30, seed=1, max_trials=1)
    folds = inner_splits(y, 1)
    history = lgb.cv(
        {**binary_params(1), **DEFAULTS},
        lgb.Dataset(x, y, params={"feature_pre_filter": False, "verbosity": -1}),
        num_boost_round=MAX_ROUNDS,
        folds=folds,
        callbacks=[lgb.early_stopping(patience(0.1), first_metric_only=True, verbose=False)],
    )
    inner = len(history["valid auc-mean"])
    assert tuned.rounds == round(inner * 600 / np.mean([len(train) for train, _ in folds]))
    assert tuned.rounds > inner


def test_a_budget_spent_at_once_still_trains_the_defaults_to_the_end() -> None:
    x, y = _frame(400, 2)
    spent = tune_cv(x, y, budget_s=1e-9, seed=1)
    untimed = tune_cv(x, y, budget_s=60, seed=1, max_trials=1)
    assert spent.trials == 1
    assert spent.searched() == untimed.searched()  # the same rounds: not cut at the deadline
    assert spent.score == untimed.score


@pytest.mark.parametrize("budget", [0.0, -5.0, float("nan"), float("inf")])
def test_a_budget_of_no_time_or_no_end_is_refused(budget: float) -> None:
    x, y = _frame(200, 3)
    with pytest.raises(TuningError, match="positive number of seconds"):
        tune_cv(x, y, budget_s=budget, seed=1)


def test_one_class_is_refused() -> None:
    x, _ = _frame(200, 4)
    with pytest.raises(TuningError, match="single class"):
        tune_cv(x, np.zeros(len(x), dtype=int), budget_s=1, seed=1)


def test_the_time_split_search_keeps_the_base_params_and_starts_from_them() -> None:
    x, y = _frame(900, 5)
    base = {
        "objective": "binary",
        "verbosity": -1,
        "seed": 3,
        "deterministic": True,
        "force_row_wise": True,
        "learning_rate": 0.02,
        "num_leaves": 7,
        "min_child_samples": 40,
        "feature_fraction": 0.7,
        "bagging_fraction": 0.8,
        "lambda_l2": 10.0,
        "monotone_constraints": [0, 1, 0, 0],  # more complaints never lower the risk
    }
    train, valid = slice(0, 600), slice(600, 900)  # the later rows validate, as months would
    weights = np.where(y[train] == 1, 1.0, 2.0)
    first = tune_time_split(
        x[train], y[train], x[valid], y[valid], base, 30, 1, weights=weights, max_trials=1
    )
    assert {k: first.params[k] for k in SEARCHED if k != "extra_trees"} == {
        k: base[k] for k in SEARCHED if k != "extra_trees"
    }
    tuned = tune_time_split(x[train], y[train], x[valid], y[valid], base, 2, 1, weights=weights)
    assert tuned.params["monotone_constraints"] == [0, 1, 0, 0]
    assert tuned.params["seed"] == 3
    assert tuned.score >= tuned.first_score == first.score
    assert tuned.rounds >= 1


def test_the_time_split_needs_both_classes_in_the_validation_rows() -> None:
    x, y = _frame(300, 6)
    with pytest.raises(TuningError, match="validation rows hold a single class"):
        tune_time_split(x[:200], y[:200], x[200:], np.zeros(100, dtype=int), {}, 1, 1)
