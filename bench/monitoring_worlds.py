"""Benchmark: does `retain monitor` stay quiet on quiet worlds and catch a planted shift?

Each world is simulated afresh to a week into November 2026, its features built by the
product's pipeline and registered in a Feast store, and a churn model trained on it as
`retain train churn` trains (fewer rounds), with its monitoring reference
(`training.reference.churn_reference`). The monitor then reads the world's last day as
`retain monitor` does (`serving.monitoring.compare` on the day's batch features and
scores). With `--war`, the same world is simulated again with a rival's price war from
2026-11-01 (`shift` in configs/data.yaml: the simulator's default of 0.6 price enquiries a
customer a month, nationwide, unless `--enquiry-rate` and `--war-regions` say otherwise)
and read with the quiet world's model: a week into the war.

Printed per world: the alerts of the quiet day (there should be none), the alerts of the
war's first week (a complaint or sentiment feature should alert), and the largest drift
of each against its own limit.

    .venv/bin/python bench/monitoring_worlds.py                       # the default matrix
    .venv/bin/python bench/monitoring_worlds.py --worlds 2000x24x7 --war 2000x24x7
    .venv/bin/python bench/monitoring_worlds.py --war-regions metro_central --enquiry-rate 1.0
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.batch_rows import latest_features
from features.build import build_directory
from features.engine import EngineSettings
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.settings import FeatureSettings
from features.store import apply, open_store
from features.training_set import churn_training_set
from serving.daily import score_all
from serving.monitoring import MonitoringSettings, alerts_of, compare
from serving.scoring import LoadedModel, scoring_refs
from serving.settings import ServingSettings
from training.churn import train_churn
from training.reference import churn_reference
from training.settings import TrainingSettings

REPO = Path(__file__).resolve().parents[1]
WAR_STARTS = "2026-11-01"
AS_OF = pd.Timestamp("2026-11-08", tz="UTC")  # the worlds' export instant: a week of war
QUIET = ("2000x24x1", "2000x24x2", "2000x24x3", "2000x24x7", "2000x24x11", "2000x24x23",
         "2000x24x42", "2000x18x5", "3000x15x99", "5000x24x23")  # fmt: skip
WAR = ("2000x24x7", "2000x24x11", "2000x24x42", "2000x18x5", "5000x24x23")
# the customers' calls about the rival's prices: what a week of war moves
WAR_FEATURES = {"tickets_complaint_90d", "tickets_30d", "sentiment_min_90d", "sentiment_mean_90d"}


def world(
    root: Path, customers: int, months: int, seed: int, war: dict[str, Any] | None
) -> FeatureSettings:
    """A simulated world with its features built and registered, as of `AS_OF`; `war`:
    the price war's settings beyond its start (None: a quiet world)."""
    (root / "features" / "repo").mkdir(parents=True)
    shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", root / "features" / "repo")
    lifecycle = root / "data" / "lifecycle"
    shift = {"start": WAR_STARTS, **war} if war is not None else None
    generate(
        DataSettings.model_validate(
            {
                "out_dir": lifecycle,
                "customers": customers,
                "months": months,
                "seed": seed,
                "as_of": AS_OF.to_pydatetime(),
                "shift": shift,
            }
        )
    )
    settings = FeatureSettings.model_validate(
        {"repo_path": root / "features" / "repo", "lifecycle_dir": lifecycle}
    )
    build_directory(lifecycle, settings.tables_dir, AS_OF, EngineSettings())
    apply(open_store(settings))
    return settings


def monitored(
    settings: FeatureSettings, loaded: LoadedModel, reference: dict[str, Any]
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The day's alerts and drift table, as `retain monitor` computes them."""
    store = open_store(settings)
    refs, _ = scoring_refs(store, loaded.feature_service)
    batch = latest_features(store, settings.tables_dir, refs, AS_OF + pd.Timedelta(hours=8))
    scored, _ = score_all(batch, loaded, ServingSettings())
    prepared = loaded.model.schema.transform(batch.frame)
    drift, found = compare(reference, scored, prepared, MonitoringSettings())
    return alerts_of({**found, "realised": {"status": "ok"}}), drift


def nearest(drift: pd.DataFrame) -> str:
    """The feature closest to (or furthest past) its alert level, as 'name x.xx of limit'."""
    ratio = pd.concat(
        [
            drift["psi"] / drift["psi_alert_at"],
            drift["ks"] / drift["ks_alert_at"],
            drift["wasserstein"] / drift["wasserstein_alert_at"],
        ],
        axis=1,
    ).max(axis=1)
    top = ratio.idxmax()
    return f"{drift.loc[top, 'feature']} at {ratio[top]:.2f} of its limit"


def run(name: str, war: dict[str, Any] | None, rounds: int) -> dict[str, Any]:
    customers, months, seed = (int(part) for part in name.split("x"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        quiet = world(Path(tmp) / "quiet", customers, months, seed, war=None)
        frame = churn_training_set(open_store(quiet), quiet.lifecycle_dir, 30)
        trained = train_churn(
            frame,
            "churned_within_30d",
            TrainingSettings.model_validate(
                {"params": {"max_rounds": rounds, "early_stopping_rounds": 30}}
            ),
        )
        reference = json.loads(json.dumps(churn_reference(trained)))  # as logged
        loaded = LoadedModel(trained.model, "churn", "1", "run", "churn_v1")
        alerts, drift = monitored(quiet, loaded, reference)
        row: dict[str, Any] = {
            "world": name,
            "quiet alerts": ", ".join(a.get("feature", a["kind"]) for a in alerts) or "-",
            "quiet nearest": nearest(drift),
            "quiet ok": not alerts,
        }
        if war is not None:
            shifted = world(Path(tmp) / "war", customers, months, seed, war=war)
            caught, drift = monitored(shifted, loaded, reference)
            features = {a.get("feature") for a in caught}
            row |= {
                "war alerts": ", ".join(a.get("feature", a["kind"]) for a in caught) or "-",
                "war caught": bool(features & WAR_FEATURES),
                "war strongest": nearest(drift),
            }
    row["seconds"] = round(time.perf_counter() - started)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=list(QUIET), help="CUSTOMERSxMONTHSxSEED")
    parser.add_argument("--war", nargs="+", default=list(WAR), help="worlds also run with a war")
    parser.add_argument("--rounds", type=int, default=300, help="boosting rounds of the model")
    parser.add_argument(
        "--enquiry-rate", type=float, help="price enquiries a customer a month (default: 0.6)"
    )
    parser.add_argument("--war-regions", nargs="+", help="regions of the war (default: all)")
    args = parser.parse_args()
    war: dict[str, Any] = {}
    if args.enquiry_rate is not None:
        war["enquiry_rate"] = args.enquiry_rate
    if args.war_regions:
        war["regions"] = args.war_regions
    rows = []
    for name in dict.fromkeys([*args.worlds, *args.war]):
        rows.append(run(name, war if name in args.war else None, args.rounds))
        print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows).set_index("world")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.to_string())
    quiet_ok = int(table["quiet ok"].sum())
    print(f"quiet worlds without an alert: {quiet_ok} of {len(table)}")
    if "war caught" in table:
        wars = table["war caught"].dropna()
        print(f"wars caught in their first week: {int(wars.sum())} of {len(wars)}")


if __name__ == "__main__":
    main()
