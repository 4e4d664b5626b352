"""The monitoring reference, frozen when the churn model is trained.

Production monitoring (`retain monitor`) compares each day's features and scores with
what the model learnt from. That picture is taken here, once, from the training run
itself, and logged beside the model (`monitoring/reference.json`), so a day is always
judged against its own model's data and never against a later or recomputed one:

- every feature's reference bins, from the training months (as the population has them,
  where a negative sampling weighted the rows: `population_sample`): numeric features get
  quantile bin edges and each bin's share (plus the missing share), categorical ones the
  share of each level (plus missing); and a quantile sketch of each numeric feature (its
  empirical distribution at `sketch_points` probabilities) and its standard deviation,
  for the KS statistic and the normed Wasserstein distance; and how far each training
  month drifts from the months more than `MONTHS_APART` away (PSI, KS, Wasserstein,
  missing share: the drift of normal life, which raises the feature's alert levels);
- the score distribution (raw and calibrated) on the held-out test months, which is what
  today's scores should look like (training-month scores are overfit by construction);
- the performance expected from the calibrated test scores alone (the CBPE estimate
  today's estimate is compared with) and the realised one.

Only aggregates are stored: bin edges, shares and quantiles, never a customer's row.
"""

from __future__ import annotations

from typing import Any, Protocol

import mlflow
import numpy as np
import pandas as pd
from scipy.stats import kstwobign
from sklearn.metrics import roc_auc_score

from features.labels import SNAPSHOT
from features.sampling import WEIGHT
from training.model import ChurnModel, FeatureSchema


class _Split(Protocol):
    @property
    def train(self) -> pd.DataFrame: ...
    @property
    def test(self) -> pd.DataFrame: ...
    def months(self, part: str) -> list[str]: ...


class Trained(Protocol):
    """What the reference needs of a trained churn model (`training.churn.TrainedChurn`,
    named structurally: serving imports this module, and never training's run code)."""

    @property
    def model(self) -> ChurnModel: ...
    @property
    def split(self) -> _Split: ...
    @property
    def label(self) -> str: ...
    @property
    def test_raw(self) -> np.ndarray: ...
    @property
    def test_calibrated(self) -> np.ndarray: ...


REFERENCE_ARTIFACT = "monitoring/reference.json"
# 3: numeric features also keep their standard deviation, each month's normed
# Wasserstein distance and the test months' quantile sketch (2: each month's drift
# against the months more than MONTHS_APART away, PSI of the present values and the
# missing share apart; 1: against the whole)
REFERENCE_VERSION = 3
READABLE_VERSIONS = (2, 3)  # a version-2 reference is read without the Wasserstein distance
MISSING = "__missing__"  # the level name of missing values in categorical shares
TOP_SHARE = 0.10  # precision is read on the top decile of scores
SHARE_FLOOR = 1e-4  # an empty bin counts as this share in PSI
MONTHS_APART = 3  # a training month's drift is read against the months this far from it


def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """The distinct inner quantile edges that cut `values` into about `bins` equal bins;
    a mostly constant feature gets fewer (an all-zero one none: a single bin)."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    inner = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    return [float(edge) for edge in np.unique(inner)]


def numeric_bins(numbers: np.ndarray, edges: list[float]) -> np.ndarray:
    """Each value's bin among (-inf, e1], (e1, e2], ..., (ek, inf), missing last."""
    missing = np.isnan(numbers)
    index = np.searchsorted(
        np.asarray(edges, dtype="float64"), np.where(missing, 0.0, numbers), side="left"
    )
    return np.where(missing, len(edges) + 1, index)


def categorical_bins(values: pd.Series, levels: list[str]) -> np.ndarray:
    """Each value's level, then any other (unseen) level, missing last."""
    text = values.astype("object")
    codes = pd.Categorical(text.where(text.isna(), text.astype(str)), categories=levels).codes
    known = np.where(codes < 0, len(levels), codes)  # any other level: just after the known
    return np.where(text.isna().to_numpy(), len(levels) + 1, known)


