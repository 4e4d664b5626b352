"""One decision service behind every entry point.

`preview` is what `/v1/score` shows: each customer's proposals with the contact policy's
verdicts, nothing recorded. `decide` (`/v1/decide`) is the same plan, recorded in the
action log (queued, deferred to the end of quiet hours, waiting for callback capacity,
or suppressed with its reasons). `plan` serves customers scored elsewhere (the daily
list), `campaign` notifies seasonal-package candidates, `outages` runs an outage's
lifecycle (`serving.outage_service`) over the customers homed on its sites,
`promote_waiting` gives free callback slots to the waiting. Every path plans with the same
code, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import pandas as pd

from serving.action_log.keys import dedupe_key, local_day
from serving.action_log.log import ActionLog
from serving.care import contact_profile
from serving.contact import check
from serving.domain import (
    ActionRecord,
    ActionStatus,
    CustomerScore,
    NewAction,
    PackageCandidate,
    PastAction,
    Proposal,
    Suppression,
    UnknownCustomer,
    Verdict,
)
from serving.experiment import RETENTION, assign
from serving.follow_ups import FollowUpService
from serving.forecasts import CapacityForecast, Refreshing, read_candidates, read_do_not_call
from serving.home_cells import HomeCells
from serving.outage_service import OutageService
from serving.policy import (
    customer_value,
    propose,
    retention_options,
    seasonal_package,
)
from serving.settings import ServingSettings

Planned = list[tuple[Proposal, Verdict]]
CONTROL_VERDICT = Verdict(
    False,
    None,
    None,
    [Suppression("control_group", "the customer is in the random control group this period")],
)
INLINE_CUSTOMERS = 8  # a preview this small, on local stores, costs well under a millisecond


class CustomerScorer(Protocol):
    """What the service needs of a scorer (`serving.scoring.Scorer`)."""

    @property
    def direct(self) -> bool:
        """Whether features are read from a local store (no network round trip)."""

    def score(
        self, customer_ids: Sequence[str], at: pd.Timestamp
    ) -> list[CustomerScore | UnknownCustomer]: ...


@dataclass(frozen=True)
class Decision:
    """A customer's score and what would be done now (nothing recorded)."""

    score: CustomerScore | UnknownCustomer
    planned: Planned


@dataclass(frozen=True)
class Decided:
    """A customer's score and the actions recorded for it (each: whether this call made it)."""

    score: CustomerScore | UnknownCustomer
    actions: list[tuple[ActionRecord, bool]]


