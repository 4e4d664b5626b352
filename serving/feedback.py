"""What the engine did, for the world to answer and for attribution.

`world_actions` turns the action log of a period into the simulator's input (`retain data
advance`): every action delivered to a customer (an offer by its id, a callback, a
service message) with the logged assignment probability, and every control-group
decision as an assignment to no contact.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from features.lifecycle.simulator.advance import ACTION_COLUMNS
from features.lifecycle.simulator.responses import NEUTRAL_ACTIONS, NO_ACTION
from serving.action_log.log import ActionLog
from serving.domain import ActionRecord, ActionStatus

WORLD_COLUMNS = [*ACTION_COLUMNS, "action_id"]  # the simulator's input, and whose it is


def action_name(record: ActionRecord) -> str:
    """The catalogue's name of an action: the offer id of a retention offer, else its type."""
    if record.action_type == "retention_offer":
        return str(record.details.get("offer_id") or "retention_offer")
    return record.action_type


def is_control(record: ActionRecord) -> bool:
    return record.status == ActionStatus.CONTROL


def world_actions(log: ActionLog, since: datetime, until: datetime) -> pd.DataFrame:
    """Delivered actions and control-group decisions of [since, until), one row per
    customer and action (the first, if the log holds repeats)."""
    rows = [
        {
            "customer_id": record.customer_id,
            "action": action_name(record),
            "sent_at": sent,
            # a service action (an outage callback, a notice) was not randomized: no probability
            "assignment_probability": record.details.get("assignment_probability"),
            "action_id": record.id,
        }
        for record, sent in log.delivered(since, until)
    ]
    rows += [
        {
            "customer_id": record.customer_id,
            "action": NO_ACTION,
            "sent_at": record.created_at,
            "assignment_probability": float(record.details["assignment_probability"]),
            "action_id": record.id,
        }
        for record in log.decisions(since, until)
        if is_control(record) and "assignment_probability" in record.details
    ]
    frame = pd.DataFrame(rows, columns=WORLD_COLUMNS)
    frame["sent_at"] = pd.to_datetime(frame["sent_at"], utc=True)
    frame["assignment_probability"] = frame["assignment_probability"].astype("float64")
    # a control customer who was called after an outage is no clean control any more
    contacted = set(frame.loc[~frame["action"].isin([NO_ACTION, *NEUTRAL_ACTIONS]), "customer_id"])
    frame = frame[~((frame["action"] == NO_ACTION) & frame["customer_id"].isin(contacted))]
    return (
        frame.sort_values("sent_at", kind="stable")
        .drop_duplicates(["customer_id", "action"])
        .reset_index(drop=True)
    )
