"""Account-manager callback slots: booked per region and day, given to the waiting by
priority, and expired when a callback waited too long.

Each function works inside the caller's transaction. A slot is taken with one
conditional UPDATE and a waiting callback is claimed the same way before its slot is
booked, so several processes may book and promote at once without overbooking.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from serving.action_log.database import Upsert, actions, callback_capacity, from_db
from serving.action_log.outbox import enqueue
from serving.domain import ActionStatus

WAITING = ActionStatus.WAITING_CAPACITY
Capacity = Callable[[str, str], int]  # (region, day) -> slots that day


def fixed(slots: int) -> Capacity:
    """The same number of slots for any region and day."""
    return lambda _region, _day: slots


def book(connection: Any, upsert: Upsert, region: str, day: str, capacity: int) -> bool:
    """Take one callback slot of the region-day if one is free."""
    # the day's capacity is the latest forecast's: a republished one takes effect
    insert = upsert(callback_capacity).values(region=region, day=day, capacity=capacity, booked=0)
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["region", "day"], set_={"capacity": insert.excluded.capacity}
        )
    )
    taken = connection.execute(
        update(callback_capacity)
        .where(
            callback_capacity.c.region == region,
            callback_capacity.c.day == day,
            callback_capacity.c.booked < callback_capacity.c.capacity,
        )
        .values(booked=callback_capacity.c.booked + 1)
    ).rowcount
    return bool(taken == 1)


def promote(
    connection: Any,
    upsert: Upsert,
    day: str,
    capacity: Capacity,
    now: datetime,
    region: str | None = None,
    above: float | None = None,
) -> int:
    """Book `day`'s free slots for waiting callbacks (of `region`, with a priority of at
    least `above`), highest priority first, then longest waiting; the number promoted."""
    query = select(
        actions.c.id, actions.c.region, actions.c.capacity_day, actions.c.send_after
    ).where(actions.c.status == WAITING)
    if region is not None:
        query = query.where(actions.c.region == region)
    if above is not None:
        query = query.where(actions.c.priority >= above)
    query = query.order_by(actions.c.priority.desc(), actions.c.created_at, actions.c.id)
    full: set[str] = set()
    promoted = 0
    for row in connection.execute(query).all():
        if row.region in full:
            continue
        claimed = connection.execute(
            update(actions)
            .where(actions.c.id == row.id, actions.c.status == WAITING)
            .values(status=ActionStatus.QUEUED, capacity_day=day, updated_at=now)
        ).rowcount
        if claimed != 1:
            continue  # another process promoted it
        home = row.region or ""
        if not book(connection, upsert, home, day, capacity(home, day)):
            connection.execute(
                update(actions)
                .where(actions.c.id == row.id)
                .values(status=WAITING, capacity_day=row.capacity_day)
            )
            full.add(row.region)
            continue
        # not before the end of the quiet hours it was decided in, if they still run
        enqueue(connection, row.id, max(now, from_db(row.send_after) or now))
        promoted += 1
    return promoted


def expire(connection: Any, now: datetime, before: datetime) -> int:
    """Expire the callbacks waiting since before `before`, saying why; how many."""
    stale = connection.execute(
        select(actions.c.id, actions.c.suppressions).where(
            actions.c.status == WAITING, actions.c.created_at < before
        )
    ).all()
    expired = 0
    for row in stale:
        note = {
            "code": "capacity_expired",
            "message": "no callback slot came free in time",
            "channel": "phone",
        }
        expired += connection.execute(
            update(actions)
            .where(actions.c.id == row.id, actions.c.status == WAITING)
            .values(
                status=ActionStatus.EXPIRED,
                suppressions=[*(row.suppressions or []), note],
                updated_at=now,
            )
        ).rowcount
    return expired
