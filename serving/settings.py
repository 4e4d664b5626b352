"""Settings of the scoring API, loaded from configs/serving.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from retain.settings import StageSettings


class RiskBands(BaseModel):
    """Calibrated churn probability (next 30 days) at which each band starts."""

    high: float = Field(0.10, gt=0, lt=1)
    medium: float = Field(0.04, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> RiskBands:
        if self.medium >= self.high:
            raise ValueError(f"risk_bands.medium ({self.medium}) must be below high ({self.high})")
        return self

    def band(self, probability: float) -> str:
        if probability >= self.high:
            return "high"
        return "medium" if probability >= self.medium else "low"


class ServingSettings(StageSettings):
    """Where the API listens, which model it serves, who may call it."""

    config_file: ClassVar[str] = "serving.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_SERVING_")

    host: str = Field("127.0.0.1", description="Loopback by default; 0.0.0.0 to expose it.")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    model_name: str = "churn"
    model_alias: str = "champion"
    max_customers: int = Field(1000, ge=1, description="Customer ids per request at most.")
    top_reasons: int = Field(3, ge=1, le=10)
    risk_bands: RiskBands = RiskBands()
    api_keys_file: Path | None = Field(
        None, description="YAML {keys: [{key, roles}]}; RETAIN_API_KEYS='key:role+role,...' too."
    )
    dev_mode: bool = Field(False, description="Allow placeholder API keys (never in production).")
