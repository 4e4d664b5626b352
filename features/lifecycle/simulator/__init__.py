"""The lifecycle simulator: contract tables plus a `truth/` folder, generated in blocks.

Customers are simulated in fixed blocks of `BLOCK_SIZE`, each with its own random
stream derived from the seed and the block number, so memory stays flat at any size
and the data of a customer depends only on the seed, the settings and its block.
Outputs go to a temporary folder that replaces `out_dir` only when complete, so a
failed run never leaves half a dataset where a good one was.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator.lifecycle import simulate_block
from features.lifecycle.simulator.network import simulate_network
from features.lifecycle.simulator.population import draw_population
from features.lifecycle.simulator.state import (
    NETWORK_STATE,
    STATE_DIR,
    block_state_file,
    network_state,
    save_arrays,
)
from features.lifecycle.simulator.tables import TableWriters, block_tables, network_tables
from features.lifecycle.simulator.world import (
    REGIONS,
    MonthGrid,
    competitor_promotions,
    price_war,
)
from features.lifecycle.validate import MANIFEST_FILE

BLOCK_SIZE = 25_000
TRUTH_DIR = "truth"


@dataclass(frozen=True)
class GenerationSummary:
    out_dir: Path
    row_counts: dict[str, int]
    seconds: float

    @property
    def monthly_churn_rate(self) -> float:
        """Churn events per customer-month at risk (active at the month start)."""
        return self.row_counts["churn_events"] / max(self.row_counts["truth/churn_hazard"], 1)


GENERATOR = "retain simulator 1"


class OutputFolderError(ValueError):
    """The output folder holds something other than an earlier simulator run."""


def check_output_folder(out_dir: Path) -> None:
    """Refuse to replace a folder unless it is empty or an earlier simulator output.

    Replacing means deleting: `--out ~` must never wipe a home folder.
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputFolderError(f"{out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    manifest = out_dir / MANIFEST_FILE
    try:
        ours = json.loads(manifest.read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise OutputFolderError(
            f"{out_dir} is not empty and holds no simulator output ({MANIFEST_FILE} with "
            f'"generator": "{GENERATOR}"); refusing to replace it: choose an empty or new folder'
        )


def replace_directory(staging: Path, target: Path) -> None:
    """Swap the finished staging folder into place; the old data goes only after that."""
    previous = target.with_name(f".{target.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    if previous.exists():
        shutil.rmtree(previous)


def generate(
    settings: DataSettings, on_block: Callable[[int], None] | None = None
) -> GenerationSummary:
    """Simulate `settings.customers` customers over `settings.months` months into `out_dir`."""
    started = time.perf_counter()
    out_dir = settings.out_dir
    check_output_folder(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    (staging / TRUTH_DIR).mkdir(parents=True)
    (staging / STATE_DIR).mkdir()

    grid = MonthGrid.ending_at(settings.as_of, settings.months)
    network = simulate_network(settings.customers, grid, np.random.default_rng([settings.seed, 0]))
    promotions = competitor_promotions(grid, np.random.default_rng([settings.seed, 2]))
    war = price_war(settings.shift, grid) if settings.shift is not None else None

    with TableWriters(staging) as writers:
        for name, table in network_tables(network, grid).items():
            writers.write(name, table)
        for block, first in enumerate(range(0, settings.customers, BLOCK_SIZE)):
            index = np.arange(first, min(first + BLOCK_SIZE, settings.customers))
            rng = np.random.default_rng([settings.seed, 1, block])
            population = draw_population(index, settings.customers, grid, network, rng)
            result, state = simulate_block(
                population, grid, network, promotions, settings.drivers, rng, war
            )
            for name, table in block_tables(result, network, grid, block).items():
                writers.write(name, table)
            save_arrays(staging / STATE_DIR / block_state_file(block), state)
            if on_block is not None:
                on_block(len(index))
        row_counts = dict(writers.row_counts)
    save_arrays(staging / STATE_DIR / NETWORK_STATE, network_state(network, promotions, grid.as_of))

    manifest = {
        "generator": GENERATOR,
        "as_of": settings.as_of.isoformat(),
        "customers": settings.customers,
        "months": settings.months,
        "seed": settings.seed,
        "history_start": np.datetime64(grid.history_start, "s").astype(str) + "Z",
        "drivers": settings.drivers.model_dump(),
        "row_counts": row_counts,
    }
    if settings.shift is not None:  # only then: a world without it stays as it was
        manifest["shift"] = settings.shift.model_dump(mode="json")
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    # a hidden churn driver: it belongs with the ground truth, not beside the features
    hidden = {
        "month_starts": [np.datetime64(int(s), "s").astype(str) + "Z" for s in grid.starts[:-1]],
        "regions": [r.name for r in REGIONS],
        "promoted_region_indices_by_month": [
            list(map(int, np.flatnonzero(c))) for c in promotions.T
        ],
    }
    (staging / TRUTH_DIR / "competitor_promotions.json").write_text(
        json.dumps(hidden, indent=2) + "\n"
    )
    replace_directory(staging, out_dir)
    return GenerationSummary(out_dir, row_counts, time.perf_counter() - started)
