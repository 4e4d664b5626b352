"""Rows of the actions table to typed records and back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from serving.action_log.database import from_db, to_db
from serving.domain import ActionRecord, ActionStatus, NewAction


def columns_of(item: NewAction) -> dict[str, Any]:
    """The row values of a new action (its capacity is booked, not stored)."""
    values = {f.name: getattr(item, f.name) for f in fields(item) if f.name != "capacity"}
    values["status"] = str(item.status)
    for moment in ("due_at", "send_after"):
        values[moment] = None if values[moment] is None else to_db(values[moment])
    return values


def record_of(row: Mapping[Any, Any]) -> ActionRecord:
    """A stored action, its times as UTC."""
    created, updated = from_db(row["created_at"]), from_db(row["updated_at"])
    assert created is not None and updated is not None  # the columns are NOT NULL
    return ActionRecord(
        id=row["id"],
        customer_id=row["customer_id"],
        action_type=row["action_type"],
        dedupe_key=row["dedupe_key"],
        status=ActionStatus(row["status"]),
        source=row["source"],
        channel=row["channel"],
        expected_value=row["expected_value"],
        priority=row["priority"],
        region=row["region"],
        due_at=from_db(row["due_at"]),
        capacity_day=row["capacity_day"],
        send_after=from_db(row["send_after"]),
        details=row["details"] or {},
        suppressions=row["suppressions"] or [],
        created_at=created,
        updated_at=updated,
    )
