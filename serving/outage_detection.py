"""Automatic fault detection: cell sites whose daily drop rate leaves their own normal.

A site's normal is the median of its drop rate over a trailing window that excludes the
day itself; its spread is the median absolute deviation (MAD) over the same window,
floored so that a site with a very steady drop rate does not alarm on noise. A site-day
is a suspected outage when its drop rate stands at least `z_threshold` robust standard
deviations (1.4826 MAD) and at least `min_excess` above the higher of that normal and the
median of the last few days. The second reference keeps a lasting step (hardware that
degrades for months) from alarming every day until the long median catches up: it
alarms on its first days only, while an outage is a one- or two-day spike.

Load is the second signal: a site loaded beyond `load_threshold` and beyond its own
normal load drops calls from congestion, not from a fault, so such a departure is marked
`congested` and its reason says so (it is still reported: calls are dropped either way).

Everything is computed for all sites and days at once (`score_site_days`, for the daily
job and for backtests alike); `score_site_days_reference` is the same rule written site
by site and day by day, kept to check the vectorised one against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from retain.base.settings import StageSettings
from serving.home_cells import HomeCells

QUALITY_COLUMNS = ("cell_site_id", "day", "drop_rate", "load")
EVENT_COLUMNS = ("cell_site_id", "started_at", "ended_at")
MAD_TO_SD = 1.4826  # a normal distribution's standard deviation is 1.4826 MAD
SEVERE = ("major", "critical")
_SITE_BLOCK = 256  # sites per block of the sliding windows: bounds memory at any network size


class OutageDataError(ValueError):
    """A quality or event table lacks what detection needs."""


class DetectionSettings(BaseModel):
    """When a site's daily drop rate counts as a suspected outage."""

    model_config = {"extra": "forbid"}

    window_days: int = Field(
        28, ge=7, description="The trailing window (days before the day itself) of a site's normal."
    )
    min_history_days: int = Field(
        14, ge=3, description="Days with data in the window needed before a site is judged."
    )
    recent_days: int = Field(
        3, ge=1, description="The departure must also stand above the median of these last "
        "days, so a lasting step alarms on its first days only.",
    )  # fmt: skip
    z_threshold: float = Field(
        5.0, gt=0, description="Robust z-score (excess over 1.4826 MAD) from which a site alarms."
    )
    min_excess: float = Field(
        0.01, ge=0, description="The drop rate must also exceed the normal by this much "
        "(absolute): the 28-day MAD of a steady site is tiny.",
    )  # fmt: skip
    mad_floor: float = Field(
        0.0005, gt=0, description="The drop rate's MAD is taken as at least this."
    )
    load_threshold: float = Field(
        0.85, gt=0, description="Load (share of capacity) from which congestion drops calls."
    )
    load_mad_floor: float = Field(
        0.01, gt=0, description="The load's MAD is taken as at least this."
    )
    major_excess: float = Field(
        0.02, gt=0, description="Severity guess: an excess from here is a major outage (a "
        "site down about 2 hours of the day drops about 2 % more calls).",
    )  # fmt: skip
    critical_excess: float = Field(
        0.2, gt=0, description="Severity guess: an excess from here is critical (down about "
        "the whole day).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _consistent(self) -> DetectionSettings:
        if self.min_history_days > self.window_days:
            raise ValueError(
                f"min_history_days ({self.min_history_days}) exceeds window_days "
                f"({self.window_days})"
            )
        if self.recent_days >= self.window_days:
            raise ValueError(
                f"recent_days ({self.recent_days}) must be below window_days ({self.window_days})"
            )
        if self.critical_excess <= self.major_excess:
            raise ValueError(
                f"critical_excess ({self.critical_excess}) must exceed major_excess "
                f"({self.major_excess})"
            )
        return self


class OutageSettings(StageSettings):
    """Outage handling, loaded from configs/outages.yaml (env: RETAIN_OUTAGES_<FIELD>)."""

    config_file: ClassVar[str] = "outages.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_OUTAGES_")

    detection: DetectionSettings = Field(default_factory=DetectionSettings)


