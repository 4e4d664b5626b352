"""Train and evaluate the treatment-effect model on randomized campaign history.

The rows are campaign assignments (features as known when the customer was assigned, the
action or `none`, its logged probability, churn within the horizon). The latest
`test_months` months of assignments are held out: the model learns from the earlier ones
and is judged on these, per action by its Qini coefficient and AUUC (does it rank the
customers an action helps first?), and as a policy (the greedy choice among eligible
actions of reduction x value - cost) by its inverse-propensity and doubly-robust values
next to those of doing nothing and of the logged (random) assignment.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.labels import ACCEPTED, ACTION, PROPENSITY, SNAPSHOT
from features.request_time import REQUEST_TIME_FIELD
from training.effects.evaluation import (
    PolicyValue,
    auuc,
    dr_value,
    expected_reward,
    greedy_policy,
    ips_value,
    qini_coefficient,
)
from training.effects.learner import (
    MIN_ARM_ROWS,
    NO_ACTION,
    EffectModel,
    EffectParams,
    fit_effect_model,
)
from training.effects.settings import EffectSettings
from training.model import FeatureSchema

NOT_FEATURES = ("customer_id", SNAPSHOT, REQUEST_TIME_FIELD, ACTION, PROPENSITY, ACCEPTED)
# Who may get what: the serving catalogue's default rules (configs/serving.yaml).
LOYALTY_CONTRACTS = ("month_to_month", "one_year")
CALLBACK_MIN_VALUE = 1500.0


@dataclass
class Effects:
    """The registered object: the feature schema, the learnt model, what it estimates."""

    schema: FeatureSchema
    model: EffectModel
    horizon_days: int

    @property
    def actions(self) -> tuple[str, ...]:
        return self.model.actions

    def reduction(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Estimated reduction of P(churn within the horizon), by action (columns)."""
        return self.model.reduction(self.schema.transform(frame))

    @functools.cached_property
    def reads_schema_matrix(self) -> bool:
        """Whether the churn schema's float matrix (`FeatureSchema.matrix`, no pandas) is
        the learner's input: so it is when the learner was fitted on `schema.transform`'s
        frame, as `train_effects` fits it (the same columns in the same order, the same
        category levels). Fixed once the object is built, so read once."""
        return self.model.features.columns == self.schema.columns and all(
            list(self.model.features.categories.get(name, ())) == list(levels)
            for name, levels in self.schema.categories.items()
        )

    def reduction_rows(self, rows: Mapping[str, Sequence[Any]], num_threads: int = 0) -> np.ndarray:
        """`reduction` of rows given column-wise (feature name -> values), one column per
        action in `actions` order: the fast path a request takes, on the schema's matrix
        where the learner reads it (`reads_schema_matrix`); a learner fitted any other way
        goes through `reduction`, the reference path."""
        if not self.reads_schema_matrix:
            frame = pd.DataFrame({name: list(rows[name]) for name in self.schema.columns})
            return self.reduction(frame).to_numpy(dtype="float64")
        return self.model.reduction_matrix(self.schema.matrix(rows), num_threads)


def eligibility(
    frame: pd.DataFrame, actions: tuple[str, ...], settings: EffectSettings
) -> pd.DataFrame:
    """[row, action] whether the catalogue allows the action for the customer."""
    value = customer_value(frame, settings)
    valuable = (
        (frame["segment"].astype(str) == "enterprise")
        | frame.get("has_account_manager", pd.Series(False, index=frame.index))
        .fillna(False)
        .astype(bool)
        | (value >= CALLBACK_MIN_VALUE)
    )
    allowed = {
        "loyalty_discount": frame["contract_type"].astype(str).isin(LOYALTY_CONTRACTS),
        "callback": valuable,
    }
    return pd.DataFrame(
        {a: allowed.get(a, pd.Series(True, index=frame.index)).to_numpy() for a in actions},
        index=frame.index,
    )


def customer_value(frame: pd.DataFrame, settings: EffectSettings) -> np.ndarray:
    return frame["monthly_fee"].to_numpy(dtype="float64") * settings.value_months * settings.margin