class DecisionService:
    def __init__(
        self,
        scorer: CustomerScorer | None,
        settings: ServingSettings,
        log: ActionLog | None,
        capacity: CapacityForecast,
        home_cells: HomeCells | None = None,
    ) -> None:
        self.scorer = scorer
        self.settings = settings
        self.log = log
        self.capacity = capacity
        self.home_cells = home_cells
        self.candidates: Refreshing[dict[str, list[PackageCandidate]]] = Refreshing(
            settings.actions.packages.candidates_file, read_candidates, {}
        )
        dnc = settings.contact.do_not_call_file
        self.do_not_call: Refreshing[frozenset[str]] | None = (
            Refreshing(dnc, read_do_not_call, frozenset()) if dnc is not None else None
        )
        self.zone = ZoneInfo(settings.contact.timezone)
        # the contact policy looks back over a week of caps and the offer cooldown
        self.history_days = max(8, settings.contact.offer_cooldown_days + 1)
        self.outages = OutageService(self)
        self.follow_ups = FollowUpService(self)

    # --- planning -----------------------------------------------------------------------------
    def proposals(self, item: CustomerScore, now: datetime) -> list[Proposal]:
        """What the policy proposes for the customer now, seasonal packages included, as
        the customer's arm of the experiment has it (`serving.experiment`)."""
        policy = self.settings.actions
        candidates = self.candidates.get().get(item.customer_id, [])
        options = retention_options(item, item.contact, policy, now)
        found = propose(item, item.contact, policy, now, candidates, options)
        return assign(item, found, options, policy.experiment, now)

    def check_all(
        self,
        item: CustomerScore,
        proposals: list[Proposal],
        history: list[PastAction],
        now: datetime,
    ) -> Planned:
        """The verdicts in order: what an earlier proposal sends now counts against the
        caps and the one-a-day rule of the later ones."""
        seen = list(history)
        planned = []
        for proposal in proposals:
            verdict = check(proposal, item.contact, seen, self.settings.contact, now)
            if proposal.details.get("arm") == "control" and verdict.allowed:
                # held out, but only where it could have gone: the control group must be
                # chosen like the treated, or the comparison is biased
                planned.append((proposal, CONTROL_VERDICT))
                seen.append(PastAction(proposal.action_type, verdict.channel, "control", now))
                continue
            planned.append((proposal, verdict))
            if verdict.allowed:
                seen.append(PastAction(proposal.action_type, verdict.channel, "queued", now))
        return planned

    def history(self, customer_ids: Sequence[str], now: datetime) -> dict[str, list[PastAction]]:
        """The customers' contact history up to `now` (none without an action log): a
        decision at an earlier instant sees only what was made before it."""
        if self.log is None or not customer_ids:
            return {}
        found = self.log.history(customer_ids, now, self.history_days)
        return {c: [a for a in past if a.created_at <= now] for c, past in found.items()}

    def with_do_not_call(
        self, scores: Sequence[CustomerScore | UnknownCustomer]
    ) -> list[CustomerScore | UnknownCustomer]:
        """The scores with the do-not-call list applied to their contact profiles."""
        listed = self.do_not_call.get() if self.do_not_call is not None else frozenset()
        if not listed:
            return list(scores)
        return [
            replace(s, contact=replace(s.contact, do_not_call=True))
            if isinstance(s, CustomerScore) and s.customer_id in listed
            else s
            for s in scores
        ]

    def plan(self, scores: Sequence[CustomerScore], now: datetime) -> dict[str, Planned]:
        """Each scored customer's proposals and verdicts now; the contact history is read
        only for customers with something to propose."""
        scores = [s for s in self.with_do_not_call(scores) if isinstance(s, CustomerScore)]
        proposals = {item.customer_id: self.proposals(item, now) for item in scores}
        history = self.history([c for c, found in proposals.items() if found], now)
        plans = {
            item.customer_id: self.check_all(
                item, proposals[item.customer_id], history.get(item.customer_id, []), now
            )
            for item in scores
        }
        return self.within_budget(plans, now)

    def within_budget(self, plans: dict[str, Planned], now: datetime) -> dict[str, Planned]:
        """Retention actions within the period's budget: exploration first (it is a fixed
        small share), then the best value per unit of cost; the rest are suppressed. A
        control-group decision stays a control decision where a treated one in its place
        would have fitted the budget, and spends nothing: the budget goes to the treated,
        and the control group stays the customers the policy would have treated."""
        budget = self.settings.actions.budget
        limits = {kind: budget.limit(kind) for kind in RETENTION}
        if all(limit is None for limit in limits.values()):
            return plans
        since = now - timedelta(days=budget.period_days)
        spent = {
            kind: (self.log.spent(kind, since, now) if self.log is not None else 0.0)
            for kind, limit in limits.items()
            if limit is not None
        }
        # control-group decisions take their place in the queue so that they are cut at the
        # same value per cost as the treated
        wanted = [
            (customer, k, proposal)
            for customer, plan in plans.items()
            for k, (proposal, verdict) in enumerate(plan)
            if (verdict.allowed or verdict is CONTROL_VERDICT)
            and spent.get(proposal.action_type) is not None
        ]

        def rank(entry: tuple[str, int, Proposal]) -> tuple[bool, float]:
            proposal = entry[2]
            cost = float(proposal.details.get("cost") or 0.0)
            explored = proposal.details.get("arm") == "exploration"
            return (not explored, -proposal.expected_value / max(cost, 1e-9))

        out = {customer: list(plan) for customer, plan in plans.items()}
        for customer, k, proposal in sorted(wanted, key=rank):
            kind, cost = proposal.action_type, float(proposal.details.get("cost") or 0.0)
            limit = limits[kind]
            assert limit is not None  # only limited kinds are wanted
            if spent[kind] + cost <= limit + 1e-9:
                if proposal.details.get("arm") != "control":
                    spent[kind] += cost
                continue
            message = f"the {kind} budget of {limit:.0f} per {budget.period_days} days is spent"
            out[customer][k] = (
                proposal,
                Verdict(False, None, None, [Suppression("budget", message)]),
            )
        return out

    def runs_inline(self, customers: int, scorer: CustomerScorer | None = None) -> bool:
        """Whether a preview is cheap enough for the event loop: a few customers, features
        and contact history both read locally. Anything else belongs in a thread."""
        local_log = self.log is None or self.log.local
        return customers <= INLINE_CUSTOMERS and self._scorer(scorer).direct and local_log

    def preview(
        self, customer_ids: Sequence[str], now: datetime, scorer: CustomerScorer | None = None
    ) -> list[Decision]:
        """Score and plan; nothing is recorded or sent."""
        scores = self._scorer(scorer).score(customer_ids, pd.Timestamp(now))
        plans = self.plan([s for s in scores if isinstance(s, CustomerScore)], now)
        return [Decision(item, plans.get(item.customer_id, [])) for item in scores]

    def decide(
        self, customer_ids: Sequence[str], now: datetime, scorer: CustomerScorer | None = None
    ) -> list[Decided]:
        """Score, plan, and record what the plan proposes. Idempotent per customer, action
        type and the customers' local day: where an action of the type was made today
        (by any path, whatever became of it), that action is returned, not a new one."""
        log = self._log()
        previews = self.preview(customer_ids, now, scorer)
        planned = [d.score.customer_id for d in previews if d.planned]
        midnight = datetime.combine(now.astimezone(self.zone).date(), time(), self.zone)
        today = log.made_since(planned, midnight) if planned else {}
        decided = []
        for decision in previews:
            item = decision.score
            if not isinstance(item, CustomerScore) or not decision.planned:
                decided.append(Decided(item, []))
                continue
            made = first_of_each_type(today.get(item.customer_id, []))
            new = [
                self.new_action(item, p, v, now, "decide")
                for p, v in decision.planned
                if p.action_type not in made
            ]
            recorded = iter(log.record(new, now) if new else [])
            decided.append(
                Decided(
                    item,
                    [
                        (made[p.action_type], False) if p.action_type in made else next(recorded)
                        for p, _ in decision.planned
                    ],
                )
            )
        return decided

    def record_plans(
        self,
        items: Sequence[CustomerScore],
        plans: dict[str, Planned],
        now: datetime,
        source: str,
    ) -> dict[str, int]:
        """Record planned actions (a batch's decisions); counts by stored status, and how
        many existed already."""
        log = self._log()
        counts: dict[str, int] = {}
        new = [
            self.new_action(item, proposal, verdict, now, source)
            for item in items
            for proposal, verdict in plans.get(item.customer_id, [])
        ]
        for start in range(0, len(new), 1000):
            for record, created in log.record(new[start : start + 1000], now):
                key = record.status.value if created else "already"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def new_action(
        self,
        item: CustomerScore,
        proposal: Proposal,
        verdict: Verdict,
        now: datetime,
        source: str,
        event: str | None = None,
    ) -> NewAction:
        """The action to record for a proposal and its verdict."""
        status = ActionStatus.SUPPRESSED
        if verdict.allowed:
            status = ActionStatus.DEFERRED if verdict.send_after else ActionStatus.QUEUED
        elif verdict is CONTROL_VERDICT:
            status = ActionStatus.CONTROL
        capacity_day = capacity = None
        if proposal.action_type == "callback":  # the log books the slot, atomically
            capacity_day = local_day(proposal.due_at or now, self.zone)
            capacity = self.capacity.for_day(item.contact.region, capacity_day)
        key = dedupe_key(
            now,
            self.zone,
            event=event,
            campaign=proposal.details.get("campaign"),
            suppressed=status == ActionStatus.SUPPRESSED,
        )
        details = {"reason": proposal.reason, **proposal.details}
        needs = contact_profile(item.contact, self.settings.contact.care).needs
        if needs:  # large print, a dedicated agent: what the CRM and the print shop must honour
            details["care"] = needs
        if "arm" in details:  # a marketing decision: what attribution and retraining need
            details.update(
                churn_probability=round(item.churn_probability, 6),
                customer_value=round(customer_value(item), 2),
                churn_model=item.model,
                effect_model=item.effects.model if item.effects else None,
                segment=item.contact.segment,
                contract_type=item.contact.contract_type,
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
            details=details,
            suppressions=[vars(s) for s in verdict.suppressions],
            capacity_day=capacity_day,
            capacity=capacity,
        )

    # --- campaigns, outages, capacity -----------------------------------------------------------
    def _scorer(self, scorer: CustomerScorer | None = None) -> CustomerScorer:
        chosen = scorer or self.scorer
        if chosen is None:
            raise RuntimeError("this decision service has no scorer: it can only plan")
        return chosen

    def _log(self) -> ActionLog:
        if self.log is None:
            raise RuntimeError("this decision service has no action log: it can only preview")
        return self.log

    def _scored(
        self, ids: Sequence[str], now: datetime
    ) -> Iterator[tuple[list[CustomerScore | UnknownCustomer], dict[str, list[PastAction]]]]:
        """The customers' scores and contact histories, a request's worth at a time."""
        for start in range(0, len(ids), self.settings.max_customers):
            chunk = ids[start : start + self.settings.max_customers]
            scores = self.with_do_not_call(self._scorer().score(chunk, pd.Timestamp(now)))
            yield scores, self.history(chunk, now)

    def campaign(self, now: datetime, package: str | None = None) -> dict[str, int]:
        """Notify the candidates of every seasonal-package campaign due now (or of one
        package) under the contact policy; counts by outcome. Running it again notifies
        nobody twice: an action is recorded once per customer and campaign."""
        log = self._log()
        chosen = {
            customer: [c for c in found if package is None or c.package == package]
            for customer, found in self.candidates.get().items()
        }
        ids = sorted(customer for customer, found in chosen.items() if found)
        counts = dict.fromkeys(
            ("candidates", "queued", "deferred", "suppressed", "control", "already", "unknown"), 0
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
                # the control group gets no marketing, seasonal packages included
                proposals = assign(item, proposals, [], self.settings.actions.experiment, now)
                past = history.get(item.customer_id, [])
                for proposal, verdict in self.check_all(item, proposals, past, now):
                    new.append(self.new_action(item, proposal, verdict, now, "campaign"))
            for record, created in log.record(new, now) if new else []:
                counts["already" if not created else record.status.value] += 1
        return counts

    def promote_waiting(self, now: datetime) -> tuple[int, int]:
        """Today's free callback slots to the waiting, by priority; (promoted, expired)."""
        rule = self.settings.actions.callbacks
        return self._log().promote_waiting(
            local_day(now, self.zone),
            self.capacity.for_day,
            now,
            expire_before=now - timedelta(days=rule.max_wait_days),
        )


def first_of_each_type(records: Sequence[ActionRecord]) -> dict[str, ActionRecord]:
    """Per action type the action that stands for the day: the first one that went out,
    else the first one made (records oldest first)."""
    chosen: dict[str, ActionRecord] = {}
    for record in records:
        kept = chosen.get(record.action_type)
        if kept is None or (
            kept.status == ActionStatus.SUPPRESSED and record.status != ActionStatus.SUPPRESSED
        ):
            chosen[record.action_type] = record
    return chosen


def decision_service(
    scorer: CustomerScorer | None,
    settings: ServingSettings,
    log: ActionLog | None,
    tables_dir: Path,
) -> DecisionService:
    """The service over the action log, the forecast files and the home-cell index; the
    forecast files are read now, not in the first request."""
    rule = settings.actions.callbacks
    service = DecisionService(
        scorer,
        settings,
        log,
        CapacityForecast(rule.capacity_file, rule.default_daily_capacity),
        HomeCells.of(tables_dir),
    )
    service.capacity.table.get()
    service.candidates.get()
    return service
