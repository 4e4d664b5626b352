"""Turn simulated arrays into contract tables (ids, timestamps, labels) and write them.

This is also where the export cut-off is applied: whatever happened at or after the
as-of instant is not in the data (a churn after it is no churn yet, a ticket closed after
it is still open, an outage ending after it is ongoing).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.lifecycle.calendar import term_end_after
from features.lifecycle.contract import (
    AGE_BANDS,
    CONTRACT_TYPES,
    PAYMENT_METHODS,
    TABLES,
    Kind,
)
from features.lifecycle.simulator.lifecycle import NEVER, BlockTables
from features.lifecycle.simulator.network import Network
from features.lifecycle.simulator.world import PLANS, REGIONS, MonthGrid

_ARROW_TYPE = {
    Kind.STRING: pa.string(),
    Kind.INTEGER: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOLEAN: pa.bool_(),
    Kind.TIMESTAMP: pa.timestamp("ns", tz="UTC"),
}


def _timestamps(seconds: np.ndarray, cutoff: int | None = None) -> pd.Series:
    """Seconds to UTC timestamps; NEVER (and anything at or after `cutoff`) becomes NaT."""
    seconds = np.asarray(seconds, dtype=np.int64)
    missing = seconds == NEVER
    if cutoff is not None:
        missing |= seconds >= cutoff
    values = pd.to_datetime(np.where(missing, 0, seconds), unit="s", utc=True)
    return pd.Series(values).where(~missing)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    if len(numbers) == 0:  # np.char.zfill cannot size an empty array
        return np.empty(0, dtype=object)
    return np.char.add(prefix, np.char.zfill(np.asarray(numbers).astype(str), width)).astype(object)


def customer_ids(numbers: np.ndarray) -> np.ndarray:
    return _ids("C", numbers, 8)


def site_ids(numbers: np.ndarray) -> np.ndarray:
    return _ids("S", numbers, 5)


def event_ids(numbers: np.ndarray) -> np.ndarray:
    return _ids("NE", numbers, 7)


def ticket_ids(block: int, numbers: np.ndarray) -> np.ndarray:
    return _ids("T", block * 10**8 + np.asarray(numbers), 11)


def _arrow(name: str, df: pd.DataFrame) -> pa.Table:
    """An Arrow table whose contract columns have the contract's types in every block."""
    spec = TABLES.get(name)
    fields = []
    for column in df.columns:
        kind = (
            spec.column(column).kind if spec and column in {c.name for c in spec.columns} else None
        )
        fields.append(pa.field(column, _ARROW_TYPE[kind] if kind else pa.array(df[column]).type))
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def network_tables(network: Network, grid: MonthGrid) -> dict[str, pa.Table]:
    sites = network.sites
    quality = network.quality_daily
    events = network.events
    return {
        "cell_sites": _arrow("cell_sites", sites[["cell_site_id", "region", "x_km", "y_km"]]),
        "cell_quality_daily": _arrow(
            "cell_quality_daily",
            pd.DataFrame(
                {
                    "cell_site_id": site_ids(quality["site"].to_numpy()),
                    "day": _timestamps(quality["day"].to_numpy()),
                    "drop_rate": quality["drop_rate"].to_numpy(),
                    "load": quality["load"].to_numpy(),
                }
            ),
        ),
        "network_events": _arrow(
            "network_events",
            pd.DataFrame(
                {
                    "event_id": event_ids(events["event"].to_numpy()),
                    "cell_site_id": site_ids(events["site"].to_numpy()),
                    "started_at": _timestamps(events["start"].to_numpy()),
                    "ended_at": _timestamps(events["end"].to_numpy(), cutoff=grid.as_of),
                    "severity": events["severity"].to_numpy(),
                    "cause": events["cause"].to_numpy(),
                }
            ),
        ),
    }


