"""Every rule of the validator at its boundary, on a tiny hand-made dataset (no simulator).

Each rule is pinned where it flips: a timestamp exactly at the as-of instant passes and one
second later fails, an event exactly at signup passes and one second earlier fails, and so
on. Assertions name the exact violation (table, column, rule text, bad-row count, examples),
because the report is what a data engineer reads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from features.lifecycle import validate as validate_module
from features.lifecycle.contract import (
    AGE_BANDS,
    CHURN_REASONS,
    CONTRACT_TYPES,
    OUTAGE_CAUSES,
    PAYMENT_METHODS,
    SEGMENTS,
    SEVERITIES,
    TABLES,
    TICKET_CHANNELS,
    TICKET_TYPES,
    Kind,
)
from features.lifecycle.validate import (
    ManifestError,
    ValidationReport,
    Violation,
    check_columns,
    check_relations,
    check_values,
    manifest_as_of,
    read_table,
    resolve_as_of,
    validate_directory,
    well_typed_columns,
)

AS_OF = pd.Timestamp("2026-06-01T00:00:00Z")
AS_OF_RULE = "must not be after the as-of instant 2026-06-01T00:00:00+00:00"
SECOND = pd.Timedelta(seconds=1)
DAY = pd.Timedelta(days=1)


def _utc(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True))


def _build_valid_tables() -> dict[str, pd.DataFrame]:
    """Two customers on two cell sites: C1 still active, C2 churned on 2026-02-20.

    Non-key columns repeat values (two usage rows of C1, one event on two sites), so a
    uniqueness rule applied to the wrong column shows.
    """
    return {
        "customers": pd.DataFrame(
            {
                "customer_id": ["C1", "C2"],
                "signup_at": _utc("2025-01-15T10:00:00", "2025-03-10T08:30:00"),
                "segment": ["consumer", "consumer"],
                "age_band": ["25-34", "45-59"],
                "is_student": [True, False],
                "region": ["north", "south"],
                "cell_site_id": ["S1", "S2"],
                "plan_id": ["basic", "basic"],
                "monthly_fee": [19.9, 49.0],
                "contract_type": ["one_year", "month_to_month"],
                "contract_end_at": _utc("2027-01-15T10:00:00", None),
                "payment_method": ["credit_card", "bank_transfer"],
                "paperless_billing": [True, True],
                "consent_sms": [True, False],
                "consent_app_push": [False, True],
                "consent_email": [True, True],
                "consent_phone": [False, False],
                "large_print": [False, True],
                "account_manager_id": [None, "AM-1"],
            }
        ),
        "usage_monthly": pd.DataFrame(
            {
                "customer_id": ["C1", "C1", "C2", "C2"],
                "month": _utc("2025-01-01", "2026-05-01", "2025-03-01", "2026-02-01"),
                "data_gb": [1.5, 2.0, 10.0, 0.0],
                "voice_min": [100.0, 50.0, 0.0, 12.5],
                "sms": [3, 0, 10, 0],
                "roaming_days": [0, 31, 2, 0],
                "bill_amount": [19.9, 25.0, 49.0, 49.0],
                "overage_amount": [0.0, 5.1, 0.0, 0.0],
                "late_payment": [False, True, False, False],
            }
        ),
        "service_tickets": pd.DataFrame(
            {
                "ticket_id": ["T1", "T2"],
                "customer_id": ["C1", "C2"],
                "opened_at": _utc("2025-02-01T09:00:00", "2025-04-01T12:00:00"),
                "closed_at": _utc("2025-02-02T09:00:00", None),
                "ticket_type": ["network_fault", "billing_dispute"],
                "channel": ["hotline", "app"],
                "first_contact_resolved": [False, False],
                "is_repeat": [False, False],
                "sentiment": [-1.0, 1.0],
            }
        ),
        "cell_sites": pd.DataFrame({"cell_site_id": ["S1", "S2"], "region": ["north", "south"]}),
        "cell_quality_daily": pd.DataFrame(
            {
                "cell_site_id": ["S1", "S2"],
                "day": _utc("2026-05-31", "2026-05-31"),
                "drop_rate": [0.0, 1.0],
                "load": [0.7, 0.0],
            }
        ),
        "network_events": pd.DataFrame(
            {
                "event_id": ["E1", "E1"],
                "cell_site_id": ["S1", "S2"],
                "started_at": _utc("2026-05-01T03:00:00", "2026-05-01T03:00:00"),
                "ended_at": _utc("2026-05-01T09:00:00", None),
                "severity": ["major", "major"],
                "cause": ["typhoon", "typhoon"],
            }
        ),
        "package_purchases": pd.DataFrame(
            {
                "customer_id": ["C1", "C2"],
                "package_id": ["daily_pass", "roaming_pack"],
                "purchased_at": _utc("2025-06-01T10:00:00", "2025-05-01T10:00:00"),
                "price": [3.0, 15.0],
            }
        ),
        "campaigns": pd.DataFrame(
            {
                "customer_id": ["C1", "C2"],
                "campaign_id": ["K1", "K1"],
                "offer_id": ["O1", "O1"],
                "treated": [True, False],
                "sent_at": _utc("2025-07-01T08:00:00", "2025-07-01T08:00:00"),
                "accepted": [True, False],
            }
        ),
        "churn_events": pd.DataFrame(
            {
                "customer_id": ["C2"],
                "churned_at": _utc("2026-02-20T17:00:00"),
                "reason": ["price"],
            }
        ),
    }


_VALID = _build_valid_tables()


def valid_tables() -> dict[str, pd.DataFrame]:
    """A fresh copy of the valid dataset, for a test to break."""
    return {name: df.copy() for name, df in _VALID.items()}


def write_tables(
    directory: Path, tables: dict[str, pd.DataFrame | pa.Table], as_of: str | None = None
) -> Path:
    """Write each table as `<name>.parquet` and a manifest.json (as_of: AS_OF by default)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        arrow = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, None, False)
        pq.write_table(arrow, directory / f"{name}.parquet")
    manifest = {"generator": "hand-made", "as_of": as_of or AS_OF.isoformat()}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def arrow_roundtrip(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as the validator reads it from parquet."""
    return pa.Table.from_pandas(df, preserve_index=False).to_pandas()


def with_null(df: pd.DataFrame, column: str, row: int = 0) -> pd.DataFrame:
    """`df` with one null, typed as parquet types it (an int column stays int64 in Arrow)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    values = table.column(column).to_pylist()
    values[row] = None
    field = table.schema.field(column)
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, field.type)).to_pandas()


def values_of(table: str, df: pd.DataFrame, as_of: pd.Timestamp = AS_OF) -> list[Violation]:
    """The value rules of one table, all of its columns taken as well typed."""
    return check_values(df, TABLES[table], as_of, list(df.columns))


