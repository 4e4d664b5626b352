"""Customer value for serving: the expected margin over the next months of scored customers.

One function for both paths: the daily list calls `customer_values` with the rows of its
listed customers, the API through `CachedValues` with a request's rows. `training.value`
holds the hazard arithmetic; this module turns it into the decision rules' `CustomerValue`.

A value costs 24 more rows through the booster (a few times the score itself), so the API
keeps each computed value under its exact input: the model row's bytes and the fee. A
customer scored again with the same features (the rest of the day: tenure is counted in
whole days) gets the very value computed first.
"""

from __future__ import annotations

import threading

import numpy as np
from cachetools import LRUCache

from serving.domain import CustomerValue
from serving.settings import CustomerValueSettings
from training.model import ChurnModel
from training.value import lifetimes


def customer_values(
    model: ChurnModel,
    matrix: np.ndarray,
    monthly_fee: np.ndarray,
    settings: CustomerValueSettings,
) -> list[CustomerValue]:
    """Each row's value: expected discounted margin and expected months retained over
    `settings.horizon_months`, from the churn model's hazards (`training.value`)."""
    if len(matrix) == 0:
        return []
    found = lifetimes(
        model,
        matrix,
        monthly_fee,
        settings.horizon_months,
        settings.margin_rate,
        settings.annual_discount_rate,
    )
    return [
        CustomerValue(float(margin), float(months), settings.horizon_months)
        for margin, months in zip(found.margin, found.months, strict=True)
    ]


class CachedValues:
    """`customer_values` for a request's rows, each distinct input computed once (LRU)."""

    def __init__(self, model: ChurnModel, settings: CustomerValueSettings) -> None:
        self.model = model
        self.settings = settings
        self.cache: LRUCache[bytes, CustomerValue] = LRUCache(maxsize=max(settings.cache, 1))
        self.lock = threading.Lock()  # cachetools caches are not thread-safe

    def __call__(self, matrix: np.ndarray, monthly_fee: np.ndarray) -> list[CustomerValue]:
        if self.settings.cache == 0:
            return customer_values(self.model, matrix, monthly_fee, self.settings)
        fees = np.asarray(monthly_fee, dtype="float64")
        keys = [row.tobytes() + fee.tobytes() for row, fee in zip(matrix, fees, strict=True)]
        with self.lock:
            found = [self.cache.get(key) for key in keys]
        todo = [i for i, value in enumerate(found) if value is None]
        if todo:
            computed = customer_values(self.model, matrix[todo], fees[todo], self.settings)
            with self.lock:
                for i, value in zip(todo, computed, strict=True):
                    found[i] = self.cache[keys[i]] = value
        return [value for value in found if value is not None]
