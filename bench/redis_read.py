"""Benchmark: one customer's online row on Redis, our direct reader vs Feast, vs the SQLite path.

A world of `--customers` customers (24 months, seed 7) is simulated, its feature tables
built, and the definitions applied and materialized twice: into our embedded SQLite
store and, through Feast, into a real redis-server started on loopback for the run. Then
the scorer's read of one customer (every feature of churn_v1 plus the contact fields, at
a request instant, request-time features included) is timed for `--reads` random
customers, the three readers interleaved call by call so drift hits all alike:

- sqlite direct: `features.online_rows.DirectRows` (the embedded default);
- redis direct: `features.redis_rows.RedisRows` (pipelined HMGET, values decoded by us);
- redis via Feast: `FeastRows`, i.e. `get_online_features` on Feast's Redis store.

The rest of a score (model, calibration, reasons, policy) is the same whichever reader
feeds it, so the read is what differs. Before timing, the two Redis readers must agree.

    .venv/bin/python bench/redis_read.py                   # about 2 minutes
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.online_rows import DirectRows, FeastRows, RowReader  # noqa: E402
from features.redis_rows import RedisRows  # noqa: E402
from features.settings import FeatureSettings  # noqa: E402
from features.store import apply, materialize, open_store  # noqa: E402
from serving.scoring import scoring_refs  # noqa: E402


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: install Debian's redis-server package")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("redis-server did not start")


def build(root: Path, customers: int) -> tuple[FeatureSettings, pd.Timestamp]:
    sys.path.insert(0, str(ROOT / "bench"))
    from training_set import build as build_project  # bench/training_set.py

    build_project(root, customers, 24, 7)
    repo = root / "features" / "repo"
    from features.lifecycle.validate import resolve_as_of

    as_of = resolve_as_of(root / "data" / "lifecycle", None)
    return FeatureSettings.model_validate({"repo_path": repo}), as_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--reads", type=int, default=2_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-redis-read-"))
    redis, address = start_redis(folder)
    try:
        sqlite_settings, as_of = build(folder, args.customers)
        yaml = sqlite_settings.repo_path / "redis_feature_store.yaml"
        yaml.write_text(
            (ROOT / "features" / "repo" / "envs" / "redis" / "feature_store.yaml")
            .read_text()
            .replace("127.0.0.1:6379", address)
        )
        sqlite_store = open_store(sqlite_settings)
        materialize(sqlite_store, as_of)
        redis_store = open_store(sqlite_settings.model_copy(update={"store_yaml": yaml}))
        apply(redis_store)
        started = time.perf_counter()
        materialize(redis_store, as_of)
        print(f"materialized into Redis through Feast in {time.perf_counter() - started:.1f}s")
        refs, presence = scoring_refs(sqlite_store, "churn_v1")
        readers: dict[str, RowReader] = {
            "sqlite direct": DirectRows(sqlite_store, refs, presence),
            "redis direct": RedisRows(redis_store, refs, presence),
            "redis via Feast": FeastRows(redis_store, refs, presence),
        }
        ids = pd.read_parquet(
            sqlite_settings.tables_dir / "customer_profile.parquet", columns=["customer_id"]
        )["customer_id"].tolist()
        at = as_of + pd.Timedelta(hours=9)
        check = random.Random(1).sample(ids, 200)
        ours = readers["redis direct"].read(check, at)
        assert ours.known.tolist() == readers["redis via Feast"].read(check, at).known.tolist()
        picks = random.Random(2).choices(ids, k=args.reads + 50)
        times: dict[str, list[float]] = {name: [] for name in readers}
        names = list(readers)
        for k, customer in enumerate(picks):
            order = names[k % 3 :] + names[: k % 3]
            for name in order:
                mark = time.perf_counter()
                readers[name].read([customer], at)
                if k >= 50:  # warm-up
                    times[name].append(time.perf_counter() - mark)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.customers:,} customers, {args.reads:,} single-customer reads each")
    print("| reader | p50 ms | p99 ms |")
    print("|---|---|---|")
    stats = {}
    for name, samples in times.items():
        p50, p99 = np.percentile(np.array(samples) * 1e3, [50, 99])
        stats[name] = (p50, p99)
        print(f"| {name} | {p50:.3f} | {p99:.3f} |")
    for top, bottom in (("redis direct", "sqlite direct"), ("redis via Feast", "redis direct")):
        (a50, a99), (b50, b99) = stats[top], stats[bottom]
        print(f"{top} / {bottom}: p50 {a50 / b50:.1f}x, p99 {a99 / b99:.1f}x")


if __name__ == "__main__":
    main()
