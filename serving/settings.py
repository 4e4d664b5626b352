"""Settings of the scoring API, loaded from configs/serving.yaml."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from retain.base.settings import RunLoggingSettings, StageSettings
from serving.domain import Band, Channel


class RiskBands(BaseModel):
    """Calibrated churn probability (next 30 days) at which each band starts."""

    high: float = Field(0.10, gt=0, lt=1)
    medium: float = Field(0.04, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> RiskBands:
        if self.medium >= self.high:
            raise ValueError(f"risk_bands.medium ({self.medium}) must be below high ({self.high})")
        return self

    def band(self, probability: float) -> Band:
        if probability >= self.high:
            return "high"
        return "medium" if probability >= self.medium else "low"


MESSAGE_CHANNELS: tuple[Channel, ...] = ("app_push", "sms", "email")  # in order of preference
LISTED_BANDS: tuple[Band, ...] = ("high", "medium")
PACKAGE_CHANNELS: tuple[Channel, ...] = ("app_push", "sms", "email")
WEEKLY_CAPS: dict[Channel, int] = {"sms": 2, "app_push": 3, "email": 2, "phone": 1}


class Offer(BaseModel):
    """A retention offer in the catalogue."""

    id: str
    cost: float = Field(ge=0, description="What the offer costs us if accepted.")
    save_rate: dict[str, float] = Field(
        description="P(offer keeps a would-be churner) per segment; 'default' for the rest."
    )
    contract_types: list[str] | None = Field(None, description="Eligible contracts (None: all).")
    segments: list[str] | None = Field(None, description="Eligible segments (None: all).")
    channels: list[Channel] = Field(default_factory=lambda: list(MESSAGE_CHANNELS))

    def rate(self, segment: str) -> float:
        return self.save_rate.get(segment, self.save_rate.get("default", 0.0))


def _default_offers() -> list[Offer]:
    return [
        Offer(id="data_boost", cost=5.0, save_rate={"default": 0.08, "enterprise": 0.04}),
        Offer(
            id="loyalty_discount",
            cost=30.0,
            save_rate={"default": 0.25, "enterprise": 0.15},
            contract_types=["month_to_month", "one_year"],
        ),
        Offer(
            id="contract_upgrade_bonus", cost=60.0, save_rate={"default": 0.35, "enterprise": 0.3}
        ),
    ]


class Callbacks(BaseModel):
    """Account-manager callbacks: for valuable customers whose risk comes from complaints."""

    min_probability: float = Field(0.08, ge=0, le=1)
    min_value: float = Field(
        750.0, ge=0, description="Customer value (expected margin) that earns a callback."
    )
    complaint_features: list[str] = Field(
        default_factory=lambda: [
            "tickets_complaint_90d",
            "repeat_complaints_90d",
            "unresolved_tickets",
            "tickets_billing_dispute_90d",
            "tickets_network_fault_90d",
            "sentiment_min_90d",
            "sentiment_mean_90d",
            "days_since_last_complaint",
            "home_cell_outage_hours_30d",
        ],
        description="A reason among these makes the risk complaint-driven.",
    )
    renewal_features: list[str] = Field(
        default_factory=lambda: ["days_to_contract_end"],
        description="A reason among these makes the risk a contract ending: a valuable "
        "customer gets a renewal call beside the offer.",
    )
    save_rate: float = Field(0.4, ge=0, le=1, description="P(a callback keeps a churner).")
    cost: float = Field(15.0, ge=0, description="An account manager's time per callback.")
    urgent_hours: float = Field(4.0, gt=0, description="Due time at high risk.")
    normal_hours: float = Field(24.0, gt=0)
    default_daily_capacity: int = Field(
        40, ge=0, description="Per region, when no demand forecast gives one."
    )
    capacity_file: Path = Field(
        Path("data/forecasts/callback_capacity.parquet"),
        description="`retain forecast`'s callback capacity per region and day.",
    )
    max_wait_days: int = Field(
        3, ge=1, description="A callback waiting for capacity longer than this expires."
    )
    promote_interval_s: float = Field(
        60.0, gt=0, description="How often waiting callbacks are offered free slots."
    )


class SeasonalPackages(BaseModel):
    """A package offered to the customers most likely to buy it, ahead of its demand surge
    (`retain forecast` writes the surges and the ranked candidates)."""

    candidates_file: Path = Field(
        Path("data/forecasts/campaign_candidates.parquet"),
        description="`retain forecast`'s campaign candidates (region, package, week, customer).",
    )
    value: dict[str, float] = Field(
        default_factory=lambda: {
            "campus_data_pack": 12.0,
            "roaming_pack": 25.0,
            "daily_pass": 2.0,
            "family_upgrade": 40.0,
        },
        description="Margin of one purchase per package; expected value = propensity x this "
        "- message cost.",
    )
    message_cost: float = Field(0.05, ge=0)
    lead_days: int = Field(21, ge=0, description="Notify from this many days before the surge.")
    channels: list[Channel] = Field(default_factory=lambda: list(PACKAGE_CHANNELS))


class Experiment(BaseModel):
    """The persistent random control group and the exploration share.

    A customer's arm is a hash of the customer id and the period (`period_months`
    calendar months), so it holds for the whole period on every path and worker."""

    control_share: float = Field(
        0.05, ge=0, lt=1, description="Universal holdout: no marketing action at all."
    )
    exploration_share: float = Field(
        0.05, ge=0, lt=1, description="A random eligible retention action instead of the best."
    )
    period_months: int = Field(
        12, ge=1, le=24, description="How long an arm holds (calendar blocks from January)."
    )
    salt: str = Field("retain", min_length=1, description="Change it to draw new groups.")

    @model_validator(mode="after")
    def _shares(self) -> Experiment:
        if self.control_share + self.exploration_share >= 1:
            raise ValueError("control_share + exploration_share must stay below 1")
        return self


class Budget(BaseModel):
    """What retention actions may cost per period; the day's decisions spend it best value
    per cost first. None: no limit."""

    period_days: int = Field(30, ge=1, description="The budget's period (days back from now).")
    retention_offer: float | None = Field(None, ge=0)
    callback: float | None = Field(None, ge=0)

    def limit(self, action_type: str) -> float | None:
        return {"retention_offer": self.retention_offer, "callback": self.callback}.get(action_type)


class CustomerValueSettings(BaseModel):
    """A customer's value: the expected margin over the next `horizon_months`, from the churn
    model's monthly hazards with tenure and contract term advanced (`training.value`)."""

    horizon_months: int = Field(
        24, ge=1, le=120, description="Months of expected margin a kept customer is worth."
    )
    margin_rate: float = Field(
        0.5, gt=0, le=1, description="Share of the monthly fee that is margin."
    )
    annual_discount_rate: float = Field(
        0.1, ge=0, le=1, description="Discounts margin k months ahead by (1 + this)^(-k/12)."
    )
    cache: int = Field(
        50_000, ge=0, description="Values the API keeps per exact input (LRU); 0: none."
    )


