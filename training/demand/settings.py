"""Settings of the demand model, loaded from configs/demand.yaml."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from features.lifecycle.calendar import SPRING_FESTIVAL_DATES
from training.settings import TrackedSettings


class DemandCalendar(BaseModel):
    """Dates known in advance that move demand: school terms and moving holidays."""

    term_starts: list[str] = Field(
        default_factory=lambda: ["02-01", "03-01", "09-01"],
        description="School term starts as MM-DD, every year.",
    )
    spring_festival: list[date] = Field(
        default_factory=lambda: [date.fromisoformat(d) for d in SPRING_FESTIVAL_DATES],
        description="Spring Festival dates; forecasts need one within a year of each week.",
    )

    festival_driven: list[str] = Field(
        default_factory=lambda: ["roaming_pack"],
        description="Series whose season follows the Spring Festival, not the solar year.",
    )

    @field_validator("term_starts")
    @classmethod
    def _month_days(cls, values: list[str]) -> list[str]:
        for value in values:
            date.fromisoformat(f"2000-{value}")  # raises on anything but a real MM-DD
        if not values:
            raise ValueError("at least one term start is needed")
        return values


class QuantileParams(BaseModel):
    """LightGBM parameters of each quantile model (names as in `lightgbm.train`)."""

    model_config = {"extra": "allow"}

    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 80
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    num_rounds: int = Field(300, ge=1, description="Upper bound; early stopping picks fewer.")
    early_stopping_rounds: int = Field(30, ge=1)


class Intervals(BaseModel):
    """How forecasts keep their promise: references, calibration and the count model."""

    calibration_weeks: int = Field(
        26,
        ge=4,
        description="Latest target weeks held out from a first fit: its errors there pick the "
        "trees' rounds and calibrate the P10 and P90.",
    )
    min_rows: int = Field(
        40, ge=10, description="Held-out rows a series and horizon need for their own offsets."
    )
    count_model_below: float = Field(
        3.0,
        ge=0.0,
        description="Series selling fewer than this per region-week (yearly mean, median over "
        "regions) get the negative binomial count model instead of quantile trees.",
    )
    reference_weeks: int = Field(
        52, ge=4, description="Latest target weeks on which each series' reference is chosen."
    )


class Backtest(BaseModel):
    """Rolling-origin evaluation: the latest origins whose whole horizon has been observed."""

    origins: int = Field(12, ge=1)
    step_weeks: int = Field(2, ge=1, description="Weeks between consecutive origins.")
    min_history_weeks: int = Field(
        26, ge=8, description="Weeks of history the first origin needs before it."
    )
    moving_average_weeks: int = Field(4, ge=1)
    season_weeks: int = Field(52, ge=1, description="The seasonal-naive baseline's season.")


class DemandPromotion(BaseModel):
    """When a challenger replaces the champion (both backtested on the same history)."""

    min_wape_gain: float = Field(
        0.002, description="Package P50 WAPE must fall by at least this much (absolute)."
    )
    coverage_band: tuple[float, float] = (0.7, 0.9)


class Surges(BaseModel):
    """When a package's forecast counts as a surge worth a seasonal campaign."""

    baseline_weeks: int = Field(8, ge=1, description="Recent weeks whose mean is the baseline.")
    min_ratio: float = Field(1.5, gt=1.0, description="P50 must reach this multiple of it ...")
    min_extra: float = Field(5.0, ge=0.0, description="... and exceed it by this many purchases.")
    candidates_per_surge: int = Field(200, ge=1)


class Propensity(BaseModel):
    """The package purchase-propensity model that ranks campaign candidates."""

    window_days: int = Field(30, ge=1, description="Label: bought the package within N days.")
    negative_share: float = Field(
        0.2, gt=0.0, le=1.0, description="Non-buyers kept for training (reweighted)."
    )
    num_rounds: int = Field(200, ge=1)
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 100


class AgentChannel(BaseModel):
    """One line that agents answer, fed by some of the tickets' channels."""

    sources: list[str] = Field(min_length=1, description="Ticket channels this line answers.")
    aht_seconds: float = Field(
        gt=0, description="Average handle time per contact (tickets carry no talk time)."
    )


class GreenChannel(BaseModel):
    """A priority line opened on holiday-mode days, planned for a tighter target."""

    line: str = Field("hotline", description="The line whose callers it takes.")
    share: float = Field(0.2, ge=0, le=1, description="Share of that line's contacts it takes.")
    service_level: float = Field(0.9, gt=0, lt=1)
    answer_seconds: float = Field(10.0, gt=0)