def changed(tables: dict[str, pd.DataFrame], table: str, row: int, **values: object) -> None:
    """Set `values` in one row of one table, in place."""
    for column, value in values.items():
        tables[table].loc[row, column] = value


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return valid_tables()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The valid dataset written to disk with a manifest (as_of: AS_OF)."""
    return write_tables(tmp_path / "lifecycle", valid_tables())


def validate(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> ValidationReport:
    return validate_directory(write_tables(tmp_path / "lifecycle", tables))


# how row 0 of each valid table shows in a violation's examples
ROW_0 = {
    "customers": "row 0 customer_id=C1",
    "usage_monthly": "row 0 customer_id=C1, month=2025-01-01T00:00:00+00:00",
    "service_tickets": "row 0 ticket_id=T1",
    "cell_sites": "row 0 cell_site_id=S1",
    "cell_quality_daily": "row 0 cell_site_id=S1, day=2026-05-31T00:00:00+00:00",
    "network_events": "row 0 event_id=E1, cell_site_id=S1",
    "package_purchases": "row 0 customer_id=C1",
    "campaigns": "row 0 campaign_id=K1, customer_id=C1",
    "churn_events": "row 0 customer_id=C2",
}


# --- the dataset itself -----------------------------------------------------------------


def test_the_minimal_dataset_is_valid(folder: Path) -> None:
    report = validate_directory(folder)
    assert report.violations == ()
    assert report.ok
    assert report.as_of == AS_OF
    assert report.directory == folder
    assert report.row_counts == {
        "customers": 2,
        "usage_monthly": 4,
        "service_tickets": 2,
        "cell_sites": 2,
        "cell_quality_daily": 2,
        "network_events": 2,
        "package_purchases": 2,
        "campaigns": 2,
        "churn_events": 1,
    }


# --- nothing after the as-of instant ----------------------------------------------------

# (table, column, example of row 0 once its value is `{value}`)
NOT_AFTER_AS_OF = [
    ("customers", "signup_at", "row 0 customer_id=C1"),
    ("usage_monthly", "month", "row 0 customer_id=C1, month={value}"),
    ("service_tickets", "opened_at", "row 0 ticket_id=T1"),
    ("service_tickets", "closed_at", "row 0 ticket_id=T1"),
    ("cell_quality_daily", "day", "row 0 cell_site_id=S1, day={value}"),
    ("network_events", "started_at", "row 0 event_id=E1, cell_site_id=S1"),
    ("network_events", "ended_at", "row 0 event_id=E1, cell_site_id=S1"),
    ("package_purchases", "purchased_at", "row 0 customer_id=C1"),
    ("campaigns", "sent_at", "row 0 campaign_id=K1, customer_id=C1"),
    ("churn_events", "churned_at", "row 0 customer_id=C2"),
]


def test_the_contract_marks_exactly_these_columns_not_after_as_of() -> None:
    marked = [(t.name, c.name) for t in TABLES.values() for c in t.columns if c.not_after_as_of]
    assert marked == [(table, column) for table, column, _ in NOT_AFTER_AS_OF]


def _as_of_violations(violations: list[Violation] | tuple[Violation, ...]) -> list[Violation]:
    return [v for v in violations if v.rule.startswith("must not be after the as-of instant")]


def _at(table: str, column: str, when: pd.Timestamp) -> pd.DataFrame:
    df = valid_tables()[table]
    df.loc[0, column] = when
    return df


@pytest.mark.parametrize(("table", "column", "example_text"), NOT_AFTER_AS_OF)
def test_a_timestamp_exactly_at_the_as_of_instant_passes(
    table: str, column: str, example_text: str
) -> None:
    assert _as_of_violations(values_of(table, _at(table, column, AS_OF))) == []


@pytest.mark.parametrize(("table", "column", "example_text"), NOT_AFTER_AS_OF)
def test_a_timestamp_one_second_after_the_as_of_instant_is_reported(
    table: str, column: str, example_text: str
) -> None:
    late = AS_OF + SECOND
    assert _as_of_violations(values_of(table, _at(table, column, late))) == [
        Violation(table, column, AS_OF_RULE, 1, (example_text.format(value=late.isoformat()),))
    ]


@settings(max_examples=20)
@given(
    where=st.sampled_from(NOT_AFTER_AS_OF),
    seconds=st.integers(min_value=-3 * 86_400, max_value=3 * 86_400),
)
@example(where=NOT_AFTER_AS_OF[0], seconds=0)
@example(where=NOT_AFTER_AS_OF[0], seconds=1)
def test_a_timestamp_is_reported_exactly_when_it_is_after_the_as_of_instant(
    where: tuple[str, str, str], seconds: int
) -> None:
    table, column, _ = where
    found = _as_of_violations(values_of(table, _at(table, column, AS_OF + seconds * SECOND)))
    assert [(v.column, v.bad_rows) for v in found] == ([(column, 1)] if seconds > 0 else [])


@pytest.mark.parametrize(
    "late",
    [SECOND, DAY - SECOND],
    ids=["one-second", "a-second-short-of-a-day"],
)
def test_timestamps_up_to_a_day_after_the_manifest_as_of_are_reported(
    tmp_path: Path, tables: dict[str, pd.DataFrame], late: pd.Timedelta
) -> None:
    """No grace period: every not-after-as-of column, read against the manifest's as_of."""
    when = AS_OF + late
    for table, column, _ in NOT_AFTER_AS_OF:
        changed(tables, table, 0, **{column: when})
    report = validate(tmp_path, tables)
    assert _as_of_violations(report.violations) == [
        Violation(table, column, AS_OF_RULE, 1, (example_text.format(value=when.isoformat()),))
        for table, column, example_text in NOT_AFTER_AS_OF
    ]


def test_contract_end_at_may_lie_after_the_as_of_instant(tables: dict[str, pd.DataFrame]) -> None:
    customers = tables["customers"]
    customers.loc[0, "contract_end_at"] = AS_OF + pd.Timedelta(days=3650)
    assert values_of("customers", customers) == []


def test_a_given_as_of_is_the_cut_off_to_the_second(folder: Path) -> None:
    """The latest event of the dataset is the quality of day 2026-05-31 (both sites)."""
    latest = pd.Timestamp("2026-05-31T00:00:00Z")
    assert validate_directory(folder, latest).violations == ()
    report = validate_directory(folder, latest - SECOND)
    assert report.as_of == latest - SECOND
    assert report.violations == (
        Violation(
            "cell_quality_daily",
            "day",
            "must not be after the as-of instant 2026-05-30T23:59:59+00:00",
            2,
            (
                "row 0 cell_site_id=S1, day=2026-05-31T00:00:00+00:00",
                "row 1 cell_site_id=S2, day=2026-05-31T00:00:00+00:00",
            ),
        ),
    )


# --- how the as-of instant is resolved --------------------------------------------------


def test_a_given_as_of_wins_over_the_manifest(folder: Path) -> None:
    given_as_of = pd.Timestamp("2027-01-01T00:00:00Z")
    assert resolve_as_of(folder, given_as_of) == given_as_of


@pytest.mark.parametrize(
    ("given_as_of", "expected"),
    [
        (pd.Timestamp("2026-06-01T08:00:00+08:00"), AS_OF),
        (pd.Timestamp("2026-06-01T00:00:00"), AS_OF),
        (pd.Timestamp("2026-05-31T20:00:00", tz="America/New_York"), AS_OF),
    ],
    ids=["offset", "naive-read-as-utc", "named-zone"],
)
def test_a_given_as_of_is_converted_to_utc(
    tmp_path: Path, given_as_of: pd.Timestamp, expected: pd.Timestamp
) -> None:
    resolved = resolve_as_of(tmp_path, given_as_of)
    assert resolved == expected
    assert str(resolved.tz) == "UTC"


