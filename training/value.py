"""Customer value: the margin a customer is expected to bring over the next months.

The churn model is a discrete-time hazard model: LightGBM on customer x month-end snapshots,
labelled "leaves within the next 30 days", calibrated. So the probability that a customer
still here after month j-1 leaves in month j is the model's score of the customer's row
with the features that move with time advanced j-1 months: tenure grows 30 days a step and
the contract term counts down, renewing on its anniversary as the simulator's and the
feature pipeline's contracts do (`features.lifecycle.calendar.term_end_after`); the other
features are held at today's values. From those hazards h_1..h_K:

    S_k = prod_{j<=k} (1 - h_j)                     still a customer after k months
    expected months   = sum_k S_k                   (within the horizon K)
    expected margin   = sum_k S_k x fee x margin rate x (1 + annual rate)^(-k/12)

`hazards` is the one implementation: the API scores a request's rows with it, the daily
list a chunked batch, and `training.lifetime_check` compares its lifetimes with what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.lifecycle.contract import CONTRACT_MONTHS
from training.model import ChurnModel, FeatureSchema

STEP_DAYS = 30.0  # one hazard step: the churn label's horizon
MONTH_DAYS = 365.25 / 12  # a calendar month, for the length of a contract term
TENURE, CONTRACT_END, CONTRACT_TYPE = "tenure_days", "days_to_contract_end", "contract_type"
CHUNK_ROWS = 250_000  # model rows predicted at once: bounds the memory of a large batch


@dataclass(frozen=True)
class Lifetimes:
    """Per customer: expected months retained and expected discounted margin."""

    months: np.ndarray
    margin: np.ndarray
    hazards: np.ndarray  # (customers, horizon): h_1..h_K


def advance(schema: FeatureSchema, matrix: np.ndarray, steps: int) -> np.ndarray:
    """The model matrix advanced 0..steps-1 months: shape (steps, customers, features).

    Tenure grows by 30 days a step; a term contract's days to its end count down and start
    again at the full term when it renews; month-to-month (0 days) and missing values stay
    as they are. A schema without these columns is repeated unchanged.
    """
    shift = STEP_DAYS * np.arange(steps, dtype="float64")[:, None]
    out = np.repeat(matrix[None, :, :], steps, axis=0)
    columns = schema.columns
    if TENURE in columns:
        j = columns.index(TENURE)
        out[:, :, j] = matrix[None, :, j] + shift
    if CONTRACT_END in columns and CONTRACT_TYPE in schema.categories:
        j = columns.index(CONTRACT_END)
        term = _term_days(schema, matrix[:, columns.index(CONTRACT_TYPE)])
        days = matrix[None, :, j]
        left = days - shift
        has_term = term[None, :] > 0
        renewed = term[None, :] - np.mod(-left, np.maximum(term[None, :], 1.0))  # (0, term]
        out[:, :, j] = np.where(has_term, np.where(left <= 0, renewed, left), days)
    return out


def _term_days(schema: FeatureSchema, codes: np.ndarray) -> np.ndarray:
    """Each row's contract term in days (0 for month-to-month, unknown or missing types)."""
    levels = schema.categories[CONTRACT_TYPE]
    months = np.array([CONTRACT_MONTHS.get(level, 0) for level in levels], dtype="float64")
    known = ~np.isnan(codes)
    term = np.zeros(len(codes))
    term[known] = months[codes[known].astype(int)]
    return np.where(term > 1, term * MONTH_DAYS, 0.0)


def hazards(model: ChurnModel, matrix: np.ndarray, steps: int) -> np.ndarray:
    """Calibrated monthly churn probabilities h_1..h_steps of each row of the model matrix
    (`FeatureSchema.matrix` / `frame_matrix`): shape (customers, steps). h_1 is the score
    of the row as it is."""
    n = len(matrix)
    out = np.empty((n, steps))
    per_chunk = max(CHUNK_ROWS // max(steps, 1), 1)
    for start in range(0, n, per_chunk):
        block = advance(model.schema, matrix[start : start + per_chunk], steps)
        rows = block.reshape(-1, matrix.shape[1])
        # a request's few rows on the calling thread: an OpenMP team costs more than they do
        raw = np.asarray(model.booster.predict(rows, num_threads=1 if len(rows) < 500 else 0))
        out[start : start + per_chunk] = model.calibrate(raw).reshape(steps, -1).T
    return out


def discount_factors(steps: int, annual_rate: float) -> np.ndarray:
    """(1 + annual rate)^(-k/12) for months k = 1..steps."""
    return np.power(1.0 + annual_rate, -np.arange(1, steps + 1) / 12.0)


def lifetimes(
    model: ChurnModel,
    matrix: np.ndarray,
    monthly_fee: np.ndarray,
    horizon_months: int,
    margin_rate: float,
    annual_discount_rate: float,
) -> Lifetimes:
    """Expected months retained and discounted margin over `horizon_months` per row."""
    h = hazards(model, matrix, horizon_months)
    survival = np.cumprod(1.0 - h, axis=1)
    fee = np.nan_to_num(np.asarray(monthly_fee, dtype="float64"), nan=0.0)
    margin = (survival * discount_factors(horizon_months, annual_discount_rate)).sum(axis=1)
    return Lifetimes(survival.sum(axis=1), margin * fee * margin_rate, h)
