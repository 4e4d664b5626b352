"""Events from operations and the CRM: an outage's lifecycle notifies the customers it
reaches; a closed complaint or fault ticket opens a follow-up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Query, Request

from serving.api.deps import (
    CrmCaller,
    DecisionsDep,
    OpsCaller,
    SettingsDep,
    audited,
    check_instant,
    check_outage_times,
)
from serving.api.errors import ApiError
from serving.api.schemas import (
    AUTHENTICATED,
    WITH_BODY,
    ActionRecordOut,
    EventId,
    FollowUpOut,
    NotifyDelayOut,
    OutageConfirmIn,
    OutageDetailOut,
    OutageEndIn,
    OutageEvent,
    OutageOut,
    OutageStateOut,
    OutageStepOut,
    OutageStepRecordOut,
    OutageUpdateIn,
    TicketClosedIn,
    error_responses,
)
from serving.follow_ups import ClosedTicket
from serving.home_cells import OutageIndexError
from serving.outage_service import StepResult
from serving.outages import OPEN, OutageStateError

router = APIRouter(prefix="/v1/events", tags=["operations"])
STEP_ERRORS = error_responses(*AUTHENTICATED, 404, 409, *WITH_BODY, 503)


def _step(event_id: str, take: Callable[[], StepResult]) -> OutageStepOut:
    """Take a lifecycle step, its refusals in the API's shape."""
    try:
        result = take()
    except KeyError as error:
        raise ApiError(404, "outage_not_found", f"no outage {event_id}") from error
    except OutageStateError as error:
        raise ApiError(409, "invalid_outage_step", str(error)) from error
    except OutageIndexError as error:
        raise ApiError(503, "outage_index_unavailable", str(error)) from error
    return OutageStepOut(
        outage=OutageStateOut.of(result.outage), duplicate=result.duplicate, counts=result.counts
    )


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
    """Report an outage (confirmed at once): every active customer homed on the sites is
    told, planned work the configured lead time ahead; callbacks for the valuable at risk.

    Outage notices are service messages: no marketing consent or frequency cap applies;
    quiet hours defer them unless a rule of `actions.outages.skip_quiet_hours` matches
    (severity, customers reached, a repair due before morning). Posting the same event
    again notifies nobody twice.
    """
    now = datetime.now(UTC)
    check_outage_times(body.start, body.expected_end, now, settings.time_window)
    try:
        result = decisions.outages.report(
            body.event_id,
            body.sites,
            body.start,
            body.expected_end,
            body.severity,
            now,
            body.kind,
            body.cause,
        )
    except OutageIndexError as error:
        raise ApiError(503, "outage_index_unavailable", str(error)) from error
    audited(request, [None])  # an event reaching many customers: its own record lists them
    counts = {name: int(result.counts.get(name, 0)) for name in OUTAGE_COUNTS}
    return OutageOut(
        event_id=body.event_id, duplicate=result.duplicate, state=result.outage.state, **counts
    )


OUTAGE_COUNTS = ("affected", "notified", "deferred", "callbacks", "unreachable", "already_notified")


@router.get(
    "/outages",
    response_model=list[OutageStateOut],
    responses=error_responses(*AUTHENTICATED, 422, 503),
)
def outages(
    _: OpsCaller,
    decisions: DecisionsDep,
    state: Literal["open", "suspected", "confirmed", "restored", "cancelled", "all"] = "open",
    limit: int = Query(200, ge=1, le=1000),
) -> list[OutageStateOut]:
    """Outages, newest first: the open ones (suspected or confirmed) unless asked otherwise."""
    states = None if state == "all" else sorted(OPEN) if state == "open" else [state]
    found = decisions._log().outages.listed(states, limit)
    return [OutageStateOut.of(o) for o in found]


@router.get(
    "/outage/{event_id}",
    response_model=OutageDetailOut,
    responses=error_responses(*AUTHENTICATED, 404, 422, 503),
)
def outage_detail(event_id: EventId, _: OpsCaller, decisions: DecisionsDep) -> OutageDetailOut:
    """An outage, its history and how long its customers waited to hear of it (from
    detection or report to delivery; planned work from the start of its lead time)."""
    found = decisions.outages.get(event_id)
    if found is None:
        raise ApiError(404, "outage_not_found", f"no outage {event_id}")
    outage, history, delay = found
    return OutageDetailOut(
        outage=OutageStateOut.of(outage),
        counts=outage.counts,
        history=[OutageStepRecordOut(**step) for step in history],
        time_to_notify=NotifyDelayOut(**vars(delay)),
    )


