"""Check a directory of lifecycle tables against the contract and list every violation.

Nothing is coerced: a column of the wrong type, a null key, a duplicate, a timestamp after
the as-of instant, a ticket closed before it opened, an id that points nowhere, each is
reported with its table, column, rule and the number of bad rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_types
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.lifecycle.contract import TABLES, Kind, TableSpec

MANIFEST_FILE = "manifest.json"
_EXAMPLES = 3


@dataclass(frozen=True)
class Violation:
    """One broken rule: where, which rule, how many rows, and a few examples."""

    table: str
    column: str | None
    rule: str
    bad_rows: int | None = None  # None: the rule concerns the table or column as a whole
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        count = (
            ""
            if self.bad_rows is None
            else f": {self.bad_rows} bad row{'s' * (self.bad_rows != 1)}"
        )
        example = f" (e.g. {'; '.join(self.examples)})" if self.examples else ""
        return f"{where}: {self.rule}{count}{example}"


@dataclass(frozen=True)
class ValidationReport:
    directory: Path
    as_of: pd.Timestamp
    row_counts: dict[str, int]
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Z", "+00:00", "UTC+00:00"}


def _kind_matches(arrow_type: pa_types.DataType, kind: Kind) -> bool:
    """Does a parquet column's type belong to the contract's type family?

    Judged on the Arrow schema, not on pandas dtypes, so a null in an integer or boolean
    column is reported as a null, not as a float or object column.
    """
    if pa_types.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if kind is Kind.STRING:
        return pa_types.types.is_string(arrow_type) or pa_types.types.is_large_string(arrow_type)
    if kind is Kind.INTEGER:
        return pa_types.types.is_integer(arrow_type)
    if kind is Kind.FLOAT:
        return pa_types.types.is_floating(arrow_type) or pa_types.types.is_integer(arrow_type)
    if kind is Kind.BOOLEAN:
        return pa_types.types.is_boolean(arrow_type)
    return pa_types.types.is_timestamp(arrow_type) and arrow_type.tz in _UTC_NAMES


def _describe_type(arrow_type: pa_types.DataType) -> str:
    if pa_types.types.is_timestamp(arrow_type):
        return (
            f"timestamps in {arrow_type.tz}" if arrow_type.tz else "timestamps without a timezone"
        )
    return str(arrow_type)


def _show(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return "null" if value is None or value is pd.NaT else str(value)


def _key_examples(df: pd.DataFrame, spec: TableSpec, index: Iterable[object]) -> tuple[str, ...]:
    examples = []
    for label in list(dict.fromkeys(index))[:_EXAMPLES]:
        key_cols = [c for c in (spec.key or (spec.columns[0].name,)) if c in df.columns]
        values = ", ".join(f"{c}={_show(df.at[label, c])}" for c in key_cols) if key_cols else ""
        examples.append(f"row {label}" + (f" {values}" if values else ""))
    return tuple(examples)


def well_typed_columns(schema: pa_types.Schema, spec: TableSpec) -> list[str]:
    """The contract columns present with a type of the right family."""
    return [
        c.name
        for c in spec.columns
        if c.name in schema.names and _kind_matches(schema.field(c.name).type, c.kind)
    ]


def check_columns(schema: pa_types.Schema, spec: TableSpec) -> list[Violation]:
    """Missing columns and columns whose type is outside the contract's type family."""
    violations = []
    for col in spec.columns:
        if col.name not in schema.names and col.optional:
            continue
        if col.name not in schema.names:
            violations.append(
                Violation(spec.name, col.name, f"missing column (expected {col.kind})")
            )
        elif not _kind_matches(schema.field(col.name).type, col.kind):
            found = _describe_type(schema.field(col.name).type)
            violations.append(
                Violation(spec.name, col.name, f"wrong type: expected {col.kind}, found {found}")
            )
    return violations


def _is_finite(series: pd.Series) -> pd.Series:
    return series.isna() | np.isfinite(series.astype("float64"))


