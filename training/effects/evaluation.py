"""How good are effect estimates and the policies built from them, on logged randomized data.

True effects are never observed per customer, so a ranking is judged by the Qini and uplift
curves (does targeting the top-scored customers first yield more of the total reduction?),
and a policy by off-policy value estimates: IPS (unbiased, noisy) and DR (unbiased with the
true propensities, and less noisy because the outcome model absorbs most of the reward's
variance). Every estimate reweights rows by 1/propensity, so arms assigned with unequal or
segment-dependent probabilities stay comparable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.effects.learner import NO_ACTION, EffectModel


@dataclass(frozen=True)
class PolicyValue:
    """A policy's estimated mean reward per row, with the standard error of that mean."""

    value: float
    std_error: float


def qini_curve(
    score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray
) -> pd.DataFrame:
    """The Qini curve of a reduction score, on rows that got either the action or NO_ACTION.

    Rows are taken in decreasing score; at each score threshold (ties enter together)
    `gain` is the estimated reduction of the outcome among the rows above it, in per-row units
    of the whole sample: (control rate - treated rate above the threshold) x the share of
    treated weight above it, with 1/propensity weights. `gain` ends at the average reduction
    (the ATE); `random` is the straight line to it, what a random ranking gets on average.
    """
    fraction, w_t, _, rate_gap = _above_thresholds(score, treated, outcome, propensity)
    gain = rate_gap * w_t / w_t[-1]
    return pd.DataFrame(
        {
            "fraction": np.r_[0.0, fraction],
            "gain": np.r_[0.0, gain],
            "random": np.r_[0.0, fraction * gain[-1]],
        }
    )


def qini_coefficient(
    score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray
) -> float:
    """Area between the Qini curve and the random line, per row (x from 0 to 1): 0 for a
    random or constant score, positive when big reductions are ranked first."""
    curve = qini_curve(score, treated, outcome, propensity)
    return _area(curve["fraction"], curve["gain"] - curve["random"])


def auuc(
    score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray
) -> float:
    """Area under the uplift curve, in per-row reduction units (x from 0 to 1).

    The uplift curve scales the rate gap above each threshold by the share of *all*
    (weighted) rows above it rather than of the treated ones, as the Qini curve does.
    """
    fraction, w_t, w_c, rate_gap = _above_thresholds(score, treated, outcome, propensity)
    uplift = rate_gap * (w_t + w_c) / (w_t[-1] + w_c[-1])
    return _area(np.r_[0.0, fraction], np.r_[0.0, uplift])


def ips_value(
    policy_action: np.ndarray,
    logged_action: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
) -> PolicyValue:
    """Inverse-propensity estimate of a policy's mean reward: mean(1[policy==logged]/p * r).

    Unbiased with the true logged propensities, but only rows where the policy agrees with
    the log count, each scaled by 1/p: its variance grows with the reward's scale.
    """
    policy, logged, p, r = _logged(policy_action, logged_action, propensity, reward)
    return _mean(np.where(policy == logged, r / p, 0.0))


def dr_value(
    policy_action: np.ndarray,
    logged_action: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
    predicted_reward: pd.DataFrame,
) -> PolicyValue:
    """Doubly-robust estimate of a policy's mean reward:
    mean(q[policy] + 1[policy==logged]/p * (r - q[logged])), with q the predicted reward of
    each arm (one column per arm). Unbiased if either q or p is right (p is: it is logged),
    and the correction only reweights the residual r - q, so it is much less noisy than IPS.
    """
    policy, logged, p, r = _logged(policy_action, logged_action, propensity, reward)
    if len(predicted_reward) != len(policy):
        raise ValueError(
            f"predicted_reward has {len(predicted_reward)} rows but the log has {len(policy)}"
        )
    q_policy = _pick(predicted_reward, policy)
    q_logged = _pick(predicted_reward, logged)
    return _mean(q_policy + np.where(policy == logged, (r - q_logged) / p, 0.0))


def expected_reward(
    model: EffectModel, features: pd.DataFrame, value: np.ndarray, cost: Mapping[str, float]
) -> pd.DataFrame:
    """Per arm (columns: NO_ACTION and each action) value x P(no outcome | x, arm) - cost:
    the model's expected reward of each arm per row, e.g. the predicted rewards of `dr_value`.
    NO_ACTION costs nothing unless `cost` says otherwise."""
    v = np.asarray(value, dtype="float64")
    mu = model.outcome_probability(features)
    prices = _costs(cost, model.actions)
    return pd.DataFrame(
        {a: v * (1.0 - mu[a].to_numpy()) - prices[a] for a in model.arms}, index=features.index
    )