def _shares(bins: np.ndarray, width: int) -> list[float]:
    return (np.bincount(bins, minlength=width) / max(len(bins), 1)).tolist()


def numeric_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares of the bins (-inf, e1], (e1, e2], ..., (ek, inf) and then of missing."""
    return _shares(numeric_bins(values, edges), len(edges) + 2)


def categorical_shares(values: pd.Series, levels: list[str]) -> list[float]:
    """Shares of each level, of any other (unseen) level, and of missing."""
    return _shares(categorical_bins(values, levels), len(levels) + 2)


def quantile_sketch(values: np.ndarray, points: int) -> list[float]:
    """The non-missing values' quantiles at `points` evenly spaced probabilities (0 to 1)."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    probabilities = np.linspace(0, 1, points)
    return [float(q) for q in np.quantile(present, probabilities, method="inverted_cdf")]


def spread(values: np.ndarray) -> float:
    """The standard deviation of the non-missing values (0.0 when there are none)."""
    present = values[~np.isnan(values)]
    return float(present.std()) if present.size else 0.0


def numeric_reference(values: np.ndarray, bins: int, sketch_points: int) -> dict[str, Any]:
    edges = quantile_edges(values, bins)
    return {
        "kind": "numeric",
        "edges": edges,
        "shares": numeric_shares(values, edges),
        "sketch": quantile_sketch(values, sketch_points),
        "sd": spread(values),
        "rows": len(values),
    }


def categorical_reference(values: pd.Series, levels: list[str]) -> dict[str, Any]:
    return {
        "kind": "categorical",
        "levels": levels,
        "shares": categorical_shares(values, levels),
        "rows": len(values),
    }


