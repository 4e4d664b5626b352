"""How a customer answers a retention action: each action's effect on the churn hazard.

The catalogue is the serving catalogue (`configs/serving.yaml`): three retention offers and
the account-manager callback, against no action. An action delivered at the start of a
month changes the customer's churn log-odds for that month and the next by

    effect = situational part (what we can observe, by action)
           + contact annoyance (contact-averse customers who are content today)
           + unobserved individual variation (a shared receptiveness and a per-action taste)

and nothing when the customer is moving away (a relocation ticket this month: no offer
keeps someone who leaves the coverage area). The situational parts, on the log-odds scale,
and why each is plausible:

- `data_boost` (extra data for a month, cost 5): -0.15, and -0.55 more for a customer who
  paid overage last month, -0.25 more under 35. Extra data is worth something only to
  those who run out of it, and young customers use most.
- `loyalty_discount` (a discount on the bill, cost 30): -0.2, -1.1 more after a bill shock
  (bill up >= 25 %), -0.35 more for electronic-check payers (the most price-sensitive
  group in telecom data), -0.3 more month-to-month; half as much for enterprises, whose
  bill someone else pays. A discount answers price, not faults.
- `contract_upgrade_bonus` (a bonus for committing to a new 12/24-month term, cost 60):
  -0.1, -1.3 more when the contract ends within 60 days (the customer is choosing now),
  -0.5 more for a month-to-month customer of over six months (settled enough to commit).
  To a customer mid-term it is nearly worthless.
- `callback` (an account manager calls, cost 15 and a slot of capacity): -0.25, -0.35 per
  complaint-like ticket in the last 90 days (up to three), -0.6 more with a ticket still
  open, -0.7 x the negativity of recent sentiment, -0.4 more after more than four hours of
  outage at the home cell last month, -0.35 more for customers over 60 and -0.2 for
  enterprises (both value a person over an app). A human fixes what annoyed the customer.
- Contact annoyance: a hidden third of customers (a quarter, plus a fifth more on two-year
  contracts) dislike being contacted; while they are content (no complaint-like ticket
  in 90 days, none open, no bill shock, contract not ending, over two years of tenure) an
  offer reminds them to compare prices: +1.0 for a message, +0.6 for a call (sleeping dogs).
- Individual variation: receptiveness ~ N(0, 0.2) shared by every action, and a taste
  ~ N(0, 0.3) per action; neither is observed.

`expected` is the effect's expectation given what the operator observes (the annoyance
replaced by its probability): what an oracle policy may know, and no more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIONS = ("data_boost", "loyalty_discount", "contract_upgrade_bonus", "callback")
NO_ACTION = "none"
# Actions the serving engine may deliver that carry no modelled effect on churn: service
# messages and package notices (their effect, if any, is not part of this simulator).
NEUTRAL_ACTIONS = ("outage_notice", "seasonal_package")
ACTION_COSTS = {
    "data_boost": 5.0,
    "loyalty_discount": 30.0,
    "contract_upgrade_bonus": 60.0,
    "callback": 15.0,
}
_TASTE_SD = 0.3
_RECEPTIVENESS_SD = 0.2
_ANNOYANCE = np.array([1.0, 1.0, 1.0, 0.6])  # per action: a person calling annoys less
_ACCEPT_INTERCEPT = -1.2  # acceptance rises with what the action does for the customer


@dataclass(frozen=True)
class Situation:
    """What a customer's response depends on at a month start (arrays of one block)."""

    bill_shock: np.ndarray
    near_end: np.ndarray  # term contract ending within 60 days
    complaints: np.ndarray  # complaint-like tickets in the last 90 days
    unresolved: np.ndarray  # tickets open now
    negativity: np.ndarray  # max(-mean sentiment of the last 90 days, 0)
    outage_hours: np.ndarray  # at the home cell, last month
    had_overage: np.ndarray  # paid overage last month
    tenure_months: np.ndarray
    month_to_month: np.ndarray
    two_year: np.ndarray
    enterprise: np.ndarray
    age: np.ndarray  # index into AGE_BANDS (0: 18-24 ... 4: 60+)
    electronic_check: np.ndarray
    relocating: np.ndarray


def content(s: Situation) -> np.ndarray:
    """Customers with nothing to complain about: contact only reminds them of the market."""
    return (
        (s.complaints == 0)
        & (s.unresolved == 0)
        & ~s.bill_shock
        & ~s.near_end
        & (s.tenure_months > 24)
    )


def averse_probability(s: Situation) -> np.ndarray:
    """P(a customer dislikes being contacted) given what is observed."""
    return 0.25 + 0.2 * s.two_year


def situational(s: Situation) -> np.ndarray:
    """[n, action] the observable part of each action's effect (log-odds)."""
    young = s.age <= 1
    price = np.where(s.enterprise, 0.5, 1.0)
    return np.stack(
        [
            -0.15 - 0.55 * s.had_overage - 0.25 * young,
            price
            * (-0.2 - 1.1 * s.bill_shock - 0.35 * s.electronic_check - 0.3 * s.month_to_month),
            -0.1 - 1.3 * s.near_end - 0.5 * (s.month_to_month & (s.tenure_months > 6)),
            -0.25
            - 0.35 * np.minimum(s.complaints, 3)
            - 0.6 * (s.unresolved > 0)
            - 0.7 * s.negativity
            - 0.4 * (s.outage_hours > 4)
            - 0.35 * (s.age == 4)
            - 0.2 * s.enterprise,
        ],
        axis=1,
    )


@dataclass(frozen=True)
class Effects:
    realised: np.ndarray  # [n, action] log-odds change for this customer
    expected: np.ndarray  # [n, action] its expectation given observables


def effects(
    s: Situation, receptiveness: np.ndarray, taste: np.ndarray, averse: np.ndarray
) -> Effects:
    """Each action's effect on the churn log-odds this month, realised and expected."""
    base = situational(s)
    annoy = content(s)[:, None] * _ANNOYANCE[None, :]
    moving = s.relocating[:, None]
    realised = base + averse[:, None] * annoy
    realised = realised + _RECEPTIVENESS_SD * receptiveness[:, None] + _TASTE_SD * taste
    expected = base + averse_probability(s)[:, None] * annoy
    return Effects(
        realised=np.where(moving, 0.0, realised), expected=np.where(moving, 0.0, expected)
    )


def acceptance_probability(realised: np.ndarray) -> np.ndarray:
    """P(the customer takes the offer up (or answers the call)): likelier when it helps."""
    return 1.0 / (1.0 + np.exp(-(_ACCEPT_INTERCEPT - 1.5 * realised)))


def eligible(month_to_month: np.ndarray, one_year: np.ndarray, valuable: np.ndarray) -> np.ndarray:
    """[n, action] which actions the operator may offer (the serving catalogue's rules):
    the loyalty discount to month-to-month and one-year contracts, callbacks to valuable
    customers (enterprise, an account manager, or worth 1,500 or more)."""
    n = len(month_to_month)
    return np.stack(
        [np.ones(n, bool), month_to_month | one_year, np.ones(n, bool), valuable], axis=1
    )


def two_month_churn(logit: np.ndarray) -> np.ndarray:
    """P(leaving within two months) at a constant monthly log-odds."""
    return 1 - (1 - 1 / (1 + np.exp(-logit))) ** 2


__all__ = [
    "ACTIONS",
    "ACTION_COSTS",
    "NEUTRAL_ACTIONS",
    "NO_ACTION",
    "Effects",
    "Situation",
    "acceptance_probability",
    "effects",
    "eligible",
    "two_month_churn",
]
