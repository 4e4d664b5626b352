"""The offline engine that runs the feature pipeline: DuckDB embedded, Spark at scale.

The pipeline (`features.build`) is a set of ibis expressions; this module opens the
backend that executes them, reads the lifecycle parquet files into it and writes the
results. Which engine is a setting (`offline_engine` in configs/features.yaml), not code.

Both engines read every lifecycle timestamp as a UTC timestamp with microsecond precision
(the contract allows any resolution; parquet files written by pandas carry nanoseconds,
which Spark cannot read as timestamps) and run with the session time zone set to UTC, so
that "the week of a timestamp" means the same Monday everywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import ibis
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends import BaseBackend
from ibis.expr.types import Table
from pydantic import BaseModel, Field

from features.sql_names import quote_identifier

Engine = Literal["duckdb", "spark"]


class EngineUnavailable(RuntimeError):
    """The configured engine cannot be started or reached; the message names the setting."""


class EngineSettings(BaseModel):
    """How to run the offline engine (`offline_engine:` in configs/features.yaml)."""

    kind: Engine = Field("duckdb", description="duckdb (embedded) or spark.")
    duckdb_memory_limit: str = Field(
        "4GB", description="DuckDB spills to disk beyond this (e.g. '8GB', '75%')."
    )
    duckdb_threads: int | None = Field(None, ge=1, description="Default: one per core.")
    spark_master: str = Field(
        "local[2]",
        description="Spark master URL: local[N], spark://host:7077, yarn, k8s://... "
        "(spark-submit's --master).",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark settings (spark.executor.memory, ...), applied at start.",
    )


def spark_session_conf(settings: EngineSettings) -> dict[str, str]:
    """The Spark settings the pipeline relies on, then the operator's own."""
    return {
        "spark.sql.session.timeZone": "UTC",
        # pandas writes nanosecond timestamps; Spark reads them as longs and we convert
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "8",
        **settings.spark_conf,
    }


def _master_addresses(master: str) -> list[tuple[str, int]]:
    """The host:port pairs a master URL names (spark://a:7077,b:7077 or k8s://https://h:443);
    none for local[N], yarn and others, whose reachability Spark checks itself."""
    if master.startswith("spark://"):
        hosts = master.removeprefix("spark://").split(",")
        return [
            (h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 7077) for h in hosts
        ]
    if master.startswith("k8s://"):
        url = urlsplit(master.removeprefix("k8s://"))
        if url.hostname:
            return [(url.hostname, url.port or (443 if url.scheme == "https" else 80))]
    return []


def check_master(master: str, timeout_s: float = 5.0) -> None:
    """Refuse a Spark master none of whose addresses accepts a connection: Spark itself
    would retry for a minute and then hand back a session whose every job fails."""
    addresses = _master_addresses(master)
    errors = []
    for host, port in addresses:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            return
        except OSError as error:
            errors.append(f"{host}:{port}: {error.strerror or error}")
    if addresses:
        raise EngineUnavailable(
            f"cannot reach the Spark master offline_engine.spark_master={master!r} "
            f"({'; '.join(errors)})"
        )


def spark_session(settings: EngineSettings) -> Any:
    """The SparkSession for `settings` (created, or the running one reconfigured).

    Under `spark-submit` (or a managed Spark that launches the driver) the master and the
    cluster's settings are the launcher's: `spark_master` is then ignored.
    """
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # the JVM was started by spark-submit
    if not submitted:
        check_master(settings.spark_master)
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:  # pragma: no cover - pyspark is a dependency
        raise EngineUnavailable("offline_engine.kind=spark needs pyspark installed") from error
    # Python workers (the scoring UDFs) run this interpreter, with this environment's
    # packages, unless PYSPARK_PYTHON names the executors' own (PySpark reads only the env)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("retain")
    if not submitted:
        builder = builder.master(settings.spark_master)
    for key, value in spark_session_conf(settings).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        return session
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise EngineUnavailable(
            f"cannot start Spark at offline_engine.spark_master={settings.spark_master!r}: "
            f"{first_line}"
        ) from error


@contextmanager
def connect(settings: EngineSettings, spill_dir: Path | None = None) -> Iterator[BaseBackend]:
    """An ibis backend for the configured engine, closed (DuckDB) on exit."""
    if settings.kind == "spark":
        yield ibis.pyspark.connect(spark_session(settings))
        return
    # DuckDB without its ICU extension computes TIMESTAMPTZ in UTC; ibis checks nothing else
    config: dict[str, Any] = {"memory_limit": settings.duckdb_memory_limit}
    if settings.duckdb_threads:
        config["threads"] = settings.duckdb_threads
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(spill_dir)
    con = ibis.duckdb.connect(**config)
    try:
        yield con
    finally:
        con.disconnect()


def _timestamp_columns(path: Path) -> list[tuple[str, pa.TimestampType]]:
    schema = pq.read_schema(path)
    return [(f.name, f.type) for f in schema if pa.types.is_timestamp(f.type)]


def read_table(con: BaseBackend, path: Path, name: str) -> Table:
    """One lifecycle parquet file as an ibis table, timestamps as UTC microseconds."""
    stamps = _timestamp_columns(path)
    if con.name == "pyspark":
        from pyspark.sql import functions as F

        frame = con._session.read.parquet(str(path))
        for column, kind in stamps:
            if kind.unit == "ns":  # read as a long by nanosAsLong: floor to microseconds
                ns = "`" + column.replace("`", "``") + "`"
                micros = F.expr(f"timestamp_micros(({ns} - pmod({ns}, 1000)) div 1000)")
                frame = frame.withColumn(column, micros)
        frame.createOrReplaceTempView(name)
        return con.table(name)
    location = "'" + str(path).replace("'", "''") + "'"
    casts = ", ".join(
        f"CAST({quote_identifier(c)} AS TIMESTAMPTZ) AS {quote_identifier(c)}" for c, _ in stamps
    )
    replace = f" REPLACE ({casts})" if casts else ""
    con.raw_sql(
        f"CREATE OR REPLACE VIEW {quote_identifier(name)} AS "
        f"SELECT *{replace} FROM read_parquet({location})"
    )
    return con.table(name)


def write_parquet(con: BaseBackend, expr: Table, target: Path) -> int:
    """Write `expr` to `target` atomically: readers see the old file or the whole new one.

    DuckDB streams the result into one parquet file; Spark writes a folder of part files
    (one per partition), published by a rename of the whole folder.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        written = staging / target.name
        con.to_parquet(expr, str(written))
        parts = sorted(written.glob("*.parquet")) if written.is_dir() else [written]
        rows = sum(pq.read_metadata(part).num_rows for part in parts)
        _replace(written, target)
        return rows
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace(written: Path, target: Path) -> None:
    """Publish `written` as `target`; a folder replaces a file or folder and vice versa."""
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(written, target)
        shutil.rmtree(old, ignore_errors=True)
    elif written.is_dir() and target.exists():
        target.unlink()
        os.replace(written, target)
    else:
        os.replace(written, target)
