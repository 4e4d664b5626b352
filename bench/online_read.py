"""Benchmark: online reads of the churn_v1 service, Feast's stock SQLite store vs ours.

Both stores are loaded from the same feature tables (built as in bench/materialize.py, in a
temp dir): stock by Feast's `FeatureStore.materialize`, ours by `features.store.materialize`
(the bulk path of `retain features materialize`). Then it times the scoring API's call,

    store.get_online_features(features=store.get_feature_service("churn_v1"),
                              entity_rows=[{"customer_id": id, "request_epoch_s": now}, ...])

- single entity: p50/p99 over 2,000 random customers, after 50 warm-up calls per store;
- batch: p50/p99 over 30 batches of 1,000 random customers (p99 of 30 is about the slowest);

alternating the stores call by call (and which goes first), so drift hits both alike. The
time is the call alone (not converting its OnlineResponse); "in store" is the part spent in
the online store's `online_read` (the rest is Feast: protobuf, on-demand view, response).
Finally both stores' values for 200 customers are compared (None and NaN equal, floats
within 1e-9) and every differing feature is listed.

    .venv/bin/python bench/online_read.py
    .venv/bin/python bench/online_read.py --customers 5000 --singles 500
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.online_response import OnlineResponse
from materialize import EPOCH, build_tables, fresh_store, make_repo, quiet  # bench/materialize.py

from features.request_time import REQUEST_TIME_FIELD
from features.store import materialize as bulk_materialize

Rows = list[dict[str, Any]]


class Reader:
    """Reads churn_v1 from one store; records each call's total and in-store milliseconds."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.service = store.get_feature_service("churn_v1")
        self.online_store = store._get_provider().online_store
        self.in_store = 0.0
        self.times: list[tuple[float, float]] = []
        read = self.online_store.online_read

        def timed_read(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return read(*args, **kwargs)
            finally:
                self.in_store += time.perf_counter() - started

        self.patch = mock.patch.object(self.online_store, "online_read", timed_read)

    def __call__(self, rows: Rows, record: bool = True) -> OnlineResponse:
        self.in_store = 0.0
        with self.patch:
            started = time.perf_counter()
            response = self.store.get_online_features(features=self.service, entity_rows=rows)
            total = time.perf_counter() - started
        if record:
            self.times.append((total * 1000, self.in_store * 1000))
        return response


def interleaved(readers: dict[str, Reader], calls: list[Rows], record: bool = True) -> None:
    names = list(readers)
    for i, rows in enumerate(calls):
        for name in names if i % 2 == 0 else names[::-1]:
            readers[name](rows, record)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def same(a: Any, b: Any) -> bool:
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    if type(a) is not type(b):
        return False
    return a == b or (isinstance(a, float) and abs(a - b) <= 1e-9)


def compare(stock: dict[str, list[Any]], ours: dict[str, list[Any]]) -> list[str]:
    """One line per feature whose values differ, with the count and an example."""
    problems = [f"{f}: only in {'stock' if f in stock else 'ours'}" for f in stock.keys() ^ ours]
    for feature in sorted(stock.keys() & ours.keys()):
        pairs = zip(stock["customer_id"], stock[feature], ours[feature], strict=True)
        bad = [(customer, a, b) for customer, a, b in pairs if not same(a, b)]
        if bad:
            customer, a, b = bad[0]
            problems.append(
                f"{feature}: {len(bad)} customers differ, e.g. {customer}: "
                f"stock {a!r} ({type(a).__name__}) vs ours {b!r} ({type(b).__name__})"
            )
    return problems


def percentiles(times: list[tuple[float, float]]) -> list[float]:
    total, in_store = np.array(times).T
    return [*np.percentile(total, [50, 99]), float(np.percentile(in_store, 50))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--singles", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--compare", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="retain-bench-online-"))
    try:
        as_of = build_tables(root, args.customers, args.seed)
        stores = {name: fresh_store(make_repo(root, name)) for name in ("stock", "ours")}
        with quiet():
            stores["stock"].materialize(EPOCH, as_of.to_pydatetime())
            bulk_materialize(stores["ours"], as_of)
        profile = root / "data" / "features" / "customer_profile.parquet"
        ids = pq.read_table(profile, columns=["customer_id"]).column(0).to_pylist()
        rng = random.Random(args.seed)
        now = int(time.time())

        def rows(n: int) -> Rows:
            return [{"customer_id": c, REQUEST_TIME_FIELD: now} for c in rng.sample(ids, n)]

        readers = {name: Reader(store) for name, store in stores.items()}
        interleaved(readers, [rows(1) for _ in range(args.warmup)], record=False)
        interleaved(readers, [rows(1) for _ in range(args.singles)])
        singles = {name: percentiles(r.times) for name, r in readers.items()}
        for reader in readers.values():
            reader.times.clear()
        interleaved(readers, [rows(args.batch_size) for _ in range(args.batches)])
        batches = {name: percentiles(r.times) for name, r in readers.items()}
        sample = rows(args.compare)
        values = {name: reader(sample, record=False).to_dict() for name, reader in readers.items()}
        problems = compare(values["stock"], values["ours"])
        columns = len(values["stock"])
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"{args.customers:,} customers, as of {as_of:%Y-%m-%d}, request_epoch_s {now}")
    print(
        f"churn_v1 get_online_features: {args.singles:,} single-entity calls and "
        f"{args.batches} batches of {args.batch_size:,} per store, interleaved"
    )
    print(f"\n{'milliseconds':<38} {'stock':>9} {'ours':>9} {'stock/ours':>11}")
    labels = ["p50", "p99", "p50 inside online_read"]
    for scope, figures in (("single entity", singles), (f"batch of {args.batch_size:,}", batches)):
        for label, stock, ours in zip(labels, figures["stock"], figures["ours"], strict=True):
            print(f"{scope + ' ' + label:<38} {stock:>9.2f} {ours:>9.2f} {stock / ours:>10.2f}x")
    speedup = [singles["stock"][0] / singles["ours"][0], batches["stock"][0] / batches["ours"][0]]
    print(
        f"\nonline read: single p50 ours {singles['ours'][0]:.2f} ms vs stock "
        f"{singles['stock'][0]:.2f} ms -> {speedup[0]:.2f}x; batch of {args.batch_size:,} p50 "
        f"ours {batches['ours'][0]:.1f} ms vs stock {batches['stock'][0]:.1f} ms "
        f"-> {speedup[1]:.2f}x"
    )
    if problems:
        print(f"values: MISMATCH for {args.compare} customers in {len(problems)} features:")
        print("\n".join(f"  {p}" for p in problems))
    else:
        print(f"values: stock and ours identical for {args.compare} customers x {columns} columns")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