def table_schema(
    spec: TableSpec, as_of: pd.Timestamp, columns: Iterable[str], keys: bool = True
) -> pa.DataFrameSchema:
    """The pandera schema of value rules for the given (present, well-typed) columns;
    `keys=False` leaves out the key's uniqueness (checked over the whole file elsewhere)."""
    present = set(columns)
    pandera_columns = {}
    for col in spec.columns:
        if col.name not in present:
            continue
        checks = list(col.checks)
        if col.kind is Kind.FLOAT:
            checks.append(pa.Check(_is_finite, name="must be finite"))
        if col.not_after_as_of:
            checks.append(
                pa.Check.le(as_of, error=f"must not be after the as-of instant {as_of.isoformat()}")
            )
        is_single_key = keys and spec.key == (col.name,)
        pandera_columns[col.name] = pa.Column(
            nullable=col.nullable, unique=is_single_key, checks=checks, coerce=False
        )
    composite_key = (
        list(spec.key) if keys and len(spec.key) > 1 and set(spec.key) <= present else None
    )
    row_checks = [rule.check for rule in spec.row_rules if set(rule.uses) <= present]
    return pa.DataFrameSchema(
        pandera_columns, checks=row_checks, unique=composite_key, strict=False, name=spec.name
    )


_RULE_NAMES = {
    "not_nullable": "must not be null",
    "field_uniqueness": "duplicate key",
}


def check_values(
    df: pd.DataFrame,
    spec: TableSpec,
    as_of: pd.Timestamp,
    columns: Iterable[str],
    keys: bool = True,
) -> list[Violation]:
    """Nulls, duplicates, enumerations, ranges and time order of the well-typed `columns`
    (duplicates only with `keys`: a chunk of a file cannot see them all)."""
    schema = table_schema(spec, as_of, columns, keys)
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return []
    cases = cases.assign(column=cases["column"].fillna(""), check=cases["check"].astype(str))
    violations = []
    # A composite-key failure is reported by pandera once per key column: list it once.
    is_composite = cases["check"] == "multiple_fields_uniqueness"
    if is_composite.any():
        index = cases.loc[is_composite, "index"].dropna().unique()
        violations.append(
            Violation(
                spec.name,
                ", ".join(spec.key),
                "duplicate key",
                len(index),
                _key_examples(df, spec, index),
            )
        )
    # Row rules come back once per column of the frame: report each against its column.
    column_of_row_rule = {rule.check.name: rule.column for rule in spec.row_rules}
    is_row_rule = cases["schema_context"].eq("DataFrameSchema") & ~is_composite
    cases.loc[is_row_rule, "column"] = cases.loc[is_row_rule, "check"].map(column_of_row_rule)
    for (column, check), group in cases[~is_composite].groupby(["column", "check"], sort=False):
        index = group["index"].dropna().unique()
        violations.append(
            Violation(
                spec.name,
                column or None,
                _RULE_NAMES.get(check, check),
                len(index),
                _key_examples(df, spec, index),
            )
        )
    return violations


def _month_start(s: pd.Series) -> pd.Series:
    day = s.dt.floor("D")
    return day - pd.to_timedelta(day.dt.day - 1, unit="D")


def _bad_rows(
    table: str, column: str, rule: str, df: pd.DataFrame, spec: TableSpec, bad: pd.Series
) -> list[Violation]:
    if not bad.any():
        return []
    index = df.index[bad.to_numpy()]
    return [Violation(table, column, rule, int(bad.sum()), _key_examples(df, spec, index))]


def _has(tables: dict[str, pd.DataFrame], table: str, *columns: str) -> bool:
    return table in tables and set(columns) <= set(tables[table].columns)


def _by_customer(tables: dict[str, pd.DataFrame], table: str, column: str) -> pd.Series:
    if not _has(tables, table, "customer_id", column):
        return pd.Series(dtype="datetime64[ns, UTC]")
    df = tables[table].drop_duplicates("customer_id")
    return df.set_index("customer_id")[column]