def feature_references(
    frame: pd.DataFrame, schema: FeatureSchema, bins: int, sketch_points: int,
    apart: int = MONTHS_APART, recent: pd.DataFrame | None = None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Every model feature's reference from `frame` (the training months), with how far
    each single month of them drifts from the other months (`month_drift`: `month_psi`,
    `month_missing`, `month_ks`, `month_wasserstein`): the drift a month of normal life
    shows, which sets each feature's own alert levels. Numeric features also get the
    quantile sketch of `recent` (the test months, the latest the model was judged on:
    `recent_sketch`), the second reference the Wasserstein distance is read against."""
    prepared = schema.transform(frame)
    latest = schema.transform(recent) if recent is not None else None
    # month codes 0, 1, ... in order: comparing integers, not timezone-aware timestamps
    # held as Python objects (seconds per feature on a large training set)
    months, order = pd.factorize(frame[SNAPSHOT], sort=True)
    out: dict[str, dict[str, Any]] = {}
    for name in schema.numeric:
        values = prepared[name].to_numpy(dtype="float64")
        out[name] = numeric_reference(values, bins, sketch_points)
        out[name] |= month_drift(
            months, len(order), bin_index(out[name], prepared[name]), len(out[name]["shares"]),
            sketch_index(out[name]["sketch"], values), apart,
        )  # fmt: skip
        out[name]["month_wasserstein"] = month_wasserstein(
            values, months, len(order), sketch_points, out[name]["sd"], apart
        )
        if latest is not None:
            recent_values = latest[name].to_numpy(dtype="float64")
            out[name]["recent_sketch"] = quantile_sketch(recent_values, sketch_points)
    for name, levels in schema.categories.items():
        out[name] = categorical_reference(prepared[name].astype("object"), levels)
        out[name] |= month_drift(
            months, len(order), bin_index(out[name], prepared[name]), len(out[name]["shares"]),
            None, apart,
        )  # fmt: skip
    return out


def bin_index(reference: dict[str, Any], values: pd.Series) -> np.ndarray:
    """Each value's position in the reference's shares: its numeric bin, or its
    categorical level (then any other level), missing last."""
    if reference["kind"] == "numeric":
        return numeric_bins(values.to_numpy(dtype="float64"), reference["edges"])
    return categorical_bins(values, reference["levels"])


def sketch_index(sketch: list[float], values: np.ndarray) -> np.ndarray:
    """Each value's first sketch point at or above it (-1: missing): a value counts in
    the cumulative share at every sketch point from there on."""
    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(sketch, dtype="float64"), np.where(missing, 0.0, values))
    return np.where(missing, -1, index)


def counts_by_month(months: np.ndarray, cells: np.ndarray, count: int, width: int) -> np.ndarray:
    """A (month x cell) table of row counts."""
    flat = np.bincount(months * width + cells, minlength=count * width)
    return flat.reshape(count, width).astype("float64")


def month_drift(
    months: np.ndarray, count: int, bins: np.ndarray, width: int,
    sketch: np.ndarray | None, apart: int,
) -> dict[str, list[float]]:  # fmt: skip
    """How far each month drifts from the training months more than `apart` months away
    from it: PSI of the present values (`month_psi`), the gap between the two missing
    shares (`month_missing`), and the KS statistic on the sketch points (`month_ks`,
    numeric features only). `bins` is each row's position in the reference's shares
    (missing last), `sketch` its first sketch point at or above the value.

    A day in production is judged against training months that lie months behind it;
    a month compared with a whole that contains it and its neighbours (whose 90- and
    180-day windows overlap its own) would look far steadier than that, and seasonal or
    trending features would alert on ordinary days. Only counts per month are needed:
    the others' counts are the total less the month's neighbourhood."""
    per_month = counts_by_month(months, bins, count, width)
    cumulative = None
    if sketch is not None:
        present = sketch >= 0
        points = int(sketch.max(initial=-1)) + 2
        hits = counts_by_month(months[present], sketch[present], count, points)
        cumulative = np.cumsum(hits, axis=1)
        cumulative_total = cumulative.sum(axis=0)
    total = per_month.sum(axis=0)
    found: dict[str, list[float]] = {"month_psi": [], "month_missing": [], "month_ks": []}
    for month in range(count):
        near = slice(max(0, month - apart), month + apart + 1)
        others = total - per_month[near].sum(axis=0)
        mine = per_month[month]
        if others.sum() == 0:
            found["month_psi"].append(float("nan"))
            found["month_missing"].append(float("nan"))
        else:
            found["month_psi"].append(psi_present(others.tolist(), mine.tolist()))
            found["month_missing"].append(abs(mine[-1] / mine.sum() - others[-1] / others.sum()))
        if cumulative is not None:
            rest = cumulative_total - cumulative[near].sum(axis=0)
            at_or_below = cumulative[month]
            gap = (
                np.max(np.abs(at_or_below / at_or_below[-1] - rest / rest[-1]))
                if rest[-1] > 0 and at_or_below[-1] > 0
                else float("nan")
            )
            found["month_ks"].append(float(gap))
    if sketch is None:
        del found["month_ks"]
    return found


def month_wasserstein(
    values: np.ndarray, months: np.ndarray, count: int, points: int, sd: float, apart: int
) -> list[float]:
    """Each month's normed Wasserstein distance from the months more than `apart` away,
    by the estimator today's is read with (`wasserstein_on_grid` at `points`
    probabilities), so a month and a day are measured alike."""
    present = ~np.isnan(values)
    found = []
    for month in range(count):
        mine = values[present & (months == month)]
        others = values[present & (np.abs(months - month) > apart)]
        if mine.size == 0 or others.size == 0:
            found.append(float("nan"))
            continue
        found.append(wasserstein_on_grid(quantile_sketch(others, points), mine, sd))
    return found


def shares_of(reference: dict[str, Any], values: pd.Series) -> list[float]:
    """`values`' shares on a feature reference's bins (numeric) or levels (categorical)."""
    return _shares(bin_index(reference, values), len(reference["shares"]))


def psi_present(reference: list[float], today: list[float]) -> float:
    """PSI of the present values: two share (or count) vectors whose last entry is the
    missing share, compared without it, each renormalised over its present values
    (NaN when either has none). Missingness is judged on its own (`missing_gap`): a
    customer before the first bill has no usage yet, which no month-start training
    snapshot holds, and an empty bin counts as 0.0001, so 3 % of them would add 0.15
    to every usage feature's PSI."""
    expected, actual = np.asarray(reference[:-1], "float64"), np.asarray(today[:-1], "float64")
    if expected.sum() <= 0 or actual.sum() <= 0:
        return float("nan")
    return psi(expected / expected.sum(), actual / actual.sum())


