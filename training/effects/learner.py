"""Learners of per-customer action effects on churn, on LightGBM: baseline-offset and DR.

Two methods, chosen by `EffectParams.method`:

- `offset` (the default): a baseline outcome model mu_0(x) on the no-action rows (and on
  untreated customer-months, when given: many more rows of the same no-action outcome),
  then per action the change tau_a(x) the action makes to the baseline's log-odds, learnt
  on that action's rows from the baseline's prediction (`init_score`). The per-row noise
  is plain binomial noise (no 1/e weighting), and the effect is learnt on the scale the
  actions work on (log-odds: the same nudge matters more to a customer at 20 % risk than
  at 2 %). tau_a is either
  - an *acceptance index* where take-up was logged: tau_a(x) = c + b logit P(accept | x, a),
    the acceptance model learnt from the action's take-ups (far more informative than
    60-day churn: a third accept, a few percent leave) and c, b from the churn outcomes;
    customers take up what is worth something to them, so the index finds whom the action
    helps and the churn outcomes only scale it (`AcceptanceIndex`); or
  - boosted stumps (an additive change, strongly regularised towards none).
  Measured on the simulator's held-out campaign months (40,000 assignments, five arms),
  acting greedily on the estimates earned 89 % of an oracle's true value (the oracle knows
  the expected effects): 80 % without take-up, 72 % with the baseline from the no-action
  arm alone and deeper trees, 63 % for a T-learner and 51 % for the DR learner below,
  whose pseudo-outcomes are dominated by Y/e noise at this size.
- `dr`, described next, unbiased whatever the outcome models' errors: the better choice
  with much more randomized data.

The question is not "who will churn" but "by how much would each retention action lower
this customer's churn probability compared with doing nothing", for several actions at once.

Why the DR learner (Kennedy 2020, "Towards optimal doubly robust estimation of
heterogeneous causal effects"):

- **Known propensities.** The logs come from randomized campaigns that recorded the
  probability with which each customer got the action they got. Inverse-propensity terms
  are then exact rather than estimated, which is what the DR correction needs to remove the
  outcome models' bias, even when assignment probabilities differ between segments.
- **Noisy binary outcomes.** Churn is a rare 0/1 event and the effects are a few
  percentage points. Plain IPW pseudo-outcomes (Y/e) are dominated by outcome noise; the DR
  pseudo-outcome only reweights the *residual* Y - mu(x), so its variance is far smaller,
  while a T-learner's difference mu_0 - mu_a on its own carries the regularisation bias of
  two separately fitted models straight into the effect.
- **Unbiased pseudo-outcomes.** With cross-fitted outcome models and true propensities,
  E[phi_a | x] = P(Y=1 | x, none) - P(Y=1 | x, a) whatever the outcome models' errors,
  so a regression of phi_a on x targets the effect itself, and can be regularised for the
  effect's (simpler) shape rather than the churn risk's.
- **Small code.** Per arm one LightGBM classifier, per action one LightGBM regression,
  and a few lines of arithmetic: no causal-inference dependency to pin, serve or audit.

Method: outcome models mu_a(x) = P(Y=1 | x, A=a), one binary LightGBM per arm (including
NO_ACTION, a T-learner), cross-fitted in `folds` folds so that every row's mu comes from
models that never saw it. For each action a, on rows with A in {a, none}:

    phi_a = (mu_0 - mu_a) + 1[A=0] (Y - mu_0) / e_0 - 1[A=a] (Y - mu_a) / e_a

(positive = the action lowers churn; e is the row's logged propensity, clipped below at
`clip_propensity`; a row of another arm has only the first term), and a strongly
regularised LightGBM regression of phi_a on x, over every row, gives tau_a(x). The
outcome models kept for prediction are refit on all rows of each arm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

NO_ACTION = "none"
MIN_ARM_ROWS = 50
MIN_ACCEPTANCE_ROWS = 200
ACCEPTANCE_PATIENCE = 50  # rounds without a better held-out log-loss before stopping


def _default_outcome_params() -> dict[str, Any]:
    return {
        "num_leaves": 15,
        "min_child_samples": 200,
        "learning_rate": 0.05,
        "lambda_l2": 10.0,
        "feature_fraction": 0.8,
    }


def _default_acceptance_params() -> dict[str, Any]:
    return {"num_leaves": 7, "min_child_samples": 200, "learning_rate": 0.05}


def _default_effect_params() -> dict[str, Any]:
    return {
        "num_leaves": 7,
        "min_child_samples": 400,
        "learning_rate": 0.03,
        "lambda_l2": 20.0,
    }


@dataclass(frozen=True)
class EffectParams:
    """How hard the outcome and effect models fit.

    The effect regressions are more regularised than the outcome models: pseudo-outcomes are
    noisy (they reweight residuals by 1/e) and the effect is expected to be simpler than
    the churn risk, so fewer leaves, larger leaves and a slower learning rate.
    """

    outcome_params: dict[str, Any] = field(default_factory=_default_outcome_params)
    outcome_rounds: int = 200
    effect_params: dict[str, Any] = field(default_factory=_default_effect_params)
    effect_rounds: int = 150
    folds: int = 3
    seed: int = 7
    clip_propensity: float = 0.01
    method: str = "offset"  # or "dr"
    acceptance_index: bool = True  # offset: model an action through its acceptance, if logged
    acceptance_params: dict[str, Any] = field(default_factory=_default_acceptance_params)
    acceptance_rounds: int = 1000  # at most; early stopping on held-out take-up chooses


@dataclass
class _Features:
    """The model input's columns and categorical levels, fixed at training.

    Categoricals go to LightGBM natively; applying the training levels at prediction makes
    an unseen level missing (NaN), which LightGBM routes like a missing value, instead of an
    error or, worse, a silently shifted category code.
    """

    numeric: list[str]
    categories: dict[str, list[Any]]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categories]

    @classmethod
    def infer(cls, frame: pd.DataFrame) -> _Features:
        """Category and text columns are categorical (levels as seen here); the rest numeric."""
        levels: dict[str, list[Any]] = {}
        for column in frame.columns:
            dtype = frame[column].dtype
            if isinstance(dtype, pd.CategoricalDtype):
                levels[str(column)] = list(dtype.categories)
            elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
                levels[str(column)] = sorted(frame[column].dropna().astype(str).unique())
        numeric = [str(c) for c in frame.columns if str(c) not in levels]
        return cls(numeric=numeric, categories=levels)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model input in the training column order, with the training category levels."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"effect model input lacks feature column(s): {', '.join(missing)}")
        out = frame[self.numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
        for column, levels in self.categories.items():
            values = frame[column].astype("object").where(frame[column].notna())
            if levels and isinstance(levels[0], str):
                values = values.map(str, na_action="ignore")
            out[column] = pd.Categorical(values, categories=levels)
        return out


@dataclass
class AcceptanceIndex:
    """An action's change of the churn log-odds as a line in its acceptance log-odds:
    change(x) = intercept + slope x logit P(accept | x, action).

    Whether a customer takes an offer up is observed on every treated row and is far less
    noisy than churn within 60 days (about a third accept, against a few percent who
    leave), and customers take up what is worth something to them: the acceptance model
    finds *who* an action matters to from many informative outcomes, and the churn
    outcomes only have to fix two numbers, how much a unit of that index changes churn.
    """

    acceptance: Any  # lgb.Booster (binary): P(accept | x) on the action's rows
    intercept: float
    slope: float

    def change(self, x: pd.DataFrame | np.ndarray, **predict: Any) -> np.ndarray:
        return self.intercept + self.slope * _logit(self.acceptance.predict(x, **predict))


@dataclass
class EffectModel:
    """Per-action effect models and per-arm outcome models, with their input schema.

    Plain attributes and LightGBM boosters only, so it pickles (e.g. inside an MLflow pyfunc).
    """

    actions: tuple[str, ...]
    features: _Features
    outcome_models: dict[str, Any]  # arm -> lgb.Booster (binary); offset: NO_ACTION only
    effect_models: dict[str, Any]  # action -> lgb.Booster (dr: regression of phi_a;
    # offset: the change of the log-odds, a binary booster trained from the baseline's,
    # or an AcceptanceIndex where the action's acceptance was logged)
    method: str = "dr"

    @property
    def columns(self) -> list[str]:
        return self.features.columns

    @property
    def arms(self) -> tuple[str, ...]:
        return (NO_ACTION, *self.actions)

    def reduction(self, features: pd.DataFrame) -> pd.DataFrame:
        """Estimated reduction of P(outcome) per action vs NO_ACTION, one column per action;
        positive = the action lowers the outcome probability. Clipped to [-1, 1], the range
        a difference of probabilities can take."""
        x = self.features.transform(features)
        return pd.DataFrame(self._reductions(x), index=features.index)

    def reduction_matrix(self, x: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """`reduction` of a float matrix, one column per action in `actions` order: the fast
        path of a request's few rows, without pandas. `x` holds `columns` in order, with
        each category as its code among `features.categories`' levels (what LightGBM makes
        of `features.transform`'s frame); `num_threads` as LightGBM's predict takes it."""
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise ValueError(f"expected a matrix of {len(self.columns)} columns, got {x.shape}")
        reductions = self._reductions(x, num_threads=num_threads)
        return np.column_stack([reductions[a] for a in self.actions])

    def _reductions(self, x: pd.DataFrame | np.ndarray, **predict: Any) -> dict[str, np.ndarray]:
        if self.method == "offset":
            mu = self._offset_outcomes(x, **predict)
            return {a: mu[NO_ACTION] - mu[a] for a in self.actions}
        return {
            a: np.clip(self.effect_models[a].predict(x, **predict), -1.0, 1.0) for a in self.actions
        }

    def _offset_outcomes(
        self, x: pd.DataFrame | np.ndarray, **predict: Any
    ) -> dict[str, np.ndarray]:
        base = np.clip(self.outcome_models[NO_ACTION].predict(x, **predict), 1e-6, 1 - 1e-6)
        logit = _logit(base)
        out = {NO_ACTION: base}
        for a in self.actions:
            model = self.effect_models[a]
            if isinstance(model, AcceptanceIndex):
                change = model.change(x, **predict)
            else:
                change = model.predict(x, raw_score=True, **predict)
            out[a] = 1.0 / (1.0 + np.exp(-(logit + change)))
        return out

    def outcome_probability(self, features: pd.DataFrame) -> pd.DataFrame:
        """mu_a(x): estimated P(outcome | x, arm) for NO_ACTION and each action (columns)."""
        x = self.features.transform(features)
        if self.method == "offset":
            return pd.DataFrame(self._offset_outcomes(x), index=features.index)
        return pd.DataFrame(
            {a: self.outcome_models[a].predict(x) for a in self.arms}, index=features.index
        )


def fit_effect_model(
    features: pd.DataFrame,
    action: np.ndarray,
    outcome: np.ndarray,
    propensity: np.ndarray,
    actions: Sequence[str],
    params: EffectParams,
    sample_weight: np.ndarray | None = None,
    baseline: tuple[pd.DataFrame, np.ndarray] | None = None,
    accepted: np.ndarray | None = None,
) -> EffectModel:
    """Fit the learner on logged randomized data (see the module docstring).

    `action`: per row NO_ACTION or one of `actions`; `outcome`: 0/1 (1 = the event the
    actions try to prevent, e.g. churn); `propensity`: the logged probability that the row
    got the action it got; `sample_weight` weights every model's rows (e.g. to undo
    sampling). `baseline`: (features, outcome) of untreated, non-randomized rows that the
    offset learner's no-action model learns from besides the no-action arm (the DR
    learner's correction needs propensities, so it does not use them). `accepted`: per
    row 1 when the customer took the action up, 0 when not, NaN when unknown (no-action
    rows, unreported outcomes); where an action has enough of them, the offset learner
    models its effect through them (`AcceptanceIndex`).
    """
    arms = (NO_ACTION, *_check_actions(actions))
    logged, y, e, w = _check_inputs(features, action, outcome, propensity, sample_weight, arms)
    _check_arms(logged, y, arms)
    if params.folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {params.folds}")

    schema = _Features.infer(features)
    x = schema.transform(features)
    if params.method == "offset":
        extra = None
        if baseline is not None and len(baseline[0]):
            extra_y = np.asarray(baseline[1], dtype="float64")
            if len(extra_y) != len(baseline[0]) or not np.isin(extra_y, (0.0, 1.0)).all():
                raise ValueError("baseline outcome must be 0 or 1, one per baseline row")
            extra = (schema.transform(baseline[0]), extra_y)
        taken = None
        if accepted is not None and params.acceptance_index:
            taken = np.asarray(accepted, dtype="float64")
            if len(taken) != len(x) or not np.isin(taken[~np.isnan(taken)], (0.0, 1.0)).all():
                raise ValueError("accepted must be 0, 1 or NaN (unknown), one per row")
        return _fit_offset(x, logged, y, w, arms, schema, params, extra, taken)
    if params.method != "dr":
        raise ValueError(f"unknown method {params.method!r}: offset or dr")
    e = np.maximum(e, params.clip_propensity)
    fold = _assign_folds(logged, params.folds, params.seed)
    mu = _cross_fitted_outcomes(x, logged, y, w, fold, arms, params)

    effect_models: dict[str, Any] = {}
    for a in arms[1:]:
        # every row: a row of another arm contributes mu_0 - mu_a alone, which keeps the
        # correction terms' 1/e weights the marginal propensities they are
        rows = np.arange(len(x))
        phi = _pseudo_outcome(mu[NO_ACTION][rows], mu[a][rows], logged[rows], y[rows], e[rows], a)
        effect_models[a] = _train(
            x.iloc[rows],
            phi,
            None if w is None else w[rows],
            {"objective": "regression", **params.effect_params},
            params.effect_rounds,
            params.seed,
        )
    outcome_models = {a: _train_outcome(x, y, w, np.flatnonzero(logged == a), params) for a in arms}
    return EffectModel(
        actions=arms[1:],
        features=schema,
        outcome_models=outcome_models,
        effect_models=effect_models,
        method="dr",
    )


def _fit_offset(
    x: pd.DataFrame,
    logged: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    arms: tuple[str, ...],
    schema: _Features,
    params: EffectParams,
    extra: tuple[pd.DataFrame, np.ndarray] | None = None,
    accepted: np.ndarray | None = None,
) -> EffectModel:
    """The baseline on the no-action rows (and `extra` untreated rows); per action, the
    change of its log-odds learnt on the action's rows from the baseline's prediction (out
    of sample: the baseline never saw them): an `AcceptanceIndex` where the action's
    acceptance is known on enough rows, else a boosted change."""
    none = np.flatnonzero(logged == NO_ACTION)
    if extra is None:
        baseline = _train_outcome(x, y, w, none, params)
    else:
        both_x = pd.concat([x.iloc[none], extra[0]], ignore_index=True)
        both_w = None if w is None else np.r_[w[none], np.ones(len(extra[1]))]
        everything = np.arange(len(both_x))
        baseline = _train_outcome(both_x, np.r_[y[none], extra[1]], both_w, everything, params)
    offset = _logit(baseline.predict(x))
    effect_models: dict[str, Any] = {}
    for a in arms[1:]:
        rows = np.flatnonzero(logged == a)
        if accepted is not None and _enough_acceptance(accepted[rows]):
            effect_models[a] = _fit_acceptance_index(
                x.iloc[rows], y[rows], accepted[rows], offset[rows], params
            )
            continue
        effect_models[a] = _train(
            x.iloc[rows],
            y[rows],
            None if w is None else w[rows],
            {**params.effect_params, "objective": "binary"},
            params.effect_rounds,
            params.seed,
            init_score=offset[rows],
        )
    return EffectModel(
        actions=arms[1:],
        features=schema,
        outcome_models={NO_ACTION: baseline},
        effect_models=effect_models,
        method="offset",
    )


def _enough_acceptance(accepted: np.ndarray) -> bool:
    """Enough known take-ups, of both kinds, to learn an acceptance model from."""
    known = accepted[~np.isnan(accepted)]
    return len(known) >= MIN_ACCEPTANCE_ROWS and 0 < known.sum() < len(known)


def _fit_acceptance_index(
    x: pd.DataFrame,
    churned: np.ndarray,
    accepted: np.ndarray,
    offset: np.ndarray,
    params: EffectParams,
) -> AcceptanceIndex:
    """The acceptance model on the rows where acceptance is known; its cross-fitted
    log-odds as every row's index (a row's own fit would overstate how well the index
    predicts, and shrink the slope); the intercept and slope by a logistic regression of
    churn on the index, offset by the baseline's log-odds."""
    known = np.flatnonzero(~np.isnan(accepted))
    fold = np.random.default_rng(params.seed).permutation(len(x)) % params.folds
    index = np.empty(len(x), dtype="float64")
    lgb_params = {
        "verbosity": -1,
        "seed": params.seed,
        **params.acceptance_params,
        "objective": "binary",
    }
    rounds = []
    for k in range(params.folds):
        # take-up is plentiful and far less noisy than churn: its own held-out fold can
        # say when the acceptance model stops learning (early stopping on its log-loss)
        fit_rows, check_rows = known[fold[known] != k], known[fold[known] == k]
        booster = lgb.train(
            lgb_params,
            lgb.Dataset(x.iloc[fit_rows], label=accepted[fit_rows]),
            num_boost_round=params.acceptance_rounds,
            valid_sets=[lgb.Dataset(x.iloc[check_rows], label=accepted[check_rows])],
            callbacks=[lgb.early_stopping(ACCEPTANCE_PATIENCE, verbose=False)],
        )
        rounds.append(max(booster.best_iteration, 1))
        held_out = np.flatnonzero(fold == k)
        held_out_p = np.asarray(booster.predict(x.iloc[held_out], num_iteration=rounds[-1]))
        index[held_out] = _logit(held_out_p)
    intercept, slope = _offset_logistic(index, churned, offset)
    final = lgb.train(
        lgb_params,
        lgb.Dataset(x.iloc[known], label=accepted[known]),
        num_boost_round=round(float(np.mean(rounds))),
    )
    return AcceptanceIndex(final, intercept, slope)


