"""Benchmark: the daily risk list's batch path vs Feast `get_historical_features` + predict.

Needs the demo project (`make run`): its feature tables and champion. The demo's latest
snapshot (about 13,000 active customers) is replicated to the sizes asked for, each copy
with new customer ids and its continuous features jittered by 5 % (so rows differ and no
cache of whole rows could help), into a temporary Feast repository of its own.

- ours: `retain daily`'s stages on every active customer: columnar read of the latest
  snapshot, scoring, exact reasons (`serving.explain.batch_contributions`) and the
  decision (the API's decision service, contact history read from an action log) for every
  customer in the listed bands, the list's parquet, CSV and report written (MLflow logging
  is left out);
- peer: Feast `get_historical_features` for the same customers at the same instant, then
  the champion's `predict_proba` on the frame: no reasons, no decisions.

Each run is a child process (its peak RSS is its own). The size target runs ours alone
(1,000,000 customers); the ratio is measured on 100,000 customers, both systems.

    .venv/bin/python bench/daily.py                          # about 10 minutes
    .venv/bin/python bench/daily.py --customers 200000 --peer-customers 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.settings import FeatureSettings  # noqa: E402
from features.store import definitions  # noqa: E402
from retain.base.settings import load_settings  # noqa: E402

DAY = date(2026, 11, 2)
REPLICATED = ("customer_profile", "customer_activity")


def build(root: Path, customers: int, seed: int) -> None:
    """root/data/features with `customers` active customers, and a Feast repo root/features."""
    source = load_settings(FeatureSettings).tables_dir
    target = root / "data" / "features"
    target.mkdir(parents=True)
    activity = pd.read_parquet(source / "customer_activity.parquet")
    activity = activity[activity["event_timestamp"] == activity["event_timestamp"].max()]
    profile = pd.read_parquet(source / "customer_profile.parquet")
    profile = profile[profile["customer_id"].isin(activity["customer_id"])]
    rng = np.random.default_rng(seed)
    copies = -(-customers // len(activity))
    for name, table in (("customer_profile", profile), ("customer_activity", activity)):
        parts = []
        floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
        for copy in range(copies):
            part = table.copy()
            part["customer_id"] = [f"R{copy:03d}{c}" for c in part["customer_id"]]
            if copy and floats:
                noise = 1 + 0.05 * rng.standard_normal((len(part), len(floats)))
                part[floats] = part[floats].to_numpy() * noise
            parts.append(part)
        whole = pd.concat(parts, ignore_index=True)
        keep = sorted(whole["customer_id"].unique())[:customers]
        whole[whole["customer_id"].isin(set(keep))].to_parquet(target / f"{name}.parquet")
    for other in source.glob("*.parquet"):
        if other.stem not in REPLICATED:
            (target / other.name).write_bytes(other.read_bytes())
    repo = root / "features" / "repo"
    repo.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "features" / "repo" / "feature_store.yaml").read_text())
    config["registry"]["path"] = "../../data/feast/registry.db"
    config["online_store"]["path"] = "../../data/feast/online.db"
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    from feast import FeatureStore

    FeatureStore(repo_path=str(repo)).apply(definitions())


def child(kind: str, root: Path) -> dict[str, float]:
    """One measured run, in this (child) process."""
    from feast import FeatureStore

    from features.batch_rows import latest_features
    from features.request_time import REQUEST_TIME_FIELD
    from serving.action_log.database import open_engine
    from serving.action_log.log import ActionLog
    from serving.daily import (
        RiskList,
        explain_and_decide,
        publish,
        score_locally,
        scoring_instant,
        summarize,
    )
    from serving.decisions import decision_service
    from serving.report import render_report
    from serving.scoring import load_champion, scoring_refs
    from serving.settings import DailySettings, ServingSettings
    from training.settings import TrainingSettings

    serving = load_settings(ServingSettings)
    loaded = load_champion(serving, load_settings(TrainingSettings))
    store = FeatureStore(repo_path=str(root / "features" / "repo"))
    refs, _ = scoring_refs(store, loaded.feature_service)
    at = scoring_instant(DAY, serving)
    times: dict[str, float] = {}
    started = time.perf_counter()
    if kind == "peer":
        service = store.get_feature_service(loaded.feature_service)
        ids = pd.read_parquet(
            root / "data" / "features" / "customer_activity.parquet", columns=["customer_id"]
        )["customer_id"]
        entities = pd.DataFrame(
            {"customer_id": ids, "event_timestamp": at, REQUEST_TIME_FIELD: int(at.timestamp())}
        )
        frame = store.get_historical_features(entity_df=entities, features=service).to_df()
        times["features"] = time.perf_counter() - started
        probability = loaded.model.predict_proba(frame)
        times["scored"] = float(len(probability))
    else:
        tables = root / "data" / "features"
        batch = latest_features(store, tables, refs, pd.Timestamp(at))
        times["features"] = time.perf_counter() - started
        scores = score_locally(batch, loaded, serving)
        scored = scores.frame
        times["score"] = time.perf_counter() - started - times["features"]
        daily = DailySettings(output_dir=root / "risk_lists")
        log = ActionLog(open_engine(f"sqlite:///{root / 'actions.db'}"))
        decisions = decision_service(None, serving, log, tables)
        mark = time.perf_counter()
        listed, actions = explain_and_decide(scores, loaded, serving, daily, decisions, at)
        times["reasons_and_decisions"] = time.perf_counter() - mark
        mark = time.perf_counter()
        summary = summarize(DAY, batch.snapshot, loaded, scored, listed, actions)
        risk = RiskList(
            DAY, at, batch.snapshot, loaded, scored, listed, summary, serving.risk_bands
        )
        publish(risk, daily, render_report)
        times["publish"] = time.perf_counter() - mark
        times["scored"] = float(len(scored))
        times["listed"] = float(len(listed))
    times["total"] = time.perf_counter() - started
    times["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return times


def run_child(kind: str, root: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", kind, "--root", str(root)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--peer-customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", choices=["ours", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.root)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-daily-") as folder:
        small, large = Path(folder) / "small", Path(folder) / "large"
        build(small, args.peer_customers, args.seed)
        ours_small = run_child("ours", small)
        peer_small = run_child("peer", small)
        print(f"{args.peer_customers:,} customers: ours {ours_small}")
        print(f"{args.peer_customers:,} customers: peer {peer_small}")
        build(large, args.customers, args.seed)
        ours_large = run_child("ours", large)
        print(f"{args.customers:,} customers: ours {ours_large}")
    print()
    print(
        "| customers | system | total s | features s | peak RSS GiB | listed (explained, decided) |"
    )
    print("|---|---|---|---|---|---|")
    for size, name, result in (
        (args.peer_customers, "ours", ours_small),
        (args.peer_customers, "get_historical_features + predict", peer_small),
        (args.customers, "ours", ours_large),
    ):
        listed = f"{int(result['listed']):,}" if "listed" in result else "-"
        print(f"| {size:,} | {name} | {result['total']:.1f} | {result['features']:.1f} | "
              f"{result['peak_rss_gib']:.2f} | {listed} |")  # fmt: skip
    ratio = peer_small["total"] / ours_small["total"]
    print(f"\npeer / ours on {args.peer_customers:,} customers: {ratio:.1f}x")


if __name__ == "__main__":
    main()