Severity = Literal["minor", "major", "critical"]


class QuietHoursRule(BaseModel):
    """When an outage notice goes out in the quiet hours: every condition given must hold."""

    severities: list[Severity] = Field(min_length=1)
    min_affected: int = Field(0, ge=0, description="Customers homed on the outage's sites.")
    repaired_before_quiet_end: bool = Field(
        False,
        description="Only when the expected repair comes before the quiet hours end: a notice "
        "held to the morning would arrive after the repair.",
    )


def _default_quiet_rules() -> list[QuietHoursRule]:
    return [
        QuietHoursRule(severities=["critical"]),
        QuietHoursRule(severities=["major"], min_affected=200),
        QuietHoursRule(severities=["major"], repaired_before_quiet_end=True),
    ]


class OutagePolicy(BaseModel):
    """The outage lifecycle: who is told, when, and what follows."""

    skip_quiet_hours: list[QuietHoursRule] = Field(
        default_factory=_default_quiet_rules,
        description="A notice skips the quiet hours when any rule matches (planned work never).",
    )
    planned_lead_hours: float = Field(
        48.0, ge=0, description="Planned maintenance is announced this long before it starts."
    )
    notify_suspected: bool = Field(
        False,
        description="Tell customers of a detected outage before operations confirm it.",
    )
    care_call_severities: list[Severity] = Field(
        default_factory=lambda: list[Severity](["critical"]),
        description="Outages whose customers in care (older, large print) get a service call "
        "whatever their value.",
    )


