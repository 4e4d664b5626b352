"""Network events from operations: an outage notifies the customers it reaches."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from serving.api.deps import DecisionsDep, OpsCaller
from serving.api.errors import ApiError
from serving.api.schemas import OutageEvent, OutageOut
from serving.home_cells import OutageIndexError

router = APIRouter(prefix="/v1/events", tags=["operations"])


@router.post("/outage", response_model=OutageOut)
def outage(body: OutageEvent, _: OpsCaller, decisions: DecisionsDep) -> OutageOut:
    """Notify every active customer homed on the sites; callbacks for the valuable at risk.

    Outage notices are service messages: no marketing consent or frequency cap applies;
    quiet hours defer them unless the outage is critical. Posting the same event again
    notifies nobody twice.
    """
    try:
        counts, duplicate = decisions.outage(
            body.event_id,
            body.sites,
            body.start,
            body.expected_end,
            body.severity,
            datetime.now(UTC),
        )
    except OutageIndexError as error:
        raise ApiError(503, "outage_index_unavailable", str(error)) from error
    return OutageOut(event_id=body.event_id, duplicate=duplicate, **counts)
