"""Bring your own dataset: train and evaluate on any snapshot CSV described by a YAML spec.

A spec names the file(s), the id and label columns, the label's positive value, columns
to drop, type overrides and which strings mean "missing". Evaluation is nested
cross-validation: on each outer stratified fold, LightGBM's parameters are searched on the
training rows alone (`training.tuning`), and three models are scored on the same test
rows: the tuned LightGBM, LightGBM with its defaults, and a logistic regression whose C is
chosen on inner folds. Nothing is resampled, so no fold ever sees its test rows.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import yaml
from pydantic import BaseModel, Field, field_validator
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from training.churn import baseline_input, logistic_baseline
from training.metrics import evaluate
from training.model import FeatureSchema
from training.settings import Economics
from training.tuning import INNER_FOLDS, Tuned, check_budget, tune_cv

DEFAULT_BUDGET_S = 60.0
# what exports write for "no value": blanks and the spellings pandas reads as missing by
# default (its `na_values` list); a spec's `missing_values` replaces it
MISSING_VALUES = [
    "", " ", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip
DELIMITERS = ",;\t|"  # the delimiters a spec without `delimiter` is read with, detected
LOGISTIC_C = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
# characters LightGBM refuses in a feature name (it stores the names in JSON)
_JSON_CHARACTERS = re.compile(r'[",:\[\]{}]')
# LGBMClassifier parameters the run sets itself, which a spec's `lightgbm` may not pin
RUN_PARAMETERS = frozenset(
    {"objective", "random_state", "seed", "verbose", "verbosity", "class_weight"}
)


class DatasetError(ValueError):
    """The spec and the file disagree; the message names the column."""


class Label(BaseModel):
    column: str
    positive: str = Field(
        description="The value meaning 'churned', compared as text (Yes, True, 1)."
    )

    @field_validator("positive", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML reads yes/no/true/false unquoted as booleans
            raise ValueError(
                f"write the positive value in quotes (it was read as the boolean {value})"
            )
        return str(value) if isinstance(value, int | float) else value


class CrossValidation(BaseModel):
    folds: int = Field(5, ge=2)
    seed: int = Field(1, ge=0, lt=2**32)


class DatasetSpec(BaseModel):
    """What a data scientist writes to evaluate on their own churn CSV."""

    model_config = {"extra": "forbid"}

    name: str
    paths: list[Path] = Field(
        min_length=1,
        description="CSV file(s) with the same columns; relative to the working folder.",
    )
    id_column: str | None = None
    label: Label
    drop: list[str] = []
    types: dict[str, Literal["numeric", "category", "date"]] = {}
    missing_values: list[str] = Field(
        default_factory=lambda: list(MISSING_VALUES),
        description="Strings read as missing (default: blanks and pandas' NA spellings).",
    )
    delimiter: str | None = Field(
        None,
        min_length=1,
        max_length=1,
        description="The field separator; by default detected from the header line.",
    )
    encoding: str | None = Field(
        None,
        description="The file's text encoding (cp1252, latin-1, ...); by default UTF-8, "
        "falling back on Windows-1252 with a note.",
    )
    cv: CrossValidation = CrossValidation()
    lightgbm: dict[str, float | int | str] | None = Field(
        None,
        description="LGBMClassifier parameters to use as they are, skipping the search.",
    )

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str | Path) else value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(
                    f"unknown text encoding {value!r} (e.g. utf-8, cp1252, latin-1)"
                ) from None
        return value

    @field_validator("lightgbm")
    @classmethod
    def _not_the_runs_own(
        cls, value: dict[str, float | int | str] | None
    ) -> dict[str, float | int | str] | None:
        owned = sorted(set(value or {}) & RUN_PARAMETERS)
        if owned:
            raise ValueError(
                f"{', '.join(owned)} cannot be pinned: the run sets them (a binary objective, "
                "the seed from cv.seed, quiet logs)"
            )
        return value

    @classmethod
    def load(cls, path: Path) -> DatasetSpec:
        """The spec at `path`; a file that is not readable YAML is a DatasetError naming it."""
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise  # the command's own message names the missing spec
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise DatasetError(f"dataset spec {path} cannot be read as YAML: {reason}") from None
        return cls.model_validate(content)


def detect_delimiter(path: Path) -> str:
    """The file's separator, from its header line: the one of `DELIMITERS` it holds most
    of (a header names every column once, so the separator is its most frequent of them);
    a comma when it holds none (a one-column file). The separators are ASCII, so any
    encoding's header reads well enough for counting them."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as file:
        header = file.readline()
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def record_lines(path: Path, encoding: str, separator: str) -> np.ndarray:
    """The line each data row of a CSV starts on, as an editor numbers them (the header is
    line 1): pandas skips blank lines and a quoted field may span lines, so a row's
    position alone would name the wrong line."""
    starts = []
    with path.open(encoding=encoding, newline="") as file:
        reader = csv.reader(file, delimiter=separator)
        previous = 0
        for record in reader:
            if record:  # a blank line is no row, for pandas as for the reader
                starts.append(previous + 1)
            previous = reader.line_num
    return np.array(starts[1:], dtype=np.int64)