@pytest.mark.parametrize(
    "recorded",
    ["2026-06-01T00:00:00+00:00", "2026-06-01T08:00:00+08:00", "2026-06-01T00:00:00"],
    ids=["utc", "offset", "naive-read-as-utc"],
)
def test_the_manifest_as_of_is_read_as_utc(tmp_path: Path, recorded: str) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"as_of": recorded}))
    for resolved in (manifest_as_of(tmp_path), resolve_as_of(tmp_path, None)):
        assert resolved == AS_OF
        assert resolved is not None and str(resolved.tz) == "UTC"


def test_without_manifest_or_given_as_of_now_is_the_cut_off(tmp_path: Path) -> None:
    assert manifest_as_of(tmp_path) is None
    before = pd.Timestamp.now(tz="UTC")
    resolved = resolve_as_of(tmp_path, None)
    assert before <= resolved <= pd.Timestamp.now(tz="UTC")
    assert str(resolved.tz) == "UTC"


# (manifest.json text, or None for a folder of that name; the reason as the error shows it)
UNREADABLE_MANIFESTS = [
    pytest.param(
        "{not json",
        "JSONDecodeError('Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)')",
        id="not-json",
    ),
    pytest.param('{"generator": "x"}', "KeyError('as_of')", id="no-as-of"),
    pytest.param(
        "[]", "TypeError('list indices must be integers or slices, not str')", id="not-an-object"
    ),
    pytest.param(
        '{"as_of": "yesterday"}',
        "DateParseError('Unknown datetime string format, unable to parse: yesterday')",
        id="not-an-instant",
    ),
    pytest.param(
        '{"as_of": null}',
        "TypeError('as_of is None, not an ISO 8601 timestamp')",
        id="null-as-of",
    ),
    pytest.param(
        '{"as_of": 1793491200}',
        "TypeError('as_of is 1793491200, not an ISO 8601 timestamp')",
        id="a-number",
    ),
    pytest.param('{"as_of": "NaT"}', "ValueError(\"as_of is 'NaT', not an instant\")", id="nat"),
    pytest.param('{"as_of": ""}', "ValueError(\"as_of is '', not an instant\")", id="empty"),
    pytest.param(None, "IsADirectoryError(21, 'Is a directory')", id="a-folder"),
]


