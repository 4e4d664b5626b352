"""Settings of the data stage (simulator and validation), loaded from configs/data.yaml."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from retain.base.settings import StageSettings


class ChurnDrivers(BaseModel):
    """Effect sizes of the simulated monthly churn hazard, on the log-odds scale.

    The defaults give 1.5-2.5 % monthly churn with month-to-month customers several times
    likelier to leave than two-year ones; change them to stress a model or a policy.
    """

    model_config = {"extra": "forbid"}

    intercept: float = -5.0
    month_to_month: float = 1.0
    one_year: float = -0.55
    two_year: float = -1.45
    contract_end_within_60d: float = 1.35
    new_customer: float = 0.9  # decays with tenure: effect * exp(-tenure_months / 8)
    bill_shock: float = 0.85  # bill up >= 25 % on the previous three months
    bill_shock_month_to_month: float = 0.45  # extra when nothing holds the customer
    complaints_90d: float = 0.3  # per complaint-like ticket, capped at 4
    unresolved_ticket: float = 0.55
    repeat_complaint: float = 0.45
    negative_sentiment: float = 0.6  # times -mean sentiment of the last 90 days
    outage_hours_log1p: float = 0.15  # home-cell outage hours in the previous month
    outage_unresolved_interaction: float = 0.4
    drop_rate_excess: float = 30.0  # per unit of drop rate above 1.5 %
    competitor_promotion: float = 0.65  # month-to-month customers in the targeted regions
    relocation: float = 1.6
    electronic_check: float = 0.3
    senior: float = 0.2
    package_engagement: float = -0.25  # bought an add-on in the last 90 days
    frailty_sd: float = 0.55  # unobserved heterogeneity


class PlantedShift(BaseModel):
    """A rival's price war, nationwide or in some regions, from a month on: a shift
    planted to test production monitoring (off unless set).

    From `start`'s month the targeted customers' churn log-odds rise (fully for
    month-to-month customers, a third for contract ones, as a promotion's pull), they
    call to compare prices or ask how to port out (extra `complaint` tickets at
    `enquiry_rate` a month), and they move part of their data use to the rival's SIM."""

    model_config = {"extra": "forbid"}

    regions: list[str] | None = Field(
        None, min_length=1, description="Regions of the price war (names); none: all of them."
    )
    start: date = Field(description="The war starts on the first day of this date's month.")
    churn_logit: float = Field(1.2, ge=0, description="Added to the churn log-odds.")
    enquiry_rate: float = Field(
        0.6, ge=0, le=5, description="Price and port-out enquiries a customer a month."
    )
    data_usage_factor: float = Field(
        0.8, gt=0, le=1, description="Share of their data use the customers keep with us."
    )


class DataSettings(StageSettings):
    """Where and how much lifecycle data to simulate, and how to validate it."""

    config_file: ClassVar[str] = "data.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_DATA_")

    customers: int = Field(
        20_000, ge=100, description="Customers ever signed up (rows of `customers`)."
    )
    months: int = Field(24, ge=6, le=120, description="Months of history ending at `as_of`.")
    seed: int = Field(7, ge=0)
    as_of: datetime = Field(
        datetime.fromisoformat("2026-11-01T00:00:00+00:00"),
        description="Export instant: nothing in the data happens after it.",
    )
    out_dir: Path = Path("data/lifecycle")
    drivers: ChurnDrivers = ChurnDrivers()
    shift: PlantedShift | None = Field(
        None, description="A planted shift (a regional price war) to test monitoring."
    )

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("as_of needs a timezone, e.g. 2026-11-01T00:00:00Z")
        return value
