"""Benchmark: automatic fault detection against the simulator's recorded outages.

Simulated worlds of several seeds and sizes (and any existing lifecycle folders named with
--folders, e.g. the demo world) are backtested with `serving.outage_detection`: the share
of major and critical outages flagged on their start day or the next, the minor ones
(informative), and false alarms per 100 site-weeks with no event within a day. Targets:
>= 80 % of major outages within a day, <= 1 false alarm per 100 site-weeks. --sweep adds
the pooled figures over a grid of thresholds around the configured ones.

    .venv/bin/python bench/outage_detection.py                           # 5 fresh worlds
    .venv/bin/python bench/outage_detection.py --folders data/lifecycle --sweep
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from retain.base.settings import load_settings
from serving.outage_detection import (
    BacktestReport,
    DetectionSettings,
    OutageSettings,
    detection_backtest,
)

WORLDS = ((1_000, 12, 3), (3_000, 24, 5), (5_000, 24, 11), (10_000, 18, 21), (50_000, 24, 42))


@dataclass(frozen=True)
class World:
    name: str
    quality: pd.DataFrame
    events: pd.DataFrame


def _read(name: str, folder: Path) -> World:
    return World(
        name,
        pd.read_parquet(folder / "cell_quality_daily.parquet"),
        pd.read_parquet(folder / "network_events.parquet"),
    )


def _simulate(customers: int, months: int, seed: int, root: Path) -> World:
    out = root / f"w{customers}_{months}_{seed}"
    generate(DataSettings(customers=customers, months=months, seed=seed, out_dir=out))
    return _read(f"{customers:,} x {months} mo, seed {seed}", out)


def _row(name: str, sites: int, report: BacktestReport, seconds: float) -> str:
    severe, minor = report.severe, report.by_severity.get("minor")
    minor_text = f"{minor.detected}/{minor.outages} ({minor.rate:.0%})" if minor else "-"
    return (
        f"| {name} | {sites} | {report.quiet_site_days / 7:,.0f} | "
        f"{severe.detected}/{severe.outages} ({severe.rate:.1%}) | "
        f"{severe.same_day} / {severe.next_day} | {severe.not_judged} | {minor_text} | "
        f"{report.false_alarms} ({report.false_alarms_per_100_site_weeks:.2f}) | {seconds:.2f} s |"
    )


def _pooled(reports: list[BacktestReport]) -> tuple[float, float]:
    found = sum(r.severe.detected for r in reports)
    outages = sum(r.severe.outages for r in reports)
    alarms = sum(r.false_alarms for r in reports)
    weeks = sum(r.quiet_site_days for r in reports) / 7
    return found / outages, 100 * alarms / weeks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=Path, nargs="*", default=[])
    parser.add_argument("--no-simulate", action="store_true", help="Only the --folders worlds.")
    parser.add_argument("--sweep", action="store_true", help="Pooled figures over a grid.")
    args = parser.parse_args()
    settings = load_settings(OutageSettings).detection
    with tempfile.TemporaryDirectory(prefix="retain-outages-") as tmp:
        worlds = [_read(str(folder), folder) for folder in args.folders]
        if not args.no_simulate:
            worlds += [_simulate(c, m, s, Path(tmp)) for c, m, s in WORLDS]
        print(
            "| world | sites | quiet site-weeks | major+critical within a day | same / next day "
            "| not judged | minor | false alarms (per 100 site-weeks) | backtest |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        reports = []
        for world in worlds:
            started = time.perf_counter()
            report = detection_backtest(world.quality, world.events, settings)
            seconds = time.perf_counter() - started
            reports.append(report)
            sites = world.quality["cell_site_id"].nunique()
            print(_row(world.name, sites, report, seconds), flush=True)
        rate, alarms = _pooled(reports)
        print(f"pooled: {rate:.1%} of major+critical within a day, {alarms:.2f} false alarms")
        if args.sweep:
            _sweep(worlds, settings)


def _sweep(worlds: list[World], base: DetectionSettings) -> None:
    print("\n| z threshold | min excess | recent days | major+critical | false alarms /100 sw |")
    print("|---|---|---|---|---|")
    for z in (3.0, 5.0, 8.0):
        for excess in (0.005, 0.01, 0.015):
            for recent in (1, 3):
                update = {"z_threshold": z, "min_excess": excess, "recent_days": recent}
                settings = base.model_copy(update=update)
                reports = [detection_backtest(w.quality, w.events, settings) for w in worlds]
                rate, alarms = _pooled(reports)
                print(f"| {z:g} | {excess:g} | {recent} | {rate:.1%} | {alarms:.2f} |")
    no_recent = base.model_copy(update={"recent_days": base.window_days - 1})
    reports = [detection_backtest(w.quality, w.events, no_recent) for w in worlds]
    rate, alarms = _pooled(reports)
    days = base.window_days - 1
    print(f"\nrecent window {days} days (about off): {rate:.1%}, {alarms:.2f} false alarms")


if __name__ == "__main__":
    main()