class FollowUps(BaseModel):
    """The call after a complaint or fault ticket closes, to confirm the customer is satisfied."""

    ticket_types: list[str] = Field(
        default_factory=lambda: ["complaint", "network_fault", "billing_dispute"],
        description="Ticket types whose closing opens a follow-up.",
    )
    due_hours: float = Field(
        72.0, gt=0, description="The follow-up is due this long after the ticket closed."
    )
    second_level_hours: float = Field(
        24.0, gt=0, description="A 'not satisfied' opens a second-level task due this soon."
    )
    lookback_days: int = Field(
        7, ge=1, description="`retain followups` opens tasks for tickets closed this far back."
    )


class ActionPolicy(BaseModel):
    """How a score becomes actions (the design card's expected-value rule)."""

    value: CustomerValueSettings = CustomerValueSettings()
    offers: list[Offer] = Field(default_factory=_default_offers)
    callbacks: Callbacks = Callbacks()
    packages: SeasonalPackages = SeasonalPackages()
    effect_model: str = Field(
        "churn_effects", description="Registered treatment-effect model (alias champion)."
    )
    experiment: Experiment = Experiment()
    budget: Budget = Budget()
    outages: OutagePolicy = OutagePolicy()
    follow_ups: FollowUps = FollowUps()


class Care(BaseModel):
    """Customers who need contact with care: the older age bands and those who asked for
    large print get their preferred channels first, the avoided ones last, and a dedicated
    agent."""

    age_bands: list[str] = Field(default_factory=lambda: ["60+"])
    preferred_channels: list[Channel] = Field(
        default_factory=lambda: list[Channel](["phone", "sms"])
    )
    avoided_channels: list[Channel] = Field(default_factory=lambda: list[Channel](["app_push"]))
    dedicated_agent: bool = Field(True, description="Older customers get a dedicated agent.")


class ContactPolicy(BaseModel):
    """Guards every outbound message."""

    timezone: str = Field("UTC", description="The customers' local time zone (IANA name).")
    quiet_start: time = Field(time(21, 0), description="Equal start and end: no quiet hours.")
    quiet_end: time = time(8, 0)
    weekly_caps: dict[Channel, int] = Field(
        default_factory=lambda: dict(WEEKLY_CAPS),
        description="Marketing messages per channel in the 7 days before now (one sent exactly "
        "7 days ago no longer counts); service messages do not count.",
    )
    offer_cooldown_days: int = Field(
        30, ge=0, description="No new offer sooner than this many days after one (0: none)."
    )
    care: Care = Field(default_factory=lambda: Care())
    do_not_call_file: Path | None = Field(
        None,
        description="CSV with a customer_id column: never phoned, not even for a service duty "
        "(re-read when it changes).",
    )


class Delivery(BaseModel):
    """The worker that drains the outbox to a channel, at least once."""

    enabled: bool = True
    sink: Literal["file", "webhook"] = "file"
    file_path: Path = Field(
        Path("data/actions/delivered.jsonl"), description="The file sink: one JSON line a message."
    )
    webhook_url: str | None = Field(None, description="The CRM endpoint for the webhook sink.")
    webhook_timeout_s: float = Field(5.0, gt=0)
    interval_s: float = Field(1.0, gt=0, description="Pause between drains when idle.")
    batch: int = Field(100, ge=1)
    max_attempts: int = Field(8, ge=1)
    base_backoff_s: float = Field(5.0, gt=0, description="Retry after 5 s, 10 s, 20 s, ...")
    max_backoff_s: float = Field(3600.0, gt=0)
    lease_s: float = Field(60.0, gt=0, description="A claimed message is retried after this.")

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> Delivery:
        if self.sink == "webhook" and not self.webhook_url:
            raise ValueError("delivery.webhook_url is required for the webhook sink")
        return self


MAX_CUSTOMERS_PER_REQUEST = 1000  # the schema's hard bound; `max_customers` may lower it