class HolidayMode(BaseModel):
    """Days planned with an uplift and a green channel: holidays, festival, term starts."""

    dates: list[date] = Field(default_factory=list, description="Public holidays, once.")
    yearly: list[str] = Field(
        default_factory=list, description="Public holidays as MM-DD, every year."
    )
    spring_festival_days: int = Field(
        7, ge=0, description="Days from each Spring Festival (calendar.spring_festival) on."
    )
    term_start_days: int = Field(
        3, ge=0, description="Days from each term start (calendar.term_starts) on."
    )
    uplift: float = Field(1.3, gt=0, description="Contacts multiply by this on those days.")
    green_channel: GreenChannel = GreenChannel()

    @field_validator("yearly")
    @classmethod
    def _yearly_month_days(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                date.fromisoformat(f"2000-{value}")  # a leap year: 02-29 is a real MM-DD
            except ValueError as error:
                raise ValueError(f"{value!r} is not a MM-DD day") from error
        return values


def _default_lines() -> dict[str, AgentChannel]:
    return {
        "hotline": AgentChannel(sources=["hotline"], aht_seconds=360.0),
        "online": AgentChannel(sources=["app", "chat"], aht_seconds=300.0),
    }


class AgentStaffing(BaseModel):
    """Hotline and online agents per region and hour, by Erlang C (`retain staffing`)."""

    service_level: float = Field(
        0.8, gt=0, lt=1, description="Share of contacts answered within answer_seconds."
    )
    answer_seconds: float = Field(15.0, gt=0)
    max_occupancy: float = Field(0.85, gt=0, le=1, description="Busy share of an agent's hour.")
    shrinkage: float = Field(
        0.3, ge=0, lt=1, description="Share of paid time off the line: breaks, training."
    )
    shift_hours: float = Field(8.0, gt=0, le=24)
    min_agents: int = Field(1, ge=0, description="On each line every hour, even if quiet.")
    history_weeks: int = Field(
        26, ge=1, description="Weeks of tickets the day and hour profiles come from."
    )
    hourly_days: int = Field(7, ge=1, description="Days covered by the hourly plan.")
    lines: dict[str, AgentChannel] = Field(default_factory=_default_lines, min_length=1)
    holidays: HolidayMode = HolidayMode()

    @model_validator(mode="after")
    def _lines_apart(self) -> AgentStaffing:
        seen: dict[str, str] = {}
        for name, line in self.lines.items():
            for source in line.sources:
                if source in seen:
                    raise ValueError(
                        f"ticket channel {source!r} feeds both lines {seen[source]!r} and {name!r}"
                    )
                seen[source] = name
        if "green_channel" in self.lines:
            raise ValueError("'green_channel' is the holiday priority line, not a line name")
        if self.holidays.green_channel.line not in self.lines:
            raise ValueError(
                f"holidays.green_channel.line {self.holidays.green_channel.line!r} is none of "
                f"the lines {sorted(self.lines)}"
            )
        return self


class Staffing(BaseModel):
    """Account-manager time per region and how inbound service load eats into it."""

    account_managers: int = Field(2, ge=0, description="Per region, unless overridden.")
    per_region: dict[str, int] = Field(default_factory=dict)
    hours_per_day: float = Field(7.5, gt=0)
    minutes_per_callback: float = Field(20.0, gt=0)
    minutes_per_escalation: float = Field(25.0, ge=0)
    escalation_share: float = Field(
        0.5, ge=0, le=1, description="Share of service contacts escalated to account managers."
    )
    working_days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="Weekdays worked, Monday = 0."
    )
    plan_for: Literal["p50", "p90"] = Field(
        "p90", description="Which forecast of service load capacity is planned against."
    )
    agents: AgentStaffing = AgentStaffing()


class DemandSettings(TrackedSettings):
    """Demand forecasting, its backtest, tracking, promotion and downstream hooks."""

    config_file: ClassVar[str] = "demand.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_DEMAND_")

    experiment: str = "demand"
    registered_model: str = "demand"
    feature_service: str = "demand_v2"
    seed: int = 7
    horizon_weeks: int = Field(8, ge=1, le=26)
    forecast_dir: Path = Path("data/forecasts")
    calendar: DemandCalendar = DemandCalendar()
    params: QuantileParams = QuantileParams()
    intervals: Intervals = Intervals()
    backtest: Backtest = Backtest()
    promotion: DemandPromotion = DemandPromotion()
    surges: Surges = Surges()
    propensity: Propensity = Propensity()
    staffing: Staffing = Staffing()