def missing_gap(reference: list[float], today: list[float]) -> float:
    """How far today's missing share (the last of the shares) lies from the reference's."""
    return abs(float(today[-1]) - float(reference[-1]))


def psi(reference: np.ndarray | list[float], today: np.ndarray | list[float]) -> float:
    """Population stability index of two share vectors over the same bins: the sum over
    bins of (today - reference) x ln(today / reference), an empty bin counting as
    `SHARE_FLOOR` so that one empty bin does not make it infinite."""
    expected = np.maximum(np.asarray(reference, dtype="float64"), SHARE_FLOOR)
    actual = np.maximum(np.asarray(today, dtype="float64"), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def wasserstein_on_grid(sketch: list[float], values: np.ndarray, sd: float) -> float:
    """The Wasserstein distance (earth mover's, first order) of `values` (missing ignored)
    from a reference known by its quantile sketch, over the reference's standard deviation
    `sd`: the normed distance Evidently uses for large samples, where 0.1 is a shift of a
    tenth of a standard deviation. Unlike PSI on the reference's bins, it sees how far
    values moved, beyond the reference's range too (`sketch_distance`)."""
    return sketch_distance(sketch, quantile_sketch(values, len(sketch)), sd)


def sketch_distance(reference: list[float], today: list[float], sd: float) -> float:
    """The normed Wasserstein distance of two quantile sketches at the same evenly spaced
    probabilities: the area between the two quantile functions, integrated by the
    trapezoid rule (exact to within the sketch's step), over `sd`. NaN when either is
    empty or `sd` is 0."""
    if not reference or not today or not sd > 0:
        return float("nan")
    gaps = np.abs(np.asarray(today, dtype="float64") - np.asarray(reference, dtype="float64"))
    return float(np.mean((gaps[1:] + gaps[:-1]) / 2) / sd)


def ks_against_sketch(
    sketch: list[float], values: np.ndarray, reference_rows: int
) -> tuple[float, float]:
    """Two-sample KS statistic and asymptotic p-value of `values` (missing ignored)
    against a reference known by its quantile sketch (quantiles at evenly spaced
    probabilities): exact to within the sketch's step."""
    present = np.sort(values[~np.isnan(values)])
    if not sketch or present.size == 0:
        return float("nan"), float("nan")
    quantiles = np.asarray(sketch, dtype="float64")
    probabilities = np.linspace(0, 1, len(quantiles))
    points = np.union1d(present, quantiles)
    today = np.searchsorted(present, points, side="right") / present.size
    # the reference's share at or below each point: the highest sketch probability whose
    # quantile is at or below it (a step function, like an empirical distribution)
    steps = np.searchsorted(quantiles, points, side="right")
    reference = np.where(steps > 0, probabilities[np.maximum(steps - 1, 0)], 0.0)
    reference = np.where(steps >= len(quantiles), 1.0, reference)
    statistic = float(np.max(np.abs(today - reference)))
    effective = present.size * reference_rows / (present.size + reference_rows)
    return statistic, float(kstwobign.sf(statistic * np.sqrt(effective)))


def expected_performance(probabilities: np.ndarray) -> dict[str, float]:
    """What calibrated probabilities alone promise (confidence-based performance
    estimation, as NannyML's CBPE): each customer is a churner with probability p and a
    stayer with 1 - p, so the expected ROC curve weighs every score as a positive by p and
    as a negative by 1 - p; the expected churn rate is the mean of p, and the expected
    precision of the top decile the mean of p there."""
    p = np.clip(np.asarray(probabilities, dtype="float64"), 0.0, 1.0)
    if p.size == 0:
        return {
            "roc_auc": float("nan"),
            "churn_rate": float("nan"),
            "precision_top_decile": float("nan"),
        }
    labels = np.r_[np.ones(p.size), np.zeros(p.size)]
    weights = np.r_[p, 1.0 - p]
    positive, negative = weights[: p.size].sum(), weights[p.size :].sum()
    auc = (
        float(roc_auc_score(labels, np.r_[p, p], sample_weight=weights))
        if positive > 0 and negative > 0
        else float("nan")
    )
    return {
        "roc_auc": auc,
        "churn_rate": float(p.mean()),
        "precision_top_decile": float(p[top_decile(p)].mean()),
    }


def realised_performance(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """ROC-AUC, churn rate and precision of the top decile against observed outcomes."""
    y = np.asarray(labels, dtype="int64")
    p = np.asarray(probabilities, dtype="float64")
    auc = float(roc_auc_score(y, p)) if np.unique(y).size == 2 else float("nan")
    return {
        "roc_auc": auc,
        "churn_rate": float(y.mean()) if y.size else float("nan"),
        "precision_top_decile": float(y[top_decile(p)].mean()) if y.size else float("nan"),
    }


def top_decile(scores: np.ndarray) -> np.ndarray:
    """Positions of the highest tenth of scores (at least one), ties broken by position."""
    count = max(1, round(TOP_SHARE * len(scores)))
    return np.argsort(-scores, kind="stable")[:count]


def score_reference(values: np.ndarray, bins: int, sketch_points: int) -> dict[str, Any]:
    """A score's bins and sketch, as a numeric feature's, plus its mean."""
    return {**numeric_reference(values, bins, sketch_points), "mean": float(np.mean(values))}


def build_reference(
    train: pd.DataFrame,
    schema: FeatureSchema,
    test_raw: np.ndarray,
    test_calibrated: np.ndarray,
    test_labels: np.ndarray,
    months: dict[str, list[str]],
    bins: int = 10,
    sketch_points: int = 201,
    test: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The whole reference: features from the training months `train` (and their latest
    values from the test months `test`, when given), scores and performance from the
    test months."""
    return {
        "version": REFERENCE_VERSION,
        "bins": bins,
        "months": months,
        "features": feature_references(train, schema, bins, sketch_points, recent=test),
        "score": {
            "raw": score_reference(np.asarray(test_raw, dtype="float64"), bins, sketch_points),
            "calibrated": score_reference(
                np.asarray(test_calibrated, dtype="float64"), bins, sketch_points
            ),
        },
        "expected": expected_performance(test_calibrated),
        "realised": realised_performance(test_labels, test_calibrated),
    }


def population_sample(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Rows that stand for the population again where a negative sampling weighted them.

    A training set built with `negative_sampling` keeps every churner and a share of the
    stayers, weighted 1 / share: its features describe a population with several times
    the churners, and a reference taken from them would see every ordinary day drift
    towards the stayers. Keeping each row with probability weight / largest weight (every
    sampled stayer, a share of the others) gives an unweighted sample of the population
    (rejection sampling), which every statistic here can read as it is. Unweighted rows
    come back unchanged."""
    if WEIGHT not in frame:
        return frame
    weights = frame[WEIGHT].to_numpy(dtype="float64")
    keep = np.random.default_rng(seed).random(len(frame)) < weights / weights.max()
    return frame[keep]


def churn_reference(result: Trained) -> dict[str, Any]:
    """The reference of a trained churn model (its training and test months)."""
    split = result.split
    return build_reference(
        population_sample(split.train),
        result.model.schema,
        result.test_raw,
        result.test_calibrated,
        split.test[result.label].to_numpy().astype(int),
        {part: split.months(part) for part in ("train", "test")},
        test=population_sample(split.test),
    )


def log_reference(result: Trained) -> None:
    """Log the reference into the active run, as `REFERENCE_ARTIFACT`."""
    mlflow.log_dict(churn_reference(result), REFERENCE_ARTIFACT)
