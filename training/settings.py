"""Settings of the training stage, loaded from configs/training.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from retain.base.settings import RunLoggingSettings


class LightGBMParams(BaseModel):
    """LightGBM parameters (names as in `lightgbm.train`)."""

    model_config = {"extra": "allow"}  # any other LightGBM parameter may be added

    learning_rate: float = 0.02
    num_leaves: int = 15
    min_child_samples: int = 500
    feature_fraction: float = 0.7
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 10.0
    max_rounds: int = Field(
        3000, description="Upper bound; early stopping on the validation months."
    )
    early_stopping_rounds: int = 200


HELDOUT_DIR = Path("data/training/heldout")  # <registered model>/<run id>/test_set.parquet


class Economics(BaseModel):
    """What a retention offer costs and what a saved customer is worth (currency units)."""

    offer_cost: float = 25.0
    customer_value: float = 600.0  # margin over the customer's expected remaining life
    save_rate: float = 0.3  # share of would-be churners an offer keeps


class Promotion(BaseModel):
    """When a challenger replaces the champion (both scored on the same held-out months)."""

    min_roc_auc_gain: float = 0.002
    max_brier_increase: float = 0.0


class TrackedSettings(RunLoggingSettings):
    """What every model stage shares: where MLflow is and what the model is called there."""

    tracking_uri: str = Field(
        "sqlite:///data/mlflow/mlflow.db",
        description="MLflow tracking backend; MLFLOW_TRACKING_URI, when set, wins.",
    )
    artifact_root: Path = Path("data/mlflow/artifacts")
    experiment: str
    registered_model: str
    feature_service: str

    def resolved_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or self.tracking_uri


class TrainingSettings(TrackedSettings):
    """Churn model training, evaluation, tracking and promotion."""

    config_file: ClassVar[str] = "training.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_TRAINING_")

    experiment: str = "churn"
    registered_model: str = "churn"
    feature_service: str = "churn_v2"
    seed: int = 7
    test_months: int = Field(3, ge=1, description="Latest snapshot months held out for testing.")
    heldout_dir: Path = Field(
        HELDOUT_DIR,
        description="The challenger's held-out rows, for promotion: customer rows, kept on "
        "this disk beside the training sets rather than in MLflow.",
    )
    valid_months: int = Field(
        2, ge=1, description="Months before them, for early stopping and calibration."
    )
    calibration: Literal["auto", "sigmoid", "beta", "isotonic"] = Field(
        "auto",
        description="auto: Platt (sigmoid) or beta calibration, whichever has the lower "
        "out-of-fold log loss on the validation months. isotonic ties customers to steps.",
    )
    baseline_rows: int = Field(
        50_000, ge=1_000, description="Training rows sampled for the logistic baseline."
    )
    params: LightGBMParams = LightGBMParams()
    # Risk must never fall when these rise (+1) or fall (-1), all else equal.
    monotone: dict[str, Literal[-1, 1]] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]  # literal values, inferred as int
            "unresolved_tickets": 1,
            "tickets_complaint_90d": 1,
            "repeat_complaints_90d": 1,
            "home_cell_outage_hours_30d": 1,
            "home_cell_outage_hours_90d": 1,
            "days_to_contract_end": -1,
        }
    )
    economics: Economics = Economics()
    promotion: Promotion = Promotion()
