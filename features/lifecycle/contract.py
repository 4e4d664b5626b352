"""The lifecycle data contract: which tables exist, their columns, types and rules.

This module is the single source of truth. The validator, the simulator's tests and the
documentation table in features/README.md are all derived from `TABLES`, so a column
cannot be added in one place and forgotten in another.

Conventions every table follows:
- one parquet file per table, named `<table>.parquet`; extra columns are allowed;
- every time column is a timezone-aware UTC timestamp (any resolution); `month` is the
  first instant of a calendar month and `day` is midnight;
- nothing may happen after the data's as-of instant (the export time), except
  `contract_end_at`, which is naturally in the future.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd
import pandera.pandas as pa


class Kind(StrEnum):
    """Column type families. Any width of a family is accepted (int32 or int64, ...)."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp (UTC)"


SEGMENTS = ("consumer", "enterprise")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-59", "60+")
CONTRACT_TYPES = ("month_to_month", "one_year", "two_year")
CONTRACT_MONTHS = {"month_to_month": 1, "one_year": 12, "two_year": 24}
PAYMENT_METHODS = ("electronic_check", "mailed_check", "bank_transfer", "credit_card")
CONSENT_CHANNELS = ("sms", "app_push", "email", "phone")
TICKET_TYPES = (
    "network_fault",
    "billing_dispute",
    "package_question",
    "complaint",
    "relocation",
    "technical_support",
)
TICKET_CHANNELS = ("hotline", "app", "store", "chat")
SEVERITIES = ("minor", "major", "critical")
OUTAGE_CAUSES = ("fibre_cut", "typhoon", "power_failure", "equipment_fault", "maintenance", "other")
CHURN_REASONS = ("price", "network", "service", "competitor", "relocation", "other")
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_\-]+$"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the contract."""

    name: str
    kind: Kind
    doc: str
    nullable: bool = False
    checks: tuple[pa.Check, ...] = ()
    not_after_as_of: bool = False
    optional: bool = False  # may be absent from an export (read as all null)


@dataclass(frozen=True)
class RowRule:
    """A rule across columns of one row, reported against the column it constrains.

    It runs whenever the columns it `uses` are present and well typed, whatever else is
    wrong with the table.
    """

    column: str
    uses: tuple[str, ...]
    check: pa.Check


@dataclass(frozen=True)
class TableSpec:
    """One table: its columns, its key and any rule that spans several columns."""

    name: str
    stage: str
    doc: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    row_rules: tuple[RowRule, ...] = field(default=())

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


def _one_of(values: tuple[str, ...]) -> pa.Check:
    return pa.Check.isin(values, error=f"must be one of: {', '.join(values)}")


def _between(low: float, high: float) -> pa.Check:
    return pa.Check.in_range(low, high, error=f"must be in [{low}, {high}]")


_NON_NEGATIVE = pa.Check.ge(0, error="must be >= 0")
_IDENTIFIER = pa.Check.str_matches(
    IDENTIFIER_PATTERN, error="must be an identifier (letters, digits, _ and -)"
)


def _is_month_start(s: pd.Series) -> pd.Series:
    return (s == s.dt.floor("D")) & (s.dt.day == 1)


def _is_midnight(s: pd.Series) -> pd.Series:
    return s == s.dt.floor("D")


def _not_before(start: str, end: str) -> RowRule:
    def check(df: pd.DataFrame) -> pd.Series:
        return df[end].isna() | df[start].isna() | (df[end] >= df[start])

    return RowRule(end, (start, end), pa.Check(check, name=f"must not be before {start}"))


def _end_date_iff_term_contract(df: pd.DataFrame) -> pd.Series:
    is_term = df["contract_type"] != "month_to_month"
    return is_term == df["contract_end_at"].notna()


def _control_never_accepts(df: pd.DataFrame) -> pd.Series:
    # nulls are reported by the not-null rule; here they count as "not accepted"
    return df["treated"].fillna(True).astype(bool) | ~df["accepted"].fillna(False).astype(bool)


def _id(name: str, doc: str, nullable: bool = False) -> ColumnSpec:
    return ColumnSpec(name, Kind.STRING, doc, nullable=nullable, checks=(_IDENTIFIER,))


def _when(name: str, doc: str, nullable: bool = False) -> ColumnSpec:
    return ColumnSpec(name, Kind.TIMESTAMP, doc, nullable=nullable, not_after_as_of=True)


def _flag(name: str, doc: str) -> ColumnSpec:
    return ColumnSpec(name, Kind.BOOLEAN, doc)


def _amount(name: str, doc: str) -> ColumnSpec:
    return ColumnSpec(name, Kind.FLOAT, doc, checks=(_NON_NEGATIVE,))


