"""The daily list on Spark: features read, every customer scored and the listed ones
explained by the executors, the champion broadcast to them.

`retain daily` scores every active customer; on one machine `features.batch_rows` reads
the latest features and `serving.daily.score_all` scores them in one process. With
`scoring_engine: spark` (configs/daily.yaml):

- Spark reads the feature tables: the active view's latest snapshot on or before the
  scoring instant, each other view's latest row per customer (within its TTL), as the
  batch reader does;
- each executor, holding the broadcast champion (schema, booster, calibrator), computes for
  its Arrow batches (`mapInArrow`) the request-time features (the on-demand view's function),
  the calibrated probability, the band, and for the customers in a listed band their exact
  TreeSHAP contributions (`serving.explain.batch_contributions`, as the local path and the
  API compute them);
- the driver receives the scored columns of every customer, and the feature rows and
  contributions of the listed ones only, and decides as on one machine.

Tests hold the features read by Spark equal to the batch reader's, and the list equal to
the one made in one process, row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from features.batch_rows import (
    ENTITY,
    TIMESTAMP,
    SnapshotError,
    add_request_time,
    check_fresh,
    source_file,
    wanted_features,
)
from serving.explain import batch_contributions
from serving.settings import RiskBands
from training.model import ChurnModel

CONTRIBUTIONS = "contributions"


def risk_bands(probability: np.ndarray, bands: RiskBands) -> np.ndarray:
    """Each probability's band: high, medium or low (thresholds from configs/serving.yaml)."""
    return np.where(
        probability >= bands.high, "high", np.where(probability >= bands.medium, "medium", "low")
    )


@dataclass(frozen=True)
class SparkFeatures:
    snapshot: pd.Timestamp  # the active view's snapshot read
    frame: Any  # a Spark DataFrame: customer_id and every stored feature asked for
    request_time: list[str]  # request-time features still to compute (at the scoring instant)
    columns: list[str]  # the batch reader's column order, request-time features included


def _micros(frame: Any) -> Any:
    """The timestamp column as microseconds since the epoch (a long column read from a
    nanosecond file is nanoseconds)."""
    from pyspark.sql import functions as F

    column = F.col(TIMESTAMP)
    if dict(frame.dtypes)[TIMESTAMP] == "bigint":
        return F.floor(column / 1000)
    return F.unix_micros(column)