class RequestLimits(BaseModel):
    """What one caller or one request may ask of a worker."""

    max_body_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Larger request bodies are refused (413) before they are read or parsed.",
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="A request body must arrive within this (408 otherwise)."
    )
    keep_alive_s: int = Field(5, ge=1, description="An idle kept-alive connection is closed.")
    max_connections: int = Field(
        500,
        ge=1,
        description="Open connections per worker at most; beyond it uvicorn answers 503 at "
        "once rather than letting slow clients starve the rest.",
    )
    rate_limit: str | None = Field(
        "300/second",
        description="Requests per API key and worker (the `limits` library's notation, e.g. "
        "'6000/minute'; 'off' or null: none); beyond it 429 with Retry-After. Generous for "
        "a CRM integration, a bound on a runaway client.",
    )

    @model_validator(mode="after")
    def _parses(self) -> RequestLimits:
        if self.rate_limit is not None and self.rate_limit.strip().lower() in ("off", "none"):
            self.rate_limit = None
        if self.rate_limit is not None:
            from limits import parse  # the settings stay importable without the server's deps

            try:
                parse(self.rate_limit)
            except ValueError as error:
                raise ValueError(f"rate_limit {self.rate_limit!r}: {error}") from error
        return self


class TimeWindow(BaseModel):
    """The instants the API accepts, relative to now: anything else is a caller's mistake
    (a year 9999, a unix 0) that must be refused, not computed with."""

    past_days: int = Field(
        3 * 365, ge=1, description="A scoring or decision time at most this far back."
    )
    future_days: int = Field(
        366, ge=0, description="A scoring or decision time at most this far ahead."
    )
    outage_past_days: int = Field(
        30, ge=0, description="An outage reported at most this long after it started."
    )
    outage_lead_days: int = Field(
        30, ge=0, description="A planned outage announced at most this far ahead."
    )
    outage_max_days: int = Field(
        30, ge=1, description="An outage's expected end at most this long after its start."
    )


class Retention(BaseModel):
    """How long customer data rests here (`retain housekeeping`, run daily beside `retain
    daily`). Risk lists and delivered messages are deleted after their period; decisions
    stay in the action log for the campaign results and budgets, but lose their personal
    fields: the customer id becomes a keyed pseudonym and free text is dropped."""

    risk_lists_days: int = Field(
        90, ge=1, description="risk_lists/<date>/ of a day longer ago than this is deleted."
    )
    delivered_messages_days: int = Field(
        30, ge=1, description="The file sink's messages delivered longer ago are deleted."
    )
    action_log_personal_days: int = Field(
        400,
        ge=1,
        description="Decisions older than this are pseudonymized; never less than the "
        "attribution horizon (outcomes need the customer id) or the offer cooldown.",
    )
    pseudonym_secret: SecretStr | None = Field(
        None,
        description="The pseudonyms' HMAC key, at least 32 characters; from the environment "
        "only (RETAIN_SERVING_RETENTION__PSEUDONYM_SECRET). Keep it: another key gives the "
        "same customer another pseudonym.",
    )
    batch: int = Field(1000, ge=1, description="Decisions pseudonymized per transaction.")


ContactChannel = Literal["call_centre", "retail", "app", "web", "crm_batch"]
AGENT_CHANNELS: tuple[ContactChannel, ...] = ("call_centre", "retail")  # an agent on the line


class AgentAssist(BaseModel):
    """Help for the agent on a live contact (`/v1/score` with an agent's channel): where to
    route the customer, the home cell's status, the recent tickets. Tickets and cell
    quality are read from the lifecycle tables into memory, re-read when they change.
    Customers in care (`contact.care`: older, large print) get a dedicated agent."""

    channels: list[ContactChannel] = Field(
        default_factory=lambda: list(AGENT_CHANNELS),
        description="Channels with an agent on the contact: only these get assistance.",
    )
    tickets_file: Path = Path("data/lifecycle/service_tickets.parquet")
    cell_quality_file: Path = Path("data/lifecycle/cell_quality_daily.parquet")
    refresh_s: float = Field(30.0, gt=0, description="How often the files are checked for change.")
    recent_tickets: int = Field(
        5, ge=1, le=50, description="Tickets shown (and kept) per customer."
    )
    negative_sentiment: float = Field(
        -0.4, ge=-1, le=1, description="Live sentiment below this routes to a senior agent."
    )
    complaint_types: list[str] = Field(
        default_factory=lambda: ["complaint", "network_fault", "billing_dispute"],
        description="Ticket types that count as complaints.",
    )
    unresolved_complaints: int = Field(
        2, ge=1, le=20, description="This many complaints not resolved at first contact ..."
    )
    complaint_days: int = Field(
        30, ge=1, le=365, description="... within these days: a senior agent."
    )
    sentiment_script: str = Field("deescalate-live-anger", min_length=1)
    complaints_script: str = Field("deescalate-repeat-complaint", min_length=1)
    cell_days: int = Field(
        28, ge=2, le=365, description="Days of cell quality kept per site: the recent normal."
    )
    degraded_ratio: float = Field(
        2.0, gt=1, description="A drop rate this many times the site's recent median: degraded."
    )
    outage_refresh_s: float = Field(
        2.0,
        ge=0,
        description="Outage events are read from the action log at most this often (per "
        "worker): a posted outage reaches the agents within it; 0: on every contact.",
    )


