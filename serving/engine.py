"""The action engine: scores become recorded, policy-checked actions.

`decide` is `/v1/score` plus a write: each proposal passes the contact policy and is
stored in the action log (queued for delivery, deferred to the end of quiet hours,
waiting for callback capacity, or suppressed with its reasons). `outage` turns a network
event into a notice for every active customer homed on the affected sites.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd

from serving.actions import ActionLog, NewAction, dedupe_key, local_day
from serving.background import BackgroundLoop
from serving.contact import PastAction, Verdict, check
from serving.policy import (
    PackageCandidate,
    Proposal,
    outage_callback,
    outage_notice,
    propose,
    seasonal_package,
)
from serving.scoring import CustomerScore, Scorer, UnknownCustomer
from serving.settings import ServingSettings

log = logging.getLogger("retain.serving")
Severity = Literal["minor", "major", "critical"]
T = TypeVar("T")


class OutageIndexError(RuntimeError):
    """Affected customers cannot be found: the feature tables are missing."""


class Refreshing(Generic[T]):
    """A value read from a file and read again when the file changes: `retain forecast`
    republishes its folder daily, and a running API must follow without a restart.

    The file's identity (resolved path, size, modification time) is checked at most every
    `every_s` seconds; a missing file gives `empty`.
    """

    def __init__(
        self, path: Path, load: Callable[[Path], T], empty: T, every_s: float = 30.0
    ) -> None:
        self.path, self.load, self.empty, self.every_s = path, load, empty, every_s
        self._value: T = empty
        self._identity: tuple[Any, ...] | None = None
        self._checked = -math.inf
        self._lock = threading.Lock()

    def get(self) -> T:
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return self._value
        with self._lock:
            self._checked = now
            try:
                resolved = self.path.resolve(strict=True)
                stat = resolved.stat()
                identity: tuple[Any, ...] | None = (resolved, stat.st_size, stat.st_mtime_ns)
            except OSError:
                identity = None
            if identity == self._identity:
                return self._value
            try:  # the file checked, not whatever the link points to a moment later
                value = self.load(identity[0]) if identity is not None else self.empty
            except Exception:  # a bad file must not fail requests: keep the last good one
                log.exception("cannot read %s; keeping what was read before", self.path)
                return self._value
            self._value, self._identity = value, identity
        return self._value


def _capacity_table(path: Path) -> dict[tuple[str, str], int]:
    table = pd.read_parquet(path)
    days = pd.to_datetime(table["date"], utc=True).dt.strftime("%Y-%m-%d")
    return dict(
        zip(zip(table["region"], days, strict=True), table["callbacks_available"], strict=True)
    )


class CallbackCapacity:
    """Account-manager callbacks per region and day, from `retain forecast` when present."""

    def __init__(self, path: Path, default: int) -> None:
        self.default = default
        self.table: Refreshing[dict[tuple[str, str], int]] = Refreshing(path, _capacity_table, {})

    def for_day(self, region: str, day: str) -> int:
        return int(self.table.get().get((region, day), self.default))


def _candidates(path: Path) -> dict[str, list[PackageCandidate]]:
    table = pd.read_parquet(
        path, columns=["customer_id", "package", "region", "week_start", "propensity"]
    )
    found: dict[str, list[PackageCandidate]] = {}
    for row in table.itertuples(index=False):
        week = pd.Timestamp(row.week_start)
        week = week.tz_localize("UTC") if week.tzinfo is None else week.tz_convert("UTC")
        found.setdefault(str(row.customer_id), []).append(
            PackageCandidate(
                str(row.package), str(row.region), week.to_pydatetime(), float(row.propensity)
            )
        )
    return found


class HomeCells:
    """Which active customers are homed on each cell site (latest feature snapshot).

    Built at the first outage, not at start-up: reading the snapshot is outage work.
    """

    def __init__(self, tables_dir: Path) -> None:
        self.tables_dir = tables_dir

    @cached_property
    def by_site(self) -> dict[str, list[str]]:
        profile = pd.read_parquet(
            self.tables_dir / "customer_profile.parquet", columns=["customer_id", "cell_site_id"]
        )
        latest = pd.read_parquet(
            self.tables_dir / "customer_activity.parquet",
            columns=["customer_id", "event_timestamp"],
        )
        latest = latest[latest["event_timestamp"] == latest["event_timestamp"].max()]
        active = profile[profile["customer_id"].isin(latest["customer_id"])]
        return active.groupby("cell_site_id")["customer_id"].apply(list).to_dict()  # type: ignore[no-any-return]

    def customers(self, sites: Sequence[str]) -> list[str]:
        return sorted({c for site in sites for c in self.by_site.get(site, [])})


@dataclass(frozen=True)
class Decided:
    score: CustomerScore | UnknownCustomer
    actions: list[tuple[dict[str, Any], bool]]  # stored row, created by this call


class DecisionPolicy:
    """What to propose to a scored customer and what the contact policy lets out: one
    implementation behind the API, `retain campaign` and the daily risk list."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.candidates: Refreshing[dict[str, list[PackageCandidate]]] = Refreshing(
            settings.actions.packages.candidates_file, _candidates, {}
        )
        self.zone = ZoneInfo(settings.contact.timezone)
        # the contact policy looks back over a week of caps and the offer cooldown
        self.history_days = max(8, settings.contact.offer_cooldown_days + 1)

    def local_day(self, moment: datetime) -> str:
        return local_day(moment, self.zone)

    def proposals(self, item: CustomerScore, now: datetime) -> list[Proposal]:
        """What the policy proposes for the customer now, seasonal packages included."""
        candidates = self.candidates.get().get(item.customer_id, [])
        return propose(item, item.contact, self.settings.actions, now, candidates)

    def plan(
        self, item: CustomerScore, history: list[PastAction], now: datetime
    ) -> list[tuple[Proposal, Verdict]]:
        """Each proposal with the contact policy's verdict, given the customer's history."""
        return self.check_all(item, self.proposals(item, now), history, now)

    def check_all(
        self,
        item: CustomerScore,
        proposals: list[Proposal],
        history: list[PastAction],
        now: datetime,
    ) -> list[tuple[Proposal, Verdict]]:
        """The verdicts in order: what an earlier proposal sends now counts against the
        caps and the one-a-day rule of the later ones."""
        seen = list(history)
        planned = []
        for proposal in proposals:
            verdict = check(proposal, item.contact, seen, self.settings.contact, now)
            planned.append((proposal, verdict))
            if verdict.allowed:
                seen.append(PastAction(proposal.action_type, verdict.channel, "queued", now))
        return planned


