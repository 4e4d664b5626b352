"""Month-by-month life of one block of customers: churn, usage, packages, tickets, campaigns.

Each month starts from what was known at its start (bills, tickets, outages of earlier
months), computes every customer's churn hazard from those drivers, runs the operator's
legacy retention campaign with a random control group, draws who leaves, and then
generates the month's usage, add-on purchases and service tickets, which feed the next
month's hazard. So features observed at a month end predict the next month's churn the
way they would in a real operator's data, and nothing about the future leaks backwards.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from features.lifecycle.calendar import term_end_after
from features.lifecycle.contract import (
    CONTRACT_MONTHS,
    CONTRACT_TYPES,
    TICKET_CHANNELS,
    TICKET_TYPES,
)
from features.lifecycle.settings import ChurnDrivers
from features.lifecycle.simulator.network import Network
from features.lifecycle.simulator.population import Population
from features.lifecycle.simulator.responses import (
    ACTIONS,
    NO_ACTION,
    Effects,
    Situation,
    acceptance_probability,
    effects,
    eligible,
    two_month_churn,
)
from features.lifecycle.simulator.world import (
    DAY,
    HOUR,
    MONTH_DAYS,
    PACKAGE_PRICES,
    PLANS,
    MonthGrid,
    PriceWar,
)

NEVER = np.iinfo(np.int64).max
TICKET = {name: i for i, name in enumerate(TICKET_TYPES)}
COMPLAINT_LIKE = (TICKET["complaint"], TICKET["network_fault"], TICKET["billing_dispute"])
PACKAGES = tuple(PACKAGE_PRICES)
DRIVERS = (
    "contract",
    "contract_end",
    "tenure",
    "bill_shock",
    "service",
    "network",
    "competitor",
    "relocation",
    "profile",
    "frailty",
    "campaign",
)
REASON_OF_DRIVER = {
    "bill_shock": "price",
    "network": "network",
    "service": "service",
    "competitor": "competitor",
    "relocation": "relocation",
}

_PLAN_DATA_GB = np.array([plan.typical_data_gb for plan in PLANS])
_FIRST_CONTACT_RESOLUTION = {
    "network_fault": 0.35,
    "billing_dispute": 0.55,
    "package_question": 0.85,
    "complaint": 0.4,
    "relocation": 0.7,
    "technical_support": 0.6,
}
_BASE_SENTIMENT = {
    "network_fault": -0.3,
    "billing_dispute": -0.35,
    "package_question": 0.15,
    "complaint": -0.55,
    "relocation": 0.0,
    "technical_support": -0.05,
}
_WINDOW_MONTHS = 3  # "the last 90 days" of service history, in completed months
# The operator's retention campaigns: each month a share of the customers at risk chosen
# by its rule, and as many again at random (so effects can be learnt beyond the rule's
# reach), each given no contact or one eligible action at random, probabilities logged.
_RULE_SHARE = 0.05
_RANDOM_SHARE = 0.10
_NO_CONTACT_SHARE = 0.2
_EFFECT_MONTHS = 2  # an action changes the hazard of the month it arrives and the next
_VALUABLE_FEE = 1500 / 18  # a customer worth 1,500 (fee x 36 months x 0.5 margin)
_PROMO_MONTHS = 6  # new customers pay 75 % of the fee for their first six months
_PRICE_RISE = 1.08  # consumer tariffs rise once, in April of the history's last year


@dataclass
class BlockTables:
    """Rows produced for one block, with integer customer numbers and times in seconds."""

    customers: pd.DataFrame
    usage: pd.DataFrame
    tickets: pd.DataFrame
    packages: pd.DataFrame
    campaigns: pd.DataFrame
    churn: pd.DataFrame
    hazard: pd.DataFrame
    treatment: pd.DataFrame


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _by_ticket_type(values: dict[str, float]) -> np.ndarray:
    """A per-ticket-type table as an array indexed like TICKET_TYPES."""
    return np.array([values[t] for t in TICKET_TYPES])


@dataclass(frozen=True)
class Assignments:
    """Retention actions given to customers of one block in one month.

    `action` indexes ACTIONS (-1: no contact, a control); `probability` is the logged
    probability of that assignment."""

    position: np.ndarray  # customer positions within the block
    action: np.ndarray
    probability: np.ndarray
    sent_at: np.ndarray  # seconds
    campaign_id: np.ndarray  # per row: one customer may get two actions of two campaigns


def _uniform_between(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return lo + (rng.random(len(lo)) * np.maximum(hi - lo, 1)).astype(np.int64)


# Column types of each output stream; every stream starts with an empty, typed part so
# that a block in which nothing of a kind happened still yields a well-typed frame.
_I, _F, _B, _S = np.int64, np.float64, np.bool_, np.object_
_STREAMS: dict[str, dict[str, type]] = {
    "usage": {
        "customer": _I,
        "month": _I,
        "data_gb": _F,
        "voice_min": _F,
        "sms": _I,
        "roaming_days": _I,
        "bill_amount": _F,
        "overage_amount": _F,
        "late_payment": _B,
    },
    "tickets": {
        "customer": _I,
        "number": _I,
        "opened_at": _I,
        "closed_at": _I,
        "ticket_type": _S,
        "channel": _S,
        "first_contact_resolved": _B,
        "is_repeat": _B,
        "sentiment": _F,
    },
    "packages": {"customer": _I, "package_id": _S, "purchased_at": _I, "price": _F},
    "campaigns": {
        "customer": _I,
        "campaign_id": _S,
        "offer_id": _S,
        "treated": _B,
        "sent_at": _I,
        "accepted": _B,
        "assignment_probability": _F,
    },
    "hazard": {
        "customer": _I,
        "month": _I,
        "hazard": np.float32,
        **{f"logit_{k}": np.float32 for k in DRIVERS},
        **{f"effect_{a}": np.float32 for a in ACTIONS},
        **{f"expected_effect_{a}": np.float32 for a in ACTIONS},
    },
    "treatment": {
        "customer": _I,
        "campaign_id": _S,
        "action": _S,
        "base_churn_60d": _F,
        "true_effect": _F,
        "expected_effect": _F,
    },
}


def _empty(stream: str) -> dict[str, np.ndarray]:
    return {column: np.empty(0, dtype=dtype) for column, dtype in _STREAMS[stream].items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    return pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


def _only(given: Assignments, keep: np.ndarray) -> Assignments:
    return Assignments(
        given.position[keep],
        given.action[keep],
        given.probability[keep],
        given.sent_at[keep],
        given.campaign_id[keep],
    )


_STATE_ARRAYS = (
    "churn_at",
    "bills",
    "complaints",
    "repeats",
    "sentiment_sum",
    "sentiment_count",
    "bought_package",
    "last_ticket",
    "relocating",
    "had_overage",
    "effect",
    "effect_months",
    "term",
)


class _BlockSimulation:
    """Mutable per-customer state carried from month to month (one block)."""

    def __init__(
        self,
        pop: Population,
        grid: MonthGrid,
        net: Network,
        promotions: np.ndarray,
        drivers: ChurnDrivers,
        rng: np.random.Generator,
        war: PriceWar | None = None,
    ) -> None:
        self.pop, self.grid, self.net, self.promotions = pop, grid, net, promotions
        self.d, self.rng, self.war = drivers, rng, war
        n = len(pop)
        self.churn_at = np.full(n, NEVER, dtype=np.int64)
        self.reason = np.full(n, "", dtype=object)
        self.bills = np.tile(pop.fee[:, None], (1, 4))  # last four full-month bills
        # Monthly counters over _WINDOW_MONTHS completed months plus the running one (last
        # slot); the hazard at a month start reads the completed months only.
        slots = _WINDOW_MONTHS + 1
        self.complaints = np.zeros((slots, n))
        self.repeats = np.zeros((slots, n))
        self.sentiment_sum = np.zeros((slots, n))
        self.sentiment_count = np.zeros((slots, n))
        self.bought_package = np.zeros((slots, n), dtype=bool)
        # tickets still open (customer, closing time, ticket number), pruned as they close
        self.open_tickets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.last_ticket = np.full((len(TICKET_TYPES), n), -NEVER // 2, dtype=np.int64)
        self.relocating = np.zeros(n, dtype=bool)
        self.had_overage = np.zeros(n, dtype=bool)
        self.effect = np.zeros(n)
        self.effect_months = np.zeros(n, dtype=np.int64)
        self.term = np.array([CONTRACT_MONTHS[c] for c in CONTRACT_TYPES])[pop.contract]
        self.signup_ns = (pop.signup * 1_000_000_000).astype("datetime64[ns]")
        self.out: dict[str, list[dict[str, np.ndarray]]] = {k: [_empty(k)] for k in _STREAMS}
        self.ticket_count = 0
        rise_months = np.flatnonzero(grid.calendar_month == 4)
        self.price_rise_month = int(rise_months[-1]) if len(rise_months) else grid.count

    # --- hazard -----------------------------------------------------------------------
    def _drivers(self, m: int) -> tuple[dict[str, np.ndarray], Situation]:
        """Each driver's contribution to the churn log-odds, and what the operator can see."""
        pop, d, grid, net = self.pop, self.d, self.grid, self.net
        start = grid.starts[m]
        mtm = pop.contract == 0
        tenure = (start - pop.signup) / (MONTH_DAYS * DAY)
        at = np.full(len(pop), start * 1_000_000_000, dtype=np.int64).astype("datetime64[ns]")
        days_to_end = (term_end_after(self.signup_ns, self.term, at) - at) / np.timedelta64(1, "D")
        near_end = ~mtm & (days_to_end <= 60)
        shock = self.bills[:, 3] >= 1.25 * self.bills[:, :3].mean(axis=1)
        unresolved = self.unresolved_at(start)
        count = self._completed(self.sentiment_count)
        mean_sentiment = self._completed(self.sentiment_sum) / np.maximum(count, 1)
        negativity = np.where(count > 0, np.maximum(-mean_sentiment, 0), 0)
        complaints = self._completed(self.complaints)
        # the network as experienced in the previous month; nothing is known before month 0
        outage = net.outage_hours[pop.site, m - 1] if m > 0 else np.zeros(len(pop))
        drop = net.drop_rate[pop.site, m - 1] if m > 0 else np.zeros(len(pop))
        young = pop.age <= 1
        return {
            "contract": np.choose(pop.contract, [d.month_to_month, d.one_year, d.two_year]),
            "contract_end": near_end * d.contract_end_within_60d,
            "tenure": d.new_customer * np.exp(-np.maximum(tenure, 0) / 8),
            "bill_shock": shock * (d.bill_shock + mtm * d.bill_shock_month_to_month),
            "service": d.complaints_90d * np.minimum(complaints, 4)
            + d.unresolved_ticket * np.minimum(unresolved, 2)
            + d.repeat_complaint * (self._completed(self.repeats) > 0)
            + d.negative_sentiment * negativity,
            "network": d.outage_hours_log1p * np.log1p(outage)
            + d.outage_unresolved_interaction * ((outage > 4) & (unresolved > 0))
            + d.drop_rate_excess * np.maximum(drop - 0.015, 0),
            "competitor": self.promotions[pop.region, m]
            * d.competitor_promotion
            * np.where(mtm, 1.0, 0.35)
            * np.where(young, 1.4, 1.0),
            "relocation": self.relocating * d.relocation,
            "profile": d.electronic_check * (pop.payment == 0)
            + d.senior * (pop.age == 4)
            + d.package_engagement * self.bought_package[:-1].any(axis=0),
            "frailty": d.frailty_sd * pop.frailty,
        }, Situation(
            bill_shock=shock,
            near_end=near_end,
            complaints=complaints,
            unresolved=unresolved,
            negativity=negativity,
            outage_hours=outage,
            had_overage=self.had_overage.copy(),
            tenure_months=tenure,
            month_to_month=mtm,
            two_year=pop.contract == 2,
            enterprise=pop.enterprise,
            age=pop.age,
            electronic_check=pop.payment == 0,
            relocating=self.relocating.copy(),
        )

    def unresolved_at(self, instant: int) -> np.ndarray:
        """Tickets open at `instant` per customer; forgets tickets closed before it."""
        self.open_tickets = [
            (customer[closed > instant], closed[closed > instant], number[closed > instant])
            for customer, closed, number in self.open_tickets
        ]
        counts = np.zeros(len(self.pop))
        for customer, _, _ in self.open_tickets:
            counts += np.bincount(customer, minlength=len(self.pop))
        return counts

    @staticmethod
    def _completed(ring: np.ndarray) -> np.ndarray:
        """Sum over the completed months of a monthly counter (all slots but the running one)."""
        return ring[:-1].sum(axis=0)

    # --- campaigns --------------------------------------------------------------------
    def legacy_campaign(self, m: int, at_risk: np.ndarray, seen: Situation) -> Assignments | None:
        """The operator's randomized retention campaign of month `m`: who, what, when."""
        rng = self.rng
        candidates = np.flatnonzero(at_risk)
        n_rule = round(_RULE_SHARE * len(candidates))
        n_random = round(_RANDOM_SHARE * len(candidates))
        if m == 0 or n_rule + n_random == 0:
            return None
        score = (
            1.2 * seen.near_end
            + 0.9 * seen.bill_shock
            + 0.6 * (seen.complaints >= 2)
            + 0.4 * seen.month_to_month
        )[candidates] + rng.normal(0, 0.6, len(candidates))
        order = np.argsort(-score, kind="stable")
        rest = candidates[order[n_rule:]]
        chosen = rng.choice(rest, size=min(n_random, len(rest)), replace=False)
        target = np.sort(np.concatenate([candidates[order[:n_rule]], chosen]))
        allowed = self.eligible()[target]
        contact = rng.random(len(target)) >= _NO_CONTACT_SHARE
        # one eligible action, uniformly: the k-th allowed column for k drawn below count
        count = allowed.sum(axis=1)
        kth = (rng.random(len(target)) * count).astype(np.int64)
        pick = np.argmax(np.cumsum(allowed, axis=1) > kth[:, None], axis=1)
        start = self.grid.starts[m]
        sent = (
            start
            + rng.integers(2 * DAY, 9 * DAY, len(target))
            + rng.integers(9 * HOUR, 18 * HOUR, len(target))
        )
        return Assignments(
            position=target,
            action=np.where(contact, pick, -1),
            probability=np.where(contact, (1 - _NO_CONTACT_SHARE) / count, _NO_CONTACT_SHARE),
            sent_at=sent,
            campaign_id=np.full(
                len(target), f"RET-{np.datetime64(int(start), 's').astype('datetime64[M]')}", object
            ),
        )

    def eligible(self) -> np.ndarray:
        """[customer, action] the catalogue's eligibility rules."""
        pop = self.pop
        valuable = pop.enterprise | (pop.account_manager >= 0) | (pop.fee >= _VALUABLE_FEE)
        return eligible(pop.contract == 0, pop.contract == 1, valuable)

    def _assign(self, given: Assignments, base_logit: np.ndarray, effect: Effects) -> None:
        """Apply the actions: their effect on the hazard for two months, the campaign rows
        (with acceptance) and the truth of what each did."""
        pop, rng = self.pop, self.rng
        target, action = given.position, given.action
        treated = action >= 0
        column = np.maximum(action, 0)
        realised = np.where(treated, effect.realised[target, column], 0.0)
        expected = np.where(treated, effect.expected[target, column], 0.0)
        # a customer given two actions in one month (an offer and a call) gets both effects
        combined = np.zeros(len(pop))
        np.add.at(combined, target[treated], realised[treated])
        touched = np.unique(target[treated])
        self.effect[touched] = combined[touched]
        self.effect_months[touched] = _EFFECT_MONTHS
        accepted = treated & (rng.random(len(target)) < acceptance_probability(realised))
        logit = base_logit[target]
        campaign_id = given.campaign_id
        action_id = np.where(treated, np.array(ACTIONS, dtype=object)[column], NO_ACTION)
        self.out["campaigns"].append(
            {
                "customer": pop.index[target],
                "campaign_id": campaign_id,
                "offer_id": action_id,
                "treated": treated,
                "sent_at": given.sent_at,
                "accepted": accepted,
                "assignment_probability": given.probability.astype(np.float64),
            }
        )
        base = two_month_churn(logit)
        self.out["treatment"].append(
            {
                "customer": pop.index[target],
                "campaign_id": campaign_id,
                "action": action_id,
                "base_churn_60d": base,
                "true_effect": two_month_churn(logit + realised) - base,
                "expected_effect": two_month_churn(logit + expected) - base,
            }
        )

    # --- one month ----------------------------------------------------------------------
    def month(self, m: int, engine: Assignments | None = None) -> None:
        """Simulate month `m`; the operator's legacy campaign runs unless the engine's
        delivered actions are given (then they are the month's retention contacts)."""
        pop, grid, rng, d = self.pop, self.grid, self.rng, self.d
        start, end = int(grid.starts[m]), int(grid.starts[m + 1])
        at_risk = (pop.signup < start) & (self.churn_at == NEVER)
        contributions, seen = self._drivers(m)
        if self.war is not None:  # a planted price war pulls like a rival's promotion
            contributions["competitor"] = contributions["competitor"] + self.war.on(
                pop.region, m
            ) * self.war.churn_logit * np.where(pop.contract == 0, 1.0, 1 / 3)
        base_logit = d.intercept + np.sum(list(contributions.values()), axis=0)
        response = effects(seen, pop.receptiveness, pop.taste, pop.contact_averse)
        given = engine if engine is not None else self.legacy_campaign(m, at_risk, seen)
        if given is not None:
            given = _only(given, at_risk[given.position])  # nobody answers after leaving
            self._assign(given, base_logit, response)
        contributions["campaign"] = self.effect * (self.effect_months > 0)
        hazard = _sigmoid(base_logit + contributions["campaign"])

        leaves = at_risk & (rng.random(len(pop)) < hazard)
        earliest = np.full(len(pop), start, dtype=np.int64)
        if given is not None:  # a contacted customer is still there when the action arrives
            earliest[given.position] = np.maximum(given.sent_at, start)
        when = _uniform_between(earliest, np.full(len(pop), end), rng)
        self.churn_at[leaves] = when[leaves]
        self._attribute_reasons(leaves, contributions)
        self.effect_months = np.maximum(self.effect_months - 1, 0)
        self.relocating[:] = False
        risk = np.flatnonzero(at_risk)
        self.out["hazard"].append(
            {
                "customer": pop.index[risk],
                "month": np.full(len(risk), start),
                "hazard": hazard[risk].astype(np.float32),
                **{f"logit_{k}": v[risk].astype(np.float32) for k, v in contributions.items()},
                **{
                    f"effect_{a}": response.realised[risk, i].astype(np.float32)
                    for i, a in enumerate(ACTIONS)
                },
                **{
                    f"expected_effect_{a}": response.expected[risk, i].astype(np.float32)
                    for i, a in enumerate(ACTIONS)
                },
            }
        )

        present = (pop.signup < end) & (self.churn_at >= start)
        lo = np.maximum(start, pop.signup)
        hi = np.minimum(end, self.churn_at)
        share = np.where(present, (hi - lo) / (end - start), 0.0)
        idx = np.flatnonzero(present)
        roaming_pack = self._packages(m, idx, lo, hi, share)
        bill_equivalent, shock_now = self._usage(m, idx, share, roaming_pack)
        self._tickets(m, idx, lo, hi, share, shock_now, leaves)
        self.bills[idx, :3] = self.bills[idx, 1:]
        self.bills[idx, 3] = bill_equivalent
        for ring in (
            self.complaints,
            self.repeats,
            self.sentiment_sum,
            self.sentiment_count,
            self.bought_package,
        ):
            ring[:] = np.roll(ring, -1, axis=0)
            ring[-1] = 0

    def _attribute_reasons(self, leaves: np.ndarray, contributions: dict[str, np.ndarray]) -> None:
        names = list(REASON_OF_DRIVER)
        stacked = np.stack([contributions[k] for k in names])[:, leaves]
        best = stacked.argmax(axis=0)
        reason = np.where(
            stacked.max(axis=0) > 0.35,
            np.array([REASON_OF_DRIVER[k] for k in names])[best],
            "other",
        )
        unknown = self.rng.random(leaves.sum()) < 0.3  # a third never say why they left
        self.reason[leaves] = np.where(unknown, "", reason)

    def _packages(
        self, m: int, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray, share: np.ndarray
    ) -> np.ndarray:
        pop, grid, rng = self.pop, self.grid, self.rng
        month = int(grid.calendar_month[m])
        travel_season = grid.travel_season(m)
        campus = pop.student[idx] * {2: 0.45, 3: 0.3, 8: 0.12, 9: 0.6}.get(month, 0.04)
        rates = (
            np.stack(
                [
                    campus,
                    0.06 * pop.travel[idx] * travel_season,
                    0.04 + 0.25 * self.had_overage[idx],
                    (~pop.enterprise[idx] & np.isin(pop.age[idx], (2, 3))) * 0.006,
                ]
            )
            * share[idx]
        )
        counts = np.minimum(rng.poisson(rates), 3)
        package, position = np.nonzero(counts)
        repeat = counts[package, position]
        package, position = np.repeat(package, repeat), np.repeat(position, repeat)
        customer = idx[position]
        # when in the month: campus packs in the first weeks of term, roaming packs in the
        # days before the Spring Festival (within this month), anything else at random
        earliest, latest = lo[customer].copy(), hi[customer].copy()
        start = int(grid.starts[m])
        if month in (2, 3, 9):
            term = package == 0
            latest[term] = np.minimum(latest[term], start + 20 * DAY)
        festival = grid.spring_festival_in(m)
        if festival is not None:
            pre = package == 1
            earliest[pre] = np.maximum(earliest[pre], max(start, festival - 14 * DAY))
            latest[pre] = np.minimum(latest[pre], festival)
        crowded = latest <= earliest  # the customer's active days miss the window: any day will do
        earliest[crowded], latest[crowded] = lo[customer[crowded]], hi[customer[crowded]]
        bought = _uniform_between(earliest, latest, rng)
        price = np.array(list(PACKAGE_PRICES.values()))[package]
        self.out["packages"].append(
            {
                "customer": pop.index[customer],
                "package_id": np.array(PACKAGES)[package],
                "purchased_at": bought,
                "price": price,
            }
        )
        self.bought_package[-1, customer] = True
        roaming_pack = np.zeros(len(pop), dtype=bool)
        roaming_pack[customer[package == 1]] = True
        return roaming_pack

    def _usage(
        self, m: int, idx: np.ndarray, share: np.ndarray, roaming_pack: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        pop, grid, rng = self.pop, self.grid, self.rng
        f = share[idx]
        n = len(idx)
        years = m / 12
        senior_or_business = (pop.age[idx] == 4) | pop.enterprise[idx]
        data_gb = (
            pop.data_appetite[idx]
            * _PLAN_DATA_GB[pop.plan[idx]]
            * (1 + 0.08 * years)
            * rng.lognormal(0, 0.25, n)
            * f
        )
        if self.war is not None:  # part of the data use moves to the rival's SIM
            data_gb = data_gb * np.where(
                self.war.on(pop.region[idx], m), self.war.data_usage_factor, 1.0
            )
        voice = (110 + 170 * senior_or_business) * rng.lognormal(0, 0.5, n) * f
        sms = rng.poisson(18 * np.where(pop.age[idx] == 4, 1.8, 1.0) * f)
        days_active = np.maximum(np.ceil(f * 30), 1)
        roaming_days = rng.poisson(pop.travel[idx] * 0.35 * grid.travel_season(m) * f)
        roaming_days = np.minimum(
            roaming_days + roaming_pack[idx] * (1 + rng.poisson(3, n)), days_active
        ).astype(np.int64)
        allowance = pop.allowance_gb[idx]
        data_overage = np.where(
            np.isinf(allowance), 0.0, np.maximum(data_gb - allowance * f, 0) * 2.0
        )
        roaming_charge = roaming_days * 4.5 * ~roaming_pack[idx]
        tenure = (grid.starts[m] - pop.signup[idx]) / (MONTH_DAYS * DAY)
        promo = np.where(tenure < _PROMO_MONTHS, 0.75, 1.0)
        rise = np.where((m >= self.price_rise_month) & ~pop.enterprise[idx], _PRICE_RISE, 1.0)
        overage = np.round(data_overage + roaming_charge, 2)
        recurring = pop.fee[idx] * promo * rise
        bill = np.round(recurring * f + overage, 2)
        equivalent = recurring + overage
        shock_now = np.zeros(len(pop), dtype=bool)
        shock_now[idx] = equivalent >= 1.25 * self.bills[idx, 1:].mean(axis=1)
        late = rng.random(n) < _sigmoid(
            -3.3 + 0.7 * (pop.payment[idx] == 0) + 0.45 * pop.frailty[idx] + 0.5 * shock_now[idx]
        )
        self.had_overage[:] = False
        self.had_overage[idx] = overage > 5
        self.out["usage"].append(
            {
                "customer": pop.index[idx],
                "month": np.full(n, grid.starts[m]),
                "data_gb": np.round(data_gb, 3),
                "voice_min": np.round(voice, 1),
                "sms": sms.astype(np.int64),
                "roaming_days": roaming_days,
                "bill_amount": bill,
                "overage_amount": overage,
                "late_payment": late,
            }
        )
        return equivalent, shock_now

    def _tickets(
        self,
        m: int,
        idx: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        share: np.ndarray,
        shock_now: np.ndarray,
        leaves: np.ndarray,
    ) -> None:
        pop, grid, rng, net = self.pop, self.grid, self.rng, self.net
        start = int(grid.starts[m])
        site = pop.site[idx]
        outage = np.minimum(net.outage_hours[site, m], 48)
        drop = net.drop_rate[site, m]
        unresolved = self.unresolved_at(start)[idx]
        frail = np.maximum(pop.frailty[idx], 0)
        outage_fault = 0.012 * outage
        outage_complaint = 0.005 * outage
        rates = np.zeros((len(TICKET_TYPES), len(idx)))
        rates[TICKET["network_fault"]] = 0.02 + outage_fault + 3 * np.maximum(drop - 0.012, 0)
        rates[TICKET["billing_dispute"]] = (
            0.012 + 0.22 * shock_now[idx] + 0.04 * self.had_overage[idx]
        )
        rates[TICKET["package_question"]] = 0.015 + 0.05 * self.bought_package[-1, idx]
        rates[TICKET["complaint"]] = (
            0.008
            + outage_complaint
            + 0.06 * shock_now[idx]
            + 0.08 * (unresolved > 0)
            + 0.03 * frail
            + 0.15 * leaves[idx]
        )
        if self.war is not None:  # price comparisons and port-out enquiries
            rates[TICKET["complaint"]] += self.war.on(pop.region[idx], m) * self.war.enquiry_rate
        rates[TICKET["relocation"]] = 0.003
        rates[TICKET["technical_support"]] = 0.02 * np.where(pop.age[idx] == 4, 1.5, 1.0)
        counts = np.minimum(rng.poisson(rates * share[idx]), 5)
        kind, position = np.nonzero(counts)
        repeat = counts[kind, position]
        kind, position = np.repeat(kind, repeat), np.repeat(position, repeat)
        customer = idx[position]
        n = len(kind)
        if n == 0:
            return
        opened = _uniform_between(lo[customer], hi[customer], rng)
        # outage-driven faults and complaints arrive in the days right after the outage
        anchor = net.outage_anchor[pop.site[customer], m]
        outage_part = np.where(
            kind == TICKET["network_fault"],
            outage_fault[position],
            np.where(kind == TICKET["complaint"], outage_complaint[position], 0.0),
        )
        driven = (anchor >= 0) & (
            rng.random(n) < outage_part / np.maximum(rates[kind, position], 1e-9)
        )
        after = anchor + (rng.exponential(1.0, n) * DAY).astype(np.int64) + HOUR
        use = driven & (after >= lo[customer]) & (after < hi[customer])
        opened[use] = after[use]

        age = pop.age[customer]
        channel_probs = np.where(
            (age <= 1)[:, None],
            [0.25, 0.35, 0.1, 0.3],
            np.where((age == 4)[:, None], [0.6, 0.05, 0.3, 0.05], [0.4, 0.25, 0.15, 0.2]),
        )
        channel = (rng.random((n, 1)) > np.cumsum(channel_probs, axis=1)).sum(axis=1).clip(0, 3)
        fcr_rate = (
            _by_ticket_type(_FIRST_CONTACT_RESOLUTION)[kind]
            + 0.1 * (channel == 2)
            - 0.05 * (channel == 1)
        )
        fcr_rate = fcr_rate - 0.15 * (driven & (kind == TICKET["network_fault"]))
        fcr = rng.random(n) < fcr_rate
        hours = np.where(fcr, rng.uniform(0.1, 1.0, n), rng.lognormal(np.log(36), 1.0, n))
        never = ~fcr & (rng.random(n) < np.where(kind == TICKET["complaint"], 0.1, 0.04))
        closed = np.where(never, NEVER, opened + (hours * HOUR).astype(np.int64))

        order = np.lexsort((opened, kind, customer))
        customer, kind, opened, closed, channel, fcr = (
            a[order] for a in (customer, kind, opened, closed, channel, fcr)
        )
        driven = driven[order]
        same_as_previous = np.r_[False, (customer[1:] == customer[:-1]) & (kind[1:] == kind[:-1])]
        previous = np.where(
            same_as_previous, np.r_[0, opened[:-1]], self.last_ticket[kind, customer]
        )
        is_repeat = opened - previous <= 30 * DAY

        base = _by_ticket_type(_BASE_SENTIMENT)[kind]
        sentiment = np.clip(
            base
            - 0.25 * ~fcr
            - 0.2 * is_repeat
            - 0.12 * pop.frailty[customer]
            - 0.1 * driven
            + rng.normal(0, 0.2, n),
            -1,
            1,
        ).round(3)

        self.last_ticket[kind, customer] = opened  # sorted by time, so the last write is the latest
        complaint_like = np.isin(kind, COMPLAINT_LIKE)
        np.add.at(self.complaints[-1], customer[complaint_like], 1)
        np.add.at(self.repeats[-1], customer[is_repeat & complaint_like], 1)
        np.add.at(self.sentiment_sum[-1], customer, sentiment)
        np.add.at(self.sentiment_count[-1], customer, 1)
        ticket_number = self.ticket_count + np.arange(n)
        self.open_tickets.append((customer, closed, ticket_number))
        self.relocating[customer[kind == TICKET["relocation"]]] = True

        self.ticket_count += n
        self.out["tickets"].append(
            {
                "customer": pop.index[customer],
                "number": ticket_number,
                "opened_at": opened,
                "closed_at": closed,
                "ticket_type": np.array(TICKET_TYPES)[kind],
                "channel": np.array(TICKET_CHANNELS)[channel],
                "first_contact_resolved": fcr,
                "is_repeat": is_repeat,
                "sentiment": sentiment,
            }
        )

    # --- state, for the months after the history --------------------------------------------
    def export_state(self) -> dict[str, np.ndarray]:
        """Everything the next month starts from, as plain arrays (saved with np.savez)."""
        state = {name: np.asarray(getattr(self, name)) for name in _STATE_ARRAYS}
        state["reason"] = self.reason.astype(str)
        parts = self.open_tickets or [(np.empty(0, np.int64),) * 3]
        for k, name in enumerate(("open_customer", "open_closed", "open_number")):
            state[name] = np.concatenate([np.asarray(p[k], dtype=np.int64) for p in parts])
        state["ticket_count"] = np.array(self.ticket_count)
        state["price_rise_month"] = np.array(self.price_rise_month)
        for f in fields(Population):
            state[f"pop_{f.name}"] = np.asarray(getattr(self.pop, f.name))
        return state

    @classmethod
    def restore(
        cls,
        state: dict[str, np.ndarray],
        grid: MonthGrid,
        net: Network,
        promotions: np.ndarray,
        drivers: ChurnDrivers,
        rng: np.random.Generator,
    ) -> _BlockSimulation:
        pop = Population(**{f.name: state[f"pop_{f.name}"] for f in fields(Population)})
        simulation = cls(pop, grid, net, promotions, drivers, rng)
        for name in _STATE_ARRAYS:
            setattr(simulation, name, state[name].copy())
        simulation.reason = state["reason"].astype(object)
        simulation.open_tickets = [
            (state["open_customer"], state["open_closed"], state["open_number"])
        ]
        simulation.ticket_count = int(state["ticket_count"])
        simulation.price_rise_month = int(state["price_rise_month"])
        return simulation

    # --- result -------------------------------------------------------------------------
    def tables(self) -> BlockTables:
        pop = self.pop
        churned = self.churn_at != NEVER
        customers = pd.DataFrame(
            {
                "customer": pop.index,
                "signup_at": pop.signup,
                "enterprise": pop.enterprise,
                "age": pop.age,
                "student": pop.student,
                "region": pop.region,
                "site": pop.site,
                "plan": pop.plan,
                "fee": pop.fee,
                "contract": pop.contract,
                "payment": pop.payment,
                "paperless": pop.paperless,
                "consent_sms": pop.consents[:, 0],
                "consent_app_push": pop.consents[:, 1],
                "consent_email": pop.consents[:, 2],
                "consent_phone": pop.consents[:, 3],
                "large_print": pop.large_print,
                "account_manager": pop.account_manager,
                "churn_at": self.churn_at,
                "term": self.term,
                "contact_averse": pop.contact_averse,
                "receptiveness": pop.receptiveness,
            }
        )
        churn = pd.DataFrame(
            {
                "customer": pop.index[churned],
                "churned_at": self.churn_at[churned],
                "reason": self.reason[churned],
            }
        )
        return BlockTables(
            customers=customers,
            usage=_concat(self.out["usage"]),
            tickets=_concat(self.out["tickets"]),
            packages=_concat(self.out["packages"]),
            campaigns=_concat(self.out["campaigns"]),
            churn=churn,
            hazard=_concat(self.out["hazard"]),
            treatment=_concat(self.out["treatment"]),
        )


def simulate_block(
    pop: Population,
    grid: MonthGrid,
    net: Network,
    promotions: np.ndarray,
    drivers: ChurnDrivers,
    rng: np.random.Generator,
    war: PriceWar | None = None,
) -> tuple[BlockTables, dict[str, np.ndarray]]:
    """Simulate every month of the history for one block of customers; also the state the
    following months continue from (`war`: a planted price war, none by default)."""
    simulation = _BlockSimulation(pop, grid, net, promotions, drivers, rng, war)
    for m in range(grid.count):
        simulation.month(m)
    return simulation.tables(), simulation.export_state()


def continue_block(
    state: dict[str, np.ndarray],
    grid: MonthGrid,
    net: Network,
    promotions: np.ndarray,
    drivers: ChurnDrivers,
    rng: np.random.Generator,
    engine: Assignments,
) -> tuple[BlockTables, dict[str, np.ndarray]]:
    """Simulate the grid's last month for a block saved by `simulate_block` (or an earlier
    continuation), with the engine's actions as the month's retention contacts."""
    simulation = _BlockSimulation.restore(state, grid, net, promotions, drivers, rng)
    simulation.month(grid.count - 1, engine)
    return simulation.tables(), simulation.export_state()


__all__ = ["NEVER", "Assignments", "BlockTables", "continue_block", "simulate_block"]
