"""Benchmark: the demand forecaster's rolling-origin backtest on worlds of several seeds and sizes.

Each world is simulated afresh (or read from a lifecycle folder given with --folders), its
region-week table built by the product's feature pipeline (`features.build`, DuckDB: the
table Feast's `demand_v2` service serves), and backtested exactly as `retain train demand`
does (`training.demand.backtest`, the settings of configs/demand.yaml). Printed per world:
P50 WAPE of the model against the seasonal-naive and 4-week moving-average baselines and
P10-P90 coverage, for the package and service-load groups and every series; then the daily
split of the service-load forecast against its own baseline; last, the worst world of each
acceptance figure. Targets: package WAPE >= 20 % below seasonal naive, service-load WAPE
>= 10 % below the moving average, P10-P90 coverage 75-85 % on both groups.

    .venv/bin/python bench/demand_seeds.py                         # 3 seeds x 2 sizes
    .venv/bin/python bench/demand_seeds.py --seeds 7 --sizes 20000 --folders data/lifecycle
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

from features.build import first_month, lifecycle_tables, region_weekly_demand
from features.engine import EngineSettings, connect
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.lifecycle.validate import resolve_as_of
from features.snapshots import demand_weeks
from retain.base.settings import load_settings
from training.demand.backtest import BacktestResult, backtest
from training.demand.daily import daily_backtest
from training.demand.model import DemandRecipe
from training.demand.settings import DemandSettings

SEEDS = (7, 11, 23)
SIZES = (5_000, 20_000)
MONTHS = 24
GROUPS = ("package", "service_load")


@dataclass(frozen=True)
class WorldResult:
    name: str
    result: BacktestResult
    daily: pd.DataFrame
    seconds: float


def region_weeks(lifecycle_dir: Path) -> pd.DataFrame:
    """The world's region-week table, as the feature pipeline builds it (DuckDB)."""
    as_of = resolve_as_of(lifecycle_dir, None)
    with tempfile.TemporaryDirectory() as spill, connect(EngineSettings(), Path(spill)) as con:
        tables = lifecycle_tables(con, lifecycle_dir)
        weeks = demand_weeks(first_month(tables), as_of)
        frame = region_weekly_demand(tables, weeks).execute()
    return frame.sort_values(["region", "event_timestamp"], ignore_index=True)


def judge(name: str, folder: Path, settings: DemandSettings) -> WorldResult:
    started = time.perf_counter()
    history = region_weeks(folder)
    result = backtest(history, DemandRecipe.of(settings), settings.backtest)
    daily = daily_backtest(result.forecasts, folder, settings.backtest)
    return WorldResult(name, result, daily, time.perf_counter() - started)


def _gain(result: BacktestResult, scope: str, baseline: str) -> float:
    model = result.figure(scope, "model", "wape")
    return 1.0 - model / result.figure(scope, baseline, "wape")


def world_table(world: WorldResult) -> str:
    result = world.result
    lines = [
        f"### {world.name} ({world.seconds:.0f} s)",
        "",
        "| scope | P50 WAPE | seasonal naive | moving average | below s. naive | below MA "
        "| P10-P90 coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    for scope in result.metrics["scope"].unique():
        lines.append(
            f"| {scope} | {result.figure(scope, 'model', 'wape'):.3f} "
            f"| {result.figure(scope, 'seasonal_naive', 'wape'):.3f} "
            f"| {result.figure(scope, 'moving_average', 'wape'):.3f} "
            f"| {_gain(result, scope, 'seasonal_naive'):+.1%} "
            f"| {_gain(result, scope, 'moving_average'):+.1%} "
            f"| {result.figure(scope, 'model', 'coverage_p10_p90'):.1%} |"
        )
    daily = world.daily.iloc[0]
    lines += [
        "",
        f"Daily service load: WAPE {daily['wape']:.3f} against {daily['baseline_wape']:.3f} "
        f"for the same weekday's mean over the 4 weeks before the origin "
        f"({1 - daily['wape'] / daily['baseline_wape']:+.1%}),"
        f" P10-P90 coverage {daily['coverage_p10_p90']:.1%} (randomised PIT "
        f"{daily['pit_coverage_p10_p90']:.1%}) over {int(daily['days']):,} region-days of "
        f"{daily['mean_daily_contacts']:.1f} contacts.",
        "",
    ]
    return "\n".join(lines)


def _figures(world: WorldResult) -> dict[str, float]:
    r, daily = world.result, world.daily.iloc[0]
    return {
        "package WAPE below seasonal naive": _gain(r, "package", "seasonal_naive"),
        "service-load WAPE below moving average": _gain(r, "service_load", "moving_average"),
        "service-load WAPE below seasonal naive": _gain(r, "service_load", "seasonal_naive"),
        "package P10-P90 coverage": r.figure("package", "model", "coverage_p10_p90"),
        "service-load P10-P90 coverage": r.figure("service_load", "model", "coverage_p10_p90"),
        "daily service-load WAPE below its baseline": 1 - daily["wape"] / daily["baseline_wape"],
        "daily service-load PIT coverage": daily["pit_coverage_p10_p90"],
    }


def worst(worlds: list[WorldResult]) -> str:
    """Each figure's worst world: the smallest gain, or the coverage farthest from 80 %."""
    table = pd.DataFrame({w.name: _figures(w) for w in worlds})
    lines = ["### Worst world per figure", "", "| figure | worst | its world | range |"]
    lines.append("|---|---|---|---|")
    for figure, row in table.iterrows():
        name = (row - 0.8).abs().idxmax() if "coverage" in str(figure) else row.idxmin()
        lines.append(
            f"| {figure} | {row[name]:.1%} | {name} | {row.min():.1%} .. {row.max():.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--months", type=int, default=MONTHS)
    parser.add_argument("--folders", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    settings = load_settings(DemandSettings)
    worlds = []
    with tempfile.TemporaryDirectory() as root:
        for folder in args.folders:
            worlds.append(judge(str(folder), folder, settings))
            print(world_table(worlds[-1]), flush=True)
        for customers in args.sizes:
            for seed in args.seeds:
                out = Path(root) / f"w{customers}_{seed}"
                world = DataSettings(
                    customers=customers, months=args.months, seed=seed, out_dir=out
                )
                generate(world)
                name = f"{customers:,} x {args.months} mo, seed {seed}"
                worlds.append(judge(name, out, settings))
                print(world_table(worlds[-1]), flush=True)
    print(worst(worlds))


if __name__ == "__main__":
    main()
