"""Time-boxed LightGBM hyper-parameter search with Optuna, on training rows only.

Defaults searched on one file are not a method: every dataset gets its own parameters,
chosen by a TPE search whose every trial is scored on an inner split of the rows it is
given. `tune_cv` splits them by stratified k-fold (one holdout on large files), so the
outer cross-validation that calls it stays honest; `tune_time_split` uses the given
validation months, for the lifecycle panel. Early stopping on the inner validation picks
the number of boosting rounds of each trial (on the log loss; the trial's score is the
ROC-AUC at that round).

The first trials are fixed candidates: LightGBM's defaults (the search never ends up
worse than them on the inner score for lack of time), a shallow, strongly regularised
model, which wins on small, noisy files, and a moderate one between the two. The budget
is wall-clock seconds. The first candidate always runs to its end, however small the
budget; any later trial still running at the deadline stops there and keeps its best
round so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

MAX_ROUNDS = 5000
LARGE = 100_000  # rows from which one stratified holdout replaces the inner folds
INNER_FOLDS = 3
# Early stopping watches the log loss (the first metric), smooth from round to round; the
# ROC-AUC at its best round scores the trial. Stopping on the AUC itself ended some trials
# at a noisy early peak (3 rounds where 100 were worth more).
METRICS = ["binary_logloss", "auc"]

# LightGBM's defaults in the search's terms. L2 regularisation is searched on a log scale,
# whose floor (0.001) stands for the default 0: negligible beside any leaf's hessian sum.
DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_child_samples": 20,
    "feature_fraction": 1.0,
    "bagging_fraction": 1.0,
    "lambda_l2": 1e-3,
    "extra_trees": False,
}
SHALLOW: dict[str, Any] = {
    "learning_rate": 0.03,
    "num_leaves": 4,
    "min_child_samples": 50,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.8,
    "lambda_l2": 10.0,
    "extra_trees": True,
}
MODERATE: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "lambda_l2": 1.0,
    "extra_trees": False,
}
CANDIDATES = (DEFAULTS, SHALLOW, MODERATE)
SEARCHED = tuple(DEFAULTS)


class TuningError(ValueError):
    """A search asked for with unusable arguments (a budget of no time, one class)."""


@dataclass(frozen=True)
class Tuned:
    """The chosen parameters and how they were chosen."""

    params: dict[str, Any]  # `lightgbm.train` parameters: the base ones with the searched ones
    # boosting rounds, chosen by early stopping on the inner validation (by `tune_cv`,
    # scaled to the whole rows it refits on)
    rounds: int
    score: float  # inner validation ROC-AUC of the chosen parameters
    first_score: float  # inner validation ROC-AUC of the first candidate (the untuned one)
    trials: int  # trials run within the budget

    def searched(self) -> dict[str, Any]:
        """Only the searched parameters and the rounds: what a report or a log needs."""
        return {**{k: self.params[k] for k in SEARCHED}, "rounds": self.rounds}


def _max_leaf_rows(n_rows: int) -> int:
    """Upper bound of min_child_samples: a leaf of up to 2 % of the rows, at least 100."""
    return max(100, n_rows // 50)


def suggest(trial: optuna.Trial, n_rows: int) -> dict[str, Any]:
    """The search space, scaled to the number of training rows (1,000 to millions)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 256, log=True),
        "min_child_samples": trial.suggest_int(
            "min_child_samples", 5, _max_leaf_rows(n_rows), log=True
        ),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
        "extra_trees": trial.suggest_categorical("extra_trees", [False, True]),
    }


def _in_space(candidate: Mapping[str, Any], n_rows: int) -> dict[str, Any]:
    """A candidate clipped into the space (min_child_samples' bound depends on the rows)."""
    bounds = {
        "learning_rate": (0.01, 0.3),
        "num_leaves": (2, 256),
        "min_child_samples": (5, _max_leaf_rows(n_rows)),
        "feature_fraction": (0.3, 1.0),
        "bagging_fraction": (0.5, 1.0),
        "lambda_l2": (1e-3, 100.0),
    }
    clipped = dict(candidate)
    for name, (low, high) in bounds.items():
        clipped[name] = type(low)(min(max(candidate[name], low), high))
    return clipped


def patience(learning_rate: float) -> int:
    """Early-stopping patience in rounds: slower learning needs longer to show a gain."""
    return int(min(300, max(30, round(5 / learning_rate))))


class _Deadline:
    """Ends boosting at the deadline as early stopping would: at the best round so far."""

    order = 40  # after lightgbm's own early stopping (30)

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.best = np.inf
        self.best_iteration = 0
        self.best_results: list[Any] = []

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        results = env.evaluation_result_list or []
        loss = next(float(r[2]) for r in results if r[1] == "binary_logloss")
        if loss < self.best:
            self.best, self.best_iteration, self.best_results = loss, env.iteration, list(results)
        if time.monotonic() > self.deadline:
            raise lgb.callback.EarlyStopException(self.best_iteration, self.best_results)


