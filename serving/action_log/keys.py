"""Idempotency keys: the log keeps one action per customer, action type and key."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def local_day(moment: datetime, zone: ZoneInfo) -> str:
    """`moment`'s calendar day where the customers live (YYYY-MM-DD)."""
    return moment.astimezone(zone).date().isoformat()


def dedupe_key(
    now: datetime,
    zone: ZoneInfo,
    *,
    event: str | None = None,
    campaign: str | None = None,
    suppressed: bool = False,
) -> str:
    """The idempotency key of an action.

    An event's action (an outage notice) is keyed by its event; a seasonal package by its
    campaign (once, ever), except that one the contact policy stopped is keyed to that
    day, so a later day of the campaign may try again; anything else by the customers'
    local day, so a repeated call that day finds the action it made.
    """
    if event is not None:
        return event
    if campaign is not None:
        return f"{campaign}:suppressed:{local_day(now, zone)}" if suppressed else campaign
    return local_day(now, zone)