def _part_positions(part: pd.DataFrame) -> tuple[str, np.ndarray]:
    """Where one file's rows are, for the message of an error: a CSV's lines (read again
    only then), a Parquet file's row numbers."""
    read = part.attrs.get("read_as")
    if read is None:
        return "row", np.arange(len(part)) + 1
    lines = record_lines(*read)
    if len(lines) != len(part):  # a quoting the reader takes otherwise: count the rows
        lines = np.arange(len(part)) + 2
    return "line", lines


def _where(spec: DatasetSpec, parts: list[pd.DataFrame], rows: pd.Series) -> str:
    """The first few flagged rows as file and line numbers (the header is line 1); only
    the files that hold one are read again."""
    files = np.repeat(np.arange(len(parts)), [len(part) for part in parts])
    starts = np.cumsum([0, *(len(part) for part in parts)])
    flagged = np.flatnonzero(rows.to_numpy())
    positions = {f: _part_positions(parts[f]) for f in sorted({files[i] for i in flagged[:3]})}
    shown = ", ".join(
        f"{spec.paths[files[i]].name} {positions[files[i]][0]} "
        f"{positions[files[i]][1][i - starts[files[i]]]}"
        for i in flagged[:3]
    )
    return shown + (f" and {len(flagged) - 3} more" if len(flagged) > 3 else "")


ISO_DATE = r"^\d{4}-\d{2}-\d{2}"  # 2024-05-31, with or without a time after it
# text that (nearly) every row has its own, from this many rows on: an identifier
UNIQUE_TEXT_ROWS = 50
IDENTIFIER_SHARE = 0.9
# words of a column name that say "a key, not a measurement" (customer_no, RowNumber, msisdn)
IDENTIFIER_WORDS = re.compile(
    r"(^|[^a-z])(id|ids|no|num|number|key|index|row|msisdn|imsi|imei|phone)([^a-z]|$)"
)


def numeric_identifier(name: str, values: pd.Series) -> bool:
    """Whether a numeric column is a key rather than a measurement: a distinct whole number
    in every row, and named like a key or rising with the file's row order. Trees split on
    such a column as on any other, and an export sorted or numbered by sign-up date or by
    outcome then makes it the best "feature" (a file sorted by churn scores ROC-AUC 1.0).
    A usage counter in bytes is also distinct in nearly every row, so distinctness alone
    does not decide."""
    present = values.dropna().astype("float64")
    if len(present) < UNIQUE_TEXT_ROWS or present.nunique() < len(present):
        return False
    if not np.isfinite(present).all() or (present != np.round(present)).any():
        return False
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()  # RowNumber -> row_number
    return bool(IDENTIFIER_WORDS.search(spaced)) or bool(present.is_monotonic_increasing)


# a number written with a decimal comma (12,5 or -3,25), as European spreadsheets save it
DECIMAL_COMMA = r"^[+-]?\d+(,\d+)?$"


def decimal_comma_numbers(values: pd.Series) -> pd.Series | None:
    """The numbers of a text column written with a decimal comma, or None unless every
    present value is one (and at least one has its comma). Thousands separators are not
    read: "1.234,5" and "1,234.5" mean different numbers in different countries."""
    present = values.dropna().astype(str).str.strip()
    if present.empty or not present.str.match(DECIMAL_COMMA).all():
        return None
    if not present.str.contains(",", regex=False).any():
        return None
    numbers = pd.to_numeric(present.str.replace(",", ".", regex=False))
    return numbers.reindex(values.index).astype("float64")


class Dataset(NamedTuple):
    features: pd.DataFrame
    labels: np.ndarray  # 0/1
    notes: tuple[str, ...]  # what the automatic typing did that a reader should know


