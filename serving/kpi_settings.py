"""Settings of `retain kpis`, loaded from configs/kpis.yaml: the service targets the
operators' guides set, when a miss becomes an alert, and where the alerts go."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from features.lifecycle.contract import TICKET_TYPES
from features.snapshots import COMPLAINT_LIKE
from retain.base.settings import StageSettings


def _known_types(types: list[str], field: str) -> None:
    unknown = sorted(set(types) - set(TICKET_TYPES))
    if unknown:
        raise ValueError(
            f"{field}: unknown ticket type(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(TICKET_TYPES)}"
        )


class Deadline(BaseModel):
    """A ticket type's resolution deadline, and the share of tickets that must meet it."""

    model_config = {"extra": "forbid"}

    hours: float = Field(gt=0, description="Resolved within this many hours of opening.")
    min_share: float = Field(
        0.9, gt=0, le=1, description="Share of the tickets due that must be resolved in time."
    )


def _default_deadlines() -> dict[str, Deadline]:
    return {
        "complaint": Deadline(hours=24),
        "billing_dispute": Deadline(hours=24),
        "network_fault": Deadline(hours=4),
    }


class KpiTargets(BaseModel):
    """What each region must achieve every week."""

    model_config = {"extra": "forbid"}

    first_contact_resolution_min: float = Field(
        0.9, gt=0, le=1, description="Share of contacts resolved at the first contact."
    )
    repeat_complaint_rate_max: float = Field(
        0.05, ge=0, le=1, description="Share of complaints that repeat one within 30 days."
    )
    complaints_per_1k_max: float | None = Field(
        None, gt=0, description="Weekly complaints per 1,000 active customers (None: no target)."
    )
    deadlines: dict[str, Deadline] = Field(
        default_factory=_default_deadlines, description="Resolution deadline per ticket type."
    )

    @field_validator("deadlines")
    @classmethod
    def _deadline_types(cls, deadlines: dict[str, Deadline]) -> dict[str, Deadline]:
        _known_types(list(deadlines), "targets.deadlines")
        return deadlines


class KpiAlerts(BaseModel):
    """When a miss becomes an alert, and what an alert names as its likely drivers."""

    model_config = {"extra": "forbid"}

    consecutive_weeks: int = Field(
        2, ge=1, description="A KPI missing its target this many weeks running alerts."
    )
    min_count: int = Field(
        20, ge=1, description="A rate over fewer tickets is shown but not judged (too noisy)."
    )
    baseline_weeks: int = Field(
        4, ge=1, description="Drivers: growth against the mean of this many weeks before."
    )
    top_drivers: int = Field(3, ge=1, description="Ticket types and cell sites named per alert.")
    forecast_quantile: str = Field(
        "p90", pattern=r"^p(10|50|90)$", description="Contacts above this forecast alert."
    )


class KpiSettings(StageSettings):
    """`retain kpis`: the targets, the alert rules, the forecast read and the alert sink."""

    config_file: ClassVar[str] = "kpis.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_KPIS_")

    weeks: int = Field(4, ge=1, le=104, description="Complete weeks shown (the latest last).")
    complaint_types: list[str] = Field(
        default_factory=lambda: list(COMPLAINT_LIKE),
        description="Ticket types that count as complaints (as the churn features count them).",
    )
    targets: KpiTargets = KpiTargets()
    alerts: KpiAlerts = KpiAlerts()
    forecast_file: Path = Field(
        Path("data/forecasts/forecast.parquet"),
        description="`retain forecast`'s forecasts; the `service_load` series is read.",
    )
    alert_webhook_url: str | None = Field(
        None, description="Alerts are also POSTed here as JSON (none: the log line only)."
    )
    alert_webhook_timeout_s: float = Field(5.0, gt=0)

    @field_validator("complaint_types")
    @classmethod
    def _complaint_types(cls, types: list[str]) -> list[str]:
        if not types:
            raise ValueError("complaint_types: name at least one ticket type")
        _known_types(types, "complaint_types")
        return types
