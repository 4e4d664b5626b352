"""Cell sites, their daily quality and outages clustered in time and space.

Outages come from five causes with their own rhythm: typhoons hit many coastal sites at
once in July-October; fibre cuts take down a site and its nearest neighbours; power
failures peak in the summer heat; equipment faults and night-time maintenance are
single-site and short. Outage hours degrade the daily drop rate of the affected sites
and, downstream, drive complaint spikes and churn among the customers homed there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.lifecycle.simulator.world import DAY, HOUR, REGIONS, TYPHOON_MONTHS, MonthGrid

_SEVERITY_BY_HOURS = ((2.0, "minor"), (24.0, "major"), (np.inf, "critical"))


@dataclass(frozen=True)
class Network:
    sites: pd.DataFrame  # cell_site_id, region, x_km, y_km
    site_region: np.ndarray  # region index per site
    quality_daily: pd.DataFrame  # cell_quality_daily rows
    events: pd.DataFrame  # network_events rows (ended_at may lie after as_of)
    outage_hours: np.ndarray  # [site, month] hours of outage
    drop_rate: np.ndarray  # [site, month] mean daily drop rate
    outage_anchor: np.ndarray  # [site, month] start (s) of the month's longest outage, -1 if none
    # what the months after the history continue from (`retain data advance`)
    base_load: np.ndarray  # [site, 1]
    base_drop: np.ndarray  # [site, 1]
    ageing_factor: np.ndarray  # [site] drop-rate multiplier of a degraded site at the end
    ageing_days_left: np.ndarray  # [site] days the degradation still lasts

    @property
    def n_sites(self) -> int:
        return len(self.sites)


def site_count(customers: int) -> int:
    """About 150 customers per site, at least three sites per region."""
    return int(np.clip(round(customers / 150), 3 * len(REGIONS), 10_000))


def _place_sites(n_sites: int, rng: np.random.Generator) -> pd.DataFrame:
    weights = np.array([r.weight for r in REGIONS])
    counts = np.maximum(3, np.round(weights / weights.sum() * n_sites)).astype(int)
    counts[0] += n_sites - counts.sum()  # exact total, remainder to the largest region
    region = np.repeat(np.arange(len(REGIONS)), counts)
    centre = np.stack([np.arange(len(REGIONS)) % 4 * 60.0, np.arange(len(REGIONS)) // 4 * 60.0], 1)
    xy = centre[region] + rng.normal(0, 9.0, size=(n_sites, 2))
    return pd.DataFrame(
        {
            "cell_site_id": [f"S{i:05d}" for i in range(n_sites)],
            "region": [REGIONS[r].name for r in region],
            "x_km": xy[:, 0].round(2),
            "y_km": xy[:, 1].round(2),
            "_region_idx": region,
        }
    )


def _nearest_neighbours(sites: pd.DataFrame, k: int) -> np.ndarray:
    """[site, k] indices of the k nearest other sites in the same region."""
    neighbours = np.zeros((len(sites), k), dtype=np.int64)
    xy = sites[["x_km", "y_km"]].to_numpy()
    for region in np.unique(sites["_region_idx"]):
        members = np.flatnonzero(sites["_region_idx"].to_numpy() == region)
        d = np.linalg.norm(xy[members, None, :] - xy[None, members, :], axis=2)
        order = np.argsort(d, axis=1)[:, 1 : k + 1]
        if order.shape[1] < k:  # tiny region: repeat the nearest
            order = np.pad(order, ((0, 0), (0, k - order.shape[1])), mode="edge")
        neighbours[members] = members[order]
    return neighbours


def _random_times(
    grid: MonthGrid, count: int, month_weight: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """`count` instants over the history, months weighted by `month_weight` (by calendar month)."""
    weights = month_weight[grid.calendar_month - 1] * np.diff(grid.starts)
    if count == 0 or weights.sum() == 0:  # e.g. a history without a typhoon month
        return np.empty(0, dtype=np.int64)
    month = rng.choice(grid.count, size=count, p=weights / weights.sum())
    return grid.starts[month] + (rng.random(count) * np.diff(grid.starts)[month]).astype(np.int64)


def _events(sites: pd.DataFrame, grid: MonthGrid, rng: np.random.Generator) -> pd.DataFrame:
    n_sites, months = len(sites), grid.count
    flat = np.ones(12)
    rows: list[pd.DataFrame] = []

    def add(
        cause: str, site: np.ndarray, start: np.ndarray, hours: np.ndarray, event: np.ndarray
    ) -> None:
        rows.append(
            pd.DataFrame(
                {"event": event, "site": site, "start": start, "hours": hours, "cause": cause}
            )
        )

    next_event = 0

    def new_ids(count: int) -> np.ndarray:
        nonlocal next_event
        ids = np.arange(next_event, next_event + count)
        next_event += count
        return ids

    # Typhoons: a few landfalls a season per coastal region, most of its sites hit.
    coastal = [i for i, r in enumerate(REGIONS) if r.coastal]
    region_of_site = sites["_region_idx"].to_numpy()
    season = np.array([1.0 if m in TYPHOON_MONTHS else 0.0 for m in range(1, 13)])
    for region in coastal:
        landfalls = rng.poisson(0.35 * season[grid.calendar_month - 1].sum())
        for landfall in _random_times(grid, landfalls, season, rng):
            members = np.flatnonzero(region_of_site == region)
            hit = members[rng.random(len(members)) < rng.uniform(0.35, 0.8)]
            start = landfall + rng.integers(0, 8 * HOUR, size=len(hit))
            hours = np.minimum(rng.lognormal(np.log(14), 0.7, size=len(hit)), 96)
            add("typhoon", hit, start, hours, np.full(len(hit), new_ids(1)[0]))

    # Fibre cuts: the cut site and one to four nearest neighbours go down together.
    neighbours = _nearest_neighbours(sites, 4)
    construction = np.array([0.6, 0.6, 1.0, 1.2, 1.3, 1.3, 1.2, 1.2, 1.3, 1.2, 1.0, 0.7])
    cuts = rng.poisson(0.010 * n_sites * months)
    origin = rng.integers(0, n_sites, size=cuts)
    start = _random_times(grid, cuts, construction, rng)
    spread = rng.integers(0, 5, size=cuts)
    hours = np.minimum(rng.lognormal(np.log(7), 0.6, size=cuts), 60)
    ids = new_ids(cuts)
    for extra in range(5):
        take = spread >= extra
        site = origin[take] if extra == 0 else neighbours[origin[take], extra - 1]
        lag = 0 if extra == 0 else rng.integers(0, 30 * 60, size=take.sum())
        add("fibre_cut", site, start[take] + lag, hours[take], ids[take])

    # Single-site causes with their own seasonality and typical durations (hours).
    summer_heat = np.array([0.7, 0.7, 0.8, 0.9, 1.0, 1.4, 1.9, 1.9, 1.2, 0.9, 0.8, 0.8])
    for cause, rate, pattern, median, sigma in (
        ("power_failure", 0.006, summer_heat, 3.0, 0.7),
        ("equipment_fault", 0.015, flat, 1.5, 0.8),
        ("maintenance", 0.02, flat, 1.5, 0.3),
    ):
        count = rng.poisson(rate * n_sites * months)
        start = _random_times(grid, count, pattern, rng)
        if cause == "maintenance":  # planned at night, 01:00-04:00
            start = start - start % DAY + rng.integers(1 * HOUR, 4 * HOUR, size=count)
        add(
            cause,
            rng.integers(0, n_sites, size=count),
            start,
            np.minimum(rng.lognormal(np.log(median), sigma, size=count), 48),
            new_ids(count),
        )

    events = pd.concat(rows, ignore_index=True)
    events = events[events["start"] < grid.as_of].reset_index(drop=True)
    events["end"] = events["start"] + (events["hours"] * HOUR).astype(np.int64)
    events["severity"] = pd.cut(
        events["hours"],
        [0, *[h for h, _ in _SEVERITY_BY_HOURS]],
        labels=[s for _, s in _SEVERITY_BY_HOURS],
    ).astype(str)
    events.loc[events["cause"] == "maintenance", "severity"] = "minor"
    # a site hit twice by one event (two typhoon bands) keeps its longest outage
    return (
        events.sort_values("hours")
        .drop_duplicates(["event", "site"], keep="last")
        .sort_values(["start", "site"], ignore_index=True)
    )


def _outage_hours_daily(
    events: pd.DataFrame, n_sites: int, day0: int, n_days: int, as_of: int
) -> np.ndarray:
    """[site, day] hours of outage, each event split across the days it spans."""
    hours = np.zeros((n_sites, n_days), dtype=np.float64)
    start = events["start"].to_numpy()
    end = np.minimum(events["end"].to_numpy(), as_of)
    site = events["site"].to_numpy()
    first_day = (start - day0) // DAY
    for offset in range(int(((end - start).max(initial=0)) // DAY) + 2):
        day = first_day + offset
        lo = np.maximum(start, day0 + day * DAY)
        hi = np.minimum(end, day0 + (day + 1) * DAY)
        ok = (hi > lo) & (day >= 0) & (day < n_days)
        np.add.at(hours, (site[ok], day[ok]), (hi[ok] - lo[ok]) / HOUR)
    return hours


def simulate_network(customers: int, grid: MonthGrid, rng: np.random.Generator) -> Network:
    """The whole network for the history: sites, outages, daily quality, monthly summaries."""
    sites = _place_sites(site_count(customers), rng)
    n_sites = len(sites)
    events = _events(sites, grid, rng)

    day0 = grid.history_start
    n_days = int((grid.as_of - day0) // DAY)  # complete days only: a day is reported once over
    outage = _outage_hours_daily(events, n_sites, day0, n_days, grid.as_of)

    days = day0 + np.arange(n_days) * DAY
    years = (days - day0) / (365.25 * DAY)
    weekday = ((days // DAY) + 3) % 7  # 0 = Monday
    weekly = np.where(weekday >= 5, 0.9, 1.0)
    base_load = rng.uniform(0.35, 0.85, size=(n_sites, 1))
    load = base_load * (1 + 0.06 * years) * weekly * rng.lognormal(0, 0.06, size=(n_sites, n_days))
    base_drop = rng.lognormal(np.log(0.007), 0.35, size=(n_sites, 1))
    # ageing hardware: a tenth of the sites degrade for a few months before repair
    ageing = np.ones((n_sites, n_days))
    ageing_days_left = np.zeros(n_sites, dtype=np.int64)
    for site in np.flatnonzero(rng.random(n_sites) < 0.1):
        begin = int(rng.integers(0, n_days))
        length = int(rng.integers(60, 200))
        ageing[site, begin : begin + length] = rng.uniform(1.8, 3.2)
        ageing_days_left[site] = max(begin + length - n_days, 0)
    drop = (
        base_drop * ageing * (1 + 2.5 * np.maximum(load - 0.85, 0))
        + 0.25 * np.minimum(outage, 24) / 24
        + np.abs(rng.normal(0, 0.0008, size=(n_sites, n_days)))
    )
    drop = np.clip(drop, 0, 1)

    quality_daily = pd.DataFrame(
        {
            "site": np.repeat(np.arange(n_sites), n_days),
            "day": np.tile(days, n_sites),
            "drop_rate": drop.ravel().round(5),
            "load": load.ravel().round(4),
        }
    )

    month_of_day = grid.month_of(days)
    outage_hours = np.zeros((n_sites, grid.count))
    drop_rate = np.zeros((n_sites, grid.count))
    for m in range(grid.count):
        in_month = month_of_day == m
        if in_month.any():
            outage_hours[:, m] = outage[:, in_month].sum(axis=1)
            drop_rate[:, m] = drop[:, in_month].mean(axis=1)

    anchor = np.full((n_sites, grid.count), -1, dtype=np.int64)
    longest = events.assign(month=grid.month_of(events["start"].to_numpy()))
    longest = longest.sort_values("hours").drop_duplicates(["site", "month"], keep="last")
    anchor[longest["site"].to_numpy(), longest["month"].to_numpy()] = longest["start"].to_numpy()

    return Network(
        sites=sites,
        site_region=sites["_region_idx"].to_numpy(),
        quality_daily=quality_daily,
        events=events,
        outage_hours=outage_hours,
        drop_rate=drop_rate,
        outage_anchor=anchor,
        base_load=base_load,
        base_drop=base_drop,
        ageing_factor=ageing[:, -1] if n_days else np.ones(n_sites),
        ageing_days_left=ageing_days_left,
    )


@dataclass(frozen=True)
class NetworkMonth:
    """One more month of the network, continuing from the state at its start."""

    events: pd.DataFrame  # events starting in the month (ids from `first_event`), true ends
    quality_daily: pd.DataFrame
    outage_hours: np.ndarray  # [site]
    drop_rate: np.ndarray  # [site]
    outage_anchor: np.ndarray  # [site]
    ageing_factor: np.ndarray
    ageing_days_left: np.ndarray


def simulate_month(
    sites: pd.DataFrame,
    month: MonthGrid,
    history_start: int,
    base_load: np.ndarray,
    base_drop: np.ndarray,
    ageing_factor: np.ndarray,
    ageing_days_left: np.ndarray,
    open_events: pd.DataFrame,
    first_event: int,
    rng: np.random.Generator,
) -> NetworkMonth:
    """The network of the one-month grid `month`, by the same processes as the history:
    new outages of every cause, the outages still running at its start (`open_events`,
    true ends), degraded sites continuing or newly degrading, and the daily quality."""
    n_sites = len(sites)
    start, end = int(month.starts[0]), int(month.starts[1])
    new = _events(sites, month, rng)
    new["event"] = new["event"] + first_event
    running = pd.concat([open_events, new], ignore_index=True)
    n_days = (end - start) // DAY
    outage = _outage_hours_daily(running, n_sites, start, n_days, end)
    days = start + np.arange(n_days) * DAY
    years = (days - history_start) / (365.25 * DAY)
    weekday = ((days // DAY) + 3) % 7
    weekly = np.where(weekday >= 5, 0.9, 1.0)
    load = base_load * (1 + 0.06 * years) * weekly * rng.lognormal(0, 0.06, (n_sites, n_days))
    # a degradation runs on; about 10 % of sites degrade once in two years
    factor = np.where(ageing_days_left > 0, ageing_factor, 1.0)
    starting = (ageing_days_left == 0) & (rng.random(n_sites) < 0.1 * n_days / 730)
    factor = np.where(starting, rng.uniform(1.8, 3.2, n_sites), factor)
    left = np.where(starting, rng.integers(60, 200, n_sites), ageing_days_left)
    ageing = np.where(np.arange(n_days)[None, :] < left[:, None], factor[:, None], 1.0)
    drop = np.clip(
        base_drop * ageing * (1 + 2.5 * np.maximum(load - 0.85, 0))
        + 0.25 * np.minimum(outage, 24) / 24
        + np.abs(rng.normal(0, 0.0008, size=(n_sites, n_days))),
        0,
        1,
    )
    quality = pd.DataFrame(
        {
            "site": np.repeat(np.arange(n_sites), n_days),
            "day": np.tile(days, n_sites),
            "drop_rate": drop.ravel().round(5),
            "load": load.ravel().round(4),
        }
    )
    anchor = np.full(n_sites, -1, dtype=np.int64)
    longest = new.sort_values("hours").drop_duplicates("site", keep="last")
    anchor[longest["site"].to_numpy()] = longest["start"].to_numpy()
    still = np.maximum(left - n_days, 0)
    return NetworkMonth(
        events=new,
        quality_daily=quality,
        outage_hours=outage.sum(axis=1),
        drop_rate=drop.mean(axis=1),
        outage_anchor=anchor,
        ageing_factor=np.where(still > 0, factor, 1.0),
        ageing_days_left=still,
    )
