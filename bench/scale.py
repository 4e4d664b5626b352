"""Benchmark: the main job end to end at scale, every step's wall time and peak memory.

A project laid out like the repository is created under `--root` (features/repo with the
repository's feature_store.yaml, data/, risk_lists/), and each step runs there as its own
`retain` child process with the repository's configs (`RETAIN_CONFIG_DIR`):

    generate -> validate -> build (DuckDB) -> apply -> materialize -> training set
    -> train churn -> promote -> daily list

`--negative-rate 0.1` samples the older stayers of the training set (features.sampling),
as a production system would at millions of customers.

With `--spark`, the feature build also runs on Spark (`local[2]` unless `--spark-master`)
over the same lifecycle tables into a sibling project, side by side with DuckDB, and the
two results are compared value for value. With `--reference`, the pandas build it
replaced runs too (in a child with the memory cap), for the ratio.

Wall time is the child's; peak memory is the larger of the child's maximum resident set
(`wait4`'s ru_maxrss) and the resident memory of its whole process tree (Spark's JVM
included) sampled every 0.2 s. A child whose resident
memory passes `--memory-cap-gb` is killed and reported so.

    .venv/bin/python bench/scale.py --customers 250000 --spark          # ~10 minutes
    .venv/bin/python bench/scale.py --customers 1000000 --spark --steps generate validate build
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RETAIN = str(Path(sys.executable).parent / "retain")
STEPS = (
    "generate",
    "validate",
    "build",
    "build_spark",
    "build_pandas",
    "apply",
    "materialize",
    "training_set",
    "train",
    "promote",
    "daily",
)


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    peak_gib: float
    rc: int
    killed: bool = False
    note: str = ""


def commands(args: argparse.Namespace, root: Path) -> dict[str, list[str]]:
    pandas_build = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r});"
        "from pathlib import Path; from features.lifecycle.profile import load_tables;"
        "from features.lifecycle.validate import resolve_as_of;"
        "from tests.features.reference_build import build_feature_tables, write_feature_tables;"
        "import time; started = time.perf_counter(); d = Path('data/lifecycle');"
        "write_feature_tables(build_feature_tables(load_tables(d), resolve_as_of(d, None)),"
        " Path('pandas_features'));"
        "print(f'built feature tables in pandas in {time.perf_counter() - started:.1f}s')"
    )
    return {
        "generate": [
            RETAIN,
            "data",
            "generate",
            "--customers",
            str(args.customers),
            "--months",
            str(args.months),
            "--seed",
            str(args.seed),
            "--out",
            "data/lifecycle",
        ],
        "validate": [RETAIN, "data", "validate", "data/lifecycle"],
        "build": [RETAIN, "features", "build"],
        "build_spark": [RETAIN, "features", "build"],
        "build_pandas": [sys.executable, "-c", pandas_build],
        "apply": [RETAIN, "features", "apply"],
        "materialize": [RETAIN, "features", "materialize"],
        "training_set": [RETAIN, "features", "training-set", "--model", "churn"],
        "train": [RETAIN, "train", "churn", "--training-set", "data/training/churn_v1.parquet"],
        "promote": [RETAIN, "promote", "churn"],
        "daily": [RETAIN, "daily"],
    }


def run_step(
    name: str, command: list[str], cwd: Path, env: dict[str, str], cap_gib: float, log: Path
) -> Step:
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        watched, killed, sampled = psutil.Process(process.pid), False, 0
        while True:  # wait4, not Popen.poll: only wait4 hands back the child's rusage
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            try:
                rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)])
            except psutil.Error:
                rss = 0
            sampled = max(sampled, rss)
            if rss > cap_gib * 2**30 and not killed:
                for p in [*watched.children(recursive=True), watched]:
                    p.kill()
                killed = True
            time.sleep(0.2)
    seconds = time.perf_counter() - started
    rc = process.returncode
    tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
    # ru_maxrss misses a JVM that outlives its parent's wait: take the sampled tree too
    peak = max(usage.ru_maxrss * 1024, sampled) / 2**30
    return Step(name, seconds, peak, rc, killed, tail[0][:160] if tail else "")


def project(root: Path, lifecycle: Path | None = None) -> Path:
    repo = root / "features" / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "features" / "repo" / "feature_store.yaml", repo)
    if lifecycle is not None:
        (root / "data").mkdir(parents=True, exist_ok=True)
        link = root / "data" / "lifecycle"
        if not link.exists():
            link.symlink_to(lifecycle)
    return root


def compare_builds(duckdb_dir: Path, spark_dir: Path) -> str:
    """Spark's tables against DuckDB's, value for value, inside DuckDB (pandas would hold
    both copies of 15 million rows): rows on one side only, and rows whose values differ
    (floats beyond 1e-12 relative or absolute, the engines' summation orders differing)."""
    import duckdb
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from tests.features.parity import KEYS

    con = duckdb.connect(config={"memory_limit": "4GB"})
    con.execute("SET enable_progress_bar = false")
    findings = []
    for name, keys in KEYS.items():
        a = f"read_parquet('{duckdb_dir / name}.parquet')"
        b = f"read_parquet('{spark_dir / name}.parquet/*.parquet')"
        schema = pq.read_schema(duckdb_dir / f"{name}.parquet")
        differs = []
        for field in schema:
            if field.name in keys:
                continue
            x, y = f'a."{field.name}"', f'b."{field.name}"'
            if str(field.type) in ("double", "float"):
                differs.append(
                    f"(({x} IS NULL) <> ({y} IS NULL) OR "
                    f"abs({x} - {y}) > 1e-12 * greatest(1, abs({x})))"
                )
            else:
                differs.append(f"{x} IS DISTINCT FROM {y}")
        on = " AND ".join(f'a."{k}" = b."{k}"' for k in keys)
        (only_one, different, total) = con.execute(
            f'SELECT count(*) FILTER (WHERE a."{keys[0]}" IS NULL OR b."{keys[0]}" IS NULL), '
            f"count(*) FILTER (WHERE {' OR '.join(differs)}), count(*) "
            f"FROM {a} a FULL OUTER JOIN {b} b ON {on}"
        ).fetchone()
        findings.append(f"{name}: {total:,} rows, {only_one} on one side, {different} differ")
        if only_one or different:
            raise AssertionError("; ".join(findings))
    return "Spark == DuckDB value for value (" + "; ".join(findings) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path("/tmp/retain-scale"))
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=None)
    parser.add_argument("--spark", action="store_true", help="also build on Spark")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--reference", action="store_true", help="also the pandas build")
    parser.add_argument("--memory-cap-gb", type=float, default=20.0)
    parser.add_argument(
        "--negative-rate",
        type=float,
        default=None,
        help="negative_sampling.rate of the training set (default: configs/features.yaml)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--compare", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare:
        print(compare_builds(*args.compare))
        return

    steps = list(args.steps or [s for s in STEPS if s not in ("build_spark", "build_pandas")])
    if args.spark and "build_spark" not in steps:
        steps.insert(steps.index("build") + 1 if "build" in steps else 0, "build_spark")
    if args.reference and "build_pandas" not in steps:
        steps.insert(steps.index("build") + 1 if "build" in steps else 0, "build_pandas")
    root = project(args.root / f"{args.customers}")
    spark_root = project(args.root / f"{args.customers}-spark", (root / "data" / "lifecycle"))
    env = {**os.environ, "RETAIN_CONFIG_DIR": str(ROOT / "configs")}
    if args.negative_rate is not None:
        env["RETAIN_FEATURES_NEGATIVE_SAMPLING__RATE"] = str(args.negative_rate)
    spark_env = {
        **env,
        "RETAIN_FEATURES_OFFLINE_ENGINE__KIND": "spark",
        "RETAIN_FEATURES_OFFLINE_ENGINE__SPARK_MASTER": args.spark_master,
    }
    if "generate" in steps:
        shutil.rmtree(root / "data", ignore_errors=True)
    results: list[Step] = []
    print(f"{args.customers:,} customers x {args.months} months, root {root}", flush=True)
    for name in steps:
        command = commands(args, root)[name]
        cwd, step_env = (spark_root, spark_env) if name == "build_spark" else (root, env)
        step = run_step(name, command, cwd, step_env, args.memory_cap_gb, root / f"{name}.log")
        if name == "build_spark" and step.rc == 0:
            # in a child: this process stays small, so the next steps' children (forked
            # from it) do not start with its memory counted in their peak
            compared = subprocess.run(
                [sys.executable, __file__, "--compare", str(root / "data" / "features"),
                 str(spark_root / "data" / "features")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            lines = (compared.stdout or compared.stderr).strip().splitlines()
            note = lines[-1] if lines else f"comparison failed (rc {compared.returncode})"
            step = Step(**{**asdict(step), "note": note})
        results.append(step)
        state = "KILLED at cap" if step.killed else ("ok" if step.rc == 0 else f"rc {step.rc}")
        print(
            f"{name:13s} {step.seconds:8.1f} s  peak {step.peak_gib:6.2f} GiB  {state}  "
            f"{step.note}",
            flush=True,
        )
        if step.rc != 0 and name not in ("build_spark", "build_pandas"):
            break
    by_name = {s.name: s for s in results}
    if "build" in by_name and "build_spark" in by_name:
        duck, spark = by_name["build"], by_name["build_spark"]
        print(f"Spark/DuckDB build: {spark.seconds / duck.seconds:.2f}x wall time")
    if "build" in by_name and "build_pandas" in by_name:
        duck, ref = by_name["build"], by_name["build_pandas"]
        print(
            f"pandas/DuckDB build: {ref.seconds / duck.seconds:.2f}x wall time, "
            f"{ref.peak_gib / duck.peak_gib:.2f}x peak memory"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in results], indent=2))


if __name__ == "__main__":
    main()
