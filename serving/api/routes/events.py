"""Network events from operations: an outage notifies the customers it reaches."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from serving.api.deps import DecisionsDep, OpsCaller, SettingsDep, audited, check_outage_times
from serving.api.errors import ApiError
from serving.api.schemas import (
    AUTHENTICATED,
    WITH_BODY,
    OutageEvent,
    OutageOut,
    error_responses,
)
from serving.home_cells import OutageIndexError

router = APIRouter(prefix="/v1/events", tags=["operations"])


@router.post(
    "/outage",
    response_model=OutageOut,
    responses=error_responses(*AUTHENTICATED, *WITH_BODY, 503),
)
def outage(
    request: Request,
    body: OutageEvent,
    _: OpsCaller,
    decisions: DecisionsDep,
    settings: SettingsDep,
) -> OutageOut:
    """Notify every active customer homed on the sites; callbacks for the valuable at risk.

    Outage notices are service messages: no marketing consent or frequency cap applies;
    quiet hours defer them unless the outage is critical. Posting the same event again
    notifies nobody twice.
    """
    now = datetime.now(UTC)
    check_outage_times(body.start, body.expected_end, now, settings.time_window)
    try:
        counts, duplicate = decisions.outage(
            body.event_id, body.sites, body.start, body.expected_end, body.severity, now
        )
    except OutageIndexError as error:
        raise ApiError(503, "outage_index_unavailable", str(error)) from error
    audited(request, [None])  # an event reaching many customers: its own record lists them
    return OutageOut(event_id=body.event_id, duplicate=duplicate, **counts)