def check_relations(
    tables: dict[str, pd.DataFrame], children: Collection[str] | None = None
) -> list[Violation]:
    """Rules across tables: ids that point nowhere and events outside a customer's life.

    `tables` holds only well-typed contract columns; a rule whose columns are missing or
    mistyped is skipped (that problem is already reported). With `children`, only the rules
    about rows of those tables run (the others' rows may be a chunk or absent).
    """
    violations: list[Violation] = []

    def checks(table: str) -> bool:
        return children is None or table in children

    references = [
        (child, "customer_id", "customers")
        for child in (
            "usage_monthly",
            "service_tickets",
            "package_purchases",
            "campaigns",
            "churn_events",
        )
    ] + [
        (child, "cell_site_id", "cell_sites")
        for child in ("customers", "cell_quality_daily", "network_events")
    ]
    for child, column, parent in references:
        if checks(child) and _has(tables, child, column) and _has(tables, parent, column):
            df = tables[child]
            bad = ~df[column].isin(tables[parent][column]) & df[column].notna()
            violations += _bad_rows(
                child, column, f"unknown {column} (not in {parent})", df, TABLES[child], bad
            )

    if (
        checks("customers")
        and _has(tables, "customers", "cell_site_id", "region")
        and _has(tables, "cell_sites", "cell_site_id", "region")
    ):
        customers = tables["customers"]
        sites = (
            tables["cell_sites"].drop_duplicates("cell_site_id").set_index("cell_site_id")["region"]
        )
        site_region, region = customers["cell_site_id"].map(sites), customers["region"]
        bad = site_region.notna() & region.notna() & (site_region != region)
        violations += _bad_rows(
            "customers",
            "region",
            "differs from the region of the home cell site",
            customers,
            TABLES["customers"],
            bad,
        )

    signup = _by_customer(tables, "customers", "signup_at")
    churned = _by_customer(tables, "churn_events", "churned_at")
    signup_month, churn_month = _month_start(signup), _month_start(churned)
    before_signup, after_churn = (
        "before the customer's signup_at",
        "after the customer's churned_at",
    )
    timed = [
        ("churn_events", "churned_at", before_signup, signup, "lt"),
        ("service_tickets", "opened_at", before_signup, signup, "lt"),
        ("package_purchases", "purchased_at", before_signup, signup, "lt"),
        ("package_purchases", "purchased_at", after_churn, churned, "gt"),
        ("campaigns", "sent_at", before_signup, signup, "lt"),
        ("usage_monthly", "month", "before the customer's signup month", signup_month, "lt"),
        ("usage_monthly", "month", "after the customer's churn month", churn_month, "gt"),
    ]
    for table, column, rule, bound_by_customer, op in timed:
        if not checks(table) or bound_by_customer.empty:
            continue
        if not _has(tables, table, "customer_id", column):
            continue
        df = tables[table]
        bound = df["customer_id"].map(bound_by_customer)
        bad = (df[column] < bound) if op == "lt" else (df[column] > bound)
        violations += _bad_rows(table, column, rule, df, TABLES[table], bad.fillna(False))
    return violations


def read_table(path: Path) -> pd.DataFrame:
    """Read one table's parquet file without any type conversion, rows numbered from 0."""
    return pq.read_table(path).to_pandas().reset_index(drop=True)


class ManifestError(ValueError):
    """The folder's manifest.json cannot say when the data was exported."""


def manifest_as_of(directory: Path) -> pd.Timestamp | None:
    """The `as_of` recorded in the folder's manifest.json (None without a manifest)."""
    manifest = directory / MANIFEST_FILE
    if not manifest.exists():
        return None
    try:
        recorded = json.loads(manifest.read_text())["as_of"]
        if not isinstance(recorded, str):  # a number would be read as nanoseconds from 1970
            raise TypeError(f"as_of is {recorded!r}, not an ISO 8601 timestamp")
        as_of = pd.Timestamp(recorded)
        if as_of is pd.NaT:  # "" or "NaT" parse to NaT: no instant at all
            raise ValueError(f"as_of is {recorded!r}, not an instant")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ManifestError(f"{manifest}: no readable 'as_of' instant ({error!r})") from error
    return as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")


def resolve_as_of(directory: Path, as_of: pd.Timestamp | None) -> pd.Timestamp:
    """The instant after which nothing may have happened: given, else the manifest's, else now."""
    if as_of is not None:
        return as_of.tz_convert("UTC") if as_of.tzinfo else as_of.tz_localize("UTC")
    return manifest_as_of(directory) or pd.Timestamp.now(tz="UTC")


# Tables the relation rules look up, read whole (one row per customer or site, so a few
# columns of them are small); every other table is streamed in chunks.
PARENT_TABLES = ("customers", "cell_sites", "churn_events")
CHUNK_ROWS = 1_000_000


def _chunks(path: Path, columns: list[str], rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file's `columns` in chunks of about `rows` rows, indexed by row number in the file."""
    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns):
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(offset, offset + len(frame))
        offset += len(frame)
        yield frame


def merge_violations(violations: Iterable[Violation]) -> list[Violation]:
    """One violation per (table, column, rule) found in several chunks: the bad rows
    added up, the first examples kept (chunks come in row order)."""
    merged: dict[tuple[str, str | None, str], Violation] = {}
    for v in violations:
        key = (v.table, v.column, v.rule)
        seen = merged.get(key)
        if seen is None:
            merged[key] = v
            continue
        count = None if seen.bad_rows is None else seen.bad_rows + (v.bad_rows or 0)
        examples = (seen.examples + v.examples)[:_EXAMPLES]
        merged[key] = Violation(v.table, v.column, v.rule, count, examples)
    return list(merged.values())