def spark_latest_features(
    spark: Any,
    store: FeatureStore,
    tables_dir: Path,
    refs: list[str],
    at: pd.Timestamp,
    active_view: str = "customer_activity",
) -> SparkFeatures:
    """`features.batch_rows.latest_features`, read by Spark (request-time features apart)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    at = at.tz_convert("UTC")
    at_us = at.value // 1000
    wanted, request_time = wanted_features(refs, active_view)
    active = store.get_feature_view(active_view)
    path = source_file(active, tables_dir)
    snapshots = spark.read.parquet(str(path))
    stamp = _micros(snapshots)
    latest_us = snapshots.where(stamp <= at_us).agg(F.max(stamp)).first()[0]
    if latest_us is None:
        raise SnapshotError(f"{path.name}: no snapshot on or before {at:%Y-%m-%d %H:%M} UTC")
    snapshot = pd.Timestamp(int(latest_us), unit="us", tz="UTC")
    check_fresh(active, snapshot, at)
    frame = snapshots.where(stamp == latest_us).select(ENTITY, *wanted[active_view])
    if frame.groupBy(ENTITY).count().where(F.col("count") > 1).limit(1).count():
        raise SnapshotError(f"{path.name}: a customer appears twice in snapshot {snapshot}")
    inputs = ["signup_epoch_s", "contract_type"] if request_time else []
    for name, features in wanted.items():
        if name == active_view:
            continue
        view = store.get_feature_view(name)
        rows = spark.read.parquet(str(source_file(view, tables_dir)))
        stamp = _micros(rows)
        rows = rows.where(stamp <= at_us)
        if view.ttl and view.ttl.total_seconds() > 0:  # as Feast's offline join
            rows = rows.where(stamp >= at_us - int(view.ttl.total_seconds() * 1_000_000))
        extra = [c for c in inputs if c in rows.columns and c not in frame.columns]
        columns = list(dict.fromkeys([ENTITY, *features, *extra]))
        newest = Window.partitionBy(ENTITY).orderBy(stamp.desc())
        latest = rows.withColumn("_newest", F.row_number().over(newest)).where("_newest = 1")
        keep = [ENTITY, *(c for c in columns if c != ENTITY and c not in frame.columns)]
        frame = frame.join(latest.select(*keep), ENTITY, "left")
    ordered = list(dict.fromkeys([ENTITY, *(ref.split(":", 1)[1] for ref in refs)]))
    return SparkFeatures(snapshot, frame, request_time, ordered)


def score_batches(
    model: Callable[[], ChurnModel],
    bands: RiskBands,
    listed_bands: Sequence[str],
    request_time: list[str],
    at: pd.Timestamp,
    passthrough: list[str],
    schema: pa.Schema,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each executor runs over its Arrow batches (`mapInArrow`); `model`
    returns the broadcast champion (read on the executor, not shipped with the closure)."""
    listed = list(listed_bands)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        champion = model()
        for batch in batches:
            frame = add_request_time(batch.to_pandas(), request_time, at)
            matrix = champion.schema.frame_matrix(frame)
            probability = champion.calibrate(np.asarray(champion.booster.predict(matrix)))
            band = risk_bands(probability, bands)
            chosen = np.flatnonzero(np.isin(band, listed))
            contributions: list[list[float] | None] = [None] * len(frame)
            for row, values in zip(
                chosen, batch_contributions(champion.booster, matrix[chosen]), strict=True
            ):
                contributions[row] = values.tolist()
            columns = {name: batch.column(name) for name in passthrough}
            yield pa.RecordBatch.from_pydict(
                {
                    **columns,
                    "churn_probability": probability,
                    "risk_band": band,
                    CONTRIBUTIONS: contributions,
                },
                schema=schema,
            )

    return run


@dataclass(frozen=True)
class SparkScores:
    snapshot: pd.Timestamp
    scored: pd.DataFrame  # every customer: passthrough columns, probability, band; by id
    listed: pd.DataFrame  # the listed customers' feature rows (batch reader's columns), by id
    contributions: pd.Series  # their exact contributions (features + bias), by id


def score_on_spark(
    spark: Any,
    features: SparkFeatures,
    model: ChurnModel,
    bands: RiskBands,
    listed_bands: Sequence[str],
    at: pd.Timestamp,
    passthrough: Sequence[str],
) -> SparkScores:
    """Every customer of `features` scored, and the listed ones explained, by the executors."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    keep = list(dict.fromkeys([ENTITY, *passthrough]))
    inputs = to_arrow_schema(features.frame.select(*keep).schema)
    schema = pa.schema(
        [
            *inputs,
            pa.field("churn_probability", pa.float64()),
            pa.field("risk_band", pa.string()),
            pa.field(CONTRIBUTIONS, pa.list_(pa.float64())),
        ]
    )
    broadcast = spark.sparkContext.broadcast(model)
    try:
        scored = features.frame.mapInArrow(
            score_batches(
                lambda: broadcast.value,
                bands,
                listed_bands,
                features.request_time,
                at,
                keep,
                schema,
            ),
            from_arrow_schema(schema),
        ).cache()
        everyone = scored.drop(CONTRIBUTIONS).toArrow().to_pandas()
        chosen = scored.where(F.col("risk_band").isin(list(listed_bands)))
        explained = chosen.select(ENTITY, CONTRIBUTIONS).toArrow().to_pandas()
        rows = features.frame.join(chosen.select(ENTITY), ENTITY, "left_semi")
        listed = add_request_time(rows.toArrow().to_pandas(), features.request_time, at)
        scored.unpersist()
    finally:
        broadcast.unpersist()
    return SparkScores(
        features.snapshot,
        everyone.sort_values(ENTITY, ignore_index=True),
        listed[features.columns].set_index(ENTITY, drop=False),
        explained.set_index(ENTITY)[CONTRIBUTIONS],
    )