def _offset_logistic(
    z: np.ndarray, y: np.ndarray, offset: np.ndarray, ridge: float = 1.0
) -> tuple[float, float]:
    """(a, b) of P(y=1) = sigmoid(offset + a + b z), by Newton's method with a small ridge
    (two parameters: no library needed, and it cannot fail to converge on separable data)."""
    design = np.column_stack([np.ones_like(z), z])
    beta = np.zeros(2)
    penalty = ridge * np.eye(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(offset + design @ beta)))
        gradient = design.T @ (y - p) - penalty @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.abs(step).max() < 1e-8:
            break
    return float(beta[0]), float(beta[1])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _pseudo_outcome(
    mu_0: np.ndarray,
    mu_a: np.ndarray,
    logged: np.ndarray,
    y: np.ndarray,
    e: np.ndarray,
    a: str,
) -> np.ndarray:
    """phi_a = (mu_0 - mu_a) + 1[A=0](Y - mu_0)/e - 1[A=a](Y - mu_a)/e: positive = reduction."""
    control = (logged == NO_ACTION).astype("float64")
    treated = (logged == a).astype("float64")
    return (mu_0 - mu_a) + control * (y - mu_0) / e - treated * (y - mu_a) / e


def _cross_fitted_outcomes(
    x: pd.DataFrame,
    logged: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    fold: np.ndarray,
    arms: Sequence[str],
    params: EffectParams,
) -> dict[str, np.ndarray]:
    """Out-of-fold mu_a(x) for every row and arm: each fold's rows are predicted by models
    trained on the other folds' rows of that arm, so no row's residual is shrunk by its own
    fit (which would bias the DR correction towards zero)."""
    mu = {a: np.empty(len(x), dtype="float64") for a in arms}
    for k in range(params.folds):
        held_out = np.flatnonzero(fold == k)
        for a in arms:
            train_rows = np.flatnonzero((logged == a) & (fold != k))
            booster = _train_outcome(x, y, w, train_rows, params)
            mu[a][held_out] = booster.predict(x.iloc[held_out])
    return mu