def check_keys(path: Path, spec: TableSpec, columns: Collection[str]) -> list[Violation]:
    """Every row whose key occurs more than once in the whole file, read key columns only
    (Arrow group-by; rows with a null in the key are reported as nulls, not here)."""
    if not spec.key or not set(spec.key) <= set(columns):
        return []
    keys = list(spec.key)
    table = pq.read_table(path, columns=keys)
    table = table.append_column("__row", pa_types.array(np.arange(len(table), dtype="int64")))
    counts = table.group_by(keys).aggregate([("__row", "count")])
    repeated = counts.filter(pc.greater(counts["__row_count"], 1)).select(keys)
    if len(repeated) == 0:
        return []
    rows = table.join(repeated, keys=keys, join_type="left semi").sort_by("__row")
    if len(rows) == 0:
        return []
    first = rows.slice(0, _EXAMPLES).to_pandas().set_index("__row")
    return [
        Violation(
            spec.name,
            ", ".join(keys),
            "duplicate key",
            len(rows),
            _key_examples(first, spec, first.index),
        )
    ]


def _relation_columns(name: str, usable: list[str]) -> list[str]:
    """The columns of table `name` that any relation rule reads, and its key (examples
    name the row by it)."""
    wanted = {"customer_id", "cell_site_id", "region", *TABLES[name].key}
    wanted |= {c.name for c in TABLES[name].columns if c.kind is Kind.TIMESTAMP}
    return [c for c in usable if c in wanted]


def validate_directory(
    directory: Path,
    as_of: pd.Timestamp | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Validate every contract table in `directory`; the report lists all violations.

    `on_step` is called with the name of each table (then "relations") as it is checked.
    A manifest.json that cannot be read is a violation; "now" is then the cut-off.

    Memory stays bounded by the chunk size, not the data: each table's value rules run on
    chunks of `CHUNK_ROWS` rows, its key on the key columns of the whole file, and the
    relations on chunks of each table against the few columns of the customers, cell
    sites and churn events they look up.
    """
    violations: list[Violation] = []
    try:
        cutoff = resolve_as_of(directory, as_of)
    except ManifestError as error:
        violations.append(Violation(MANIFEST_FILE, None, str(error)))
        cutoff = pd.Timestamp.now(tz="UTC")
    usable: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for spec in TABLES.values():
        if on_step is not None:
            on_step(spec.name)
        path = directory / spec.file_name
        if not path.exists():
            violations.append(Violation(spec.name, None, f"missing file {path}"))
            continue
        try:
            schema = pq.ParquetFile(path).schema_arrow
            columns = well_typed_columns(schema, spec)
            found = [
                v
                for chunk in _chunks(path, schema.names)
                for v in check_values(chunk, spec, cutoff, columns, keys=False)
            ]
        except Exception as exc:  # any unreadable file is a violation, not a crash
            violations.append(Violation(spec.name, None, f"unreadable parquet file {path}: {exc}"))
            continue
        violations += check_columns(schema, spec) + merge_violations(found)
        violations += check_keys(path, spec, columns)
        usable[spec.name] = columns
        counts[spec.name] = pq.read_metadata(path).num_rows
    if on_step is not None:
        on_step("relations")
    violations += check_relations_streamed(directory, usable)
    return ValidationReport(directory, cutoff, counts, tuple(violations))


def check_relations_streamed(directory: Path, usable: dict[str, list[str]]) -> list[Violation]:
    """`check_relations` over the readable tables, the looked-up ones whole (their relation
    columns only), every table's own rows in chunks."""
    parents = {
        name: pq.read_table(
            directory / TABLES[name].file_name, columns=_relation_columns(name, usable[name])
        ).to_pandas()
        for name in PARENT_TABLES
        if name in usable
    }
    found = check_relations(parents, children=[n for n in PARENT_TABLES if n in parents])
    for name, columns in usable.items():
        if name in PARENT_TABLES:
            continue
        path = directory / TABLES[name].file_name
        for chunk in _chunks(path, _relation_columns(name, columns)):
            found += check_relations({**parents, name: chunk}, children=[name])
    return merge_violations(found)