def greedy_policy(
    reduction: pd.DataFrame,
    value: np.ndarray,
    cost: Mapping[str, float],
    allowed: pd.DataFrame | None = None,
) -> np.ndarray:
    """Per row the action with the largest reduction x value - cost, NO_ACTION when none is
    positive (an action must pay for itself). Ties go to the earlier column. `allowed`
    ([row, action], the reduction's columns) leaves out the actions a row may not get."""
    actions = [str(c) for c in reduction.columns]
    prices = _costs(cost, actions)
    v = np.asarray(value, dtype="float64").reshape(-1, 1)
    net = reduction.to_numpy(dtype="float64") * v - np.array([prices[a] for a in actions])
    if allowed is not None:
        net = np.where(allowed[actions].to_numpy(dtype=bool), net, -np.inf)
    best = net.argmax(axis=1)
    chosen = np.asarray(actions, dtype=object)[best]
    return np.where(net[np.arange(len(net)), best] > 0.0, chosen, NO_ACTION)


def _costs(cost: Mapping[str, float], actions: tuple[str, ...] | list[str]) -> dict[str, float]:
    missing = [a for a in actions if a not in cost]
    if missing:
        raise KeyError(f"no cost for action(s): {', '.join(missing)}")
    return {NO_ACTION: float(cost.get(NO_ACTION, 0.0)), **{a: float(cost[a]) for a in actions}}


def _pick(frame: pd.DataFrame, arm: np.ndarray) -> np.ndarray:
    """frame[arm[i]] at row i, with an error naming arms that have no column."""
    columns = pd.Index([str(c) for c in frame.columns])
    position = columns.get_indexer(arm)
    if (position < 0).any():
        unknown = sorted({str(a) for a in arm[position < 0]})
        raise ValueError(f"predicted_reward has no column for arm(s) {unknown}")
    return frame.to_numpy(dtype="float64")[np.arange(len(frame)), position]


def _mean(terms: np.ndarray) -> PolicyValue:
    n = len(terms)
    std_error = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return PolicyValue(value=float(terms.mean()), std_error=std_error)


def _area(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray) -> float:
    """Trapezoidal area: between tie-group ends the curve is linear (ties in random order)."""
    xs, ys = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def _check_propensity(p: np.ndarray) -> None:
    bad = int((~np.isfinite(p) | (p <= 0.0) | (p > 1.0)).sum())
    if bad:
        raise ValueError(f"{bad} row(s) have a propensity outside (0, 1]")


def _above_thresholds(
    score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """At each score threshold, in decreasing score (ties enter together): the fraction of
    rows above it, the treated and control 1/p weights above it, and the weighted control
    minus treated outcome rate above it (0 while either group is still empty)."""
    s, t, y, w = _prepared(score, treated, outcome, propensity)
    order = np.argsort(-s, kind="stable")
    s, t, y, w = s[order], t[order], y[order], w[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last row of each tie group
    w_t, w_c = np.cumsum(w * t)[ends], np.cumsum(w * (1.0 - t))[ends]
    y_t, y_c = np.cumsum(w * t * y)[ends], np.cumsum(w * (1.0 - t) * y)[ends]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_gap = np.where((w_t > 0) & (w_c > 0), y_c / w_c - y_t / w_t, 0.0)
    return (ends + 1) / len(s), w_t, w_c, rate_gap


def _prepared(
    score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(score, dtype="float64")
    t = np.asarray(treated, dtype=bool).astype("float64")
    y = np.asarray(outcome, dtype="float64")
    p = np.asarray(propensity, dtype="float64")
    if not len(s) == len(t) == len(y) == len(p):
        raise ValueError("score, treated, outcome and propensity differ in length")
    if len(s) == 0:
        raise ValueError("no rows to evaluate")
    _check_propensity(p)
    return s, t, y, 1.0 / p


def _logged(
    policy_action: np.ndarray,
    logged_action: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    policy = np.asarray(policy_action).astype(str)
    logged = np.asarray(logged_action).astype(str)
    p = np.asarray(propensity, dtype="float64")
    r = np.asarray(reward, dtype="float64")
    if not len(policy) == len(logged) == len(p) == len(r):
        raise ValueError("policy_action, logged_action, propensity and reward differ in length")
    if len(policy) == 0:
        raise ValueError("no rows to evaluate")
    _check_propensity(p)
    return policy, logged, p, r