@dataclass(frozen=True)
class EffectSplit:
    train: pd.DataFrame
    test: pd.DataFrame

    def months(self, part: str) -> list[str]:
        frame: pd.DataFrame = getattr(self, part)
        return sorted(frame[SNAPSHOT].dt.strftime("%Y-%m").unique().tolist())


def randomized(frame: pd.DataFrame) -> pd.Series:
    """The rows of randomized assignments; the others are untreated baseline rows."""
    return frame[PROPENSITY].notna()


def effect_split(frame: pd.DataFrame, test_months: int) -> EffectSplit:
    """The latest `test_months` months of randomized assignments held out; baseline rows
    (untreated customer-months) go to training when they are older, else are dropped."""
    month = frame[SNAPSHOT].dt.strftime("%Y-%m")
    months = sorted(month[randomized(frame)].unique())
    if len(months) < test_months + 2:
        raise ValueError(
            f"{len(months)} months of randomized campaigns are too few to hold out "
            f"{test_months} and learn from at least 2"
        )
    first_held = months[-test_months]
    held = month >= first_held
    return EffectSplit(frame[~held], frame[held & randomized(frame)])


@dataclass
class TrainedEffects:
    effects: Effects
    split: EffectSplit
    metrics: dict[str, float] = field(default_factory=dict)


def learner_params(settings: EffectSettings) -> EffectParams:
    p = settings.params
    return EffectParams(
        outcome_params={
            "num_leaves": p.outcome_leaves,
            "min_child_samples": p.outcome_min_child_samples,
            "learning_rate": 0.03,
            "lambda_l2": 10.0,
            "feature_fraction": 0.8,
            "num_threads": 2,
        },
        outcome_rounds=p.outcome_rounds,
        effect_params={
            "num_leaves": p.effect_leaves,
            "min_child_samples": p.effect_min_child_samples,
            "learning_rate": 0.03,
            "lambda_l2": 20.0,
            "num_threads": 2,
        },
        effect_rounds=p.effect_rounds,
        folds=p.folds,
        seed=settings.seed,
        method=p.method,
        acceptance_index=p.acceptance_index,
        acceptance_params={
            "num_leaves": p.acceptance_leaves,
            "min_child_samples": p.acceptance_min_child_samples,
            "learning_rate": 0.05,
            "num_threads": 2,
        },
    )


def fit_effects(frame: pd.DataFrame, label: str, settings: EffectSettings) -> Effects:
    columns = [c for c in frame.columns if c not in (*NOT_FEATURES, label)]
    schema = FeatureSchema.infer(frame, columns)
    baseline = frame[~randomized(frame)]
    frame = frame[randomized(frame)]
    actions = learnable_actions(frame, label, settings.actions)
    frame = frame[frame[ACTION].isin([NO_ACTION, *actions])]  # other actions: not learnt
    model = fit_effect_model(
        schema.transform(frame),
        frame[ACTION].to_numpy(dtype=object),
        frame[label].to_numpy(dtype="int64"),
        frame[PROPENSITY].to_numpy(dtype="float64"),
        actions,
        learner_params(settings),
        baseline=(schema.transform(baseline), baseline[label].to_numpy(dtype="int64"))
        if len(baseline)
        else None,
        accepted=frame[ACCEPTED].to_numpy(dtype="float64") if ACCEPTED in frame else None,
    )
    return Effects(schema, model, settings.horizon_days)


def learnable_actions(frame: pd.DataFrame, label: str, wanted: list[str]) -> list[str]:
    """The actions with enough history to learn from (rows and both outcomes, in their own
    arm and in no-action's); an error when none has, or when no-action has too little."""

    def enough(arm: str) -> bool:
        outcome = frame.loc[frame[ACTION] == arm, label]
        return len(outcome) >= MIN_ARM_ROWS and outcome.nunique() == 2

    if not enough(NO_ACTION):
        rows = int((frame[ACTION] == NO_ACTION).sum())
        raise ValueError(
            f"too little no-action history to learn effects from ({rows} rows; "
            f"{MIN_ARM_ROWS} with churners and stayers are needed)"
        )
    found = [a for a in wanted if enough(a)]
    if not found:
        raise ValueError(f"no action has {MIN_ARM_ROWS} assignments with both outcomes yet")
    return found


