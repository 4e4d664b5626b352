"""The simulated operator's fixed world: regions, plans, the month grid and the seasons.

Times inside the simulator are int64 seconds since the Unix epoch (UTC); they become
timestamps only when tables are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from features.lifecycle.calendar import SPRING_FESTIVAL_DATES
from features.lifecycle.settings import PlantedShift

DAY = 86_400
HOUR = 3_600
MONTH_DAYS = 30.44


@dataclass(frozen=True)
class Region:
    name: str
    weight: float  # share of customers and sites
    coastal: bool  # exposed to the typhoon season


REGIONS: tuple[Region, ...] = (
    Region("metro_central", 0.22, False),
    Region("metro_west", 0.16, False),
    Region("harbour", 0.12, True),
    Region("coastal_south", 0.11, True),
    Region("coastal_east", 0.10, True),
    Region("river_valley", 0.12, False),
    Region("highlands", 0.08, False),
    Region("northern_plains", 0.09, False),
)


@dataclass(frozen=True)
class Plan:
    plan_id: str
    segment: str
    fee_mean: float
    fee_sd: float
    data_allowance_gb: float  # inf = unlimited
    typical_data_gb: float  # monthly use of a customer with average appetite


PLANS: tuple[Plan, ...] = (
    Plan("basic_s", "consumer", 21.0, 2.5, 2.0, 1.6),
    Plan("standard_m", "consumer", 48.0, 5.0, 10.0, 7.0),
    Plan("unlimited_l", "consumer", 79.0, 7.0, np.inf, 22.0),
    Plan("fibre_combo", "consumer", 99.0, 8.0, 30.0, 15.0),
    Plan("business_flex", "enterprise", 72.0, 8.0, 20.0, 12.0),
    Plan("business_pro", "enterprise", 108.0, 10.0, 60.0, 25.0),
)

PACKAGE_PRICES = {
    "campus_data_pack": 15.0,
    "roaming_pack": 25.0,
    "daily_pass": 3.0,
    "family_upgrade": 12.0,
}

# Spring Festival (lunar new year): roaming and travel peak in the two weeks before.
SPRING_FESTIVAL = np.array(SPRING_FESTIVAL_DATES, dtype="datetime64[s]").astype(np.int64)
TERM_START_MONTHS = (2, 9)  # school terms start in February/March and September
TYPHOON_MONTHS = (7, 8, 9, 10)


@dataclass(frozen=True)
class MonthGrid:
    """The simulated calendar months: `starts` has one more entry than there are months."""

    starts: np.ndarray  # int64 seconds, month boundaries
    calendar_month: np.ndarray  # 1..12 for each simulated month
    as_of: int  # export instant (seconds); nothing after it is written

    @property
    def count(self) -> int:
        return len(self.starts) - 1

    @property
    def history_start(self) -> int:
        return int(self.starts[0])

    @classmethod
    def ending_at(cls, as_of: datetime, months: int) -> MonthGrid:
        as_of_s = int(as_of.timestamp())
        last_month = np.datetime64(as_of_s - 1, "s").astype("datetime64[M]")
        months_m = last_month - np.arange(months - 1, -2, -1)  # months+1 boundaries
        starts = months_m.astype("datetime64[s]").astype(np.int64)
        calendar_month = (months_m[:-1].astype(np.int64) % 12) + 1
        return cls(starts=starts, calendar_month=calendar_month, as_of=as_of_s)

    def month_of(self, seconds: np.ndarray) -> np.ndarray:
        """Index of the simulated month containing each instant (-1 before the history)."""
        return np.searchsorted(self.starts, seconds, side="right") - 1

    def spring_festival_in(self, month: int) -> int | None:
        """Seconds of the Spring Festival if it falls in simulated month `month`."""
        inside = (self.starts[month] <= SPRING_FESTIVAL) & (
            self.starts[month + 1] > SPRING_FESTIVAL
        )
        return int(SPRING_FESTIVAL[inside][0]) if inside.any() else None

    def travel_season(self, month: int) -> float:
        """Multiplier of travel (roaming) demand in a month."""
        factor = {7: 2.6, 8: 3.2, 12: 1.6}.get(int(self.calendar_month[month]), 1.0)
        festival = self.spring_festival_in(month)
        next_festival = self.spring_festival_in(month + 1) if month + 1 < self.count else None
        if festival is not None:
            factor = max(factor, 5.0)
        elif next_festival is not None and next_festival - self.starts[month + 1] < 10 * DAY:
            factor = max(factor, 3.5)  # an early-February festival: travel starts in January
        return factor


def competitor_promotions(grid: MonthGrid, rng: np.random.Generator) -> np.ndarray:
    """[region, month] flags of a rival's aggressive port-in promotion.

    About one campaign every eight months, lasting one to two months, in two to four
    regions at once: an unobserved driver that a model can only catch indirectly.
    """
    flags = np.zeros((len(REGIONS), grid.count), dtype=bool)
    n_promotions = max(1, rng.poisson(grid.count / 8))
    for _ in range(n_promotions):
        start = int(rng.integers(0, grid.count))
        length = int(rng.integers(1, 3))
        regions = rng.choice(len(REGIONS), size=int(rng.integers(2, 5)), replace=False)
        flags[np.ix_(regions, np.arange(start, min(start + length, grid.count)))] = True
    return flags


@dataclass(frozen=True)
class PriceWar:
    """A planted price war (`PlantedShift`) on the month grid."""

    flags: np.ndarray  # [region, month]: the war runs there then
    churn_logit: float
    enquiry_rate: float
    data_usage_factor: float

    def on(self, region: np.ndarray, m: int) -> np.ndarray:
        return self.flags[region, m]


def price_war(shift: PlantedShift, grid: MonthGrid) -> PriceWar:
    """Where and when the planted price war runs; an unknown region name is an error."""
    names = [r.name for r in REGIONS]
    regions = names if shift.regions is None else shift.regions
    unknown = sorted(set(regions) - set(names))
    if unknown:
        raise ValueError(f"shift.regions: unknown region(s) {unknown}; expected some of {names}")
    first = np.datetime64(shift.start, "M").astype("datetime64[s]").astype(np.int64)
    flags = np.zeros((len(REGIONS), grid.count), dtype=bool)
    flags[[names.index(r) for r in regions]] = grid.starts[:-1] >= first
    return PriceWar(flags, shift.churn_logit, shift.enquiry_rate, shift.data_usage_factor)