@pytest.mark.parametrize(("content", "reason"), UNREADABLE_MANIFESTS)
def test_a_manifest_without_a_readable_as_of_is_a_manifest_error(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    manifest = tmp_path / "manifest.json"
    if content is None:
        manifest.mkdir()
    else:
        manifest.write_text(content)
    with pytest.raises(ManifestError) as raised:
        manifest_as_of(tmp_path)
    assert str(raised.value) == f"{manifest}: no readable 'as_of' instant ({reason})"
    with pytest.raises(ManifestError):
        resolve_as_of(tmp_path, None)


def test_an_unreadable_manifest_is_a_violation_and_now_is_the_cut_off(folder: Path) -> None:
    manifest = folder / "manifest.json"
    manifest.write_text('{"as_of": null}')
    before = pd.Timestamp.now(tz="UTC")
    report = validate_directory(folder)
    assert before <= report.as_of <= pd.Timestamp.now(tz="UTC")
    assert report.violations == (
        Violation(
            "manifest.json",
            None,
            f"{manifest}: no readable 'as_of' instant "
            "(TypeError('as_of is None, not an ISO 8601 timestamp'))",
        ),
    )


# --- types, judged by family on the Arrow schema ----------------------------------------

CANONICAL = {
    Kind.STRING: pa.string(),
    Kind.INTEGER: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOLEAN: pa.bool_(),
    Kind.TIMESTAMP: pa.timestamp("ns", tz="UTC"),
}


def contract_schema(table: str, **types: pa.DataType) -> pa.Schema:
    """The table's contract columns in a canonical type of their family, some overridden."""
    return pa.schema(
        [(c.name, types.get(c.name, CANONICAL[c.kind])) for c in TABLES[table].columns]
    )


ACCEPTED_TYPES = [
    ("usage_monthly", "sms", pa.int32()),
    ("usage_monthly", "sms", pa.uint8()),
    ("usage_monthly", "data_gb", pa.float32()),
    ("usage_monthly", "data_gb", pa.int64()),
    ("customers", "segment", pa.large_string()),
    ("customers", "segment", pa.dictionary(pa.int32(), pa.string())),
    ("customers", "segment", pa.dictionary(pa.int8(), pa.large_string())),
    ("customers", "is_student", pa.bool_()),
    ("customers", "signup_at", pa.timestamp("s", tz="UTC")),
    ("customers", "signup_at", pa.timestamp("us", tz="Etc/UTC")),
    ("customers", "signup_at", pa.timestamp("ms", tz="+00:00")),
    ("customers", "signup_at", pa.timestamp("ns", tz="GMT")),
]


@pytest.mark.parametrize(("table", "column", "arrow_type"), ACCEPTED_TYPES, ids=str)
def test_any_width_or_encoding_of_the_right_family_is_accepted(
    table: str, column: str, arrow_type: pa.DataType
) -> None:
    schema = contract_schema(table, **{column: arrow_type})
    assert check_columns(schema, TABLES[table]) == []
    assert well_typed_columns(schema, TABLES[table]) == [c.name for c in TABLES[table].columns]


WRONG_TYPES = [
    ("usage_monthly", "sms", pa.float64(), "expected integer, found double"),
    ("usage_monthly", "sms", pa.string(), "expected integer, found string"),
    ("usage_monthly", "data_gb", pa.string(), "expected float, found string"),
    ("usage_monthly", "data_gb", pa.bool_(), "expected float, found bool"),
    ("customers", "segment", pa.int64(), "expected string, found int64"),
    (
        "customers",
        "segment",
        pa.dictionary(pa.int8(), pa.int32()),
        "expected string, found dictionary<values=int32, indices=int8, ordered=0>",
    ),
    ("customers", "is_student", pa.int8(), "expected boolean, found int8"),
    ("customers", "is_student", pa.string(), "expected boolean, found string"),
    (
        "customers",
        "signup_at",
        pa.timestamp("ns"),
        "expected timestamp (UTC), found timestamps without a timezone",
    ),
    (
        "customers",
        "signup_at",
        pa.timestamp("us", tz="Asia/Taipei"),
        "expected timestamp (UTC), found timestamps in Asia/Taipei",
    ),
    (
        "customers",
        "signup_at",
        pa.timestamp("us", tz="+08:00"),
        "expected timestamp (UTC), found timestamps in +08:00",
    ),
    ("customers", "signup_at", pa.date32(), "expected timestamp (UTC), found date32[day]"),
    ("customers", "signup_at", pa.string(), "expected timestamp (UTC), found string"),
]


@pytest.mark.parametrize(("table", "column", "arrow_type", "message"), WRONG_TYPES, ids=str)
def test_a_type_outside_the_family_is_a_wrong_type_and_the_column_is_not_used(
    table: str, column: str, arrow_type: pa.DataType, message: str
) -> None:
    schema = contract_schema(table, **{column: arrow_type})
    assert check_columns(schema, TABLES[table]) == [
        Violation(table, column, f"wrong type: {message}")
    ]
    assert column not in well_typed_columns(schema, TABLES[table])
    assert len(well_typed_columns(schema, TABLES[table])) == len(TABLES[table].columns) - 1


def test_a_missing_column_names_the_expected_type_and_the_rest_stay_usable() -> None:
    schema = contract_schema("service_tickets").remove(2)  # opened_at
    assert check_columns(schema, TABLES["service_tickets"]) == [
        Violation("service_tickets", "opened_at", "missing column (expected timestamp (UTC))")
    ]
    assert well_typed_columns(schema, TABLES["service_tickets"]) == [
        "ticket_id",
        "customer_id",
        "closed_at",
        "ticket_type",
        "channel",
        "first_contact_resolved",
        "is_repeat",
        "sentiment",
    ]


def test_a_mistyped_column_is_reported_once_and_no_rule_reads_its_values(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    """opened_at in Taipei time, after the as-of and before signup: only the type is wrong."""
    tickets = tables["service_tickets"]
    tickets["opened_at"] = pd.Series(
        [AS_OF + DAY, pd.Timestamp("2020-01-01T00:00:00Z")]
    ).dt.tz_convert("Asia/Taipei")
    assert validate(tmp_path, tables).violations == (
        Violation(
            "service_tickets",
            "opened_at",
            "wrong type: expected timestamp (UTC), found timestamps in Asia/Taipei",
        ),
    )


@pytest.mark.parametrize(
    ("table", "column"),
    [("usage_monthly", "sms"), ("usage_monthly", "late_payment"), ("service_tickets", "sentiment")],
)
def test_a_null_in_a_typed_column_is_reported_as_a_null_not_a_wrong_type(
    tmp_path: Path, tables: dict[str, pd.DataFrame], table: str, column: str
) -> None:
    arrow = pa.Table.from_pandas(tables[table], preserve_index=False)
    values = arrow.column(column).to_pylist()
    values[1] = None
    index = arrow.schema.get_field_index(column)
    typed = arrow.set_column(index, column, pa.array(values, arrow.schema.field(column).type))
    example_text = {
        "usage_monthly": "row 1 customer_id=C1, month=2026-05-01T00:00:00+00:00",
        "service_tickets": "row 1 ticket_id=T2",
    }[table]
    report = validate(tmp_path, {**tables, table: typed})
    assert report.violations == (Violation(table, column, "must not be null", 1, (example_text,)),)


def test_dictionary_encoded_strings_are_checked_like_plain_strings(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    tickets = tables["service_tickets"]
    tickets["channel"] = pd.Categorical(["hotline", "fax"])
    assert validate(tmp_path, tables).violations == (
        Violation(
            "service_tickets",
            "channel",
            "must be one of: hotline, app, store, chat",
            1,
            ("row 1 ticket_id=T2",),
        ),
    )


# --- nulls ------------------------------------------------------------------------------


def _example_of_row_0_all_null(table: str) -> str:
    key = TABLES[table].key or (TABLES[table].columns[0].name,)
    return "row 0 " + ", ".join(f"{c}=null" for c in key)


@pytest.mark.parametrize("table", list(TABLES))
def test_a_null_is_reported_in_every_non_nullable_column_and_nowhere_else(table: str) -> None:
    df = valid_tables()[table]
    for column in df.columns:
        df = with_null(df, column)
    expected = {
        Violation(table, c.name, "must not be null", 1, (_example_of_row_0_all_null(table),))
        for c in TABLES[table].columns
        if not c.nullable
    }
    found = values_of(table, df)
    assert len(found) == len(expected)
    assert set(found) == expected


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("customers", "contract_end_at"),
        ("customers", "account_manager_id"),
        ("service_tickets", "closed_at"),
        ("network_events", "ended_at"),
        ("churn_events", "reason"),
    ],
)
def test_a_null_in_a_nullable_column_passes(table: str, column: str) -> None:
    df = valid_tables()[table]
    if column == "contract_end_at":  # a null end date is only right on a month-to-month contract
        df["contract_type"] = "month_to_month"
    assert values_of(table, with_null(df, column)) == []


# --- keys -------------------------------------------------------------------------------


def test_a_duplicated_single_key_reports_every_copy(tables: dict[str, pd.DataFrame]) -> None:
    customers = tables["customers"]
    customers.loc[1, "customer_id"] = "C1"
    assert values_of("customers", customers) == [
        Violation(
            "customers",
            "customer_id",
            "duplicate key",
            2,
            ("row 0 customer_id=C1", "row 1 customer_id=C1"),
        )
    ]


def test_a_duplicated_composite_key_is_reported_once_for_the_key(
    tables: dict[str, pd.DataFrame],
) -> None:
    usage = tables["usage_monthly"]
    changed(tables, "usage_monthly", 1, month=usage.loc[0, "month"])
    assert values_of("usage_monthly", usage) == [
        Violation(
            "usage_monthly",
            "customer_id, month",
            "duplicate key",
            2,
            (
                "row 0 customer_id=C1, month=2025-01-01T00:00:00+00:00",
                "row 1 customer_id=C1, month=2025-01-01T00:00:00+00:00",
            ),
        )
    ]


def test_a_composite_key_repeats_its_parts_freely() -> None:
    """One event on many sites, one site in many events; one campaign for many customers."""
    tables = valid_tables()
    events = pd.concat([tables["network_events"]] * 2, ignore_index=True)
    events.loc[2:, "event_id"] = "E2"
    assert values_of("network_events", events) == []
    assert values_of("campaigns", tables["campaigns"]) == []


def test_a_composite_key_is_checked_even_when_it_is_all_that_is_left_of_the_table() -> None:
    usage = valid_tables()["usage_monthly"][["customer_id", "month"]]
    usage = pd.concat([usage, usage.iloc[[3]]], ignore_index=True)
    assert values_of("usage_monthly", usage) == [
        Violation(
            "usage_monthly",
            "customer_id, month",
            "duplicate key",
            2,
            (
                "row 3 customer_id=C2, month=2026-02-01T00:00:00+00:00",
                "row 4 customer_id=C2, month=2026-02-01T00:00:00+00:00",
            ),
        )
    ]


def test_a_composite_key_with_a_part_missing_is_not_checked(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    usage = tables["usage_monthly"]
    tables["usage_monthly"] = pd.concat([usage, usage.iloc[[3]]], ignore_index=True).drop(
        columns=["month"]
    )
    assert validate(tmp_path, tables).violations == (
        Violation("usage_monthly", "month", "missing column (expected timestamp (UTC))"),
    )


def test_a_table_without_a_key_may_repeat_rows(tables: dict[str, pd.DataFrame]) -> None:
    purchases = tables["package_purchases"]
    assert values_of("package_purchases", pd.concat([purchases] * 2, ignore_index=True)) == []


# --- enumerations, identifiers, ranges, finite floats -----------------------------------

ENUMERATIONS = [
    ("customers", "segment", SEGMENTS),
    ("customers", "age_band", AGE_BANDS),
    ("customers", "contract_type", CONTRACT_TYPES),
    ("customers", "payment_method", PAYMENT_METHODS),
    ("service_tickets", "ticket_type", TICKET_TYPES),
    ("service_tickets", "channel", TICKET_CHANNELS),
    ("network_events", "severity", SEVERITIES),
    ("network_events", "cause", OUTAGE_CAUSES),
    ("churn_events", "reason", CHURN_REASONS),
]


@pytest.mark.parametrize(("table", "column", "allowed"), ENUMERATIONS)
def test_a_value_outside_an_enumeration_is_reported_even_if_only_its_case_differs(
    table: str, column: str, allowed: tuple[str, ...]
) -> None:
    df = valid_tables()[table]
    value = df.loc[0, column]
    df.loc[0, column] = value.upper() if value.upper() != value else f"{value} "
    assert values_of(table, df) == [
        Violation(table, column, f"must be one of: {', '.join(allowed)}", 1, (ROW_0[table],))
    ]


def test_an_identifier_allows_only_letters_digits_underscore_and_hyphen(
    tables: dict[str, pd.DataFrame],
) -> None:
    customers = tables["customers"]
    customers["plan_id"] = ["Basic_2-x", "basic plan"]
    assert values_of("customers", customers) == [
        Violation(
            "customers",
            "plan_id",
            "must be an identifier (letters, digits, _ and -)",
            1,
            ("row 1 customer_id=C2",),
        )
    ]


# (table, column, value in row 0, rules it breaks)
RANGES = [
    ("usage_monthly", "roaming_days", 0, []),
    ("usage_monthly", "roaming_days", 31, []),
    ("usage_monthly", "roaming_days", -1, ["must be in [0, 31]"]),
    ("usage_monthly", "roaming_days", 32, ["must be in [0, 31]"]),
    ("usage_monthly", "sms", 0, []),
    ("usage_monthly", "sms", -1, ["must be >= 0"]),
    ("service_tickets", "sentiment", -1.0, []),
    ("service_tickets", "sentiment", 1.0, []),
    ("service_tickets", "sentiment", -1.000001, ["must be in [-1, 1]"]),
    ("service_tickets", "sentiment", 1.000001, ["must be in [-1, 1]"]),
    ("cell_quality_daily", "drop_rate", 1.0, []),
    ("cell_quality_daily", "drop_rate", 1.01, ["must be in [0, 1]"]),
    ("customers", "monthly_fee", 0.0, []),
    ("customers", "monthly_fee", -0.01, ["must be >= 0"]),
    ("customers", "monthly_fee", np.inf, ["must be finite"]),
    ("customers", "monthly_fee", -np.inf, ["must be >= 0", "must be finite"]),
    ("customers", "monthly_fee", np.nan, ["must not be null"]),
    ("cell_quality_daily", "load", np.inf, ["must be finite"]),
    ("service_tickets", "sentiment", np.inf, ["must be in [-1, 1]", "must be finite"]),
    ("service_tickets", "sentiment", np.nan, ["must not be null"]),
]


@pytest.mark.parametrize(("table", "column", "value", "rules"), RANGES, ids=str)
def test_ranges_are_closed_and_floats_must_be_finite(
    table: str, column: str, value: float, rules: list[str]
) -> None:
    """A NaN is a null (reported once as such); inf and -inf are not finite."""
    df = valid_tables()[table]
    df.loc[0, column] = value
    assert values_of(table, df) == [Violation(table, column, r, 1, (ROW_0[table],)) for r in rules]


def test_a_float_column_stored_as_integers_passes_the_finite_rule(
    tables: dict[str, pd.DataFrame],
) -> None:
    purchases = tables["package_purchases"]
    purchases["price"] = [3, 15]
    assert values_of("package_purchases", purchases) == []


def test_month_and_day_must_be_their_first_instant(tables: dict[str, pd.DataFrame]) -> None:
    usage, quality = tables["usage_monthly"], tables["cell_quality_daily"]
    usage.loc[0, "month"] = pd.Timestamp("2025-01-01T00:00:01Z")
    usage.loc[1, "month"] = pd.Timestamp("2026-05-02T00:00:00Z")
    quality.loc[1, "day"] = pd.Timestamp("2026-05-30T12:00:00Z")
    assert values_of("usage_monthly", usage) == [
        Violation(
            "usage_monthly",
            "month",
            "must be the first instant of a month",
            2,
            (
                "row 0 customer_id=C1, month=2025-01-01T00:00:01+00:00",
                "row 1 customer_id=C1, month=2026-05-02T00:00:00+00:00",
            ),
        )
    ]
    assert values_of("cell_quality_daily", quality) == [
        Violation(
            "cell_quality_daily",
            "day",
            "must be midnight",
            1,
            ("row 1 cell_site_id=S2, day=2026-05-30T12:00:00+00:00",),
        )
    ]


def test_violations_of_one_table_come_in_column_order(tables: dict[str, pd.DataFrame]) -> None:
    customers = tables["customers"]
    changed(tables, "customers", 0, segment="retail", age_band="17")
    changed(tables, "customers", 1, payment_method="cash")
    assert [v.column for v in values_of("customers", customers)] == [
        "segment",
        "age_band",
        "payment_method",
    ]


def test_at_most_three_examples_are_shown(tables: dict[str, pd.DataFrame]) -> None:
    usage = tables["usage_monthly"]
    usage["sms"] = -1
    assert values_of("usage_monthly", usage) == [
        Violation(
            "usage_monthly",
            "sms",
            "must be >= 0",
            4,
            (
                "row 0 customer_id=C1, month=2025-01-01T00:00:00+00:00",
                "row 1 customer_id=C1, month=2026-05-01T00:00:00+00:00",
                "row 2 customer_id=C2, month=2025-03-01T00:00:00+00:00",
            ),
        )
    ]


def test_examples_name_the_first_column_of_a_table_without_key_and_rows_without_keys(
    tables: dict[str, pd.DataFrame],
) -> None:
    purchases, tickets = tables["package_purchases"], tables["service_tickets"]
    purchases.loc[1, "price"] = -3.0
    tickets.loc[1, "sentiment"] = 2.0
    assert values_of("package_purchases", purchases) == [
        Violation("package_purchases", "price", "must be >= 0", 1, ("row 1 customer_id=C2",))
    ]
    assert values_of("package_purchases", purchases.drop(columns=["customer_id"])) == [
        Violation("package_purchases", "price", "must be >= 0", 1, ("row 1",))
    ]
    assert values_of("service_tickets", tickets.drop(columns=["ticket_id"])) == [
        Violation("service_tickets", "sentiment", "must be in [-1, 1]", 1, ("row 1",))
    ]


# --- rules across the columns of a row --------------------------------------------------

# (table, start, end, the row that has an end to move)
ORDERED = [
    ("service_tickets", "opened_at", "closed_at", 0),
    ("network_events", "started_at", "ended_at", 0),
    ("customers", "signup_at", "contract_end_at", 0),
]


@pytest.mark.parametrize(("table", "start", "end", "row"), ORDERED)
def test_an_end_exactly_at_its_start_passes(table: str, start: str, end: str, row: int) -> None:
    df = valid_tables()[table]
    df.loc[row, end] = df.loc[row, start]
    assert values_of(table, df) == []


@pytest.mark.parametrize(("table", "start", "end", "row"), ORDERED)
def test_an_end_one_second_before_its_start_is_reported(
    table: str, start: str, end: str, row: int
) -> None:
    df = valid_tables()[table]
    df.loc[row, end] = df.loc[row, start] - SECOND
    assert values_of(table, df) == [
        Violation(table, end, f"must not be before {start}", 1, (ROW_0[table],))
    ]


@settings(max_examples=20)
@given(seconds=st.integers(min_value=-86_400, max_value=86_400))
@example(seconds=0)
@example(seconds=-1)
def test_closed_at_is_reported_exactly_when_it_is_before_opened_at(seconds: int) -> None:
    tickets = valid_tables()["service_tickets"]
    tickets["closed_at"] = tickets["opened_at"] + seconds * SECOND
    expected = (
        [
            Violation(
                "service_tickets",
                "closed_at",
                "must not be before opened_at",
                2,
                ("row 0 ticket_id=T1", "row 1 ticket_id=T2"),
            )
        ]
        if seconds < 0
        else []
    )
    assert values_of("service_tickets", tickets) == expected


def test_the_end_date_is_set_exactly_for_term_contracts(tables: dict[str, pd.DataFrame]) -> None:
    customers = tables["customers"]
    customers["contract_end_at"] = customers["contract_end_at"].iloc[::-1].to_numpy()
    assert values_of("customers", customers) == [
        Violation(
            "customers",
            "contract_end_at",
            "must be set exactly for term contracts",
            2,
            ("row 0 customer_id=C1", "row 1 customer_id=C2"),
        )
    ]


def test_a_control_row_must_not_accept(tables: dict[str, pd.DataFrame]) -> None:
    campaigns = tables["campaigns"]
    campaigns["accepted"] = True
    assert values_of("campaigns", campaigns) == [
        Violation(
            "campaigns",
            "accepted",
            "must be false on a control row",
            1,
            ("row 1 campaign_id=K1, customer_id=C2",),
        )
    ]


def test_row_rules_run_when_other_columns_are_missing_even_all_of_them(
    tables: dict[str, pd.DataFrame],
) -> None:
    tickets = tables["service_tickets"]
    tickets.loc[1, "closed_at"] = tickets.loc[1, "opened_at"] - SECOND
    expected = Violation(
        "service_tickets", "closed_at", "must not be before opened_at", 1, ("row 1",)
    )
    assert values_of("service_tickets", tickets[["opened_at", "closed_at"]]) == [expected]
    assert values_of("service_tickets", tickets.drop(columns=["channel"])) == [
        Violation(
            "service_tickets",
            "closed_at",
            "must not be before opened_at",
            1,
            ("row 1 ticket_id=T2",),
        )
    ]


def test_a_missing_column_does_not_stop_the_checks_of_the_columns_after_it(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    tables["customers"] = tables["customers"].drop(columns=["segment"])
    changed(tables, "customers", 1, payment_method="cash")
    assert validate(tmp_path, tables).violations == (
        Violation("customers", "segment", "missing column (expected string)"),
        Violation(
            "customers",
            "payment_method",
            "must be one of: electronic_check, mailed_check, bank_transfer, credit_card",
            1,
            ("row 1 customer_id=C2",),
        ),
    )


def test_extra_columns_are_allowed(tables: dict[str, pd.DataFrame]) -> None:
    customers = tables["customers"].assign(crm_code=["X", "X"])
    assert values_of("customers", customers) == []


# --- rules across tables ----------------------------------------------------------------

REFERENCES = [
    ("usage_monthly", "customer_id", "customers"),
    ("service_tickets", "customer_id", "customers"),
    ("package_purchases", "customer_id", "customers"),
    ("campaigns", "customer_id", "customers"),
    ("churn_events", "customer_id", "customers"),
    ("customers", "cell_site_id", "cell_sites"),
    ("cell_quality_daily", "cell_site_id", "cell_sites"),
    ("network_events", "cell_site_id", "cell_sites"),
]


@pytest.mark.parametrize(("table", "column", "parent"), REFERENCES)
def test_an_id_that_points_nowhere_is_reported(
    tables: dict[str, pd.DataFrame], table: str, column: str, parent: str
) -> None:
    """An unknown home cell is only that: its region is not compared with anything."""
    known = tables[table].loc[0, column]
    changed(tables, table, 0, **{column: "X9"})
    assert check_relations(tables) == [
        Violation(
            table,
            column,
            f"unknown {column} (not in {parent})",
            1,
            (ROW_0[table].replace(f"{column}={known}", f"{column}=X9"),),
        )
    ]


def test_a_null_id_is_a_null_not_an_unknown_id(tables: dict[str, pd.DataFrame]) -> None:
    tables["usage_monthly"] = with_null(tables["usage_monthly"], "customer_id")
    tables["customers"] = with_null(tables["customers"], "cell_site_id")
    assert check_relations(tables) == []


def test_a_region_other_than_the_home_cell_sites_is_reported(
    tables: dict[str, pd.DataFrame],
) -> None:
    changed(tables, "customers", 1, region="north")
    assert check_relations(tables) == [
        Violation(
            "customers",
            "region",
            "differs from the region of the home cell site",
            1,
            ("row 1 customer_id=C2",),
        )
    ]


def test_a_null_region_is_a_null_not_a_region_other_than_the_home_cell_sites(
    tables: dict[str, pd.DataFrame],
) -> None:
    tables["customers"] = with_null(tables["customers"], "region", row=1)
    assert check_relations(tables) == []


def test_duplicated_parents_do_not_stop_the_relations(tables: dict[str, pd.DataFrame]) -> None:
    """The duplicate key is reported by the table's own rules; the first row counts here."""
    customers, sites = tables["customers"], tables["cell_sites"]
    early = customers.iloc[[0]].assign(signup_at=pd.Timestamp("2020-01-01T00:00:00Z"))
    tables["customers"] = pd.concat([customers, early], ignore_index=True)
    tables["cell_sites"] = pd.concat([sites, sites.iloc[[0]].assign(region="west")])
    assert check_relations(tables) == []
    tables["service_tickets"].loc[0, "opened_at"] = pd.Timestamp("2024-01-01T00:00:00Z")
    assert [(v.table, v.rule) for v in check_relations(tables)] == [
        ("service_tickets", "before the customer's signup_at")
    ]


# (table, column, row, customer of that row)
EVENTS = [
    ("churn_events", "churned_at", 0, "C2"),
    ("service_tickets", "opened_at", 0, "C1"),
    ("package_purchases", "purchased_at", 0, "C1"),
    ("campaigns", "sent_at", 0, "C1"),
]


def _signup(customer: str) -> pd.Timestamp:
    customers = valid_tables()["customers"].set_index("customer_id")
    return customers.loc[customer, "signup_at"]


def _customer_and_event(table: str) -> dict[str, pd.DataFrame]:
    tables = valid_tables()
    return {"customers": tables["customers"], table: tables[table]}


@pytest.mark.parametrize(("table", "column", "row", "customer"), EVENTS)
def test_an_event_exactly_at_signup_passes(
    table: str, column: str, row: int, customer: str
) -> None:
    tables = _customer_and_event(table)
    changed(tables, table, row, **{column: _signup(customer)})
    assert check_relations(tables) == []


@pytest.mark.parametrize(("table", "column", "row", "customer"), EVENTS)
def test_an_event_one_second_before_signup_is_reported(
    table: str, column: str, row: int, customer: str
) -> None:
    tables = _customer_and_event(table)
    changed(tables, table, row, **{column: _signup(customer) - SECOND})
    assert check_relations(tables) == [
        Violation(table, column, "before the customer's signup_at", 1, (ROW_0[table],))
    ]


@settings(max_examples=20)
@given(where=st.sampled_from(EVENTS), seconds=st.integers(min_value=-86_400, max_value=86_400))
@example(where=EVENTS[1], seconds=0)
@example(where=EVENTS[1], seconds=-1)
def test_an_event_is_reported_exactly_when_it_is_before_signup(
    where: tuple[str, str, int, str], seconds: int
) -> None:
    table, column, row, customer = where
    tables = valid_tables()
    changed(tables, table, row, **{column: _signup(customer) + seconds * SECOND})
    found = [(v.table, v.column, v.bad_rows) for v in check_relations(tables)]
    before = [(table, column, 1)] if seconds < 0 else []
    assert [f for f in found if f[0] == table] == before


def test_a_purchase_after_churn_is_reported_from_the_first_second(
    tables: dict[str, pd.DataFrame],
) -> None:
    churned_at = tables["churn_events"].loc[0, "churned_at"]
    changed(tables, "package_purchases", 1, purchased_at=churned_at)
    assert check_relations(tables) == []
    changed(tables, "package_purchases", 1, purchased_at=churned_at + SECOND)
    assert check_relations(tables) == [
        Violation(
            "package_purchases",
            "purchased_at",
            "after the customer's churned_at",
            1,
            ("row 1 customer_id=C2",),
        )
    ]


def test_usage_is_allowed_from_the_signup_month_to_the_churn_month(
    tables: dict[str, pd.DataFrame],
) -> None:
    """C1 signed up on 2025-01-15, C2 churned on 2026-02-20."""
    changed(tables, "usage_monthly", 0, month=pd.Timestamp("2024-12-01T00:00:00Z"))
    changed(tables, "usage_monthly", 3, month=pd.Timestamp("2026-03-01T00:00:00Z"))
    assert check_relations(tables) == [
        Violation(
            "usage_monthly",
            "month",
            "before the customer's signup month",
            1,
            ("row 0 customer_id=C1, month=2024-12-01T00:00:00+00:00",),
        ),
        Violation(
            "usage_monthly",
            "month",
            "after the customer's churn month",
            1,
            ("row 3 customer_id=C2, month=2026-03-01T00:00:00+00:00",),
        ),
    ]


MONTHS = list(pd.date_range("2024-11-01", "2025-05-01", freq="MS", tz="UTC"))
INSTANTS = st.integers(min_value=0, max_value=150 * 86_400 - 1).map(
    lambda s: pd.Timestamp("2024-12-01T00:00:00Z") + s * SECOND
)


def _month_of(instant: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(year=instant.year, month=instant.month, day=1, tz="UTC")


@settings(max_examples=20)
@given(signup=INSTANTS, churn=INSTANTS, month=st.sampled_from(MONTHS))
@example(
    signup=pd.Timestamp("2025-01-01T00:00:00Z"),
    churn=pd.Timestamp("2025-01-31T23:59:59Z"),
    month=pd.Timestamp("2025-01-01T00:00:00Z"),
)
@example(
    signup=pd.Timestamp("2025-01-31T23:59:59Z"),
    churn=pd.Timestamp("2025-01-01T00:00:00Z"),
    month=pd.Timestamp("2024-12-01T00:00:00Z"),
)
@example(
    signup=pd.Timestamp("2024-12-31T23:59:59Z"),
    churn=pd.Timestamp("2025-01-01T00:00:00Z"),
    month=pd.Timestamp("2025-02-01T00:00:00Z"),
)
def test_a_usage_month_is_reported_exactly_when_outside_the_signup_to_churn_months(
    signup: pd.Timestamp, churn: pd.Timestamp, month: pd.Timestamp
) -> None:
    tables = valid_tables()
    tables["usage_monthly"] = tables["usage_monthly"].iloc[[2]]  # a month of C2
    changed(tables, "customers", 1, signup_at=signup)
    changed(tables, "churn_events", 0, churned_at=churn)
    changed(tables, "usage_monthly", 2, month=month)
    rules = [v.rule for v in check_relations(tables) if v.table == "usage_monthly"]
    assert rules == [
        rule
        for rule, broken in [
            ("before the customer's signup month", month < _month_of(signup)),
            ("after the customer's churn month", month > _month_of(churn)),
        ]
        if broken
    ]


def test_relations_without_customers_or_churns_skip_only_what_needs_them(
    tables: dict[str, pd.DataFrame],
) -> None:
    changed(tables, "usage_monthly", 0, month=pd.Timestamp("2024-12-01T00:00:00Z"))
    changed(tables, "package_purchases", 1, purchased_at=pd.Timestamp("2026-05-01T00:00:00Z"))
    before_signup = Violation(
        "usage_monthly",
        "month",
        "before the customer's signup month",
        1,
        ("row 0 customer_id=C1, month=2024-12-01T00:00:00+00:00",),
    )
    no_churns = {k: v for k, v in tables.items() if k != "churn_events"}
    assert check_relations(no_churns) == [before_signup]
    no_customers = {k: v for k, v in tables.items() if k != "customers"}
    assert check_relations(no_customers) == [
        Violation(
            "package_purchases",
            "purchased_at",
            "after the customer's churned_at",
            1,
            ("row 1 customer_id=C2",),
        )
    ]
    no_events = {k: v for k, v in tables.items() if k in ("customers", "usage_monthly")}
    assert check_relations(no_events) == [before_signup]


# (table, column): a column some relation reads
RELATION_COLUMNS = [
    ("customers", "customer_id"),
    ("customers", "signup_at"),
    ("customers", "cell_site_id"),
    ("customers", "region"),
    ("cell_sites", "cell_site_id"),
    ("cell_sites", "region"),
    ("usage_monthly", "customer_id"),
    ("usage_monthly", "month"),
    ("service_tickets", "customer_id"),
    ("network_events", "cell_site_id"),
    ("churn_events", "customer_id"),
    ("churn_events", "churned_at"),
]


@pytest.mark.parametrize(("table", "column"), RELATION_COLUMNS)
def test_a_relation_whose_column_is_missing_is_skipped_and_the_others_still_run(
    tables: dict[str, pd.DataFrame], table: str, column: str
) -> None:
    """Missing or mistyped columns reach the relations as absent (already reported)."""
    churned_at = tables["churn_events"].loc[0, "churned_at"]
    changed(tables, "package_purchases", 1, purchased_at=churned_at + SECOND)
    tables[table] = tables[table].drop(columns=[column])
    after_churn = Violation(
        "package_purchases",
        "purchased_at",
        "after the customer's churned_at",
        1,
        ("row 1 customer_id=C2",),
    )
    assert check_relations(tables) == ([] if table == "churn_events" else [after_churn])


def test_relations_are_checked_on_the_files(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    changed(tables, "service_tickets", 1, opened_at=_signup("C2") - SECOND)
    assert validate(tmp_path, tables).violations == (
        Violation(
            "service_tickets",
            "opened_at",
            "before the customer's signup_at",
            1,
            ("row 1 ticket_id=T2",),
        ),
    )


# --- files ------------------------------------------------------------------------------

ALL_TABLES = [
    "customers",
    "usage_monthly",
    "service_tickets",
    "cell_sites",
    "cell_quality_daily",
    "network_events",
    "package_purchases",
    "campaigns",
    "churn_events",
]


def test_tables_are_checked_in_contract_order_then_the_relations(folder: Path) -> None:
    steps: list[str] = []
    validate_directory(folder, on_step=steps.append)
    assert steps == [*ALL_TABLES, "relations"]


def test_missing_files_are_reported_and_the_other_tables_still_checked(folder: Path) -> None:
    for name in ("customers", "campaigns"):
        (folder / f"{name}.parquet").unlink()
    steps: list[str] = []
    report = validate_directory(folder, on_step=steps.append)
    assert steps == [*ALL_TABLES, "relations"]
    assert report.violations == (
        Violation("customers", None, f"missing file {folder / 'customers.parquet'}"),
        Violation("campaigns", None, f"missing file {folder / 'campaigns.parquet'}"),
    )
    assert list(report.row_counts) == [t for t in ALL_TABLES if t not in ("customers", "campaigns")]


def test_unreadable_files_are_reported_and_the_other_tables_still_checked(folder: Path) -> None:
    customers, churns = folder / "customers.parquet", folder / "churn_events.parquet"
    customers.write_text("not parquet")
    churns.write_bytes(churns.read_bytes()[:-20])
    reasons = []
    for path in (customers, churns):
        with pytest.raises(Exception) as raised:  # whatever pyarrow raises opening it
            pq.ParquetFile(path)
        reasons.append(f"unreadable parquet file {path}: {raised.value}")
    report = validate_directory(folder)
    assert report.violations == (
        Violation("customers", None, reasons[0]),
        Violation("churn_events", None, reasons[1]),
    )
    assert list(report.row_counts) == ALL_TABLES[1:-1]


def test_row_numbers_count_from_zero_even_if_the_file_stores_an_index(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    usage = tables["usage_monthly"].set_index(pd.Index([10, 11, 12, 13], name="row_id"))
    usage.loc[12, "sms"] = -1
    folder = write_tables(tmp_path / "lifecycle", tables)
    usage.to_parquet(folder / "usage_monthly.parquet")  # pandas keeps the index in the file
    read = read_table(folder / "usage_monthly.parquet")
    assert list(read.columns) == list(tables["usage_monthly"].columns)
    assert list(read.index) == [0, 1, 2, 3]
    assert validate_directory(folder).violations == (
        Violation(
            "usage_monthly",
            "sms",
            "must be >= 0",
            1,
            ("row 2 customer_id=C2, month=2025-03-01T00:00:00+00:00",),
        ),
    )


def test_a_file_that_also_stores_its_key_as_the_index_is_read_by_its_columns(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    folder = write_tables(tmp_path / "lifecycle", tables)
    tickets = tables["service_tickets"].set_index("ticket_id", drop=False)
    tickets.to_parquet(folder / "service_tickets.parquet")
    assert validate_directory(folder).violations == ()


def test_validation_never_modifies_the_files(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    changed(tables, "customers", 1, customer_id="C1", signup_at=AS_OF + DAY)
    folder = write_tables(tmp_path / "lifecycle", tables)
    (folder / "manifest.json").write_text('{"as_of": "someday"}')
    (folder / "campaigns.parquet").write_text("not parquet")

    def snapshot() -> dict[str, tuple[str, int]]:
        return {
            p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())
        }

    before = snapshot()
    assert not validate_directory(folder).ok
    assert snapshot() == before


# --- the report -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("violation", "text"),
    [
        (Violation("campaigns", None, "missing file x"), "campaigns: missing file x"),
        (Violation("customers", "segment", "missing column"), "customers.segment: missing column"),
        (Violation("t", "c", "rule", 0), "t.c: rule: 0 bad rows"),
        (Violation("t", "c", "rule", 1), "t.c: rule: 1 bad row"),
        (Violation("t", "c", "rule", 2), "t.c: rule: 2 bad rows"),
        (Violation("t", "c", "rule", 1, ("row 3 k=a",)), "t.c: rule: 1 bad row (e.g. row 3 k=a)"),
        (
            Violation("t", "c, d", "rule", 12, ("row 0 c=a, d=b", "row 5 c=a, d=b")),
            "t.c, d: rule: 12 bad rows (e.g. row 0 c=a, d=b; row 5 c=a, d=b)",
        ),
        (Violation("t", None, "rule", None, ("a", "b", "c")), "t: rule (e.g. a; b; c)"),
    ],
    ids=str,
)
def test_a_violation_reads_as_one_line(violation: Violation, text: str) -> None:
    assert str(violation) == text


def test_a_report_is_ok_exactly_when_nothing_is_violated(tmp_path: Path) -> None:
    def report(*violations: Violation) -> ValidationReport:
        return ValidationReport(tmp_path, AS_OF, {}, violations)

    assert report().ok
    assert not report(Violation("customers", None, "missing file")).ok


def test_chunked_validation_finds_what_one_pass_finds(
    tmp_path: Path, tables: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values and relations are checked in chunks of rows and keys over the whole file: a
    key repeated in two chunks, bad values in several chunks (counts added up, the first
    examples kept) and a relation broken in a later chunk are all reported, as one pass
    over the whole table reports them."""
    usage = tables["usage_monthly"]
    usage.loc[3, ["customer_id", "month"]] = usage.loc[0, ["customer_id", "month"]].to_numpy()
    usage.loc[[1, 2], "sms"] = -1
    tables["service_tickets"].loc[len(tables["service_tickets"]) - 1, "customer_id"] = "NOBODY"
    folder = write_tables(tmp_path / "lifecycle", tables)
    whole = validate_directory(folder)
    monkeypatch.setattr(validate_module, "CHUNK_ROWS", 1)
    chunked = validate_directory(folder)
    assert chunked == whole
    rules = {(v.table, v.column, v.rule): v.bad_rows for v in chunked.violations}
    assert rules[("usage_monthly", "customer_id, month", "duplicate key")] == 2
    assert rules[("usage_monthly", "sms", "must be >= 0")] == 2
    assert rules[("service_tickets", "customer_id", "unknown customer_id (not in customers)")] == 1
