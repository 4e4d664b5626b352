"""Peer (c) of bench/serve.py: the straightforward FastAPI scoring app.

Per request, what a first version of a scoring API does: Feast `get_online_features` for
the champion's FeatureService, the response as a pandas DataFrame, then the model's
`predict_proba` and LightGBM's stock `pred_contrib` on that frame, and the three largest
positive contributions as reasons. No auth, no actions, no contact policy.

    RETAIN_NAIVE_MODEL_URI=models:/churn@champion uvicorn --factory naive_app:build_app
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mlflow
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features.request_time import REQUEST_TIME_FIELD
from features.settings import FeatureSettings
from features.store import open_store
from retain.base.settings import load_settings


class ScoreRequest(BaseModel):
    customer_id: str


def build_app() -> FastAPI:
    store = open_store(load_settings(FeatureSettings))
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    model = mlflow.pyfunc.load_model(os.environ["RETAIN_NAIVE_MODEL_URI"])
    churn = model.unwrap_python_model().model  # type: ignore[attr-defined]
    service = store.get_feature_service(os.environ.get("RETAIN_NAIVE_SERVICE", "churn_v1"))
    app = FastAPI()

    @app.post("/score")
    def score(body: ScoreRequest) -> dict[str, object]:
        now = int(pd.Timestamp.now(tz="UTC").timestamp())
        frame = store.get_online_features(
            features=service,
            entity_rows=[{"customer_id": body.customer_id, REQUEST_TIME_FIELD: now}],
        ).to_df()
        probability = float(churn.predict_proba(frame)[0])
        contributions = churn.contributions(frame).iloc[0].drop("bias")
        top = contributions[contributions > 0].sort_values(ascending=False).head(3)
        return {
            "customer_id": body.customer_id,
            "churn_probability": probability,
            "reasons": [
                {"feature": name, "value": _plain(frame.at[0, name]), "contribution": float(value)}
                for name, value in top.items()
            ],
        }

    return app


def _plain(value: object) -> object:
    """A JSON-ready value: numpy scalars as Python ones, missing as None."""
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return None
    return value.item() if hasattr(value, "item") else value
