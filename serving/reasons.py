"""Plain-language reasons: the features that push a customer's risk up the most.

A reason is a feature with a positive contribution to the model's log-odds (LightGBM's
exact TreeSHAP values), worded for a call-centre agent, with the value behind it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from serving.domain import Reason

# feature -> wording; `{v}` is the customer's value
TEMPLATES: dict[str, str] = {
    "contract_type": "contract: {v}",
    "days_to_contract_end": "contract term ends in {v:.0f} days",
    "tenure_days": "customer for {v:.0f} days",
    "monthly_fee": "monthly fee {v:.2f}",
    "payment_method": "pays by {v}",
    "paperless_billing": "paperless billing: {v}",
    "segment": "segment: {v}",
    "age_band": "age band {v}",
    "plan_id": "plan {v}",
    "bill_30d": "last bill {v:.2f}",
    "bill_change_vs_prev_3m": "last bill {v:+.0%} against the three before",
    "overage_30d": "overage charges {v:.2f} last month",
    "overage_90d": "overage charges {v:.2f} in 90 days",
    "late_payments_180d": "{v:.0f} late payments in 180 days",
    "tickets_complaint_90d": "{v:.0f} complaints in 90 days",
    "tickets_network_fault_90d": "{v:.0f} network-fault tickets in 90 days",
    "tickets_billing_dispute_90d": "{v:.0f} billing disputes in 90 days",
    "tickets_relocation_90d": "{v:.0f} relocation enquiries in 90 days",
    "tickets_30d": "{v:.0f} tickets in 30 days",
    "tickets_180d": "{v:.0f} tickets in 180 days",
    "unresolved_tickets": "{v:.0f} unresolved tickets",
    "repeat_complaints_90d": "{v:.0f} repeat complaints in 90 days",
    "sentiment_mean_90d": "average ticket sentiment {v:+.2f} (90 days)",
    "sentiment_min_90d": "worst ticket sentiment {v:+.2f} (90 days)",
    "first_contact_resolution_180d": "first-contact resolution {v:.0%} (180 days)",
    "days_since_last_complaint": "last complaint {v:.0f} days ago",
    "offers_180d": "{v:.0f} retention offers in 180 days",
    "days_since_last_offer": "last offer {v:.0f} days ago",
    "packages_90d": "{v:.0f} packages bought in 90 days",
    "home_cell_drop_rate_30d": "home cell drop rate {v:.1%} (30 days)",
    "home_cell_outage_hours_30d": "{v:.1f} outage hours at the home cell in 30 days",
    "home_cell_outage_hours_90d": "{v:.1f} outage hours at the home cell in 90 days",
    "data_gb_30d": "{v:.1f} GB of data in 30 days",
    "data_gb_mean_90d": "{v:.1f} GB of data a month (90 days)",
    "roaming_days_90d": "{v:.0f} roaming days in 90 days",
}


def describe(feature: str, value: Any) -> str:
    """The wording of one feature's value; a missing value says so."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{feature.replace('_', ' ')}: unknown"
    if feature == "days_to_contract_end" and value == 0:
        return "no contract term to run out: free to leave any day"
    template = TEMPLATES.get(feature)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a count reads "2" whether a store hands it over as 2 or 2.0
    try:
        return template.format(v=value) if template else f"{feature.replace('_', ' ')}: {value}"
    except (ValueError, TypeError):  # a text value where the template expects a number
        return f"{feature.replace('_', ' ')}: {value}"


def top_reasons(
    values: Mapping[str, Any], names: Sequence[str], contributions: np.ndarray, count: int
) -> list[Reason]:
    """The `count` features raising this customer's risk the most, largest first.

    `contributions[j]` is feature `names[j]`'s (a trailing bias term is ignored); ties
    keep the model's column order.
    """
    scores = np.asarray(contributions[: len(names)], dtype="float64")
    order = np.argsort(-scores, kind="stable")[:count]
    reasons = []
    for j in order:
        if not scores[j] > 0:
            break
        value = _plain(values.get(names[j]))
        reasons.append(Reason(names[j], describe(names[j], value), value, float(scores[j])))
    return reasons


def _plain(value: Any) -> Any:
    """Numpy and pandas scalars as plain Python values (JSON-ready)."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