@dataclass(frozen=True)
class SuspectedOutage:
    """One site-day whose drop rate departs from the site's normal."""

    cell_site_id: str
    day: date
    drop_rate: float
    baseline: float  # the higher of the window median and the recent median
    excess: float  # drop_rate - baseline
    z: float  # excess in robust standard deviations
    load: float
    load_z: float
    congested: bool  # load beyond the threshold and its own normal: congestion may explain it
    severity: str  # a guess from the excess: minor, major, critical
    reason: str


# --- input ---------------------------------------------------------------------------------


def _utc_days(values: pd.Series) -> pd.Series:
    """Instants or days as naive UTC midnights (tz-aware values are converted to UTC)."""
    stamps = pd.to_datetime(values)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.dt.normalize()


def _require(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise OutageDataError(
            f"{table}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )


def prepare_quality(quality: pd.DataFrame) -> pd.DataFrame:
    """`cell_quality_daily` checked and normalised: one row per site and UTC day, sorted;
    rows without a drop rate are dropped (a day not reported)."""
    _require(quality, QUALITY_COLUMNS, "cell_quality_daily")
    out = quality.loc[:, list(QUALITY_COLUMNS)].copy()
    out["cell_site_id"] = out["cell_site_id"].astype(str)
    try:
        out["day"] = _utc_days(out["day"])
    except (ValueError, TypeError) as error:
        raise OutageDataError(f"cell_quality_daily: column day is not a date: {error}") from error
    for column in ("drop_rate", "load"):
        if not pd.api.types.is_numeric_dtype(out[column]):
            raise OutageDataError(f"cell_quality_daily: column {column} must be numeric")
        out[column] = out[column].astype(float)
    duplicated = out.duplicated(["cell_site_id", "day"])
    if duplicated.any():
        first = out[duplicated].iloc[0]
        raise OutageDataError(
            f"cell_quality_daily: {int(duplicated.sum())} duplicate (cell_site_id, day) rows, "
            f"e.g. {first['cell_site_id']} on {first['day']:%Y-%m-%d}; expected one row per "
            "site and day"
        )
    out = out[out["drop_rate"].notna()]
    return out.sort_values(["cell_site_id", "day"], ignore_index=True)


def prepare_events(events: pd.DataFrame, columns: Sequence[str] = EVENT_COLUMNS) -> pd.DataFrame:
    """`network_events` checked (`columns` present): site, start and end (UTC, naive; no
    end: still open) and the first and last UTC day each covers."""
    _require(events, columns, "network_events")
    out = events.copy()
    out["cell_site_id"] = out["cell_site_id"].astype(str)
    for column in ("started_at", "ended_at"):
        stamps = pd.to_datetime(out[column])
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        out[column] = stamps
    if out["started_at"].isna().any():
        raise OutageDataError("network_events: started_at is missing on some rows")
    out["first_day"] = out["started_at"].dt.normalize()
    # an end at midnight exactly does not reach into that day
    last = (out["ended_at"] - pd.Timedelta(microseconds=1)).dt.normalize()
    out["last_day"] = last.fillna(pd.Timestamp.max.normalize()).clip(lower=out["first_day"])
    return out


# --- scoring (vectorised) ------------------------------------------------------------------


def _nanmedian(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over the last axis ignoring NaN, and the count of values: np.nanmedian's
    result (NaN where there is none), from one sort rather than its masked arrays."""
    ordered = np.sort(values, axis=-1)  # NaN sorts last
    counts = np.sum(~np.isnan(values), axis=-1)
    lo = np.maximum(counts - 1, 0) // 2
    hi = counts // 2 - (counts == 0)
    low = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, np.maximum(hi, 0)[..., None], axis=-1)[..., 0]
    return np.where(counts > 0, (low + high) / 2, np.nan), counts


def _rolling_median_mad(
    wide: np.ndarray, window: int, min_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the `window` rows before each row ([day, site]), NaN-aware; NaN
    where fewer than `min_count` values are there."""
    days, sites = wide.shape
    median = np.full((days, sites), np.nan)
    mad = np.full((days, sites), np.nan)
    padded = np.vstack([np.full((window, sites), np.nan), wide[:-1]]) if days else wide
    for lo in range(0, sites, _SITE_BLOCK):
        block = padded[:, lo : lo + _SITE_BLOCK]
        windows = np.lib.stride_tricks.sliding_window_view(block, window, axis=0)[:days]
        med, counts = _nanmedian(windows)
        dev, _ = _nanmedian(np.abs(windows - med[..., None]))
        enough = counts >= min_count
        median[:, lo : lo + _SITE_BLOCK] = np.where(enough, med, np.nan)
        mad[:, lo : lo + _SITE_BLOCK] = np.where(enough, dev, np.nan)
    return median, mad


def _severity(excess: np.ndarray, settings: DetectionSettings) -> np.ndarray:
    return np.where(
        excess >= settings.critical_excess,
        "critical",
        np.where(excess >= settings.major_excess, "major", "minor"),
    )


def _finish(scored: pd.DataFrame, settings: DetectionSettings) -> pd.DataFrame:
    """The verdict columns from the baselines: shared by both implementations."""
    normal = scored[["window_median", "recent_median"]].max(axis=1, skipna=True)
    normal = normal.where(scored["window_median"].notna())
    scale = np.maximum(MAD_TO_SD * scored["window_mad"], settings.mad_floor)
    load_scale = np.maximum(MAD_TO_SD * scored["load_mad"], settings.load_mad_floor)
    scored["baseline"] = normal
    scored["excess"] = scored["drop_rate"] - normal
    scored["z"] = scored["excess"] / scale
    scored["load_z"] = (scored["load"] - scored["load_median"]) / load_scale
    scored["flagged"] = (scored["z"] >= settings.z_threshold) & (
        scored["excess"] >= settings.min_excess
    )
    scored["congested"] = (scored["load"] >= settings.load_threshold) & (
        scored["load_z"] >= settings.z_threshold
    )
    scored["severity"] = _severity(scored["excess"].fillna(0).to_numpy(), settings)
    return scored


SCORE_COLUMNS = (
    "cell_site_id", "day", "drop_rate", "load", "window_median", "window_mad", "recent_median",
    "load_median", "load_mad", "baseline", "excess", "z", "load_z", "flagged", "congested",
    "severity",
)  # fmt: skip


def score_site_days(quality: pd.DataFrame, settings: DetectionSettings) -> pd.DataFrame:
    """Every site-day of `cell_quality_daily` scored against the site's own trailing normal.

    Returns one row per site and day present, sorted by site and day, with the window
    median and MAD of drop rate and load, the recent median, `baseline` (the reference the
    excess is measured from), `excess`, `z`, `load_z`, `flagged`, `congested` and a
    `severity` guess. A site-day with too little history has a NaN baseline and is not
    flagged. Days are naive UTC midnights.
    """
    rows = prepare_quality(quality)
    if rows.empty:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    days = pd.date_range(rows["day"].min(), rows["day"].max(), freq="D")
    sites = np.sort(rows["cell_site_id"].unique())
    wide = {
        column: rows.pivot(index="day", columns="cell_site_id", values=column)
        .reindex(index=days, columns=sites)
        .to_numpy(dtype=float)
        for column in ("drop_rate", "load")
    }
    w, h = settings.window_days, settings.min_history_days
    drop_median, drop_mad = _rolling_median_mad(wide["drop_rate"], w, h)
    load_median, load_mad = _rolling_median_mad(wide["load"], w, h)
    recent, _ = _rolling_median_mad(wide["drop_rate"], settings.recent_days, 1)
    grid = pd.DataFrame(
        {
            "cell_site_id": np.tile(sites, len(days)),
            "day": np.repeat(days.to_numpy(), len(sites)),
            "window_median": drop_median.ravel(),
            "window_mad": drop_mad.ravel(),
            "recent_median": recent.ravel(),
            "load_median": load_median.ravel(),
            "load_mad": load_mad.ravel(),
        }
    )
    scored = rows.merge(grid, on=["cell_site_id", "day"], how="left")
    return _finish(scored, settings).loc[:, list(SCORE_COLUMNS)]


def score_site_days_reference(quality: pd.DataFrame, settings: DetectionSettings) -> pd.DataFrame:
    """`score_site_days` written plainly, site by site and day by day (slow; for tests)."""
    rows = prepare_quality(quality)
    if rows.empty:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    one_day = pd.Timedelta(days=1)
    stats: list[dict[str, float]] = []
    for _, site in rows.groupby("cell_site_id", sort=True):
        for day in site["day"]:
            window = site[
                (site["day"] >= day - settings.window_days * one_day) & (site["day"] < day)
            ]
            recent = site[
                (site["day"] >= day - settings.recent_days * one_day) & (site["day"] < day)
            ]
            row = {"window_median": np.nan, "window_mad": np.nan, "load_median": np.nan}
            row |= {"load_mad": np.nan, "recent_median": np.nan}
            for name, column in (("window", "drop_rate"), ("load", "load")):
                values = window[column].dropna().to_numpy()
                if len(values) >= settings.min_history_days:
                    median = float(np.median(values))
                    row[f"{name}_median"] = median
                    row[f"{name}_mad"] = float(np.median(np.abs(values - median)))
            if len(recent):
                row["recent_median"] = float(np.median(recent["drop_rate"]))
            stats.append(row)
    scored = pd.concat([rows, pd.DataFrame(stats)], axis=1)
    return _finish(scored, settings).loc[:, list(SCORE_COLUMNS)]


# --- the daily use -------------------------------------------------------------------------


def _reason(row: Mapping[str, object], settings: DetectionSettings) -> str:
    text = (
        f"drop rate {row['drop_rate']:.2%} against a normal of {row['baseline']:.2%} "
        f"(+{row['excess']:.2%}, {row['z']:.1f} robust SDs over the last "
        f"{settings.window_days} days)"
    )
    if row["congested"]:
        text += (
            f"; load {row['load']:.0%} is above {settings.load_threshold:.0%} and "
            f"{row['load_z']:.1f} SDs over its normal: congestion may explain part of it"
        )
    return text


def suspected_outages(scored: pd.DataFrame, settings: DetectionSettings) -> list[SuspectedOutage]:
    """The flagged rows of a `score_site_days` frame as records, largest excess first."""
    flagged = scored[scored["flagged"]].sort_values(
        ["excess", "cell_site_id"], ascending=[False, True]
    )
    return [
        SuspectedOutage(
            cell_site_id=str(row["cell_site_id"]),
            day=pd.Timestamp(row["day"]).date(),
            drop_rate=float(row["drop_rate"]),
            baseline=float(row["baseline"]),
            excess=float(row["excess"]),
            z=float(row["z"]),
            load=float(row["load"]),
            load_z=float(row["load_z"]),
            congested=bool(row["congested"]),
            severity=str(row["severity"]),
            reason=_reason(row, settings),
        )
        for row in flagged.to_dict("records")
    ]


def _covered(site_days: pd.DataFrame, events: pd.DataFrame, margin_days: int = 0) -> pd.Series:
    """Whether each (cell_site_id, day) lies within an event of its site, widened by
    `margin_days` on both sides."""
    if events.empty or site_days.empty:
        return pd.Series(False, index=site_days.index)
    margin = pd.Timedelta(days=margin_days)
    pairs = (
        site_days[["cell_site_id", "day"]]
        .assign(row=np.arange(len(site_days)))
        .merge(events[["cell_site_id", "first_day", "last_day"]], on="cell_site_id")
    )
    inside = (pairs["day"] >= pairs["first_day"] - margin) & (
        pairs["day"] <= pairs["last_day"] + margin
    )
    covered = np.zeros(len(site_days), dtype=bool)
    covered[pairs.loc[inside, "row"].to_numpy()] = True
    return pd.Series(covered, index=site_days.index)


def detect_outages(
    quality: pd.DataFrame,
    day: date,
    settings: DetectionSettings,
    known_events: pd.DataFrame | None = None,
) -> list[SuspectedOutage]:
    """Sites whose drop rate on `day` (a UTC day) departs from their normal, largest first.

    Only `quality` rows up to `day` are read (the window before it and the day itself). A
    site with a reported event (`known_events`: cell_site_id, started_at, ended_at; no
    end: still open) covering `day` is left out: it is known already. A `day` without
    quality rows is an error (its data has not arrived), not a quiet day.
    """
    rows = prepare_quality(quality)
    target = pd.Timestamp(day.year, day.month, day.day)
    if not (rows["day"] == target).any():
        raise OutageDataError(f"cell_quality_daily: no rows for {target:%Y-%m-%d}")
    start = target - pd.Timedelta(days=settings.window_days)
    scored = score_site_days(rows[(rows["day"] >= start) & (rows["day"] <= target)], settings)
    today = scored[scored["day"] == target]
    if known_events is not None:
        today = today[~_covered(today, prepare_events(known_events))]
    return suspected_outages(today, settings)


def affected_customers(
    outages: Sequence[SuspectedOutage], home_cells: HomeCells
) -> dict[str, list[str]]:
    """The active customers homed on each suspected site (site -> sorted customer ids).

    The data contract defines a customer's `cell_site_id` as the home cell, the most-used
    one; no table says how usage spreads over other cells, so the customers who mostly use
    a site are exactly those homed on it, and those who pass through it are not known.
    """
    return {o.cell_site_id: home_cells.customers([o.cell_site_id]) for o in outages}


# --- backtest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeverityDetection:
    """How many outages (event x site) of one severity were found within a day of starting."""

    outages: int  # outages starting on a day the site could be judged (enough history)
    same_day: int
    next_day: int
    not_judged: int  # outages starting before the site had enough history

    @property
    def detected(self) -> int:
        return self.same_day + self.next_day

    @property
    def rate(self) -> float:
        return self.detected / self.outages if self.outages else float("nan")


@dataclass(frozen=True)
class BacktestReport:
    """Detection against the recorded outages of a history of daily quality."""

    by_severity: dict[str, SeverityDetection]
    quiet_site_days: int  # judged site-days with no event within a day
    false_alarms: int  # flagged quiet site-days

    @property
    def severe(self) -> SeverityDetection:
        """Major and critical outages together: the acceptance figure."""
        parts = [self.by_severity[s] for s in SEVERE if s in self.by_severity]
        return SeverityDetection(
            outages=sum(p.outages for p in parts),
            same_day=sum(p.same_day for p in parts),
            next_day=sum(p.next_day for p in parts),
            not_judged=sum(p.not_judged for p in parts),
        )

    @property
    def false_alarms_per_100_site_weeks(self) -> float:
        weeks = self.quiet_site_days / 7
        return 100 * self.false_alarms / weeks if weeks else float("nan")


def detection_backtest(
    quality: pd.DataFrame, events: pd.DataFrame, settings: DetectionSettings
) -> BacktestReport:
    """Score the whole history and compare with the recorded outages (`network_events`).

    An outage (one row: an event at one site) is detected when its site is flagged on the
    day it started or the next day. A false alarm is a flagged site-day with no event of
    that site within a day of it; the rate is per 100 quiet site-weeks (judged site-days
    with no event within a day, over 7). Outages starting before their site has
    `min_history_days` of data are counted apart (`not_judged`).
    """
    scored = score_site_days(quality, settings)
    known = prepare_events(events, (*EVENT_COLUMNS, "severity"))
    judged = scored[scored["baseline"].notna()]
    verdicts = judged.set_index(["cell_site_id", "day"])["flagged"]
    on = pd.MultiIndex.from_arrays([known["cell_site_id"], known["first_day"]])
    after = pd.MultiIndex.from_arrays(
        [known["cell_site_id"], known["first_day"] + pd.Timedelta(days=1)]
    )
    outcome = pd.DataFrame(
        {
            "severity": known["severity"].astype(str).to_numpy(),
            "judged": on.isin(verdicts.index),
            "same_day": verdicts.reindex(on, fill_value=False).to_numpy(dtype=bool),
            "next_day": verdicts.reindex(after, fill_value=False).to_numpy(dtype=bool),
        }
    )
    outcome["next_day"] &= ~outcome["same_day"]
    by_severity = {
        str(severity): SeverityDetection(
            outages=int(group["judged"].sum()),
            same_day=int((group["judged"] & group["same_day"]).sum()),
            next_day=int((group["judged"] & group["next_day"]).sum()),
            not_judged=int((~group["judged"]).sum()),
        )
        for severity, group in outcome.groupby("severity")
    }
    quiet = judged[~_covered(judged, known, margin_days=1)]
    return BacktestReport(
        by_severity=by_severity,
        quiet_site_days=len(quiet),
        false_alarms=int(quiet["flagged"].sum()),
    )
