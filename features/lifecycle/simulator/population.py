"""Who the customers are: profile, plan, contract, consents and hidden traits.

Marginals follow the IBM Telco sample (contract mix about 55/21/24 month-to-month /
one-year / two-year, monthly fees 18-120 with a low-tariff hump near 20 and a mean
near 65, 16 % seniors, a third paying by electronic check), and tenure at the as-of
date spreads over 0-72 months with more short- and long-tenure customers than middle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.lifecycle.contract import AGE_BANDS, CONTRACT_TYPES, PAYMENT_METHODS
from features.lifecycle.simulator.network import Network
from features.lifecycle.simulator.responses import ACTIONS
from features.lifecycle.simulator.world import DAY, MONTH_DAYS, PLANS, REGIONS, MonthGrid

NEW_CUSTOMER_SHARE = 0.38  # of all customers, signed up during the simulated history


@dataclass
class Population:
    """Column arrays of one block of customers (all of equal length)."""

    index: np.ndarray  # global customer number
    signup: np.ndarray  # seconds
    enterprise: np.ndarray
    age: np.ndarray  # index into AGE_BANDS
    student: np.ndarray
    region: np.ndarray
    site: np.ndarray
    plan: np.ndarray  # index into PLANS
    fee: np.ndarray
    allowance_gb: np.ndarray
    contract: np.ndarray  # index into CONTRACT_TYPES
    payment: np.ndarray  # index into PAYMENT_METHODS
    paperless: np.ndarray
    consents: np.ndarray  # [n, 4] sms, app_push, email, phone
    large_print: np.ndarray
    account_manager: np.ndarray  # -1 = none
    # hidden traits, never written as features
    frailty: np.ndarray  # standard normal propensity to leave
    travel: np.ndarray  # propensity to roam
    data_appetite: np.ndarray
    receptiveness: np.ndarray  # standard normal, shared by every retention action
    taste: np.ndarray  # [n, action] standard normal, one per retention action
    contact_averse: np.ndarray  # dislikes being contacted while content

    def __len__(self) -> int:
        return len(self.index)


def _choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a [n, k] probability matrix."""
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (rng.random((len(probs), 1)) > cumulative).sum(axis=1).clip(0, probs.shape[1] - 1)


def _signup_times(n: int, grid: MonthGrid, rng: np.random.Generator) -> np.ndarray:
    """Pre-history signups spread over up to six years; the rest during the history."""
    is_new = rng.random(n) < NEW_CUSTOMER_SHARE
    # tenure at the history start, months: many recent joiners plus a long flat tail
    tenure = np.where(rng.random(n) < 0.3, rng.exponential(7, n), rng.uniform(0, 58, n))
    before = (
        grid.history_start
        - (tenure * MONTH_DAYS * DAY).astype(np.int64)
        - rng.integers(DAY, 20 * DAY, n)
    )
    # intake is seasonal: September (students) and December (gifts) are busiest
    month_weight = np.array([1.0, 1.1, 1.0, 0.9, 0.9, 0.9, 1.0, 1.2, 1.6, 1.0, 1.0, 1.4])
    weights = month_weight[grid.calendar_month - 1] * np.diff(grid.starts)
    month = rng.choice(grid.count, size=n, p=weights / weights.sum())
    span = np.minimum(grid.starts[month + 1], grid.as_of) - grid.starts[month]
    during = grid.starts[month] + (rng.random(n) * span).astype(np.int64)
    return np.where(is_new, during, before)


