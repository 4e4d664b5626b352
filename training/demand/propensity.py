"""Who is likely to buy a package soon: the ranking behind seasonal campaign candidates.

One LightGBM classifier over every package (the package is a feature), trained on the
feature store's monthly customer snapshots: the label is "bought this package within
`window_days` after the snapshot". Features are the customer's purchase history, segment,
student flag and travel (roaming days), plus the calendar of the window, so the same
customer ranks high for a campus pack in late August and low in November.

The snapshots are read straight from the offline store's parquet tables: each
customer_activity row is stamped at its snapshot, so an exact-time join is the
point-in-time join, without Feast's row-by-row retrieval over hundreds of thousands of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.snapshots import PACKAGES
from training.demand.calendar import week_features
from training.demand.settings import DemandCalendar, Propensity

SNAPSHOT = "event_timestamp"
PROFILE = ("segment", "age_band", "is_student", "region", "plan_id", "monthly_fee", "contract_type")
ACTIVITY = (
    "data_gb_30d",
    "data_gb_mean_90d",
    "roaming_days_90d",
    "overage_90d",
    "bill_mean_90d",
    "packages_90d",
    "package_spend_90d",
    *(f"{package}_180d" for package in PACKAGES),
)
CATEGORICAL = ("segment", "age_band", "region", "plan_id", "contract_type", "package")
CALENDAR = ("target_month", "weeks_to_term_start", "weeks_to_spring_festival")


def customer_snapshots(tables_dir: Path, at: pd.Timestamp | None = None) -> pd.DataFrame:
    """Profile and activity of customers active at each snapshot (or only at `at`)."""
    filters = None if at is None else [(SNAPSHOT, "=", at)]
    activity = pd.read_parquet(
        tables_dir / "customer_activity.parquet",
        columns=["customer_id", SNAPSHOT, *ACTIVITY],
        filters=filters,
    )
    profile = pd.read_parquet(
        tables_dir / "customer_profile.parquet", columns=["customer_id", "signup_epoch_s", *PROFILE]
    )
    frame = activity.merge(profile, on="customer_id", how="inner", validate="many_to_one")
    snapshot_s = (frame[SNAPSHOT] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    frame["tenure_days"] = (snapshot_s - frame["signup_epoch_s"]) / 86_400
    return frame.drop(columns=["signup_epoch_s"])


def with_package_and_calendar(
    snapshots: pd.DataFrame,
    packages: tuple[str, ...],
    window_start: pd.Series | None,
    calendar: DemandCalendar,
) -> pd.DataFrame:
    """One row per snapshot row and package, with the calendar of the purchase window.

    `window_start` (aligned with `snapshots`) defaults to the snapshot itself.
    """
    starts = snapshots[SNAPSHOT] if window_start is None else window_start
    dated = pd.concat([snapshots, week_features(starts, calendar)[list(CALENDAR)]], axis=1)
    return pd.concat([dated.assign(package=p) for p in packages], ignore_index=True)


def purchase_labels(rows: pd.DataFrame, purchases: pd.DataFrame, window_days: int) -> np.ndarray:
    """1 where the customer bought the row's package in (snapshot, snapshot + window]."""
    window = pd.Timedelta(days=window_days)
    found = []
    for t in rows[SNAPSHOT].unique():
        inside = (purchases["purchased_at"] > t) & (purchases["purchased_at"] <= t + window)
        found.append(
            purchases.loc[inside, ["customer_id", "package_id"]]
            .drop_duplicates()
            .assign(**{SNAPSHOT: t})
            .rename(columns={"package_id": "package"})
        )
    bought = pd.concat(found, ignore_index=True).assign(bought=True)
    keys = ["customer_id", "package", SNAPSHOT]
    labelled = rows[keys].merge(bought, on=keys, how="left", validate="many_to_one")
    return labelled["bought"].notna().to_numpy()


def model_matrix(
    rows: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """The model's columns, categories fixed to those seen in training."""
    frame = rows[columns].copy()
    for column, values in categories.items():
        frame[column] = pd.Categorical(frame[column].astype(str), categories=values)
    frame["is_student"] = frame["is_student"].astype(float)
    return frame


@dataclass(frozen=True)
class PackagePropensity:
    booster: lgb.Booster
    columns: list[str]
    categories: dict[str, list[str]]
    calendar: DemandCalendar
    holdout_auc: dict[str, float]  # per package, on the latest labelled snapshot

    def matrix(self, rows: pd.DataFrame) -> pd.DataFrame:
        return model_matrix(rows, self.columns, self.categories)

    def score(self, customers: pd.DataFrame, package: str, window_start: pd.Timestamp) -> pd.Series:
        """P(buys `package` in the window starting `window_start`) per customer row."""
        starts = pd.Series(window_start, index=customers.index)
        rows = with_package_and_calendar(customers, (package,), starts, self.calendar)
        return pd.Series(
            self.booster.predict(self.matrix(rows)), index=customers.index, name="propensity"
        )


def train_propensity(
    snapshots: pd.DataFrame,
    purchases: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: Propensity,
    calendar: DemandCalendar,
    seed: int,
) -> PackagePropensity:
    """Fit on every snapshot whose window has closed but the latest, evaluated on that one.

    Non-buyers are subsampled to `negative_share` and weighted back up, so the
    probabilities stay calibrated while the fit sees every buyer.
    """
    window = pd.Timedelta(days=settings.window_days)
    closed = snapshots[snapshots[SNAPSHOT] + window <= as_of]
    times = np.sort(closed[SNAPSHOT].unique())
    if len(times) < 3:
        raise ValueError(f"{len(times)} labelled snapshots are too few to fit a propensity model")
    rows = with_package_and_calendar(closed, PACKAGES, None, calendar)
    rows["bought"] = purchase_labels(rows, purchases, settings.window_days)
    rng = np.random.default_rng(seed)
    keep = rows["bought"] | (rng.random(len(rows)) < settings.negative_share)
    rows = rows[keep]
    weight = np.where(rows["bought"], 1.0, 1.0 / settings.negative_share)
    columns = [*PROFILE, "tenure_days", *ACTIVITY, *CALENDAR, "package"]
    categories = {c: sorted(rows[c].astype(str).unique()) for c in CATEGORICAL}
    test = (rows[SNAPSHOT] == times[-1]).to_numpy()
    params = {
        "objective": "binary",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "feature_fraction": 0.8,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
    }
    booster = lgb.train(
        params,
        lgb.Dataset(
            model_matrix(rows[~test], columns, categories),
            rows["bought"][~test],
            weight=weight[~test],
        ),
        num_boost_round=settings.num_rounds,
    )
    held = rows[test]
    scores = booster.predict(model_matrix(held, columns, categories))
    auc = {
        package: float(roc_auc_score(held["bought"][mask], scores[mask.to_numpy()]))
        for package in PACKAGES
        if (mask := held["package"] == package).any() and held["bought"][mask].nunique() == 2
    }
    return PackagePropensity(booster, columns, categories, calendar, auc)
