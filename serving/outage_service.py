"""The outage lifecycle as a service: report, detect, confirm, update, restore, cancel.

Each step is recorded in the action log (`OutageStore`) and then fans out its notices
through the decision service's contact policy; every notice has an idempotency key per
outage and step (`serving.outages.notice_key`), so a step retried after a crash or a
timeout notifies nobody twice, and the step itself is refused or answered as a repeat.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from serving.action_log.outage_store import Notice, OutageStore
from serving.care import in_care
from serving.contact import check, quiet_until
from serving.domain import ActionStatus, CustomerScore, NewAction, PastAction
from serving.home_cells import OutageIndexError
from serving.outages import (
    Kind,
    Outage,
    announce_at,
    notice_key,
    notice_prefix,
    skips_quiet_hours,
)
from serving.policy import outage_callback, outage_notice

if TYPE_CHECKING:
    from serving.decisions import DecisionService

NOTICE_COUNTS = ("notified", "deferred", "callbacks", "unreachable", "already_notified")


@dataclass(frozen=True)
class StepResult:
    """An outage after a step, what its notices came to, and whether the step was a repeat."""

    outage: Outage
    counts: dict[str, int]
    duplicate: bool


@dataclass(frozen=True)
class NotifyDelay:
    """How long customers waited to hear of an outage: from its detection (or report) to
    the moment the channel took each start notice."""

    notified: int  # start notices delivered
    pending: int  # start notices still waiting (quiet hours, planned lead, the outbox)
    median_minutes: float | None
    p95_minutes: float | None


class OutageService:
    def __init__(self, decisions: DecisionService) -> None:
        self.decisions = decisions

    @property
    def _store(self) -> OutageStore:
        return self.decisions._log().outages

    # --- opening -------------------------------------------------------------------------------
    def report(
        self,
        event_id: str,
        sites: Sequence[str],
        start: datetime,
        expected_end: datetime | None,
        severity: str,
        now: datetime,
        kind: Kind = "unplanned",
        cause: str | None = None,
    ) -> StepResult:
        """An outage operations know of: confirmed at once, its customers told (planned work
        a lead time ahead). The same id again changes nothing and notifies nobody."""
        outage = Outage(
            event_id=event_id,
            sites=list(dict.fromkeys(sites)),
            severity=severity,
            kind=kind,
            source="reported",
            state="confirmed",
            start=start,
            expected_end=expected_end,
            detected_at=now,  # when we knew: time to notify is ours from here
            cause=cause,
        )
        stored, created = self._store.open(outage, "reported", now)
        if not created and stored.counts is not None:
            return StepResult(stored, dict(stored.counts), True)
        # a report whose notices were cut short (a crash) finishes them when retried
        return StepResult(stored, self._notify_start(stored, now), not created)

    def suspect(
        self,
        event_id: str,
        sites: Sequence[str],
        day_start: datetime,
        severity: str,
        now: datetime,
        reason: str,
    ) -> StepResult:
        """An outage the detector suspects: recorded for operations to confirm or dismiss;
        customers are told only if `outages.notify_suspected` says so."""
        outage = Outage(
            event_id=event_id,
            sites=list(dict.fromkeys(sites)),
            severity=severity,
            kind="unplanned",
            source="detected",
            state="suspected",
            start=day_start,
            expected_end=None,
            detected_at=now,
            cause=reason,
        )
        stored, created = self._store.open(outage, "detected", now)
        counts = dict.fromkeys(NOTICE_COUNTS, 0)
        if self.decisions.settings.actions.outages.notify_suspected and stored.open:
            counts = self._notify_start(stored, now)
        return StepResult(stored, counts, not created)

    # --- steps ---------------------------------------------------------------------------------
    def confirm(
        self,
        event_id: str,
        now: datetime,
        expected_end: datetime | None = None,
        severity: str | None = None,
    ) -> StepResult:
        """Operations confirm a suspected outage: its customers are told now. Confirming it
        again is a repeat (that finishes the notices a crash may have cut short)."""
        current = self._get(event_id)
        repeat = current.state == "confirmed"
        if not repeat:
            changes: dict[str, Any] = {"expected_end": expected_end or current.expected_end}
            if severity is not None:
                changes["severity"] = severity
            current = self._store.move(event_id, "confirmed", now, changes)
        elif current.counts is not None:
            return StepResult(current, dict(current.counts), True)
        return StepResult(current, self._notify_start(current, now), repeat)

    def update(
        self, event_id: str, expected_end: datetime, now: datetime, note: str | None = None
    ) -> StepResult:
        """A new expected repair time: told to everyone already told of the outage; notices
        still waiting carry the new time. The same time again is a repeat: it notifies
        nobody twice, but finishes what a crash cut short."""
        current = self._get(event_id)
        repeat = current.state == "confirmed" and current.expected_end == expected_end
        if not repeat:
            current = self._store.move(
                event_id, "updated", now, {"expected_end": expected_end}, {"note": note}
            )
        notices = self._store.notices(notice_prefix(event_id))
        patched = self._store.patch_waiting(
            [n.action.id for n in notices if n.delivered_at is None],
            {"expected_end": expected_end.isoformat()},
            now,
        )
        version = str(int(expected_end.timestamp()))
        key = notice_key(event_id, "updated", version)
        told = [n for n in notices if n.delivered_at is not None]
        sent = self._follow_on(current, told, "updated", key, now, respect_quiet_hours=True)
        return StepResult(current, {"updated": sent, "patched": patched}, repeat)

    def end(
        self, event_id: str, step: str, now: datetime, ended_at: datetime | None = None
    ) -> StepResult:
        """Restored, cancelled or dismissed: notices still waiting are withdrawn, and the end
        is told only to those told of the start. Ending it again is a repeat: nobody is told
        twice, but what a crash cut short is finished."""
        current = self._get(event_id)
        target = "restored" if step == "restored" else "cancelled"
        repeat = current.state == target
        if not repeat:
            current = self._store.move(event_id, step, now, {"ended_at": ended_at or now})
        start_key = notice_prefix(event_id)
        every = self._store.notices(start_key, every_step=True)
        waiting = [n.action.id for n in every if n.action.status in WAITING_STATUSES]
        withdrawn = self._store.withdraw(waiting, now, f"outage {step}")
        # withdrawing touches only what had not gone out: the delivered start notices stand
        told = [n for n in every if n.action.dedupe_key == start_key and n.delivered_at]
        key = notice_key(event_id, target)
        sent = self._follow_on(current, told, target, key, now, respect_quiet_hours=True)
        return StepResult(current, {"withdrawn": withdrawn, "told_of_end": sent}, repeat)

    # --- reading -------------------------------------------------------------------------------
    def get(self, event_id: str) -> tuple[Outage, list[dict[str, Any]], NotifyDelay] | None:
        """An outage, its history and how long its customers waited to hear of it."""
        outage = self._store.get(event_id)
        if outage is None:
            return None
        notices = self._store.notices(notice_prefix(event_id))
        rules = self.decisions.settings.actions.outages
        told_from = announce_at(outage, outage.detected_at, rules)
        return outage, self._store.steps(event_id), notify_delay(outage, notices, told_from)

    def _get(self, event_id: str) -> Outage:
        outage = self._store.get(event_id)
        if outage is None:
            raise KeyError(event_id)
        return outage

    # --- notices -------------------------------------------------------------------------------
    def _notify_start(self, outage: Outage, now: datetime) -> dict[str, int]:
        """Tell every active customer homed on the outage's sites; an urgent call for the
        valuable at high risk and, when severe, for customers in care."""
        decisions = self.decisions
        if decisions.home_cells is None:
            raise OutageIndexError(
                "no customer-to-cell index: the feature tables (customer_profile, "
                "customer_activity) were not found; run `retain features build`"
            )
        affected = decisions.home_cells.customers(outage.sites)
        counts = dict.fromkeys(NOTICE_COUNTS, 0)
        counts["affected"] = len(affected)
        rules = decisions.settings.actions.outages
        skip = skips_quiet_hours(outage, len(affected), now, rules, decisions.settings.contact)
        announce = announce_at(outage, now, rules)
        for scores, history in decisions._scored(affected, now):
            new: list[NewAction] = []
            for item in scores:
                if isinstance(item, CustomerScore):
                    past = history.get(item.customer_id, [])
                    new += self._start_actions(item, past, outage, now, skip, announce)
                else:
                    counts["unreachable"] += 1
            for record, created in decisions._log().record(new, now) if new else []:
                if record.action_type == "callback":
                    counts["callbacks"] += int(created and record.status != ActionStatus.SUPPRESSED)
                elif not created:
                    counts["already_notified"] += 1
                elif record.status == ActionStatus.DEFERRED:
                    counts["deferred"] += 1
                elif record.status == ActionStatus.QUEUED:
                    counts["notified"] += 1
        self._store.set_counts(outage.event_id, counts)
        return counts

    def _start_actions(
        self,
        item: CustomerScore,
        history: list[PastAction],
        outage: Outage,
        now: datetime,
        skip_quiet_hours: bool,
        announce: datetime,
    ) -> list[NewAction]:
        decisions = self.decisions
        contact_policy = decisions.settings.contact
        details = {**outage.details(), "step": "start"}
        notice = outage_notice(details)
        verdict = check(notice, item.contact, history, contact_policy, now, not skip_quiet_hours)
        if verdict.allowed and announce > now:  # planned work: told the lead time ahead
            verdict = replace(verdict, send_after=quiet_until(announce, contact_policy) or announce)
        key = notice_key(outage.event_id)
        found = [decisions.new_action(item, notice, verdict, now, "outage", key)]
        cared_for = in_care(item.contact, contact_policy.care)
        call = outage_callback(
            item,
            item.contact,
            decisions.settings.actions,
            now,
            outage.event_id,
            outage.severity,
            cared_for,
        )
        if call is not None:
            verdict = check(call, item.contact, history, contact_policy, now)
            found.append(decisions.new_action(item, call, verdict, now, "outage"))
        return found

    def _follow_on(
        self,
        outage: Outage,
        told: Sequence[Notice],
        step: str,
        key: str,
        now: datetime,
        respect_quiet_hours: bool,
    ) -> int:
        """A notice of a later step to each customer told of the start, on the channel that
        reached them (no new consent is needed for a service message on the same channel);
        how many were newly made."""
        send_after = (
            quiet_until(now, self.decisions.settings.contact) if respect_quiet_hours else None
        )
        details = {**outage.details(), "step": step}
        new = [
            NewAction(
                customer_id=n.action.customer_id,
                action_type="outage_notice",
                dedupe_key=key,
                status=ActionStatus.DEFERRED if send_after else ActionStatus.QUEUED,
                source="outage",
                channel=n.action.channel,
                expected_value=0.0,
                priority=0.0,
                region=n.action.region,
                send_after=send_after,
                details={"reason": outage_words(outage, step), **details},
            )
            for n in told
        ]
        made = 0
        log = self.decisions._log()
        for start in range(0, len(new), 1000):
            made += sum(created for _, created in log.record(new[start : start + 1000], now))
        return made


WAITING_STATUSES = frozenset(
    {ActionStatus.QUEUED, ActionStatus.DEFERRED, ActionStatus.WAITING_CAPACITY}
)


def outage_words(outage: Outage, step: str) -> str:
    """What a follow-on notice says, for the agent who reads the action."""
    if step == "updated":
        end = f"{outage.expected_end:%d %b %H:%M} UTC" if outage.expected_end else "unknown"
        return f"network outage {outage.event_id}: new expected repair time {end}"
    if step == "restored":
        return f"network outage {outage.event_id} is repaired: service restored"
    return f"network outage {outage.event_id} was cancelled: no interruption expected"


def notify_delay(outage: Outage, notices: Sequence[Notice], told_from: datetime) -> NotifyDelay:
    """From `told_from` (detection or report; for planned work, when the lead time began)
    to each start notice's delivery, in minutes."""
    delays = [
        max(0.0, (n.delivered_at - told_from).total_seconds() / 60)
        for n in notices
        if n.delivered_at is not None
    ]
    pending = sum(1 for n in notices if n.action.status in WAITING_STATUSES)
    if not delays:
        return NotifyDelay(0, pending, None, None)
    p95 = (
        statistics.quantiles(delays, n=20, method="inclusive")[-1] if len(delays) > 1 else delays[0]
    )
    return NotifyDelay(len(delays), pending, round(statistics.median(delays), 1), round(p95, 1))