def block_tables(
    block: BlockTables, network: Network, grid: MonthGrid, block_number: int
) -> dict[str, pa.Table]:
    """Contract tables and truth tables for one simulated block."""
    c = block.customers
    first = int(c["customer"].iloc[0])
    ids = customer_ids(c["customer"].to_numpy())

    def cid(numbers: pd.Series) -> np.ndarray:
        return ids[numbers.to_numpy() - first]

    churn_at = np.where(c["churn_at"].to_numpy() >= grid.as_of, NEVER, c["churn_at"].to_numpy())
    signup_ns = (c["signup_at"].to_numpy() * 1_000_000_000).astype("datetime64[ns]")
    observed_until = np.minimum(churn_at, grid.as_of)
    term_end = term_end_after(
        signup_ns, c["term"].to_numpy(), (observed_until * 1_000_000_000).astype("datetime64[ns]")
    )
    is_term = c["contract"].to_numpy() != 0
    region_names = np.array([r.name for r in REGIONS])
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_at": _timestamps(c["signup_at"].to_numpy()),
            "segment": np.where(c["enterprise"], "enterprise", "consumer"),
            "age_band": np.array(AGE_BANDS)[c["age"]],
            "is_student": c["student"].to_numpy(),
            "region": region_names[c["region"]],
            "cell_site_id": site_ids(c["site"].to_numpy()),
            "plan_id": np.array([p.plan_id for p in PLANS])[c["plan"]],
            "monthly_fee": c["fee"].to_numpy(),
            "contract_type": np.array(CONTRACT_TYPES)[c["contract"]],
            "contract_end_at": pd.Series(pd.to_datetime(term_end).tz_localize("UTC")).where(
                is_term
            ),
            "payment_method": np.array(PAYMENT_METHODS)[c["payment"]],
            "paperless_billing": c["paperless"].to_numpy(),
            "consent_sms": c["consent_sms"].to_numpy(),
            "consent_app_push": c["consent_app_push"].to_numpy(),
            "consent_email": c["consent_email"].to_numpy(),
            "consent_phone": c["consent_phone"].to_numpy(),
            "large_print": c["large_print"].to_numpy(),
            "account_manager_id": pd.Series(
                _ids("AM", c["account_manager"].clip(lower=0).to_numpy(), 4)
            ).where(c["account_manager"].to_numpy() >= 0),
        }
    )

    # the export cut-off: a month is billed once it has ended; events need to precede as-of
    month_end = grid.starts[grid.month_of(block.usage["month"].to_numpy()) + 1]
    usage = block.usage[month_end <= grid.as_of]
    tickets = block.tickets[block.tickets["opened_at"].to_numpy() < grid.as_of]
    packages = block.packages[block.packages["purchased_at"].to_numpy() < grid.as_of]
    sent = block.campaigns["sent_at"].to_numpy() < grid.as_of
    campaigns, treatment = block.campaigns[sent], block.treatment[sent]
    churn = block.churn[block.churn["churned_at"].to_numpy() < grid.as_of]

    tables = {
        "customers": customers,
        "usage_monthly": pd.DataFrame(
            {
                "customer_id": cid(usage["customer"]),
                "month": _timestamps(usage["month"].to_numpy()),
                **{
                    k: usage[k].to_numpy()
                    for k in (
                        "data_gb",
                        "voice_min",
                        "sms",
                        "roaming_days",
                        "bill_amount",
                        "overage_amount",
                        "late_payment",
                    )
                },
            }
        ),
        "service_tickets": pd.DataFrame(
            {
                "ticket_id": ticket_ids(block_number, tickets["number"].to_numpy()),
                "customer_id": cid(tickets["customer"]),
                "opened_at": _timestamps(tickets["opened_at"].to_numpy()),
                "closed_at": _timestamps(tickets["closed_at"].to_numpy(), cutoff=grid.as_of),
                **{
                    k: tickets[k].to_numpy()
                    for k in (
                        "ticket_type",
                        "channel",
                        "first_contact_resolved",
                        "is_repeat",
                        "sentiment",
                    )
                },
            }
        ),
        "package_purchases": pd.DataFrame(
            {
                "customer_id": cid(packages["customer"]),
                "package_id": packages["package_id"].to_numpy(),
                "purchased_at": _timestamps(packages["purchased_at"].to_numpy()),
                "price": packages["price"].to_numpy(),
            }
        ),
        "campaigns": pd.DataFrame(
            {
                "customer_id": cid(campaigns["customer"]),
                "campaign_id": campaigns["campaign_id"].to_numpy(),
                "offer_id": campaigns["offer_id"].to_numpy(),
                "treated": campaigns["treated"].to_numpy(),
                "sent_at": _timestamps(campaigns["sent_at"].to_numpy()),
                "accepted": campaigns["accepted"].to_numpy(),
                "assignment_probability": campaigns["assignment_probability"].to_numpy(),
            }
        ),
        "churn_events": pd.DataFrame(
            {
                "customer_id": cid(churn["customer"]),
                "churned_at": _timestamps(churn["churned_at"].to_numpy()),
                "reason": churn["reason"].where(churn["reason"] != "", None).to_numpy(),
            }
        ),
    }
    hazard = block.hazard[block.hazard["month"].to_numpy() < grid.as_of]
    truth = {
        "truth/churn_hazard": pd.DataFrame(
            {
                "customer_id": cid(hazard["customer"]),
                "month": _timestamps(hazard["month"].to_numpy()),
                **{
                    k: hazard[k].to_numpy()
                    for k in hazard.columns
                    if k not in ("customer", "month")
                },
            }
        ),
        "truth/treatment_effects": pd.DataFrame(
            {
                "customer_id": cid(treatment["customer"]),
                **{k: treatment[k].to_numpy() for k in treatment.columns if k != "customer"},
            }
        ),
        "truth/customer_traits": pd.DataFrame(
            {
                "customer_id": ids,
                "contact_averse": c["contact_averse"].to_numpy(),
                "receptiveness": c["receptiveness"].to_numpy(),
                "churned_at": _timestamps(c["churn_at"].to_numpy(), cutoff=grid.as_of),
            }
        ),
    }
    return {name: _arrow(name, df) for name, df in {**tables, **truth}.items()}


class TableWriters:
    """One parquet writer per table, appending a row group per block."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.row_counts: Counter[str] = Counter()

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self._writers:
            path = self.directory / f"{name}.parquet"
            self._writers[name] = pq.ParquetWriter(path, table.schema, compression="zstd")
        self._writers[name].write_table(table.cast(self._writers[name].schema))
        self.row_counts[name] += table.num_rows

    def __enter__(self) -> TableWriters:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for writer in self._writers.values():
            writer.close()