class ServingSettings(StageSettings):
    """Where the API listens, which model it serves, who may call it."""

    config_file: ClassVar[str] = "serving.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_SERVING_")

    host: str = Field("127.0.0.1", description="Loopback by default; 0.0.0.0 to expose it.")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    worker_start_timeout_s: int = Field(
        120,
        ge=5,
        description="How long a worker may take to start (imports, model and store loading) "
        "before uvicorn's supervisor counts it as hung and replaces it.",
    )
    model_name: str = "churn"
    model_alias: str = "champion"
    max_customers: int = Field(
        MAX_CUSTOMERS_PER_REQUEST,
        ge=1,
        le=MAX_CUSTOMERS_PER_REQUEST,
        description="Customer ids per request at most.",
    )
    limits: RequestLimits = RequestLimits()
    probe_interval_s: float = Field(
        5.0, gt=0, description="How often /readyz's dependency probes run (per worker)."
    )
    time_window: TimeWindow = TimeWindow()
    reload_interval_s: float = Field(
        30.0, ge=0, description="How often to check the alias for a new champion (0: never)."
    )
    top_reasons: int = Field(3, ge=1, le=10)
    explanation_cache: int = Field(
        50_000, ge=0, description="Decision paths whose exact contributions are kept; 0: none."
    )
    risk_bands: RiskBands = RiskBands()
    api_keys_file: Path | None = Field(
        None, description="YAML {keys: [{key, roles}]}; RETAIN_API_KEYS='key:role+role,...' too."
    )
    actions: ActionPolicy = ActionPolicy()
    contact: ContactPolicy = ContactPolicy()
    delivery: Delivery = Delivery()
    action_db_url: str = Field(
        "sqlite:///data/actions/actions.db",
        description="The action log and outbox: SQLite by default, any SQLAlchemy URL.",
    )
    dev_mode: bool = Field(False, description="Allow placeholder API keys (never in production).")
    retention: Retention = Retention()
    assist: AgentAssist = AgentAssist()


class DailySettings(RunLoggingSettings):
    """The daily risk list (`retain daily`): who is at risk, why, and what to do."""

    config_file: ClassVar[str] = "daily.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_DAILY_")

    output_dir: Path = Field(
        Path("risk_lists"), description="risk_lists/<date>/ holds each day's list and report."
    )
    list_bands: list[Band] = Field(
        default_factory=lambda: list(LISTED_BANDS),
        description="Risk bands on the list (and explained, and matched with an action).",
    )
    table_rows: int = Field(500, ge=10, description="Customers in the report's table.")
    trend_days: int = Field(30, ge=1, description="Earlier lists shown in the trend plot.")
    staffing_file: Path = Field(
        Path("data/forecasts/staffing.parquet"),
        description="`retain staffing`'s daily agent plan, shown on the page.",
    )
    active_view: str = Field(
        "customer_activity", description="Customers in this view's latest snapshot are active."
    )
    experiment: str = Field("retain-daily", description="MLflow experiment of the daily runs.")
    scoring_engine: Literal["local", "spark"] = Field(
        "local",
        description="Where every customer is scored and the listed ones explained: this "
        "process, or Spark executors (features.yaml's offline_engine says which Spark).",
    )