def as_days(values: pd.Series) -> pd.Series | None:
    """Days since 1970-01-01 of a text column of ISO dates; None unless every present
    value is one. Only ISO: a looser parser reads codes such as 415 or 04/05 as dates."""
    present = values.dropna().astype(str)
    if present.empty or not present.str.match(ISO_DATE).all():
        return None
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
    if parsed[values.notna()].isna().any():
        return None
    return (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(days=1)


# what Excel on a Western-European Windows writes when it does not write UTF-8
FALLBACK_ENCODING = "cp1252"


PARQUET_MAGIC = b"PAR1"
# the first bytes of an Excel workbook: .xlsx is a zip archive, .xls an OLE2 compound file
WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")


def _read_parquet(spec: DatasetSpec, path: Path) -> pd.DataFrame:
    """A Parquet file as the text columns a CSV would give: every value written as text
    (numbers, ISO timestamps, booleans), nulls and the spec's missing spellings missing, so
    the same typing rules apply whichever format the export came in."""
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:  # a truncated or foreign file
        raise DatasetError(f"{spec.name}: {path} is not a readable Parquet file: {error}") from None
    if table.empty:
        raise DatasetError(f"{spec.name}: {path} has columns but no rows")
    table = table.rename(columns=lambda name: str(name).strip())
    text = table.astype(str).where(table.notna())
    return text.mask(text.isin(spec.missing_values)).astype(object)


def _read_file(spec: DatasetSpec, path: Path, notes: list[str]) -> pd.DataFrame:
    """One CSV (or Parquet file) as text columns; an unreadable file is a DatasetError
    naming it and why."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as error:  # a folder, a file we may not read
        raise DatasetError(f"{spec.name}: {path} cannot be read: {error.strerror}") from None
    if magic == PARQUET_MAGIC:
        return _read_parquet(spec, path)
    if magic in WORKBOOK_MAGIC:
        raise DatasetError(
            f"{spec.name}: {path} is an Excel workbook, not a CSV: save the sheet as CSV "
            "(UTF-8) and name that file in `paths`"
        )

    def read(encoding: str, separator: str) -> pd.DataFrame:
        header = pd.read_csv(
            path, sep=separator, header=None, nrows=1, dtype=str, keep_default_na=False,
            encoding=encoding,
        ).iloc[0].str.strip()  # fmt: skip
        repeated = sorted(set(header[header.duplicated()]))
        if repeated:  # pandas would rename the second one (x.1) and keep both
            raise DatasetError(
                f"{spec.name}: {path} names column(s) {', '.join(map(repr, repeated))} more "
                "than once in its header: give each column its own name"
            )
        return pd.read_csv(
            path,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            na_values=spec.missing_values,
            encoding=encoding,
            index_col=False,  # a delimiter after each row's last field is no extra column
        ).rename(columns=str.strip)  # " Churn" in a header is the column Churn

    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name;
    # a UTF-16 one is what Excel's "Unicode text" export starts with
    used = spec.encoding or "utf-8-sig"
    if spec.encoding is None and magic[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        used = "utf-16"
        notes.append(f"{path.name} is UTF-16 (its byte-order mark says so): read as such")
    try:
        separator = spec.delimiter or detect_delimiter(path)  # once, whichever encoding reads
        try:
            frame = read(used, separator)
        except UnicodeDecodeError as error:
            if spec.encoding is not None:
                raise DatasetError(
                    f"{spec.name}: {path} is not {spec.encoding} (byte {error.start} reads as "
                    "none of its characters): set `encoding` to the file's"
                ) from None
            try:
                used = FALLBACK_ENCODING
                frame = read(used, separator)
            except UnicodeDecodeError:
                raise DatasetError(
                    f"{spec.name}: {path} is neither UTF-8 nor Windows-1252 (byte "
                    f"{error.start}): set `encoding` to the file's (e.g. latin-1)"
                ) from None
            notes.append(
                f"{path.name} is not UTF-8: read as Windows-1252 (cp1252); set `encoding` if "
                "it is another"
            )
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{spec.name}: {path} is empty: expected a header line and rows"
        ) from None
    except pd.errors.ParserError as error:
        raise DatasetError(f"{spec.name}: {path} is not a well-formed CSV: {error}") from None
    except OSError as error:  # a folder, a file we may not read
        raise DatasetError(f"{spec.name}: {path} cannot be read: {error.strerror}") from None
    if frame.empty:
        raise DatasetError(f"{spec.name}: {path} has a header but no rows")
    frame.attrs["read_as"] = (path, used, separator)
    return frame


def is_positive(label: pd.Series, positive: str) -> pd.Series:
    """Rows whose label is the positive value: the same text in any case, or the same number
    (a 0/1 label with a gap reads as 0.0/1.0, and `positive: 1` must still find its 1.0)."""
    text = label.astype(str).str.strip().str.lower()
    same = text == positive.strip().lower()
    wanted = pd.to_numeric(pd.Series([positive.strip()]), errors="coerce").iloc[0]
    if pd.isna(wanted):
        return same
    return same | (pd.to_numeric(label, errors="coerce") == wanted)


def _nearest_column(wanted: str, columns: list[str]) -> str:
    """The hint " (did you mean ...?)" naming the file's column nearest to one it lacks."""
    same_case = [c for c in columns if c.lower() == wanted.lower()]
    close = same_case or difflib.get_close_matches(wanted, columns, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_dataset(spec: DatasetSpec) -> Dataset:
    """Features and 0/1 labels, with every spec error named by column.

    Untyped columns: numbers are numeric, ISO dates become days since 1970 (trees split on
    them like any number), text different in nearly every row (a note, an e-mail address:
    an identifier that no other customer shares, so nothing to learn from) is left out and
    said in the notes, and other text is categorical."""
    for path in spec.paths:
        if not path.exists():
            raise DatasetError(f"{spec.name}: file {path} not found")
    notes: list[str] = []
    parts = [_read_file(spec, path, notes) for path in spec.paths]
    for path, part in zip(spec.paths[1:], parts[1:], strict=True):
        if list(part.columns) != list(parts[0].columns):
            differ = sorted(set(part.columns) ^ set(parts[0].columns)) or "the column order"
            raise DatasetError(
                f"{spec.name}: {path} has other columns than {spec.paths[0]}: {differ}"
            )
    frame = pd.concat(parts, ignore_index=True)
    named = {"label.column": [spec.label.column], "drop": spec.drop, "types": list(spec.types)}
    if spec.id_column:
        named["id_column"] = [spec.id_column]
    for field, columns in named.items():
        for column in columns:
            if column not in frame.columns:
                raise DatasetError(
                    f"{spec.name}: {field} names column {column!r}, which the file does not "
                    f"have{_nearest_column(column, list(frame.columns))}"
                )
    if spec.id_column:
        repeated = frame[spec.id_column].notna() & frame[spec.id_column].duplicated(keep=False)
        if repeated.any():
            raise DatasetError(
                f"{spec.name}: id column {spec.id_column!r} repeats "
                f"{frame.loc[repeated, spec.id_column].nunique()} id(s) "
                f"({_where(spec, parts, repeated)}): a customer counted twice can land in "
                "a training fold and its own test fold, which flatters every metric; keep "
                "one row per customer"
            )
    label = frame[spec.label.column]
    positive = is_positive(label, spec.label.positive)
    if label.isna().any():
        raise DatasetError(
            f"{spec.name}: label column {spec.label.column!r} has {int(label.isna().sum())} "
            f"missing values ({_where(spec, parts, label.isna())}): every row needs its "
            "outcome; leave out the rows whose outcome is not known yet"
        )
    # one value however written: yes / Yes / YES, 1 / 1.0
    text = label.astype(str).str.strip().str.lower()
    number = pd.to_numeric(text, errors="coerce")
    values = text.mask(number.notna(), number.astype(str)).unique()
    if len(values) > 2:
        seen = ", ".join(map(repr, sorted(label.astype(str).str.strip().unique())[:10]))
        raise DatasetError(
            f"{spec.name}: label column {spec.label.column!r} has {len(values)} distinct values "
            f"({seen}); a churn label has two: map it to churned / not churned first"
        )
    if positive.all() or not positive.any():
        seen = ", ".join(map(repr, label.unique()[:5]))
        raise DatasetError(
            f"{spec.name}: label column {spec.label.column!r} is unusable: positive value "
            f"{spec.label.positive!r} gives a single class (values seen: {seen})"
        )
    features = frame.drop(
        columns=[spec.label.column, *spec.drop, *([spec.id_column] if spec.id_column else [])]
    )
    for column in list(features.columns):
        wanted = spec.types.get(column)
        numeric = pd.to_numeric(features[column], errors="coerce")
        unparsable = numeric.isna() & features[column].notna()
        if unparsable.any() and wanted in (None, "numeric"):
            commas = decimal_comma_numbers(features[column])
            if commas is not None:
                numeric, unparsable = commas, commas.isna() & features[column].notna()
                notes.append(f"column {column!r} writes decimals with a comma: read as numbers")
        if wanted == "numeric" and unparsable.any():
            examples = ", ".join(map(repr, features.loc[unparsable, column].unique()[:3]))
            raise DatasetError(
                f"{spec.name}: column {column!r} is declared numeric but holds {examples}"
            )
        if wanted is None and not unparsable.any() and numeric_identifier(column, numeric):
            features = features.drop(columns=column)
            notes.append(
                f"column {column!r} left out: a distinct whole number in every row, named or "
                "ordered like a key (an identifier?); declare it `numeric` in `types` to keep it"
            )
            continue
        if wanted == "numeric" or (wanted is None and not unparsable.any()):
            infinite = np.isinf(numeric.astype("float64"))
            if infinite.any():
                raise DatasetError(
                    f"{spec.name}: column {column!r} holds infinite values "
                    f"({_where(spec, parts, infinite)}): write a finite number, or leave "
                    "the field blank for a missing value"
                )
            features[column] = numeric.astype("float64")
            continue
        days = as_days(features[column]) if wanted in (None, "date") else None
        if wanted == "date" and days is None:
            raise DatasetError(
                f"{spec.name}: column {column!r} is declared a date but holds values that are "
                "not ISO dates (YYYY-MM-DD, optionally with a time)"
            )
        present = features[column].dropna()
        if days is not None:
            features[column] = days.astype("float64")
            if wanted is None:
                notes.append(f"column {column!r} holds dates: read as days since 1970-01-01")
        elif (
            wanted is None
            and len(present) >= UNIQUE_TEXT_ROWS
            and present.nunique() >= IDENTIFIER_SHARE * len(present)
        ):
            features = features.drop(columns=column)
            notes.append(
                f"column {column!r} left out: its text differs in nearly every row (an "
                "identifier?); declare it `category` in `types` to keep it"
            )
        else:
            features[column] = features[column].astype("object")
    if features.shape[1] == 0:
        raise DatasetError(
            f"{spec.name}: no feature column is left once the label, id and drop columns are "
            "taken out"
        )
    features, renamed = model_safe_names(features)
    if renamed:
        notes.append(
            "columns renamed for LightGBM, which refuses JSON punctuation in names: "
            + ", ".join(f"{old!r} -> {new!r}" for old, new in renamed.items())
        )
    return Dataset(features, positive.to_numpy().astype(int), tuple(notes))


def model_safe_names(features: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Columns renamed so LightGBM takes them: its feature names may not hold the JSON
    characters `"`, `,`, `:`, `[`, `]`, `{` or `}`, which spreadsheet headers do ("Total,
    charges", "Charges [$]"); each becomes `_`, and a clash gets a numeric suffix."""
    renamed: dict[str, str] = {}
    taken = {str(c) for c in features.columns if not _JSON_CHARACTERS.search(str(c))}
    for column in features.columns:
        if not _JSON_CHARACTERS.search(str(column)):
            continue
        base = _JSON_CHARACTERS.sub("_", str(column))
        new, n = base, 1
        while new in taken:
            n += 1
            new = f"{base}_{n}"
        taken.add(new)
        renamed[str(column)] = new
    return features.rename(columns=renamed), renamed


@dataclass(frozen=True)
class CrossValidated:
    """Per outer fold: each model's metrics on the test rows and what was chosen."""

    metrics: dict[str, pd.DataFrame]  # model -> one row of metrics per outer fold
    choices: pd.DataFrame  # one row per outer fold: LightGBM's parameters, logistic C
    notes: tuple[str, ...] = ()  # what reading the file did to its columns (`Dataset.notes`)

    @property
    def candidate(self) -> str:
        """The LightGBM judged against the two baselines: tuned, or pinned by the spec."""
        return next(iter(self.metrics))


def _check_fold_sizes(spec: DatasetSpec, labels: np.ndarray) -> None:
    """Each outer training fold needs both classes in every inner fold."""
    needed = spec.cv.folds * INNER_FOLDS
    counts = np.bincount(labels, minlength=2)
    if counts.min() < needed:
        which = "churned" if counts[1] < counts[0] else "not churned"
        raise DatasetError(
            f"{spec.name}: label column {spec.label.column!r} has {counts.min()} rows {which}; "
            f"{spec.cv.folds}-fold cross-validation with {INNER_FOLDS} inner folds needs at "
            f"least {needed}"
        )


def tune_logistic(
    schema: FeatureSchema, x: pd.DataFrame, y: np.ndarray, seed: int
) -> tuple[Pipeline, float]:
    """The logistic baseline with C chosen by inner stratified folds of (x, y), refitted.

    The imputer and scaler see all of (x, y) before the inner folds: they read no label.
    """
    search = LogisticRegressionCV(
        Cs=list(LOGISTIC_C),
        l1_ratios=(0.0,),
        cv=StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed),
        scoring="roc_auc",
        max_iter=2000,
        use_legacy_attributes=False,
    )
    pipeline = logistic_baseline(schema).set_params(logisticregression=search)
    pipeline.fit(baseline_input(schema, x), y)
    return pipeline, float(np.ravel(search.C_)[0])


def _tuned_lightgbm(
    x_train: pd.DataFrame, y_train: np.ndarray, budget_s: float, seed: int, max_trials: int | None
) -> tuple[lgb.Booster, dict[str, Any]]:
    tuned: Tuned = tune_cv(x_train, y_train, budget_s, seed, max_trials)
    booster = lgb.train(tuned.params, lgb.Dataset(x_train, y_train), num_boost_round=tuned.rounds)
    choice = {
        **tuned.searched(),
        "inner_roc_auc": tuned.score,
        "inner_roc_auc_defaults": tuned.first_score,
        "trials": tuned.trials,
    }
    return booster, choice


def cross_validate(
    spec: DatasetSpec,
    economics: Economics,
    budget_s: float = DEFAULT_BUDGET_S,
    max_trials: int | None = None,
) -> CrossValidated:
    """Nested CV: per outer fold, tune on its training rows, score three models on its test rows.

    `budget_s` seconds of search are shared equally by the outer folds; a spec that pins
    `lightgbm` parameters skips the search (the model is then reported as lightgbm_pinned).
    """
    check_budget(budget_s)
    features, labels, notes = load_dataset(spec)
    _check_fold_sizes(spec, labels)
    seed = spec.cv.seed
    candidate = "lightgbm_tuned" if spec.lightgbm is None else "lightgbm_pinned"
    rows: dict[str, list[dict[str, float]]] = {
        candidate: [],
        "lightgbm_untuned": [],
        "logistic_tuned": [],
    }
    choices: list[dict[str, Any]] = []
    folds = StratifiedKFold(spec.cv.folds, shuffle=True, random_state=seed)
    for train, test in folds.split(features, labels):
        schema = FeatureSchema.infer(features.iloc[train], list(features.columns))
        x_train, x_test = (
            schema.transform(features.iloc[train]),
            schema.transform(features.iloc[test]),
        )
        y_train, y_test = labels[train], labels[test]
        if spec.lightgbm is None:
            booster, choice = _tuned_lightgbm(
                x_train, y_train, budget_s / spec.cv.folds, seed, max_trials
            )
            predicted = np.asarray(booster.predict(x_test))
        else:
            choice = dict(spec.lightgbm)
            pinned = lgb.LGBMClassifier(verbose=-1, random_state=seed, **choice)
            try:
                pinned.fit(x_train, y_train)
            except (lgb.basic.LightGBMError, TypeError, ValueError) as error:
                raise DatasetError(
                    f"{spec.name}: LightGBM refuses the pinned `lightgbm` parameters: "
                    f"{str(error).splitlines()[0]}"
                ) from None
            predicted = np.asarray(pinned.predict_proba(x_test))[:, 1]
        rows[candidate].append(evaluate(y_test, predicted, economics))
        untuned = lgb.LGBMClassifier(verbose=-1, random_state=seed).fit(x_train, y_train)
        predicted = np.asarray(untuned.predict_proba(x_test))[:, 1]
        rows["lightgbm_untuned"].append(evaluate(y_test, predicted, economics))
        logistic, c = tune_logistic(schema, x_train, y_train, seed)
        predicted = logistic.predict_proba(baseline_input(schema, x_test))[:, 1]
        rows["logistic_tuned"].append(evaluate(y_test, predicted, economics))
        choices.append({**choice, "logistic_C": c})
    return CrossValidated(
        metrics={model: pd.DataFrame(fold_metrics) for model, fold_metrics in rows.items()},
        choices=pd.DataFrame(choices).rename_axis("fold"),
        notes=notes,
    )