Evaluate = Callable[[dict[str, Any], list[Callable[..., None]]], tuple[float, int]]


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _search(
    evaluate: Evaluate,
    base_params: Mapping[str, Any],
    candidates: list[dict[str, Any]],
    n_rows: int,
    budget_s: float,
    seed: int,
    max_trials: int | None,
) -> Tuned:
    check_budget(budget_s)
    deadline = time.monotonic() + budget_s
    sampler = optuna.samplers.TPESampler(seed=seed)
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for candidate in candidates:
            study.enqueue_trial(_in_space(candidate, n_rows), skip_if_exists=True)

        def objective(trial: optuna.Trial) -> float:
            searched = suggest(trial, n_rows)
            callbacks: list[Callable[..., None]] = [
                lgb.early_stopping(
                    patience(searched["learning_rate"]), first_metric_only=True, verbose=False
                )
            ]
            if trial.number > 0:  # the first candidate is the fallback: it always runs to the end
                callbacks.append(_Deadline(deadline))
            score, rounds = evaluate({**base_params, **searched}, callbacks)
            trial.set_user_attr("rounds", rounds)
            return score

        study.optimize(objective, n_trials=1)
        remaining = deadline - time.monotonic()
        more = None if max_trials is None else max_trials - 1
        if remaining > 0 and more != 0:
            study.optimize(objective, n_trials=more, timeout=remaining)
    best = study.best_trial
    return Tuned(
        params={**base_params, **best.params},
        rounds=int(best.user_attrs["rounds"]),
        score=float(best.value or 0.0),
        first_score=float(study.trials[0].value or 0.0),
        trials=len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))),
    )


def inner_splits(labels: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified inner folds of the rows; on large files one 20 % holdout is enough."""
    if len(labels) >= LARGE:
        splitter: StratifiedKFold | StratifiedShuffleSplit = StratifiedShuffleSplit(
            1, test_size=0.2, random_state=seed
        )
    else:
        splitter = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def binary_params(seed: int) -> dict[str, Any]:
    """The fixed `lightgbm.train` parameters around the searched ones."""
    return {
        "objective": "binary",
        "metric": METRICS,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "bagging_freq": 1,  # bagging_fraction 1.0 keeps every row: no bagging
        "feature_pre_filter": False,  # min_child_samples changes from trial to trial
    }


def check_budget(budget_s: float, what: str = "the tuning budget") -> None:
    """A search's wall-clock budget: positive and finite (an infinite one never ends)."""
    if not 0 < budget_s < math.inf:
        raise TuningError(f"{what} must be a positive number of seconds, not {budget_s:g}")


def _check_classes(labels: np.ndarray, what: str) -> None:
    if len(np.unique(labels)) < 2:
        raise TuningError(f"the {what} rows hold a single class: nothing to tune on")


def tune_cv(
    x: pd.DataFrame,
    y: np.ndarray,
    budget_s: float,
    seed: int,
    max_trials: int | None = None,
) -> Tuned:
    """Search LightGBM's parameters by inner stratified cross-validation on (x, y) alone.

    Give it an outer fold's training rows only: it never sees anything else, so the outer
    fold's test metrics stay honest. Refit on all of (x, y) with `params` and `rounds`.
    """
    y = np.asarray(y, dtype=int)
    _check_classes(y, "training")
    data = lgb.Dataset(x, y, params={"feature_pre_filter": False, "verbosity": -1})
    folds = inner_splits(y, seed)

    def evaluate(params: dict[str, Any], callbacks: list[Callable[..., None]]) -> tuple[float, int]:
        history = lgb.cv(params, data, num_boost_round=MAX_ROUNDS, folds=folds, callbacks=callbacks)
        curve = history["valid auc-mean"]
        assert isinstance(curve, list)  # a CVBooster only with return_cvbooster=True
        return float(curve[-1]), len(curve)  # lgb.cv cuts the curve at the best round

    tuned = _search(
        evaluate, binary_params(seed), list(CANDIDATES), len(y), budget_s, seed, max_trials
    )
    # the refit learns from every row, the inner models from a part of them: more rows
    # carry more rounds before they overfit, in proportion (1.5x after 3 inner folds)
    inner_rows = float(np.mean([len(train) for train, _ in folds]))
    return replace(tuned, rounds=max(1, round(tuned.rounds * len(y) / inner_rows)))


def tune_time_split(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    base_params: Mapping[str, Any],
    budget_s: float,
    seed: int,
    weights: np.ndarray | None = None,
    max_trials: int | None = None,
) -> Tuned:
    """Search the same space with later rows (the validation months) as the inner split.

    `base_params` are the model's `lightgbm.train` parameters (objective, monotone
    constraints, ...): they stay, the searched ones replace theirs, and their own values of
    the searched ones are the first candidate. `weights` weigh the training rows (a
    negative sampling undone); the validation rows count one each.
    """
    y_train, y_valid = np.asarray(y_train, dtype=int), np.asarray(y_valid, dtype=int)
    _check_classes(y_train, "training")
    _check_classes(y_valid, "validation")
    # bagging_freq 1 so that the searched bagging_fraction means something (1.0: no bagging)
    base = {**base_params, "metric": METRICS, "feature_pre_filter": False, "bagging_freq": 1}
    base.setdefault("verbosity", -1)
    train = lgb.Dataset(x_train, y_train, weight=weights, params={"feature_pre_filter": False})
    valid = lgb.Dataset(x_valid, y_valid, reference=train)
    configured = {name: base_params.get(name, value) for name, value in DEFAULTS.items()}

    def evaluate(params: dict[str, Any], callbacks: list[Callable[..., None]]) -> tuple[float, int]:
        booster = lgb.train(
            params, train, num_boost_round=MAX_ROUNDS, valid_sets=[valid], callbacks=callbacks
        )
        return float(booster.best_score["valid_0"]["auc"]), int(booster.best_iteration)

    return _search(
        evaluate, base, [configured, *CANDIDATES], len(y_train), budget_s, seed, max_trials
    )
