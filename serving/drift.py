"""Feature and score drift against the reference frozen at training time.

`training.reference` holds the statistics (PSI on the reference's bins, the two-sample KS
statistic against its quantile sketch, expected and realised performance); this module
turns them into the day's drift table and statuses.

KS is taken against the reference's quantile sketch rather than its ten PSI bins: the
sketch is the training months' empirical distribution at 201 probabilities, so the
statistic is exact to within half a percent where ten bins would blur it to a tenth,
and no customer row has to be kept for it. Alerts use the statistic (an effect size:
the largest gap between the two cumulative distributions), not the p-value: at tens of
thousands of customers a day every harmless wiggle is "significant". The p-value is
reported beside it (asymptotic, scipy's `kstwobign`, with the reference's row count).

PSI and KS are blind to how far values move, only to how many cross a bin edge or a
quantile, and most churn signals are sparse counts: when a rival's price war sends a
seventh of the customers to call about prices in a week, the share with a complaint in
90 days goes from about a fifth to a third, a KS of 0.13 and a PSI under 0.1, both below
the usual rules of thumb, while the complaints per customer rise by half. The normed
Wasserstein distance (the mean distance values moved, over the reference's standard
deviation; Evidently's default for large samples, alerting at 0.1) reads that rise, and
alerts with the others. Being that sensitive, it is read against the nearer of two
references: the training months and the test months (the latest the model was judged
on). Values that moved from both are news; a trend the test months already showed (bills
months after a tariff rise, five months further on) is not.

Features that describe the network rather than the customer (`warn_only`: the home
cell's drop rate and outage hours) at most warn. A typhoon season or a failing site moves
them for whole cells at once, so on a 2,000-customer world a few dozen sites decide the
day's distribution, and 4 of 24 quiet worlds alerted on them; the outage lifecycle reports
those events, and where they move the model the score drift and expected performance
alert.

PSI, KS and the distance read the present values only; how many are missing is judged on
its own (the gap between today's missing share and the training months'). A customer
before the first bill has no usage yet, which no month-start training snapshot holds: a
few per cent of them, each in a bin the reference has empty, would add 0.15 to every usage
feature's PSI, while a feed that stops shows as the missing share it is.

Each feature's alert levels are the configured ones, raised to what the feature's own
months show (as NannyML's default thresholds do): each training month is compared with the
training months more than three months away from it (`month_psi`, `month_ks`,
`month_wasserstein`, `month_missing`; a day in production lies months after its training
months, and a month compared with a whole holding it and its neighbours would look far
steadier than that). Today alerts only beyond their mean + `sigmas` standard deviations,
and warns beyond mean + (`sigmas` - 1). Trending and seasonal features (bills after a
tariff change, roaming in summer, outages in the typhoon months) drift every month by
design and would otherwise alert every day; a feature whose months agree alerts at the
configured level.

Seventeen months say little about a tail, and drift statistics have long ones: a month's
drift is mostly the sampling noise of the feature's effective sample, whose null
distribution is known (Kolmogorov's for KS, about a chi-square for PSI). So the levels are
also at least the monthly mean times how far that noise reaches above its mean as often as
a normal variable passes `sigmas` (KS: 2.3 times the mean at 3, PSI on ten bins: 3.2).
That matters for features few groups share: every customer of a cell site has its drop
rate, so a 2,000-customer world has about 24 distinct values a month, KS between two
quiet months is about 0.14, and 0.25 on a quiet day is the noise of 24 draws, no drift.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import chi2, kstwobign, norm

from training.reference import (
    ks_against_sketch,
    missing_gap,
    numeric_shares,
    psi,
    psi_present,
    quantile_sketch,
    shares_of,
    sketch_distance,
)

Status = Literal["ok", "warn", "alert"]
Statistic = Literal["psi", "ks", "wasserstein", "gap"]
NoiseRatio = Callable[[float], float]


def status_of(value: float, warn: float, alert: float) -> Status:
    """`alert` at or above `alert`, `warn` at or above `warn`; unknown (NaN) is ok."""
    if value >= alert:
        return "alert"
    return "warn" if value >= warn else "ok"


def worst(*statuses: Status) -> Status:
    for level in ("alert", "warn"):
        if level in statuses:
            return level  # type: ignore[return-value]  # one of the Status literals
    return "ok"


@dataclass(frozen=True)
class DriftLimits:
    """Where a feature's drift starts to warn and to alert (before the feature's own
    monthly drift raises them), and by how many standard deviations of it."""

    psi_warn: float
    psi_alert: float
    ks_warn: float
    ks_alert: float
    sigmas: float = 3.0
    missing_warn: float = 0.1
    missing_alert: float = 0.25
    wasserstein_warn: float = 0.05
    wasserstein_alert: float = 0.1


def noise_ratio(statistic: Statistic, probability: float, bins: int = 2) -> float:
    """How far above its mean a drift statistic of pure sampling noise reaches with
    `probability`: the quantile over the mean of its null distribution. KS statistics
    follow Kolmogorov's distribution (scaled by the square root of the sample size), PSI
    on `bins` bins about a chi-square with bins - 1 degrees of freedom (over the sample
    size), the gap between two missing shares a half-normal. The normed Wasserstein
    distance (the mean gap of the two empirical processes where KS is their largest) has
    no closed null law; it is given Kolmogorov's ratio, whose maximum has the longer tail
    of the two: a limit that errs high."""
    if statistic in ("ks", "wasserstein"):
        return float(kstwobign.ppf(probability) / kstwobign.mean())
    if statistic == "psi":
        freedom = max(bins - 1, 1)
        return float(chi2.ppf(probability, freedom) / freedom)
    return float(norm.ppf((1 + probability) / 2) / np.sqrt(2 / np.pi))


def own_limits(
    monthly: list[float], warn: float, alert: float, sigmas: float, ratio: NoiseRatio
) -> tuple[float, float]:
    """(warn, alert) raised to a feature's own monthly drift in the reference period: its
    mean + (sigmas - 1) and + sigmas standard deviations, and at least that mean times
    how far sampling noise reaches above its mean as often as a normal variable beyond
    sigmas - 1 and sigmas (`ratio` of that probability, `noise_ratio`)."""
    values = np.asarray([v for v in monthly if np.isfinite(v)], dtype="float64")
    if values.size < 2:
        return warn, alert
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    levels = [
        max(floor, mean + spread * sd, mean * ratio(float(norm.cdf(spread))))
        for floor, spread in ((warn, sigmas - 1), (alert, sigmas))
    ]
    return levels[0], levels[1]


COLUMNS = [
    "feature", "kind", "psi", "psi_alert_at", "ks", "ks_alert_at", "ks_p_value",
    "wasserstein", "wasserstein_alert_at", "missing", "missing_reference", "missing_alert_at",
    "status",
]  # fmt: skip


def feature_drift(
    references: dict[str, dict[str, Any]], prepared: pd.DataFrame, limits: DriftLimits,
    warn_only: Collection[str] = (),
) -> pd.DataFrame:  # fmt: skip
    """One row per feature: kind, PSI, KS statistic and p-value and normed Wasserstein
    distance (numeric only), missing share (today's and the reference's), the levels they
    alert at, status; worst first.
    `prepared` is the model's input frame (`FeatureSchema.transform`). The features in
    `warn_only` at most warn on how their values are spread (a missing share past its
    level still alerts: a feed that stopped is no change of the world)."""
    rows = []
    for name, reference in references.items():
        today = shares_of(reference, prepared[name])
        value = psi_present(reference["shares"], today)
        bins = len(reference["shares"]) - 1  # the present values' bins or levels
        psi_warn, psi_alert = own_limits(
            reference.get("month_psi", []), limits.psi_warn, limits.psi_alert, limits.sigmas,
            partial(noise_ratio, "psi", bins=bins),
        )  # fmt: skip
        ks, p_value, distance = float("nan"), float("nan"), float("nan")
        ks_warn, ks_alert = own_limits(
            reference.get("month_ks", []), limits.ks_warn, limits.ks_alert, limits.sigmas,
            partial(noise_ratio, "ks"),
        )  # fmt: skip
        distance_warn, distance_alert = own_limits(
            reference.get("month_wasserstein", []), limits.wasserstein_warn,
            limits.wasserstein_alert, limits.sigmas, partial(noise_ratio, "wasserstein"),
        )  # fmt: skip
        if reference["kind"] == "numeric":
            values = prepared[name].to_numpy(dtype="float64")
            ks, p_value = ks_against_sketch(reference["sketch"], values, reference["rows"])
            distance = wasserstein_from_both(reference, values)
        gap = missing_gap(reference["shares"], today)
        missing_warn, missing_alert = own_limits(
            reference.get("month_missing", []), limits.missing_warn, limits.missing_alert,
            limits.sigmas, partial(noise_ratio, "gap"),
        )  # fmt: skip
        spread_status = worst(
            status_of(value, psi_warn, psi_alert),
            status_of(ks, ks_warn, ks_alert),
            status_of(distance, distance_warn, distance_alert),
        )
        if name in warn_only and spread_status == "alert":
            spread_status = "warn"
        status = worst(spread_status, status_of(gap, missing_warn, missing_alert))
        rows.append(
            {
                "feature": name,
                "kind": reference["kind"],
                "psi": value,
                "psi_alert_at": psi_alert,
                "ks": ks,
                "ks_alert_at": ks_alert if reference["kind"] == "numeric" else float("nan"),
                "ks_p_value": p_value,
                "wasserstein": distance,
                "wasserstein_alert_at": distance_alert
                if reference["kind"] == "numeric"
                else float("nan"),
                "missing": today[-1],
                "missing_reference": reference["shares"][-1],
                "missing_alert_at": missing_alert,
                "status": status,
            }
        )
    order = {"alert": 0, "warn": 1, "ok": 2}
    frame = pd.DataFrame(rows, columns=COLUMNS)
    rank = frame["status"].map(order)
    return (
        frame.assign(_rank=rank)
        .sort_values(["_rank", "psi"], ascending=[True, False], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def wasserstein_from_both(reference: dict[str, Any], values: np.ndarray) -> float:
    """Today's normed Wasserstein distance from the nearer of the training months and the
    test months (`recent_sketch`, where the reference has it), both over the training
    months' standard deviation: values that moved from both are news, while a trend the
    test months already showed (bills months after a tariff rise) is not."""
    if "sd" not in reference:  # a version-2 reference: no distance
        return float("nan")
    today = quantile_sketch(values, len(reference["sketch"]))  # once, for both references
    distances = [
        sketch_distance(reference[sketch], today, reference["sd"])
        for sketch in ("sketch", "recent_sketch")
        if reference.get(sketch)
    ]
    return min(distances, default=float("nan"))


def score_psi(reference: dict[str, Any], scores: np.ndarray) -> float:
    """PSI of today's scores on a score reference's bins."""
    return psi(
        reference["shares"], numeric_shares(np.asarray(scores, "float64"), reference["edges"])
    )