@router.post("/outage/{event_id}/confirm", response_model=OutageStepOut, responses=STEP_ERRORS)
def confirm(
    request: Request,
    event_id: EventId,
    body: OutageConfirmIn,
    _: OpsCaller,
    decisions: DecisionsDep,
) -> OutageStepOut:
    """Confirm a suspected outage (the detector's): its customers are told now."""
    now = datetime.now(UTC)
    answer = _step(
        event_id,
        lambda: decisions.outages.confirm(event_id, now, body.expected_end, body.severity),
    )
    audited(request, [None])
    return answer


@router.post("/outage/{event_id}/update", response_model=OutageStepOut, responses=STEP_ERRORS)
def update(
    request: Request,
    event_id: EventId,
    body: OutageUpdateIn,
    _: OpsCaller,
    decisions: DecisionsDep,
    settings: SettingsDep,
) -> OutageStepOut:
    """A new expected repair time, told to every customer already told of the outage."""
    now = datetime.now(UTC)
    window = settings.time_window
    check_instant(
        body.expected_end,
        "expected_end",
        now - timedelta(days=window.outage_past_days),
        now + timedelta(days=window.outage_max_days),
        f"an expected end within {window.outage_max_days} days",
    )
    answer = _step(
        event_id, lambda: decisions.outages.update(event_id, body.expected_end, now, body.note)
    )
    audited(request, [None])
    return answer


def _end(
    request: Request,
    event_id: str,
    step: str,
    ended_at: datetime | None,
    decisions: DecisionsDep,
) -> OutageStepOut:
    now = datetime.now(UTC)
    window = decisions.settings.time_window
    check_instant(
        ended_at,
        "ended_at",
        now - timedelta(days=window.outage_past_days + window.outage_max_days),
        now,
        "an outage is ended when it is over, not ahead of time",
    )
    answer = _step(event_id, lambda: decisions.outages.end(event_id, step, now, ended_at))
    audited(request, [None])
    return answer


@router.post("/outage/{event_id}/restore", response_model=OutageStepOut, responses=STEP_ERRORS)
def restore(
    request: Request,
    event_id: EventId,
    body: OutageEndIn,
    _: OpsCaller,
    decisions: DecisionsDep,
) -> OutageStepOut:
    """Service is back: notices still waiting are withdrawn, and the customers told of the
    outage are told it is over."""
    return _end(request, event_id, "restored", body.ended_at, decisions)


@router.post("/outage/{event_id}/cancel", response_model=OutageStepOut, responses=STEP_ERRORS)
def cancel(
    request: Request,
    event_id: EventId,
    body: OutageEndIn,
    _: OpsCaller,
    decisions: DecisionsDep,
) -> OutageStepOut:
    """The outage will not happen or was reported in error (planned work called off):
    waiting notices are withdrawn, those told are told it is cancelled."""
    return _end(request, event_id, "cancelled", body.ended_at, decisions)


@router.post("/outage/{event_id}/dismiss", response_model=OutageStepOut, responses=STEP_ERRORS)
def dismiss(
    request: Request,
    event_id: EventId,
    body: OutageEndIn,
    _: OpsCaller,
    decisions: DecisionsDep,
) -> OutageStepOut:
    """A suspected outage that is not one (a false alarm of the detector)."""
    return _end(request, event_id, "dismissed", body.ended_at, decisions)


@router.post(
    "/ticket-closed",
    response_model=FollowUpOut,
    responses=error_responses(*AUTHENTICATED, *WITH_BODY, 503),
)
def ticket_closed(
    request: Request,
    body: TicketClosedIn,
    _: CrmCaller,
    decisions: DecisionsDep,
    settings: SettingsDep,
) -> FollowUpOut:
    """A complaint or fault ticket closed: a follow-up call is due within the configured time
    (72 h by default) to confirm the customer is satisfied. A service duty: no marketing
    consent or cap applies; quiet hours and the do-not-call list do. The same ticket again
    returns the follow-up already made."""
    now = datetime.now(UTC)
    window = settings.time_window
    check_instant(
        body.closed_at,
        "closed_at",
        now - timedelta(days=window.outage_past_days),
        now + timedelta(days=0),
        f"a ticket closed within the last {window.outage_past_days} days",
    )
    ticket = ClosedTicket(body.ticket_id, body.customer_id, body.ticket_type, body.closed_at)
    opened = decisions.follow_ups.open([ticket], now)[0]
    audited(request, [body.customer_id])
    return FollowUpOut(
        ticket_id=body.ticket_id,
        follow_up=ActionRecordOut.of(opened.action, opened.created) if opened.action else None,
        note=opened.note,
    )
