"""Attribution: what became of every marketing decision and of its control-group twins.

For each decision with an experiment arm (policy, exploration, control) the job records,
once each window has passed, whether the customer churned within 30 and 60 days of the
decision (from the lifecycle's churn events) and whether the action was accepted (an
outcome reported to the API, or the campaign rows of a simulated world). Re-running it
updates the same rows: nothing is counted twice. The outcomes feed the campaign results
and, exported, the treatment-effect model's retraining.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, insert, select

from retain.base.publish import publish_file
from serving.action_log.database import decision_outcomes, from_db, in_transaction, to_db
from serving.action_log.log import ActionLog
from serving.action_log.retention import PSEUDONYM_PREFIX, is_pseudonym
from serving.domain import ActionRecord, ActionStatus
from serving.experiment import arm_of
from serving.feedback import action_name, is_control
from serving.settings import Experiment

WINDOWS = {"churned_30d": 30, "churned_60d": 60}
HORIZON_DAYS = max(WINDOWS.values())  # a decision's customer id is needed this long
# what an action's status says about its acceptance (None: not known yet)
ACCEPTANCE = {ActionStatus.ACCEPTED: True, ActionStatus.DECLINED: False}
STOPPED = frozenset({ActionStatus.SUPPRESSED, ActionStatus.EXPIRED, ActionStatus.FAILED})


def outcome_rows(
    decisions: list[ActionRecord],
    churned_at: pd.Series,
    as_of: pd.Timestamp,
    accepted_in_world: set[tuple[str, str, str]],
    now: datetime,
) -> list[dict[str, object]]:
    """One outcome row per decision; a window not over by `as_of` stays null."""
    rows = []
    for record in decisions:
        decided = pd.Timestamp(record.created_at)
        # quiet hours may push the sending into the next day, or month: the world and the
        # campaign rows know the action by when it went out
        sent = pd.Timestamp(record.send_after or record.created_at)
        left = churned_at.get(record.customer_id)
        row: dict[str, object] = {
            "action_id": record.id,
            "customer_id": record.customer_id,
            "decided_at": record.created_at,
            "sent_at": sent.to_pydatetime(),
            "arm": record.details.get("arm"),
            "action_type": record.action_type,
            "offer_id": record.details.get("offer_id"),
            "segment": record.details.get("segment"),
            "region": record.region,
            "contract_type": record.details.get("contract_type"),
            "assignment_probability": record.details.get("assignment_probability"),
            "estimated_effect": record.details.get("estimated_effect"),
            "churn_probability": record.details.get("churn_probability"),
            "customer_value": record.details.get("customer_value"),
            "cost": record.details.get("cost"),
            "churn_model": record.details.get("churn_model"),
            "effect_model": record.details.get("effect_model"),
            "updated_at": now,
        }
        for column, days in WINDOWS.items():
            # known only once the whole window has passed: recording early churners before
            # the stayers would make every young cohort look lost
            end = decided + pd.Timedelta(days=days)
            gone = left is not None and not pd.isna(left) and decided < left <= end
            row[column] = bool(gone) if end <= as_of else None
        key = (record.customer_id, f"{sent:%Y-%m}", action_name(record))
        accepted = ACCEPTANCE.get(record.status)
        if accepted is None and record.details.get("arm") != "control":
            accepted = key in accepted_in_world if accepted_in_world else None
        row["accepted"] = accepted
        rows.append(row)
    return rows


CARRYOVER_DAYS = 60  # an action changes churn for up to two months after it


def compared(record: ActionRecord, experiment: Experiment) -> bool:
    """Decisions the results compare: actions that went out (or are going), and control-group
    ones; not those the contact policy or the budget stopped (no one was treated, and they
    are not in the control group either). And only while the customer's control membership
    held from two months before (no earlier action still at work on a control customer) to
    the end of the outcome window (no later one): arms are drawn anew each period, and this
    depends on the hash alone, never on what happened to the customer."""
    if record.details.get("arm") == "control" and not is_control(record):
        return False
    if record.details.get("arm") != "control" and record.status in STOPPED:
        return False
    held_out = record.details.get("arm") == "control"
    at = record.created_at
    span = (at - timedelta(days=CARRYOVER_DAYS), at + timedelta(days=max(WINDOWS.values())))
    return all((arm_of(record.customer_id, t, experiment) == "control") == held_out for t in span)


def world_acceptances(campaigns: pd.DataFrame) -> set[tuple[str, str, str]]:
    """(customer, month, action) of the engine's actions a simulated world says were taken
    up (its `ENG-` campaign rows); empty for real exports."""
    engine = campaigns[campaigns["campaign_id"].astype(str).str.startswith("ENG-")]
    taken = engine[engine["accepted"].astype(bool)]
    sent = pd.to_datetime(taken["sent_at"], utc=True)
    return set(zip(taken["customer_id"], sent.dt.strftime("%Y-%m"), taken["offer_id"], strict=True))


class AttributionError(ValueError):
    """Outcomes cannot be attributed as asked; nothing was recorded."""


def check_horizon(horizon_days: int) -> None:
    if f"churned_{horizon_days}d" not in WINDOWS:
        known = " and ".join(str(d) for d in WINDOWS.values())
        raise AttributionError(
            f"outcomes are attributed over {known} days; the effect model's horizon is "
            f"{horizon_days} days (configs/effects.yaml horizon_days)"
        )


def attribute(
    log: ActionLog,
    lifecycle_dir: Path,
    as_of: pd.Timestamp,
    since: datetime,
    now: datetime,
    experiment: Experiment,
) -> pd.DataFrame:
    """Record the outcomes of the decisions made from `since` up to `as_of`; returns them."""
    churn_file = lifecycle_dir / "churn_events.parquet"
    if not churn_file.exists():
        raise AttributionError(f"{churn_file} not found: no churn events to attribute from")
    churn = pd.read_parquet(churn_file)
    churned_at = pd.Series(
        pd.to_datetime(churn["churned_at"], utc=True).to_numpy(), index=churn["customer_id"]
    )
    campaigns_file = lifecycle_dir / "campaigns.parquet"
    accepted = (
        world_acceptances(pd.read_parquet(campaigns_file)) if campaigns_file.exists() else set()
    )
    # a pseudonymized decision is past every window (`retain housekeeping` refuses a
    # retention shorter than the horizon): its outcome row is final, and its customer can
    # no longer be matched with churn events, take-up or arm, so it is left as it is
    decisions = [
        d for d in log.decisions(since, as_of.to_pydatetime()) if not is_pseudonym(d.customer_id)
    ]
    chosen = [d for d in decisions if compared(d, experiment)]
    rows = outcome_rows(chosen, churned_at, as_of, accepted, now)

    def write(connection: object) -> None:
        # every decision of the window is replaced: one no longer compared (a callback that
        # expired waiting for capacity) must not keep an outcome row from an earlier run
        ids = [d.id for d in decisions]
        for start in range(0, len(ids), 500):
            connection.execute(  # type: ignore[attr-defined]
                delete(decision_outcomes).where(
                    decision_outcomes.c.action_id.in_(ids[start : start + 500])
                )
            )
        if rows:
            stored = [
                {
                    **r,
                    "decided_at": to_db(r["decided_at"]),  # type: ignore[arg-type]
                    "sent_at": to_db(r["sent_at"]),  # type: ignore[arg-type]
                    "updated_at": to_db(now),
                }
                for r in rows
            ]
            connection.execute(insert(decision_outcomes), stored)  # type: ignore[attr-defined]

    in_transaction(log.engine, write)
    return outcomes_frame(log)


def outcomes_frame(log: ActionLog) -> pd.DataFrame:
    """Every recorded decision outcome, as the campaign results read them."""
    with log.engine.connect() as connection:
        frame = pd.DataFrame(
            connection.execute(select(decision_outcomes)).mappings().all(),
            columns=[c.name for c in decision_outcomes.columns],
        )
    for column in ("decided_at", "sent_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column].map(from_db), utc=True)
    frame["month"] = frame["sent_at"].dt.strftime("%Y-%m")
    return frame


def export_training_rows(outcomes: pd.DataFrame, path: Path, horizon_days: int = 60) -> int:
    """The matured decisions as the treatment-effect model's training rows (customer,
    instant, action or none, assignment probability, take-up, churn within the horizon),
    published atomically; returns the row count."""
    label = f"churned_{horizon_days}d"
    # a pseudonymized decision's customer has no features to join any more
    named = ~outcomes["customer_id"].astype(str).str.startswith(PSEUDONYM_PREFIX)
    matured = outcomes[outcomes[label].notna() & outcomes["assignment_probability"].notna() & named]
    rows = pd.DataFrame(
        {
            "customer_id": matured["customer_id"],
            "event_timestamp": matured["sent_at"],
            "action": [
                "none" if arm == "control" else (offer or kind)
                for arm, offer, kind in zip(
                    matured["arm"], matured["offer_id"], matured["action_type"], strict=True
                )
            ],
            "assignment_probability": matured["assignment_probability"].astype("float64"),
            # taken up 1 / not 0 / unknown NaN (the control group, unreported outcomes)
            "accepted": pd.to_numeric(matured["accepted"], errors="coerce").astype("float64"),
            f"churned_within_{horizon_days}d": matured[label].astype(bool),
        }
    )
    publish_file(path, lambda target: rows.to_parquet(target, index=False))
    return len(rows)
