"""The daily list's scoring and exact reasons on Spark, the champion broadcast to executors.

`retain daily` scores every active customer; on one machine `serving.daily.score_all` does
it in one process. With `scoring_engine: spark` (configs/daily.yaml) the customers' feature
rows are cut into Arrow batches across the cluster and each executor, holding the
broadcast champion (schema, booster, calibrator), computes for its batch the calibrated
probability, the band, and for the customers in a listed band their exact TreeSHAP
contributions (`serving.explain.batch_contributions`, the same function the local path and
the API use). Only the scored columns and the listed customers' contributions come back
to the driver, where the contact policy and the action log decide, as on one machine.

A test holds the Spark result equal to the local one, probability for probability and
contribution for contribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.explain import batch_contributions
from serving.settings import RiskBands
from training.model import ChurnModel

CONTRIBUTIONS = "contributions"
_OUTPUT = pa.schema(
    [
        ("customer_id", pa.string()),
        ("churn_probability", pa.float64()),
        ("risk_band", pa.string()),
        (CONTRIBUTIONS, pa.list_(pa.float64())),
    ]
)


def risk_bands(probability: np.ndarray, bands: RiskBands) -> np.ndarray:
    """Each probability's band: high, medium or low (thresholds from configs/serving.yaml)."""
    return np.where(
        probability >= bands.high, "high", np.where(probability >= bands.medium, "medium", "low")
    )


def score_batches(
    model: Callable[[], ChurnModel], bands: RiskBands, listed_bands: Sequence[str]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each executor runs over its Arrow batches (`mapInArrow`); `model`
    returns the broadcast champion (read on the executor, not shipped with the closure)."""
    listed = list(listed_bands)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        champion = model()
        for batch in batches:
            frame = batch.to_pandas()
            matrix = champion.schema.frame_matrix(frame)
            probability = champion.calibrate(np.asarray(champion.booster.predict(matrix)))
            band = risk_bands(probability, bands)
            chosen = np.flatnonzero(np.isin(band, listed))
            contributions: list[list[float] | None] = [None] * len(frame)
            for row, values in zip(
                chosen, batch_contributions(champion.booster, matrix[chosen]), strict=True
            ):
                contributions[row] = values.tolist()
            yield pa.RecordBatch.from_pydict(
                {
                    "customer_id": frame["customer_id"].astype(str).tolist(),
                    "churn_probability": probability,
                    "risk_band": band,
                    CONTRIBUTIONS: contributions,
                },
                schema=_OUTPUT,
            )

    return run


def score_on_spark(
    spark: Any,
    features: pd.DataFrame,
    model: ChurnModel,
    bands: RiskBands,
    listed_bands: Sequence[str],
    partitions: int | None = None,
) -> pd.DataFrame:
    """customer_id, churn_probability, risk_band and (listed customers only) the exact
    contributions of every active customer in `features`, computed by Spark's executors, in
    the order of `features`."""
    broadcast = spark.sparkContext.broadcast(model)
    frame = spark.createDataFrame(features)
    if partitions:
        frame = frame.repartition(partitions)
    result = frame.mapInArrow(
        score_batches(lambda: broadcast.value, bands, listed_bands),
        "customer_id string, churn_probability double, risk_band string, "
        "contributions array<double>",
    )
    try:
        scored = result.toArrow().to_pandas()
    finally:
        broadcast.unpersist()
    order = pd.Index(features["customer_id"].astype(str))
    return scored.set_index("customer_id").loc[order].reset_index()
