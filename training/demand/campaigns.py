"""Seasonal campaigns: where package demand is about to surge, and whom to tell first.

Plain functions over the forecast table, the region-week history and the latest customer
snapshot; the daily list and the scoring API call them, so a campaign decision is made
the same way wherever it is made.
"""

from __future__ import annotations

import pandas as pd

from training.demand.dataset import GROUP, SERIES, WEEK_END
from training.demand.propensity import PackagePropensity
from training.demand.settings import Surges


def recent_baseline(history: pd.DataFrame, weeks: int) -> pd.DataFrame:
    """Mean weekly purchases per region and package over the last `weeks` weeks."""
    latest = history[history[WEEK_END] > history[WEEK_END].max() - pd.Timedelta(weeks=weeks)]
    packages = {name: column for name, column in SERIES.items() if GROUP[name] == "package"}
    means = latest.groupby("region")[list(packages.values())].mean()
    means.columns = list(packages)
    return means.stack().rename("baseline").rename_axis(["region", "series"]).reset_index()


def find_surges(forecast: pd.DataFrame, history: pd.DataFrame, settings: Surges) -> pd.DataFrame:
    """(region, package, week) where the P50 forecast rises well above the recent baseline.

    A surge needs P50 >= `min_ratio` x baseline and P50 - baseline >= `min_extra`
    purchases, so a quiet package going from 1 to 2 a week is not a campaign. Ordered by
    the extra purchases expected.
    """
    packages = forecast[forecast["group"] == "package"].merge(
        recent_baseline(history, settings.baseline_weeks), on=["region", "series"]
    )
    extra = packages["p50"] - packages["baseline"]
    surging = (packages["p50"] >= settings.min_ratio * packages["baseline"]) & (
        extra >= settings.min_extra
    )
    surges = packages[surging].assign(
        ratio=lambda f: f["p50"] / f["baseline"].clip(lower=1e-9), extra=extra[surging]
    )
    columns = ["region", "series", "week_start", "week_end", "horizon", "baseline"]
    return (
        surges[[*columns, "p10", "p50", "p90", "ratio", "extra"]]
        .rename(columns={"series": "package"})
        .sort_values(["extra", "region"], ascending=[False, True], ignore_index=True)
    )


def campaign_candidates(
    surges: pd.DataFrame,
    customers: pd.DataFrame,
    propensity: PackagePropensity,
    per_surge: int,
) -> pd.DataFrame:
    """For each surge, the region's active customers most likely to buy, ranked.

    `customers` is the latest snapshot (`propensity.customer_snapshots(..., at)`).
    Each region and package is scored once, for its earliest surging week: a customer
    is told before demand peaks, not once per week of it.
    """
    frames = []
    first = surges.sort_values("week_start").drop_duplicates(["region", "package"])
    for surge in first.itertuples(index=False):
        local = customers[customers["region"] == surge.region]
        if local.empty:
            continue
        scores = propensity.score(local, surge.package, surge.week_start)
        top = scores.nlargest(per_surge)
        frames.append(
            pd.DataFrame(
                {
                    "region": surge.region,
                    "package": surge.package,
                    "week_start": surge.week_start,
                    "rank": range(1, len(top) + 1),
                    "customer_id": local.loc[top.index, "customer_id"].to_numpy(),
                    "propensity": top.to_numpy(),
                }
            )
        )
    columns = ["region", "package", "week_start", "rank", "customer_id", "propensity"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
