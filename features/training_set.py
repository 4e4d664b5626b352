"""Point-in-time training sets from Feast, with the churn label attached.

The labelled rows come from `features.labels`; features come from
`get_historical_features` on the model's FeatureService, so each row sees only feature
rows stamped at or before its snapshot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from feast import FeatureStore

from features.labels import (
    ACCEPTED,
    ACTION,
    SNAPSHOT,
    campaign_entity_rows,
    churn_entity_rows,
    label_column,
    untreated_entity_rows,
)
from features.lifecycle.contract import TABLES
from features.lifecycle.profile import load_tables
from features.lifecycle.validate import resolve_as_of
from features.request_time import REQUEST_TIME_FIELD
from features.sampling import NegativeSampling, sample_negatives
from features.snapshots import demand_weeks, epoch_seconds
from features.table_checks import check_tables


def service_features(store: FeatureStore, feature_service: str) -> list[str]:
    """The feature names a FeatureService declares, in its order."""
    service = store.get_feature_service(feature_service)
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def training_set(
    store: FeatureStore, entity_rows: pd.DataFrame, feature_service: str
) -> pd.DataFrame:
    """The entity rows with exactly the service's features joined on, point in time.

    Feast also returns the inputs of on-demand views (signup time, home cell); they are
    not features of the model, so they are dropped here.
    """
    frame = historical_features(store, entity_rows, feature_service)
    return frame.sort_values([SNAPSHOT, "customer_id"], ignore_index=True)


def historical_features(
    store: FeatureStore, entity_rows: pd.DataFrame, feature_service: str
) -> pd.DataFrame:
    """Feast's point-in-time join of the service's features onto the entity rows, the entity
    columns with the types they came in (offline stores differ in timestamp units). The
    tables the service reads are checked first: present, and each key at most once."""
    service = store.get_feature_service(feature_service)
    check_tables(store, {projection.name for projection in service.feature_view_projections})
    frame = store.get_historical_features(entity_df=entity_rows, features=service).to_df()
    frame = frame[[*entity_rows.columns, *service_features(store, feature_service)]]
    for column, dtype in entity_rows.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype) and frame[column].dt.tz is None:
            # Spark hands back its session-time-zone (UTC) timestamps without the zone
            frame[column] = frame[column].dt.tz_localize("UTC")
    return frame.astype(entity_rows.dtypes.to_dict())


def churn_training_set(
    store: FeatureStore,
    lifecycle_dir: Path,
    horizon_days: int,
    feature_service: str = "churn_v1",
    sampling: NegativeSampling | None = None,
) -> pd.DataFrame:
    """The labelled churn training set of a lifecycle dataset, through Feast; with
    `sampling`, the older stayers are sampled before the join (features.sampling)."""
    tables = load_tables(lifecycle_dir, ("customers", "churn_events"))
    rows = churn_entity_rows(
        tables["customers"],
        tables["churn_events"],
        _first_month(lifecycle_dir),
        resolve_as_of(lifecycle_dir, None),
        horizon_days,
    )
    if sampling is not None:
        rows = sample_negatives(rows, label_column(horizon_days), sampling)
    return training_set(store, rows, feature_service)


def effect_training_set(
    store: FeatureStore,
    lifecycle_dir: Path,
    horizon_days: int,
    feature_service: str,
    engine_rows: pd.DataFrame | None = None,
    baseline_rows: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Every matured randomized campaign assignment with its action, logged probability,
    outcome and the features known when it was made (point in time, through Feast).

    `engine_rows` are the engine's own attributed decisions (`retain attribute`'s export,
    the same columns); where a campaign export also holds one (a simulated world echoes
    the engine's actions), the customer, month and action are counted once.
    `baseline_rows`: up to this many customer-months nobody contacted are added for the
    no-action baseline (`features.labels.untreated_entity_rows`), action `none` with no
    assignment probability."""
    tables = load_tables(lifecycle_dir, ("campaigns", "churn_events", "customers"))
    rows = campaign_entity_rows(
        tables["campaigns"],
        tables["churn_events"],
        resolve_as_of(lifecycle_dir, None),
        horizon_days,
    )
    if engine_rows is not None and not engine_rows.empty:
        if ACCEPTED not in engine_rows:  # an export from before take-up was recorded
            engine_rows = engine_rows.assign(**{ACCEPTED: np.nan})
        extra = engine_rows.assign(
            **{
                SNAPSHOT: pd.to_datetime(engine_rows[SNAPSHOT], utc=True),
                REQUEST_TIME_FIELD: epoch_seconds(pd.to_datetime(engine_rows[SNAPSHOT], utc=True)),
            }
        )[rows.columns]
        both = pd.concat([extra, rows], ignore_index=True)
        month = both[SNAPSHOT].dt.strftime("%Y-%m")
        rows = both[~pd.DataFrame({"c": both["customer_id"], "m": month, "a": both[ACTION]})
                    .duplicated()]  # fmt: skip
        rows = rows.sort_values([SNAPSHOT, "customer_id"], ignore_index=True)
    if rows.empty:
        raise ValueError(
            f"{lifecycle_dir}: no randomized campaign assignment (campaigns with an "
            f"assignment_probability) whose {horizon_days}-day outcome is known yet"
        )
    if baseline_rows > 0:
        contacts = [tables["campaigns"][["customer_id", "sent_at"]]]
        if engine_rows is not None and not engine_rows.empty:
            contacts.append(
                engine_rows[["customer_id", SNAPSHOT]].rename(columns={SNAPSHOT: "sent_at"})
            )
        untreated = untreated_entity_rows(
            tables["customers"],
            tables["churn_events"],
            pd.concat(contacts, ignore_index=True),
            _first_month(lifecycle_dir),
            resolve_as_of(lifecycle_dir, None),
            horizon_days,
            baseline_rows,
            seed,
        )
        rows = pd.concat([rows, untreated[rows.columns]], ignore_index=True)
    return training_set(store, rows, feature_service)


def _first_month(lifecycle_dir: Path) -> pd.Timestamp:
    """The dataset's first billed month, reading only that column of the largest table."""
    months = pq.read_table(lifecycle_dir / TABLES["usage_monthly"].file_name, columns=["month"])
    return pd.Timestamp(months.column("month").to_pandas().min())


def demand_entity_rows(lifecycle_dir: Path) -> pd.DataFrame:
    """Every region x complete week of a lifecycle dataset, stamped at the week's end."""
    customers = pq.read_table(lifecycle_dir / TABLES["customers"].file_name, columns=["region"])
    weeks = demand_weeks(_first_month(lifecycle_dir), resolve_as_of(lifecycle_dir, None))
    regions = sorted(customers.column("region").unique().to_pylist())
    index = pd.MultiIndex.from_product([regions, weeks + pd.Timedelta(days=7)])
    return index.to_frame(index=False, name=["region", SNAPSHOT])


def demand_history(
    store: FeatureStore, lifecycle_dir: Path, feature_service: str = "demand_v2"
) -> pd.DataFrame:
    """The region-week history of the demand model, through Feast (point in time)."""
    frame = historical_features(store, demand_entity_rows(lifecycle_dir), feature_service)
    return frame.sort_values(["region", SNAPSHOT], ignore_index=True)
