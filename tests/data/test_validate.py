"""The validator catches every kind of bad data, names table and column, and changes nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.lifecycle.validate import Violation, validate_directory

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _mutate(directory: Path, table: str, change: Mutation) -> None:
    path = directory / f"{table}.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def _only(violations: tuple[Violation, ...], table: str, column: str | None) -> list[Violation]:
    return [v for v in violations if v.table == table and v.column == column]


def test_generated_data_is_valid(small_data: Path) -> None:
    report = validate_directory(small_data)
    assert report.ok, [str(v) for v in report.violations]
    assert set(report.row_counts) == {
        "customers",
        "usage_monthly",
        "service_tickets",
        "cell_sites",
        "cell_quality_daily",
        "network_events",
        "package_purchases",
        "campaigns",
        "churn_events",
    }
    assert all(count > 0 for count in report.row_counts.values())


def _set(column: str, row: int, value: object) -> Mutation:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df[column] = (
            df[column].astype(object) if value is None and df[column].dtype == bool else df[column]
        )
        df.loc[row, column] = value
        return df

    return change


CASES = [
    pytest.param(
        "customers",
        lambda df: df.drop(columns=["segment"]),
        "segment",
        "missing column",
        id="missing-column",
    ),
    pytest.param(
        "usage_monthly",
        lambda df: df.assign(sms=df["sms"].astype(str)),
        "sms",
        "wrong type",
        id="wrong-type",
    ),
    pytest.param(
        "service_tickets",
        lambda df: df.assign(opened_at=df["opened_at"].dt.tz_localize(None)),
        "opened_at",
        "without a timezone",
        id="naive-timestamp",
    ),
    pytest.param(
        "service_tickets",
        _set("ticket_id", 0, None),
        "ticket_id",
        "must not be null",
        id="null-key",
    ),
    pytest.param(
        "customers",
        lambda df: pd.concat([df, df.iloc[[5]]]),
        "customer_id",
        "duplicate key",
        id="duplicate-key",
    ),
    pytest.param(
        "usage_monthly",
        lambda df: pd.concat([df, df.iloc[[7]]]),
        "customer_id, month",
        "duplicate key",
        id="duplicate-composite-key",
    ),
    pytest.param(
        "service_tickets",
        _set("opened_at", 0, pd.Timestamp("2031-01-01", tz="UTC")),
        "opened_at",
        "must not be after the as-of",
        id="future-timestamp",
    ),
    pytest.param(
        "service_tickets",
        lambda df: df.assign(closed_at=df["opened_at"] - pd.Timedelta(hours=1)),
        "closed_at",
        "must not be before opened_at",
        id="closed-before-opened",
    ),
    pytest.param(
        "service_tickets",
        _set("ticket_type", 3, "rant"),
        "ticket_type",
        "must be one of",
        id="unknown-category",
    ),
    pytest.param(
        "service_tickets",
        _set("sentiment", 3, 1.7),
        "sentiment",
        "must be in [-1, 1]",
        id="out-of-range",
    ),
    pytest.param(
        "usage_monthly",
        _set("customer_id", 2, "C99999999"),
        "customer_id",
        "unknown customer_id",
        id="dangling-id",
    ),
    pytest.param(
        "usage_monthly",
        _set("month", 2, pd.Timestamp("2026-03-15", tz="UTC")),
        "month",
        "first instant of a month",
        id="month-not-month-start",
    ),
    pytest.param(
        "customers",
        lambda df: df.assign(
            contract_end_at=pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
        ),
        "contract_end_at",
        "term contracts",
        id="term-contract-without-end",
    ),
    pytest.param(
        "campaigns",
        lambda df: df.assign(accepted=df["accepted"] | ~df["treated"]),
        "accepted",
        "must be false on a control row",
        id="control-accepted",
    ),
    pytest.param(
        "customers",
        lambda df: df.assign(region=df["region"].iloc[::-1].to_numpy()),
        "region",
        "region of the home cell site",
        id="region-mismatch",
    ),
]


@pytest.mark.parametrize(("table", "change", "column", "message"), CASES)
def test_each_kind_of_bad_data_is_reported(
    small_copy: Path, table: str, change: Mutation, column: str, message: str
) -> None:
    _mutate(small_copy, table, change)
    report = validate_directory(small_copy)
    assert not report.ok
    hits = _only(report.violations, table, column)
    assert any(message in v.rule for v in hits), [str(v) for v in report.violations]


def test_row_rules_still_run_when_an_unrelated_column_is_missing(small_copy: Path) -> None:
    def break_two_things(df: pd.DataFrame) -> pd.DataFrame:
        return df.drop(columns=["channel"]).assign(
            closed_at=df["opened_at"] - pd.Timedelta(hours=1)
        )

    _mutate(small_copy, "service_tickets", break_two_things)
    rules = {(v.column, v.rule) for v in validate_directory(small_copy).violations}
    assert ("channel", "missing column (expected string)") in rules
    assert ("closed_at", "must not be before opened_at") in rules


def _with_null(column: str) -> Mutation:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        values = df[column].astype(object)
        values.iloc[0] = None
        return df.assign(**{column: values.convert_dtypes() if values.dtype == object else values})

    return change


@pytest.mark.parametrize(
    ("table", "column"),
    [("usage_monthly", "sms"), ("usage_monthly", "late_payment"), ("service_tickets", "sentiment")],
)
def test_a_null_in_a_typed_column_is_a_null_not_a_wrong_type(
    small_copy: Path, table: str, column: str
) -> None:
    path = small_copy / f"{table}.parquet"
    arrow = pq.read_table(path)
    index = arrow.schema.get_field_index(column)
    values = arrow.column(column).to_pylist()
    values[0] = None
    pq.write_table(
        arrow.set_column(index, column, pa.array(values, arrow.schema.field(column).type)), path
    )
    rules = [v.rule for v in validate_directory(small_copy).violations if v.column == column]
    assert rules == ["must not be null"]


def test_infinite_amounts_are_rejected(small_copy: Path) -> None:
    _mutate(small_copy, "customers", _set("monthly_fee", 0, float("inf")))
    rules = [v.rule for v in validate_directory(small_copy).violations if v.column == "monthly_fee"]
    assert "must be finite" in rules


def test_an_unreadable_manifest_is_reported_not_a_crash(small_copy: Path) -> None:
    (small_copy / "manifest.json").write_text("{not json")
    report = validate_directory(small_copy)
    assert [v.table for v in report.violations] == ["manifest.json"]


def test_purchases_before_signup_are_reported(small_copy: Path) -> None:
    customers = pd.read_parquet(small_copy / "customers.parquet").set_index("customer_id")

    def before_signup(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[0, "purchased_at"] = customers.loc[
            df.loc[0, "customer_id"], "signup_at"
        ] - pd.Timedelta(days=1)
        return df

    _mutate(small_copy, "package_purchases", before_signup)
    rules = [
        v.rule for v in validate_directory(small_copy).violations if v.table == "package_purchases"
    ]
    assert rules == ["before the customer's signup_at"]


def test_other_utc_spellings_and_categorical_strings_are_accepted(small_copy: Path) -> None:
    _mutate(
        small_copy,
        "service_tickets",
        lambda df: df.assign(
            opened_at=df["opened_at"].dt.tz_convert("Etc/UTC"),
            channel=df["channel"].astype("category"),
        ),
    )
    assert validate_directory(small_copy).ok


def test_counts_bad_rows_and_shows_their_keys(small_copy: Path) -> None:
    bad = [0, 4, 9]
    _mutate(
        small_copy,
        "service_tickets",
        lambda df: df.assign(sentiment=df["sentiment"].where(~df.index.isin(bad), 5.0)),
    )
    tickets = pd.read_parquet(small_copy / "service_tickets.parquet")
    (violation,) = _only(validate_directory(small_copy).violations, "service_tickets", "sentiment")
    assert violation.bad_rows == 3
    assert f"ticket_id={tickets.loc[0, 'ticket_id']}" in str(violation)


def test_missing_and_unreadable_files_are_violations(small_copy: Path) -> None:
    (small_copy / "campaigns.parquet").unlink()
    (small_copy / "churn_events.parquet").write_text("not parquet")
    report = validate_directory(small_copy)
    messages = {v.table: v.rule for v in report.violations}
    assert "missing file" in messages["campaigns"]
    assert "unreadable parquet file" in messages["churn_events"]


def test_extra_columns_are_allowed(small_copy: Path) -> None:
    _mutate(small_copy, "customers", lambda df: df.assign(crm_segment_code="X1"))
    assert validate_directory(small_copy).ok


def test_other_integer_and_timestamp_widths_are_accepted(small_copy: Path) -> None:
    _mutate(small_copy, "usage_monthly", lambda df: df.assign(sms=df["sms"].astype("int32")))
    _mutate(
        small_copy,
        "service_tickets",
        lambda df: df.assign(opened_at=df["opened_at"].dt.as_unit("us")),
    )
    assert validate_directory(small_copy).ok


def test_as_of_cutoff_can_be_given(small_data: Path) -> None:
    early = pd.Timestamp("2026-06-01", tz="UTC")
    report = validate_directory(small_data, early)
    assert any("must not be after the as-of" in v.rule for v in report.violations)


def test_validation_changes_nothing_on_disk(small_copy: Path) -> None:
    _mutate(small_copy, "customers", lambda df: pd.concat([df, df.iloc[[1]]]))

    def digest() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(small_copy.rglob("*"))
            if p.is_file()
        }

    before = digest()
    validate_directory(small_copy)
    assert digest() == before