_CUSTOMER_ID = _id("customer_id", "Customer identifier (the Feast `customer` entity).")
_CELL_SITE_ID = _id("cell_site_id", "Cell site identifier (the Feast `cell_site` entity).")

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            name="customers",
            stage="on-boarding",
            doc="One row per customer ever signed up: profile, contract and consents as of "
            "the export (or as of churn for churned customers).",
            key=("customer_id",),
            columns=(
                _CUSTOMER_ID,
                _when("signup_at", "When the customer signed up."),
                ColumnSpec(
                    "segment", Kind.STRING, "consumer or enterprise.", checks=(_one_of(SEGMENTS),)
                ),
                ColumnSpec(
                    "age_band",
                    Kind.STRING,
                    "Age band of the account holder.",
                    checks=(_one_of(AGE_BANDS),),
                ),
                _flag("is_student", "Registered as a student (eligible for campus offers)."),
                ColumnSpec(
                    "region",
                    Kind.STRING,
                    "Sales region (the Feast `region` entity).",
                    checks=(_IDENTIFIER,),
                ),
                _id("cell_site_id", "Home cell site (most-used cell)."),
                _id("plan_id", "Tariff plan."),
                _amount("monthly_fee", "Recurring monthly fee of the plan, in currency units."),
                ColumnSpec(
                    "contract_type",
                    Kind.STRING,
                    "Commitment term.",
                    checks=(_one_of(CONTRACT_TYPES),),
                ),
                ColumnSpec(
                    "contract_end_at",
                    Kind.TIMESTAMP,
                    "End of the current commitment term; null exactly for month_to_month. "
                    "Terms renew on signup anniversaries, so the end at any past date is "
                    "derivable from signup_at and contract_type.",
                    nullable=True,
                ),
                ColumnSpec(
                    "payment_method",
                    Kind.STRING,
                    "How the bill is paid.",
                    checks=(_one_of(PAYMENT_METHODS),),
                ),
                _flag("paperless_billing", "Receives bills electronically."),
                *(
                    _flag(
                        f"consent_{c}", f"Consents to marketing contact by {c.replace('_', ' ')}."
                    )
                    for c in CONSENT_CHANNELS
                ),
                _flag("large_print", "Prefers large-print / accessible communication."),
                _id(
                    "account_manager_id", "Assigned account manager; null when none.", nullable=True
                ),
            ),
            row_rules=(
                RowRule(
                    "contract_end_at",
                    ("contract_type", "contract_end_at"),
                    pa.Check(
                        _end_date_iff_term_contract, name="must be set exactly for term contracts"
                    ),
                ),
                _not_before("signup_at", "contract_end_at"),
            ),
        ),
        TableSpec(
            name="usage_monthly",
            stage="consumption",
            doc="One row per customer and calendar month while the customer was active.",
            key=("customer_id", "month"),
            columns=(
                _CUSTOMER_ID,
                ColumnSpec(
                    "month",
                    Kind.TIMESTAMP,
                    "First instant of the calendar month (UTC).",
                    checks=(
                        pa.Check(_is_month_start, name="must be the first instant of a month"),
                    ),
                    not_after_as_of=True,
                ),
                _amount("data_gb", "Mobile data used, GB."),
                _amount("voice_min", "Voice minutes."),
                ColumnSpec("sms", Kind.INTEGER, "SMS sent.", checks=(_NON_NEGATIVE,)),
                ColumnSpec(
                    "roaming_days",
                    Kind.INTEGER,
                    "Days with roaming usage.",
                    checks=(_between(0, 31),),
                ),
                _amount("bill_amount", "Total billed for the month, in currency units."),
                _amount("overage_amount", "Part of the bill above the plan allowance."),
                _flag("late_payment", "The month's bill was paid late."),
            ),
        ),
        TableSpec(
            name="service_tickets",
            stage="service",
            doc="One row per customer-service ticket.",
            key=("ticket_id",),
            columns=(
                _id("ticket_id", "Ticket identifier."),
                _CUSTOMER_ID,
                _when("opened_at", "When the ticket was opened."),
                _when("closed_at", "When it was closed; null while unresolved.", nullable=True),
                ColumnSpec(
                    "ticket_type",
                    Kind.STRING,
                    "What the ticket is about.",
                    checks=(_one_of(TICKET_TYPES),),
                ),
                ColumnSpec(
                    "channel",
                    Kind.STRING,
                    "Where it was opened.",
                    checks=(_one_of(TICKET_CHANNELS),),
                ),
                _flag("first_contact_resolved", "Resolved in the first contact."),
                _flag(
                    "is_repeat",
                    "Same customer had a ticket of the same type in the 30 days before.",
                ),
                ColumnSpec(
                    "sentiment",
                    Kind.FLOAT,
                    "Sentiment of the interaction, -1..1.",
                    checks=(_between(-1, 1),),
                ),
            ),
            row_rules=(_not_before("opened_at", "closed_at"),),
        ),
        TableSpec(
            name="cell_sites",
            stage="network",
            doc="One row per cell site.",
            key=("cell_site_id",),
            columns=(
                _CELL_SITE_ID,
                ColumnSpec("region", Kind.STRING, "Region the site serves.", checks=(_IDENTIFIER,)),
            ),
        ),
        TableSpec(
            name="cell_quality_daily",
            stage="network",
            doc="One row per cell site and day: service quality.",
            key=("cell_site_id", "day"),
            columns=(
                _CELL_SITE_ID,
                ColumnSpec(
                    "day",
                    Kind.TIMESTAMP,
                    "The day (midnight UTC).",
                    checks=(pa.Check(_is_midnight, name="must be midnight"),),
                    not_after_as_of=True,
                ),
                ColumnSpec(
                    "drop_rate",
                    Kind.FLOAT,
                    "Share of calls dropped, 0..1.",
                    checks=(_between(0, 1),),
                ),
                ColumnSpec(
                    "load",
                    Kind.FLOAT,
                    "Busy-hour utilisation (1.0 = capacity).",
                    checks=(_NON_NEGATIVE,),
                ),
            ),
        ),
        TableSpec(
            name="network_events",
            stage="network",
            doc="Outages: one row per event and affected cell site (one typhoon, many sites).",
            key=("event_id", "cell_site_id"),
            columns=(
                _id("event_id", "Event identifier, shared by all sites of one event."),
                _CELL_SITE_ID,
                _when("started_at", "Outage start."),
                _when("ended_at", "Outage end; null while ongoing.", nullable=True),
                ColumnSpec("severity", Kind.STRING, "Impact.", checks=(_one_of(SEVERITIES),)),
                ColumnSpec("cause", Kind.STRING, "Root cause.", checks=(_one_of(OUTAGE_CAUSES),)),
            ),
            row_rules=(_not_before("started_at", "ended_at"),),
        ),
        TableSpec(
            name="package_purchases",
            stage="consumption",
            doc="One row per add-on package bought.",
            columns=(
                _CUSTOMER_ID,
                _id(
                    "package_id",
                    "Package (campus_data_pack, daily_pass, roaming_pack, family_upgrade, ...).",
                ),
                _when("purchased_at", "When it was bought."),
                _amount("price", "Price paid."),
            ),
        ),
        TableSpec(
            name="campaigns",
            stage="retention history",
            doc="One row per customer assigned by a retention campaign: contacted with an "
            "action, or held out as a random no-contact control (`offer_id` none, `treated` "
            "false). `assignment_probability` is the chance the customer had of the arm they "
            "got, which makes the effects of the actions learnable from this history.",
            key=("campaign_id", "customer_id"),
            columns=(
                _CUSTOMER_ID,
                _id("campaign_id", "Campaign identifier."),
                _id("offer_id", "Action taken (an offer id, callback), or none for control."),
                _flag("treated", "False for the random control group (no contact)."),
                _when("sent_at", "When the action was sent (or the customer assigned)."),
                _flag("accepted", "The customer accepted the offer (always False for control)."),
                ColumnSpec(
                    "assignment_probability",
                    Kind.FLOAT,
                    "Probability of the arm the customer got (null or absent: not randomized).",
                    nullable=True,
                    optional=True,
                    checks=(pa.Check.in_range(0, 1, include_min=False, error="must be in (0, 1]"),),
                ),
            ),
            row_rules=(
                RowRule(
                    "accepted",
                    ("treated", "accepted"),
                    pa.Check(_control_never_accepts, name="must be false on a control row"),
                ),
            ),
        ),
        TableSpec(
            name="churn_events",
            stage="churn",
            doc="One row per customer who left (port-out or cancellation).",
            key=("customer_id",),
            columns=(
                _CUSTOMER_ID,
                _when("churned_at", "When the customer left."),
                ColumnSpec(
                    "reason",
                    Kind.STRING,
                    "Stated reason when known.",
                    nullable=True,
                    checks=(_one_of(CHURN_REASONS),),
                ),
            ),
        ),
    )
}


def _rules(column: ColumnSpec, table: TableSpec) -> str:
    rules = []
    if table.key == (column.name,):
        rules.append("unique key")
    elif column.name in table.key:
        rules.append(f"part of key ({', '.join(table.key)})")
    rules.append("nullable" if column.nullable else "not null")
    if column.optional:
        rules.append("optional")
    rules += [str(check.error or check.name) for check in column.checks]
    rules += [str(rule.check.name) for rule in table.row_rules if rule.column == column.name]
    if column.kind is Kind.FLOAT:
        rules.append("must be finite")
    if column.not_after_as_of:
        rules.append("must not be after the as-of instant")
    return "; ".join(rules)


def contract_markdown() -> str:
    """The contract as Markdown tables, for features/README.md (kept in sync by a test)."""
    lines = []
    for table in TABLES.values():
        lines += [f"### `{table.file_name}` ({table.stage})", "", table.doc, ""]
        lines += ["| column | type | meaning | rules (violations reported) |", "|---|---|---|---|"]
        for column in table.columns:
            lines.append(
                f"| `{column.name}` | {column.kind} | {column.doc} | {_rules(column, table)} |"
            )
        lines.append("")
    return "\n".join(lines)