def draw_population(
    index: np.ndarray,
    total_customers: int,
    grid: MonthGrid,
    network: Network,
    rng: np.random.Generator,
) -> Population:
    n = len(index)
    signup = _signup_times(n, grid, rng)
    tenure_at_start = np.maximum(grid.history_start - signup, 0) / (MONTH_DAYS * DAY)
    enterprise = rng.random(n) < 0.12

    age = _choice(rng, np.tile([0.14, 0.22, 0.22, 0.26, 0.16], (n, 1)))
    student = ~enterprise & (
        ((age == 0) & (rng.random(n) < 0.55)) | ((age == 1) & (rng.random(n) < 0.08))
    )

    region_weights = np.array([r.weight for r in REGIONS])
    region = rng.choice(len(REGIONS), size=n, p=region_weights / region_weights.sum())
    site = np.empty(n, dtype=np.int64)
    for r in range(len(REGIONS)):
        members = np.flatnonzero(network.site_region == r)
        # a stable popularity per site (a hash of its index) so all blocks agree on it
        popularity = 1.0 + (members * 2654435761 % 1000) / 400.0
        chosen = region == r
        site[chosen] = rng.choice(members, size=chosen.sum(), p=popularity / popularity.sum())

    consumer_plan = np.tile([0.21, 0.30, 0.29, 0.20, 0.0, 0.0], (n, 1))
    consumer_plan[age == 4] = [0.45, 0.30, 0.10, 0.15, 0.0, 0.0]  # seniors prefer low tariffs
    consumer_plan[student] = [0.10, 0.35, 0.50, 0.05, 0.0, 0.0]
    consumer_plan[enterprise] = [0.0, 0.0, 0.0, 0.0, 0.55, 0.45]
    plan = _choice(rng, consumer_plan)
    fee_mean = np.array([p.fee_mean for p in PLANS])[plan]
    fee_sd = np.array([p.fee_sd for p in PLANS])[plan]
    fee = np.round(np.clip(rng.normal(fee_mean, fee_sd), 18, 120) * 20) / 20
    allowance = np.array([p.data_allowance_gb for p in PLANS])[plan]

    # Long-standing customers who are still here are mostly on term contracts (survivorship
    # in the IBM sample); new customers mostly start month-to-month.
    longevity = np.minimum(tenure_at_start / 60.0, 1.0)
    p_mtm = np.where(enterprise, 0.25, 0.74 - 0.4 * longevity)
    p_two = (1 - p_mtm) * np.where(enterprise, 0.5, 0.42 + 0.33 * longevity)
    contract = _choice(rng, np.stack([p_mtm, 1 - p_mtm - p_two, p_two], axis=1))

    payment_probs = np.tile([0.34, 0.23, 0.22, 0.21], (n, 1))
    payment_probs[age == 4] = [0.30, 0.40, 0.15, 0.15]
    payment = _choice(rng, payment_probs)
    young = age <= 1
    paperless = rng.random(n) < np.where(young, 0.75, np.where(age == 4, 0.35, 0.6))
    consents = np.stack(
        [
            rng.random(n) < 0.72,
            rng.random(n) < np.where(young, 0.75, np.where(age == 4, 0.3, 0.55)),
            rng.random(n) < 0.6,
            rng.random(n) < np.where(enterprise, 0.85, 0.45),
        ],
        axis=1,
    )
    large_print = rng.random(n) < np.where(age == 4, 0.25, 0.01)
    n_managers = max(5, total_customers // 500)
    has_manager = (enterprise & (rng.random(n) < 0.85)) | (
        ~enterprise & (fee > 90) & (rng.random(n) < 0.08)
    )
    account_manager = np.where(has_manager, rng.integers(0, n_managers, n), -1)

    frailty = rng.normal(0, 1, n)
    travel = rng.gamma(0.8, 1.0, n) * np.where(enterprise, 1.8, 1.0) * np.where(age == 4, 0.6, 1.0)
    data_appetite = rng.lognormal(0, 0.45, n) * np.where(young, 1.5, np.where(age == 4, 0.45, 1.0))

    # How a customer answers retention actions (see `responses`): hidden, never features.
    receptiveness = rng.normal(0, 1, n)
    taste = rng.normal(0, 1, (n, len(ACTIONS)))
    contact_averse = rng.random(n) < 0.25 + 0.2 * (contract == 2)

    return Population(
        index=index,
        signup=signup,
        enterprise=enterprise,
        age=age,
        student=student,
        region=region,
        site=site,
        plan=plan,
        fee=fee,
        allowance_gb=allowance,
        contract=contract,
        payment=payment,
        paperless=paperless,
        consents=consents,
        large_print=large_print,
        account_manager=account_manager,
        frailty=frailty,
        travel=travel,
        data_appetite=data_appetite,
        receptiveness=receptiveness,
        taste=taste,
        contact_averse=contact_averse,
    )


__all__ = [
    "AGE_BANDS",
    "CONTRACT_TYPES",
    "PAYMENT_METHODS",
    "Population",
    "draw_population",
]
