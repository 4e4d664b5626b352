"""Negative sampling of the churn training rows, with inverse-probability weights.

At a million customers the churn panel holds about 14 million customer-months, of which
about 2.5 % churn. Production churn systems keep every churner and a random share of the
stayers, and weight each kept stayer by the inverse of that share, so that the weighted
rows stand for the whole panel: the booster's loss, and so its probabilities, are those of
the full data in expectation, at a fraction of the memory and time.

Only the older snapshot months are sampled; the latest `keep_latest_months` (the model's
validation and test months) keep every row, so early stopping, calibration and every
held-out metric are computed on the population as it is, unweighted. The draws are
seeded: the same rows give the same sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from features.labels import SNAPSHOT

WEIGHT = "sample_weight"


class NegativeSampling(BaseModel):
    """`negative_sampling:` in configs/features.yaml; rate 1 (the default) keeps every row."""

    rate: float = Field(1.0, gt=0.0, le=1.0, description="Share of older stayers kept.")
    keep_latest_months: int = Field(
        5, ge=0, description="Latest snapshot months kept whole (the model's valid + test)."
    )
    seed: int = Field(7, description="Seed of the draws.")


def sample_negatives(rows: pd.DataFrame, label: str, sampling: NegativeSampling) -> pd.DataFrame:
    """Every positive row and every row of the latest months, and a `rate` share of the
    other negatives, each weighted 1 / rate (the others 1). Rate 1: the rows unchanged."""
    if sampling.rate >= 1.0:
        return rows
    snapshots = np.sort(rows[SNAPSHOT].unique())
    keep = sampling.keep_latest_months
    latest = snapshots[-keep:] if keep else snapshots[:0]
    sampled = ~rows[SNAPSHOT].isin(latest).to_numpy() & ~rows[label].to_numpy(dtype=bool)
    drawn = np.random.default_rng(sampling.seed).random(len(rows)) < sampling.rate
    kept = ~sampled | drawn
    weights = np.where(sampled[kept], 1.0 / sampling.rate, 1.0)
    return rows[kept].assign(**{WEIGHT: weights}).reset_index(drop=True)