class ActionEngine:
    def __init__(
        self,
        scorer: Scorer,
        log: ActionLog,
        settings: ServingSettings,
        capacity: CallbackCapacity,
        home_cells: HomeCells | None,
    ) -> None:
        self.scorer = scorer
        self.log = log
        self.settings = settings
        self.capacity = capacity
        self.home_cells = home_cells
        self.policy = DecisionPolicy(settings)
        self.history_days = self.policy.history_days
        self.local_day = self.policy.local_day
        self.proposals = self.policy.proposals
        self.plan = self.policy.plan

    def _new_action(
        self,
        item: CustomerScore,
        proposal: Proposal,
        verdict: Verdict,
        now: datetime,
        source: str,
        event: str | None = None,
    ) -> NewAction:
        status = "suppressed"
        if verdict.allowed:
            status = "deferred" if verdict.send_after else "queued"
        capacity_day = capacity = None
        if proposal.action_type == "callback":  # the log books the slot, atomically
            capacity_day = self.local_day(proposal.due_at or now)
            capacity = self.capacity.for_day(item.contact.region, capacity_day)
        key = dedupe_key(
            now,
            self.policy.zone,
            event=event,
            campaign=proposal.details.get("campaign"),
            suppressed=status == "suppressed",
        )
        return NewAction(
            customer_id=item.customer_id,
            action_type=proposal.action_type,
            dedupe_key=key,
            status=status,
            source=source,
            channel=verdict.channel,
            expected_value=proposal.expected_value,
            priority=proposal.priority,
            region=item.contact.region,
            due_at=proposal.due_at,
            send_after=verdict.send_after,
            details={"reason": proposal.reason, **proposal.details},
            suppressions=[vars(s) for s in verdict.suppressions],
            capacity_day=capacity_day,
            capacity=capacity,
        )

    def _outage_actions(
        self,
        item: CustomerScore,
        history: list[PastAction],
        details: dict[str, Any],
        now: datetime,
    ) -> list[NewAction]:
        """A notice (a service message: quiet hours wait unless critical), and a callback for
        customers both at high risk and valuable."""
        event_id = details["event_id"]
        notice = outage_notice(details)
        critical = details["severity"] == "critical"
        verdict = check(notice, item.contact, history, self.settings.contact, now, not critical)
        found = [self._new_action(item, notice, verdict, now, "outage", f"outage:{event_id}")]
        call = outage_callback(item, item.contact, self.settings.actions, now, event_id)
        if call is not None:
            verdict = check(call, item.contact, history, self.settings.contact, now)
            found.append(self._new_action(item, call, verdict, now, "outage"))
        return found

    def decide(
        self, customer_ids: Sequence[str], now: datetime, scorer: Scorer | None = None
    ) -> list[Decided]:
        """Score (with `scorer`, default the engine's), plan, check and record."""
        scores = (scorer or self.scorer).score(customer_ids, pd.Timestamp(now))
        known = [s for s in scores if isinstance(s, CustomerScore)]
        history = self.log.history([s.customer_id for s in known], now, self.history_days)
        decided = []
        for item in scores:
            if not isinstance(item, CustomerScore):
                decided.append(Decided(item, []))
                continue
            new = [
                self._new_action(item, proposal, verdict, now, "decide")
                for proposal, verdict in self.plan(item, history[item.customer_id], now)
            ]
            decided.append(Decided(item, self.log.record(new, now) if new else []))
        return decided

    def _scored(
        self, ids: Sequence[str], now: datetime
    ) -> Iterator[tuple[list[CustomerScore | UnknownCustomer], dict[str, list[PastAction]]]]:
        """The customers' scores and contact histories, a request's worth at a time."""
        for start in range(0, len(ids), self.settings.max_customers):
            chunk = ids[start : start + self.settings.max_customers]
            yield (
                self.scorer.score(chunk, pd.Timestamp(now)),
                self.log.history(chunk, now, self.history_days),
            )

    def campaign(self, now: datetime, package: str | None = None) -> dict[str, int]:
        """Notify the candidates of every seasonal-package campaign due now (or of one
        package) under the contact policy; counts by outcome. Running it again notifies
        nobody twice: an action is recorded once per customer and campaign."""
        table = self.policy.candidates.get()
        chosen = {
            customer: [c for c in found if package is None or c.package == package]
            for customer, found in table.items()
        }
        ids = sorted(customer for customer, found in chosen.items() if found)
        counts = dict.fromkeys(
            ("candidates", "queued", "deferred", "suppressed", "already", "unknown"), 0
        )
        counts["candidates"] = len(ids)
        for scores, history in self._scored(ids, now):
            new = []
            for item in scores:
                if not isinstance(item, CustomerScore):
                    counts["unknown"] += 1
                    continue
                proposals = [
                    p
                    for p in (
                        seasonal_package(c, self.settings.actions, now)
                        for c in chosen[item.customer_id]
                    )
                    if p
                ]
                past = history[item.customer_id]
                for proposal, verdict in self.policy.check_all(item, proposals, past, now):
                    new.append(self._new_action(item, proposal, verdict, now, "campaign"))
            for row, created in self.log.record(new, now) if new else []:
                counts["already" if not created else row["status"]] += 1
        return counts

    def promote_waiting(self, now: datetime) -> tuple[int, int]:
        """Today's free callback slots to the waiting, by priority; (promoted, expired)."""
        rule = self.settings.actions.callbacks
        return self.log.promote_waiting(
            self.local_day(now),
            self.capacity.for_day,
            now,
            expire_before=now - timedelta(days=rule.max_wait_days),
        )

    def outage(
        self,
        event_id: str,
        sites: Sequence[str],
        start: datetime,
        expected_end: datetime | None,
        severity: Severity,
        now: datetime,
    ) -> tuple[dict[str, int], bool]:
        """Notify every active customer homed on `sites`; (counts, whether already known)."""
        known = self.log.outage(event_id)
        if known is not None:
            return dict(known["counts"]), True
        if self.home_cells is None:
            raise OutageIndexError(
                "no customer-to-cell index: the feature tables (customer_profile, "
                "customer_activity) were not found; run `retain features build`"
            )
        affected = self.home_cells.customers(sites)
        counts = dict.fromkeys(
            ("notified", "deferred", "callbacks", "unreachable", "already_notified"), 0
        )
        counts["affected"] = len(affected)
        details = {
            "event_id": event_id,
            "sites": list(sites),
            "start": start.isoformat(),
            "expected_end": expected_end.isoformat() if expected_end else None,
            "severity": severity,
        }
        for scores, history in self._scored(affected, now):
            new = []
            for item in scores:
                if isinstance(item, CustomerScore):
                    new += self._outage_actions(item, history[item.customer_id], details, now)
                else:
                    counts["unreachable"] += 1
            for row, created in self.log.record(new, now) if new else []:
                if row["action_type"] == "callback":
                    counts["callbacks"] += int(created and row["status"] != "suppressed")
                elif not created:
                    counts["already_notified"] += 1
                elif row["status"] == "deferred":
                    counts["deferred"] += 1
                elif row["status"] == "queued":
                    counts["notified"] += 1
        self.log.record_outage(event_id, details, counts, now)
        return counts, False


