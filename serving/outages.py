"""An outage's lifecycle and the rules of its notices, free of any store.

An outage is opened by operations (reported: confirmed at once) or by the detector
(`serving.outage_detection`; suspected until operations confirm or dismiss it). While open it
may be updated with a new expected repair time; it ends restored or cancelled. Customers are
told when it is confirmed (planned work: a configured lead time before it starts), of each
new repair time, and when it ends; a notice still waiting when it ends is withdrawn, and the
end is told only to those who were told of the start.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from serving.contact import quiet_until
from serving.settings import ContactPolicy, OutagePolicy

State = Literal["suspected", "confirmed", "restored", "cancelled"]
Step = Literal["reported", "detected", "confirmed", "updated", "restored", "cancelled", "dismissed"]
Kind = Literal["unplanned", "planned"]
OPEN: frozenset[str] = frozenset({"suspected", "confirmed"})
ENDED: frozenset[str] = frozenset({"restored", "cancelled"})
# a step from the states it may follow to the state it leaves; anything else is refused
TRANSITIONS: dict[str, tuple[frozenset[str], State]] = {
    "confirmed": (frozenset({"suspected"}), "confirmed"),
    "updated": (frozenset({"confirmed"}), "confirmed"),
    "restored": (frozenset({"confirmed"}), "restored"),
    "cancelled": (frozenset({"suspected", "confirmed"}), "cancelled"),
    "dismissed": (frozenset({"suspected"}), "cancelled"),
}


class OutageStateError(ValueError):
    """A step the outage's state does not allow (restoring a cancelled outage, ...)."""


@dataclass(frozen=True)
class Outage:
    """An outage as the action log holds it; times are UTC."""

    event_id: str
    sites: list[str]
    severity: str
    kind: Kind
    source: Literal["reported", "detected"]
    state: State
    start: datetime
    expected_end: datetime | None
    detected_at: datetime
    ended_at: datetime | None = None
    cause: str | None = None
    counts: dict[str, int] | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN

    def details(self) -> dict[str, Any]:
        """What every notice of the outage carries."""
        return {
            "event_id": self.event_id,
            "sites": list(self.sites),
            "start": self.start.isoformat(),
            "expected_end": self.expected_end.isoformat() if self.expected_end else None,
            "severity": self.severity,
            "kind": self.kind,
            "cause": self.cause,
        }


def next_state(outage: Outage, step: str) -> State:
    """The state `step` leaves the outage in; OutageStateError when its state forbids it."""
    allowed, state = TRANSITIONS[step]
    if outage.state not in allowed:
        raise OutageStateError(
            f"outage {outage.event_id} is {outage.state}: it cannot be {step} "
            f"(only from {', '.join(sorted(allowed))})"
        )
    return state


def skips_quiet_hours(
    outage: Outage, affected: int, now: datetime, rules: OutagePolicy, contact: ContactPolicy
) -> bool:
    """Whether the start notice goes out in the quiet hours: unplanned work matching a rule
    (its severity, enough customers reached, or a repair due before the quiet hours end, so
    that a notice held to the morning would come after it). Planned work never does."""
    if outage.kind == "planned":
        return False
    quiet_end = quiet_until(now, contact)
    for rule in rules.skip_quiet_hours:
        if outage.severity not in rule.severities or affected < rule.min_affected:
            continue
        if rule.repaired_before_quiet_end:
            if quiet_end is None or outage.expected_end is None:
                continue
            if outage.expected_end > quiet_end:
                continue
        return True
    return False


def announce_at(outage: Outage, now: datetime, rules: OutagePolicy) -> datetime:
    """When the start notice may go out: now, or for planned work the lead time before it
    starts (never before now)."""
    if outage.kind != "planned":
        return now
    return max(now, outage.start - timedelta(hours=rules.planned_lead_hours))


NAME_LENGTH = 48  # with "outage:" and the longest step suffix, within the log's 80-char key


def notice_prefix(event_id: str) -> str:
    """The idempotency key of the outage's start notice, which every later notice of it
    extends (`notice_key`). An id too long for the log is named by a digest."""
    name = event_id if len(event_id) <= NAME_LENGTH else digest(event_id)
    return f"outage:{name}"  # the start notice's key as before the lifecycle


def notice_key(event_id: str, step: str = "start", version: str | None = None) -> str:
    """The idempotency key of a customer's notice of one step of an outage: a step retried
    notifies nobody twice (an update by its new repair time)."""
    base = notice_prefix(event_id)
    if step == "start":
        return base
    return f"{base}:{step}" + (f":{version}" if version else "")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]