def policy_values(
    effects: Effects,
    test: pd.DataFrame,
    label: str,
    settings: EffectSettings,
    reduction: pd.DataFrame | None = None,
) -> dict[str, PolicyValue]:
    """Per-customer value of the greedy policy, of doing nothing, and of the logged
    assignment, on held-out rows (reward: value if the customer stays, minus the cost);
    rows of an action the model does not know are left out. `reduction`: the model's
    estimates for `test`, when the caller has them already."""
    test = test[test[ACTION].isin(effects.model.arms)]
    value = customer_value(test, settings)
    costs = {a: float(settings.action_costs.get(a, 0.0)) for a in effects.actions}
    logged = test[ACTION].to_numpy(dtype=object)
    stayed = 1 - test[label].to_numpy(dtype="float64")
    reward = value * stayed - np.array([costs.get(a, 0.0) for a in logged])
    propensity = test[PROPENSITY].to_numpy(dtype="float64")
    predicted = expected_reward(effects.model, effects.schema.transform(test), value, costs)
    reduction = effects.reduction(test) if reduction is None else reduction.loc[test.index]
    greedy = greedy_policy(reduction, value, costs, eligibility(test, effects.actions, settings))
    nothing = np.full(len(test), NO_ACTION, dtype=object)
    return {
        "greedy_dr": dr_value(greedy, logged, propensity, reward, predicted),
        "greedy_ips": ips_value(greedy, logged, propensity, reward),
        "none_dr": dr_value(nothing, logged, propensity, reward, predicted),
        "logged": PolicyValue(float(reward.mean()), float(reward.std() / np.sqrt(len(reward)))),
    }


def evaluate_effects(
    effects: Effects, test: pd.DataFrame, label: str, settings: EffectSettings
) -> dict[str, float]:
    """Qini and AUUC per action, and the policy values."""
    reduction = effects.reduction(test)
    y = test[label].to_numpy(dtype="float64")
    propensity = test[PROPENSITY].to_numpy(dtype="float64")
    metrics: dict[str, float] = {}
    for action in effects.actions:
        rows = test[ACTION].isin([action, NO_ACTION]).to_numpy()
        if rows.sum() < 50 or not (test[ACTION] == action).any():
            continue
        args = (
            reduction[action].to_numpy()[rows],
            (test[ACTION] == action).to_numpy()[rows],
            y[rows],
            propensity[rows],
        )
        metrics[f"qini_{action}"] = qini_coefficient(*args)
        metrics[f"auuc_{action}"] = auuc(*args)
    for name, estimate in policy_values(effects, test, label, settings, reduction).items():
        metrics[f"value_{name}"] = estimate.value
        metrics[f"value_{name}_se"] = estimate.std_error
    metrics["value_gain_dr"] = metrics["value_greedy_dr"] - metrics["value_none_dr"]
    metrics["rows_test"] = float(len(test))
    return metrics


def train_effects(frame: pd.DataFrame, label: str, settings: EffectSettings) -> TrainedEffects:
    """Fit on the earlier months, evaluate on the held-out ones (the rows of the arms the
    model knows: an action too rare to learn is not judged either)."""
    split = effect_split(frame, settings.test_months)
    effects = fit_effects(split.train, label, settings)
    known = split.test[split.test[ACTION].isin([NO_ACTION, *effects.actions])]
    split = EffectSplit(split.train, known)
    metrics = evaluate_effects(effects, split.test, label, settings)
    metrics["rows_train"] = float(len(split.train))
    return TrainedEffects(effects, split, metrics)


def describe(metrics: dict[str, Any]) -> str:
    """One line for a terminal."""
    qini = ", ".join(
        f"{k.removeprefix('qini_')} {v:+.4f}" for k, v in metrics.items() if k.startswith("qini_")
    )
    return (
        f"held-out policy value per customer: greedy {metrics['value_greedy_dr']:.2f} (DR, "
        f"± {metrics['value_greedy_dr_se']:.2f}), no action {metrics['value_none_dr']:.2f}, "
        f"logged {metrics['value_logged']:.2f}; Qini {qini}"
    )
