"""Benchmark: simulator generation time and peak memory at the demo size and at 1M customers.

Each size runs `retain data generate` in a child process, so the peak resident memory
(ru_maxrss of the child) is the generator's own. There is no peer implementation to
run side by side, so the figures are absolute: compare runs on the same machine only.

    .venv/bin/python bench/simulate.py                 # 20k and 1M customers x 24 months
    .venv/bin/python bench/simulate.py --sizes 20000   # just the demo size
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RETAIN = [sys.executable, "-m", "retain.cli"]


def run(customers: int, months: int, seed: int, out: Path) -> dict[str, float]:
    started = time.perf_counter()
    subprocess.run(
        [
            *RETAIN,
            "data",
            "generate",
            "--customers",
            str(customers),
            "--months",
            str(months),
            "--seed",
            str(seed),
            "--out",
            str(out),
        ],
        check=True,
    )
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    manifest = json.loads((out / "manifest.json").read_text())
    size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    return {
        "customers": customers,
        "months": months,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(peak_kib / 2**20, 2),
        "rows": sum(manifest["row_counts"].values()),
        "parquet_mib": round(size / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    results = []
    # ru_maxrss of children is a high-water mark over all of them: run the largest last
    for customers in sorted(args.sizes):
        out = Path(tempfile.mkdtemp(prefix="retain-bench-")) / "lifecycle"
        try:
            results.append(run(customers, args.months, args.seed, out))
        finally:
            shutil.rmtree(out.parent, ignore_errors=True)
        print(json.dumps(results[-1]), flush=True)
    print(f"cpu: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