def _train_outcome(
    x: pd.DataFrame, y: np.ndarray, w: np.ndarray | None, rows: np.ndarray, params: EffectParams
) -> Any:
    """One arm's binary classifier on `rows` (the objective is forced: mu must be a probability)."""
    return _train(
        x.iloc[rows],
        y[rows],
        None if w is None else w[rows],
        {**params.outcome_params, "objective": "binary"},
        params.outcome_rounds,
        params.seed,
    )


def _train(
    x: pd.DataFrame,
    target: np.ndarray,
    weight: np.ndarray | None,
    lgb_params: Mapping[str, Any],
    rounds: int,
    seed: int,
    init_score: np.ndarray | None = None,
) -> Any:
    full = {"verbosity": -1, "seed": seed, **lgb_params}
    data = lgb.Dataset(
        x, label=target, weight=weight, init_score=init_score, categorical_feature="auto"
    )
    return lgb.train(full, data, num_boost_round=rounds)


def _assign_folds(logged: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Random folds stratified by arm, so every fold holds each arm's rows in proportion."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(logged), dtype="int64")
    for arm in np.unique(logged):
        rows = rng.permutation(np.flatnonzero(logged == arm))
        fold[rows] = np.arange(len(rows)) % folds
    return fold


def _check_actions(actions: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(a) for a in actions)
    if not names:
        raise ValueError("at least one action is needed besides NO_ACTION")
    if NO_ACTION in names:
        raise ValueError(f"'{NO_ACTION}' is the baseline, not an action: drop it from `actions`")
    if len(set(names)) != len(names):
        raise ValueError(f"actions are not unique: {list(names)}")
    return names


def _check_inputs(
    features: pd.DataFrame,
    action: np.ndarray,
    outcome: np.ndarray,
    propensity: np.ndarray,
    sample_weight: np.ndarray | None,
    arms: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The logged arrays as numpy, with clear errors for what would fail or bias the fit."""
    n = len(features)
    logged = np.asarray(action).astype(str)
    y = np.asarray(outcome, dtype="float64")
    e = np.asarray(propensity, dtype="float64")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    for name, values in (("action", logged), ("outcome", y), ("propensity", e), ("weight", w)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} rows but features have {n}")
    unknown = sorted({str(a) for a in np.unique(logged)} - set(arms))
    if unknown:
        raise ValueError(
            f"unknown action(s) {unknown}: expected '{NO_ACTION}' or one of {arms[1:]}"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("outcome must be 0 or 1 on every row")
    bad = int((~np.isfinite(e) | (e <= 0.0) | (e > 1.0)).sum())
    if bad:
        raise ValueError(f"{bad} row(s) have a propensity outside (0, 1]")
    if w is not None and int((~np.isfinite(w) | (w < 0.0)).sum()):
        raise ValueError("sample_weight must be finite and non-negative")
    return logged, y, e, w


def _check_arms(logged: np.ndarray, y: np.ndarray, arms: Sequence[str]) -> None:
    """Every arm needs rows and both outcomes, or its outcome model is meaningless."""
    problems = []
    for arm in arms:
        in_arm = logged == arm
        rows, positives = int(in_arm.sum()), int(y[in_arm].sum())
        if rows < MIN_ARM_ROWS or positives == 0 or positives == rows:
            problems.append(f"'{arm}' has {rows} rows and {positives} positive outcomes")
    if problems:
        raise ValueError(
            f"too little data per arm (need at least {MIN_ARM_ROWS} rows and both outcomes): "
            + "; ".join(problems)
        )