class CallbackPromoter(BackgroundLoop):
    """Offers each day's free callback slots to the waiting callbacks, by priority, and
    expires those that waited too long (a background thread of the API)."""

    name = "callback-promoter"

    def __init__(self, engine: Callable[[], ActionEngine | None], interval_s: float) -> None:
        self.engine, self.interval_s = engine, interval_s
        super().__init__()

    def step(self) -> float:
        engine = self.engine()
        if engine is not None:
            try:
                engine.promote_waiting(datetime.now(UTC))
            except Exception:  # the database is briefly unavailable: try again later
                log.exception("callback promotion failed")
        return self.interval_s


def action_engine(
    scorer: Scorer, log: ActionLog, settings: ServingSettings, tables_dir: Path
) -> ActionEngine:
    """The engine over the action log, callback capacity and home-cell index."""
    rule = settings.actions.callbacks
    capacity = CallbackCapacity(rule.capacity_file, rule.default_daily_capacity)
    tables = ("customer_profile.parquet", "customer_activity.parquet")
    cells = HomeCells(tables_dir) if all((tables_dir / t).exists() for t in tables) else None
    engine = ActionEngine(scorer, log, settings, capacity, cells)
    capacity.table.get()  # read the forecast files now, not in the first request
    engine.policy.candidates.get()
    return engine
