"""Bring your own dataset: nested CV on the real data and small exports, clear spec errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.model_selection import StratifiedKFold
from typer.testing import CliRunner

from retain.cli import app
from tests.conftest import REPO, SHARED_DATA
from training import byod
from training.byod import DatasetError, DatasetSpec, cross_validate, load_dataset, tune_logistic
from training.settings import Economics
from training.tuning import SEARCHED, Tuned, tune_cv

IBM = REPO / "configs" / "datasets" / "ibm_telco.yaml"
BIGML = REPO / "configs" / "datasets" / "bigml_churn.yaml"
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not found")


@pytest.fixture(autouse=True)
def _run_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # spec paths are relative to where retain runs


NOISE = 0.005  # ROC-AUC: well inside one standard deviation over the folds


@pytest.mark.slow
@needs_shared_data
def test_ibm_telco_tuned_reaches_the_target_and_matches_both_baselines() -> None:
    auc = {
        m: f["roc_auc"]
        for m, f in cross_validate(DatasetSpec.load(IBM), Economics()).metrics.items()
    }
    assert len(auc["lightgbm_tuned"]) == 5
    assert auc["lightgbm_tuned"].mean() >= 0.845
    assert auc["lightgbm_tuned"].mean() >= auc["lightgbm_untuned"].mean() - NOISE
    assert auc["lightgbm_tuned"].mean() >= auc["logistic_tuned"].mean() - NOISE


@pytest.mark.slow
@needs_shared_data
def test_bigml_tuned_lightgbm_beats_the_logistic_baseline() -> None:
    auc = {
        m: f["roc_auc"]
        for m, f in cross_validate(DatasetSpec.load(BIGML), Economics()).metrics.items()
    }
    assert auc["lightgbm_tuned"].mean() > auc["logistic_tuned"].mean() + 0.05
    assert auc["lightgbm_tuned"].mean() >= auc["lightgbm_untuned"].mean() - 2 * NOISE


def _spec(tmp_path: Path, **changes: object) -> DatasetSpec:
    spec = yaml.safe_load(IBM.read_text())
    spec.update(changes)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return DatasetSpec.load(path)


@needs_shared_data
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"drop": ["Gender"]}, "drop names column 'Gender'"),
        ({"id_column": "customer_id"}, "id_column names column 'customer_id'"),
        (
            {"label": {"column": "Churned", "positive": "Yes"}},
            "label.column names column 'Churned'",
        ),
        ({"label": {"column": "Churn", "positive": "Y"}}, "label column 'Churn' is unusable"),
        ({"types": {"PaymentMethod": "numeric"}}, "column 'PaymentMethod' is declared numeric"),
        ({"paths": ["../shared/data/nope.csv"]}, "not found"),
    ],
)
def test_spec_errors_name_the_column(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")):
        load_dataset(_spec(tmp_path, **changes))


def test_files_with_other_columns_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,x,churn\n1,2,yes\n2,3,no\n")
    (tmp_path / "b.csv").write_text("id,y,churn\n3,4,yes\n")
    spec = DatasetSpec.model_validate(
        {
            "name": "t",
            "paths": [tmp_path / "a.csv", tmp_path / "b.csv"],
            "label": {"column": "churn", "positive": "yes"},
        }
    )
    with pytest.raises(DatasetError, match=r"other columns than .*\['x', 'y'\]"):
        load_dataset(spec)


def _export(tmp_path: Path, text: str, **spec: object) -> DatasetSpec:
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode("utf-8-sig"))  # as a spreadsheet saves it: with a BOM
    return DatasetSpec.model_validate(
        {"name": "t", "paths": [path], "label": {"column": "churn", "positive": "yes"}, **spec}
    )


@pytest.mark.parametrize("separator", [";", "\t", "|", ","])
def test_a_spreadsheet_export_is_read_whatever_its_separator(
    tmp_path: Path, separator: str
) -> None:
    """A BOM, Windows line ends, another separator and the usual spellings of "no value"
    in a numeric column: read as the numbers they are, not as a column of text."""
    lines = ["id,minutes,plan,churn", "1,10.5,a,yes", "2,N/A,b,no", "3,NULL,a,no", "4,7,b,yes"]
    text = "\r\n".join(line.replace(",", separator) for line in lines) + "\r\n"
    features, labels, _ = load_dataset(_export(tmp_path, text, id_column="id"))
    assert list(features.columns) == ["minutes", "plan"]
    assert features["minutes"].dtype == "float64"
    assert features["minutes"].isna().tolist() == [False, True, True, False]
    assert labels.tolist() == [1, 0, 0, 1]


def test_a_declared_separator_is_used_as_it_is(tmp_path: Path) -> None:
    # as many commas as pipes in the header: detection alone would take the comma
    text = 'id|"note, free, text"|churn\n1|"a,b"|yes\n2|c|no\n'
    features = load_dataset(_export(tmp_path, text, delimiter="|")).features
    assert features["note_ free_ text"].tolist() == ["a,b", "c"]  # renamed for LightGBM


def test_dates_become_days_and_text_unique_to_every_row_is_left_out_saying_so(
    tmp_path: Path,
) -> None:
    rows = [
        f"{i},2024-0{1 + i % 9}-1{i % 10},note {i * 7919},{'abc'[i % 3]},{'no' if i % 4 else 'yes'}"
        for i in range(60)
    ]
    text = "id,signed_up,remark,plan,churn\n" + "\n".join(rows) + "\n"
    features, _, notes = load_dataset(_export(tmp_path, text, id_column="id"))
    assert list(features.columns) == ["signed_up", "plan"]
    assert features["signed_up"].iloc[0] == (pd.Timestamp("2024-01-10") - pd.Timestamp(0)).days
    assert features["plan"].dtype == object
    assert any("'signed_up' holds dates" in note for note in notes)
    assert any("'remark' left out" in note for note in notes)
    kept = load_dataset(_export(tmp_path, text, id_column="id", types={"remark": "category"}))
    assert "remark" in kept.features.columns


def test_a_whole_number_key_is_left_out_saying_so_and_a_usage_counter_is_kept(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    n = 80
    frame = pd.DataFrame(
        {
            "CustomerNo": rng.permutation(n) + 15_600_000,  # named like a key
            "seq": np.arange(n) * 3 + 7,  # rises with the file's rows
            "bytes_used": rng.permutation(n) * 1_000 + rng.integers(0, 999, n),  # a measure
            "minutes": rng.integers(0, 30, n),
            "churn": np.where(np.arange(n) % 3 == 0, "yes", "no"),
        }
    )
    text = frame.to_csv(index=False)
    features, _, notes = load_dataset(_export(tmp_path, text))
    assert list(features.columns) == ["bytes_used", "minutes"]
    assert any("'CustomerNo' left out" in note for note in notes)
    assert any("'seq' left out" in note for note in notes)
    kept = load_dataset(_export(tmp_path, text, types={"seq": "numeric"})).features
    assert "seq" in kept.columns


def test_a_column_declared_a_date_must_hold_iso_dates(tmp_path: Path) -> None:
    text = "x,churn\n03/04/2024,yes\n2024-04-05,no\n"
    with pytest.raises(DatasetError, match="'x' is declared a date"):
        load_dataset(_export(tmp_path, text, types={"x": "date"}))
    # codes that a loose parser would take for dates stay what they are
    codes = load_dataset(_export(tmp_path, "area,churn\n415,yes\n408,no\n")).features
    assert codes["area"].dtype == "float64"


def test_rows_without_a_label_are_named_by_file_and_line(tmp_path: Path) -> None:
    text = "id,x,churn\n1,2,yes\n2,3,\n3,4,no\n4,5,NA\n"
    named = re.escape("2 missing values (export.csv line 3, export.csv line 5)")
    with pytest.raises(DatasetError, match=named):
        load_dataset(_export(tmp_path, text))


def test_rows_are_named_by_the_line_an_editor_shows_after_blank_and_multi_line_rows(
    tmp_path: Path,
) -> None:
    text = 'id,note,churn\n\n1,"two\nlines",yes\n\n2,x,\n3,y,no\n'
    with pytest.raises(DatasetError, match=re.escape("(export.csv line 6)")):
        load_dataset(_export(tmp_path, text))


def test_a_parquet_export_is_read_as_its_csv_would_be(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "minutes": [1.5, None, 3.0, 4.0],
            "plan": ["basic", "NA", None, "pro"],
            "signed_up": pd.to_datetime(["2024-01-10", "2024-02-11", None, "2024-03-12"]),
            "churn": [True, False, False, True],
        }
    )
    frame.to_parquet(tmp_path / "export.parquet")
    frame.to_csv(tmp_path / "export.csv", index=False)

    def spec(path: Path) -> DatasetSpec:
        label = {"column": "churn", "positive": "true"}
        return DatasetSpec.model_validate(
            {"name": "t", "paths": [path], "id_column": "id", "label": label}
        )

    parquet = load_dataset(spec(tmp_path / "export.parquet"))
    csv = load_dataset(spec(tmp_path / "export.csv"))
    pd.testing.assert_frame_equal(parquet.features, csv.features)
    assert parquet.labels.tolist() == csv.labels.tolist() == [1, 0, 0, 1]
    assert parquet.features["plan"].isna().tolist() == [False, True, True, False]
    # its rows are named by number, as a Parquet file has no lines
    frame.assign(churn=[True, None, False, True]).to_parquet(tmp_path / "export.parquet")
    with pytest.raises(DatasetError, match=re.escape("(export.parquet row 2)")):
        load_dataset(spec(tmp_path / "export.parquet"))


def test_a_utf16_export_is_known_by_its_byte_order_mark(tmp_path: Path) -> None:
    spec = _export(tmp_path, "")
    spec.paths[0].write_bytes("id\tplan\tchurn\n1\tbasic\tyes\n2\tpro\tno\n".encode("utf-16"))
    features, labels, notes = load_dataset(spec)  # Excel's "Unicode text": UTF-16, tabs
    assert features["plan"].tolist() == ["basic", "pro"] and labels.tolist() == [1, 0]
    assert any("is UTF-16" in note for note in notes)


def test_decimal_commas_are_numbers_and_spaces_around_header_names_are_not_part_of_them(
    tmp_path: Path,
) -> None:
    text = "id; monthly ;churn \n1;12,5;yes\n2;-3;no\n3;;no\n"  # a European export
    features, labels, notes = load_dataset(_export(tmp_path, text, id_column="id"))
    assert features["monthly"].tolist()[:2] == [12.5, -3.0] and np.isnan(features["monthly"][2])
    assert labels.tolist() == [1, 0, 0]
    assert any("'monthly' writes decimals with a comma" in note for note in notes)
    declared = load_dataset(_export(tmp_path, text, types={"monthly": "numeric"})).features
    assert declared["monthly"].tolist()[:2] == [12.5, -3.0]
    # thousands separators stay text: "1.234,5" and "1,234.5" mean different numbers
    kept = load_dataset(_export(tmp_path, "x;churn\n1.234,5;yes\n7;no\n")).features
    assert kept["x"].dtype == object


def test_a_column_the_file_lacks_is_named_with_the_nearest_it_has(tmp_path: Path) -> None:
    text = "id,MonthlyCharges,churn\n1,2,yes\n2,3,no\n"
    with pytest.raises(DatasetError, match=r"'monthly_charges', which .* \(did you mean 'Mon"):
        load_dataset(_export(tmp_path, text, drop=["monthly_charges"]))
    with pytest.raises(DatasetError, match=r"'Churn', which the file does not have \(did you"):
        load_dataset(_export(tmp_path, text, label={"column": "Churn", "positive": "yes"}))


def test_an_excel_workbook_is_refused_asking_for_a_csv(tmp_path: Path) -> None:
    spec = _export(tmp_path, "id,churn\n")
    spec.paths[0].write_bytes(b"PK\x03\x04" + b"\x00" * 60)  # a workbook, named .csv all the same
    with pytest.raises(DatasetError, match="is an Excel workbook, not a CSV: save the sheet"):
        load_dataset(spec)


def test_a_windows_1252_export_is_read_saying_so_and_a_declared_encoding_is_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("région,churn\nÎle-de-France,yes\nCôte d'Azur,no\n".encode("cp1252"))
    spec = {"name": "t", "paths": [path], "label": {"column": "churn", "positive": "yes"}}
    features, labels, notes = load_dataset(DatasetSpec.model_validate(spec))
    assert features["région"].tolist() == ["Île-de-France", "Côte d'Azur"]
    assert labels.tolist() == [1, 0]
    assert any("export.csv is not UTF-8: read as Windows-1252" in note for note in notes)
    with pytest.raises(DatasetError, match=r"export.csv is not utf-8 \(byte 1 .*set `encoding`"):
        load_dataset(DatasetSpec.model_validate({**spec, "encoding": "utf-8"}))
    with pytest.raises(ValueError, match="unknown text encoding 'klingon'"):
        DatasetSpec.model_validate({**spec, "encoding": "klingon"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "export.csv is empty: expected a header line and rows"),
        ("id,x,churn\n", "export.csv has a header but no rows"),
        ("id,x,churn\n1,2,yes\n2,3,no,4,5\n", "export.csv is not a well-formed CSV: .*line 3"),
        ("churn\nyes\nno\n", "no feature column is left"),
    ],
)
def test_an_unreadable_file_is_one_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "export.csv"
    path.write_text(text)
    spec = {"name": "t", "paths": [path], "label": {"column": "churn", "positive": "yes"}}
    with pytest.raises(DatasetError, match=message):
        load_dataset(DatasetSpec.model_validate(spec))


def test_a_folder_given_as_the_file_is_one_error_naming_it(tmp_path: Path) -> None:
    spec = {"name": "t", "paths": [tmp_path], "label": {"column": "churn", "positive": "yes"}}
    with pytest.raises(DatasetError, match=f"{re.escape(str(tmp_path))} cannot be read"):
        load_dataset(DatasetSpec.model_validate(spec))


def test_a_numeric_label_matches_its_positive_value_as_a_number(tmp_path: Path) -> None:
    """A 0/1 label saved from a float column reads 0.0/1.0; `positive: 1` still finds it."""
    text = "x,churn\n1,1.0\n2,0.0\n3,1.0\n"
    spec = _export(tmp_path, text).model_copy(
        update={"label": byod.Label(column="churn", positive="1")}
    )
    assert load_dataset(spec).labels.tolist() == [1, 0, 1]


def test_json_punctuation_in_column_names_is_renamed_for_lightgbm_saying_so(
    tmp_path: Path,
) -> None:
    """LightGBM refuses feature names with JSON punctuation; spreadsheet headers have it."""
    text = 'Charges [$],"Total, charges",plan:type,plan_type,churn\n1,2,a,b,yes\n3,4,c,d,no\n'
    features, _, notes = load_dataset(_export(tmp_path, text))
    assert list(features.columns) == ["Charges _$_", "Total_ charges", "plan_type_2", "plan_type"]
    assert any("'plan:type' -> 'plan_type_2'" in note for note in notes)


def test_an_unquoted_yes_asks_for_quotes() -> None:
    with pytest.raises(ValueError, match="in quotes"):
        DatasetSpec.model_validate(
            yaml.safe_load("name: t\npaths: x.csv\nlabel: {column: churn, positive: yes}")
        )


def test_an_unknown_spec_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colums"):
        _spec(tmp_path, colums=["x"])


def _write_csv(path: Path, rows: int = 300, seed: int = 0, churn_rate_shift: float = 0.0) -> Path:
    """A small churn export: an id, numbers (some blank), a plan code, a yes/no label."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    complaints = rng.poisson(1.0, rows)
    plan = rng.choice(["basic", "plus", "max"], rows)
    logit = -0.5 - 0.05 * tenure + 0.9 * complaints + 0.8 * (plan == "max") + churn_rate_shift
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    charges = np.round(rng.normal(60, 20, rows), 2).astype(str)
    charges[rng.random(rows) < 0.05] = " "
    frame = pd.DataFrame(
        {
            "subscriber": [f"s{i}" for i in range(rows)],
            "tenure": tenure,
            "complaints": complaints,
            "plan": plan,
            "charges": charges,
            "churned": np.where(churned, "yes", "no"),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _synthetic_spec(tmp_path: Path, csv: Path | None = None, **changes: object) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "synthetic",
            "paths": [csv or _write_csv(tmp_path / "export.csv")],
            "id_column": "subscriber",
            "label": {"column": "churned", "positive": "yes"},
            "cv": {"folds": 3, "seed": 4},
            **changes,
        }
    )


def test_tuning_sees_only_the_outer_training_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _synthetic_spec(tmp_path)
    seen: dict[str, list[np.ndarray]] = {"lightgbm": [], "logistic": []}

    def spy_lightgbm(x: pd.DataFrame, y: np.ndarray, *args: Any, **kwargs: Any) -> Tuned:
        seen["lightgbm"].append(x.index.to_numpy())
        return tune_cv(x, y, *args, **kwargs)

    def spy_logistic(schema: Any, x: pd.DataFrame, *args: Any) -> Any:
        seen["logistic"].append(x.index.to_numpy())
        return tune_logistic(schema, x, *args)

    monkeypatch.setattr(byod, "tune_cv", spy_lightgbm)
    monkeypatch.setattr(byod, "tune_logistic", spy_logistic)
    result = cross_validate(spec, Economics(), budget_s=1.5, max_trials=3)

    features, labels, _ = load_dataset(spec)
    outer = StratifiedKFold(3, shuffle=True, random_state=4).split(features, labels)
    for fold, (train, test) in enumerate(outer):
        for model in ("lightgbm", "logistic"):
            assert sorted(seen[model][fold]) == sorted(features.index[train])
            assert not set(seen[model][fold]) & set(features.index[test])
    assert list(result.metrics) == ["lightgbm_tuned", "lightgbm_untuned", "logistic_tuned"]
    assert all(len(frame) == 3 for frame in result.metrics.values())
    assert len(result.choices) == 3
    assert {*SEARCHED, "rounds", "trials", "logistic_C"} <= set(result.choices.columns)
    assert (result.choices["inner_roc_auc"] >= result.choices["inner_roc_auc_defaults"]).all()


def test_parameters_pinned_by_the_spec_skip_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_search(*args: Any, **kwargs: Any) -> Tuned:
        raise AssertionError("the search ran although the spec pins the parameters")

    monkeypatch.setattr(byod, "tune_cv", no_search)
    spec = _synthetic_spec(tmp_path, lightgbm={"n_estimators": 30, "num_leaves": 4})
    result = cross_validate(spec, Economics(), budget_s=1)
    assert result.candidate == "lightgbm_pinned"
    assert (result.choices["n_estimators"] == 30).all()


def test_a_label_with_more_than_two_values_is_refused(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "export.csv")
    frame = pd.read_csv(path, dtype=str)
    frame.loc[:9, "churned"] = "moved to a competitor"
    frame.to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"label column 'churned' has 3 distinct values.*'moved"):
        load_dataset(_synthetic_spec(tmp_path, path))


def test_too_few_churners_for_the_folds_is_refused(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "export.csv", churn_rate_shift=-3.5)  # 7 churners
    with pytest.raises(DatasetError, match=r"'churned' has \d+ rows churned; 3-fold"):
        cross_validate(_synthetic_spec(tmp_path, path), Economics(), budget_s=1)


@pytest.mark.parametrize("budget", ["0", "-3", "inf", "nan"])
def test_the_cli_refuses_a_budget_of_no_time(tmp_path: Path, budget: str) -> None:
    result = CliRunner().invoke(app, ["train", "churn", "--dataset", str(IBM), "--budget", budget])
    assert result.exit_code == 2
    assert "error: --budget must be a positive number of seconds" in result.output


@pytest.mark.parametrize("missing", ["spec", "data"])
def test_the_cli_names_a_missing_file(tmp_path: Path, missing: str) -> None:
    spec = tmp_path / "spec.yaml"
    if missing == "data":
        spec.write_text(
            yaml.safe_dump(
                {
                    "name": "t",
                    "paths": [str(tmp_path / "nope.csv")],
                    "label": {"column": "c", "positive": "1"},
                }
            )
        )
    result = CliRunner().invoke(app, ["train", "churn", "--dataset", str(spec)])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert ("nope.csv" if missing == "data" else "spec.yaml") in result.output


@pytest.mark.slow  # MLflow's database setup dominates
def test_the_cli_prints_the_three_models_and_logs_the_chosen_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAIN_TRAINING_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("RETAIN_TRAINING_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    spec = _synthetic_spec(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    result = CliRunner().invoke(app, ["train", "churn", "--dataset", str(path), "--budget", "3"])
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("synthetic: ROC-AUC lightgbm_tuned 0.")
    assert "lightgbm_untuned 0." in summary and "logistic_tuned 0." in summary
    assert "±" in summary and "search budget 3s" in summary
    run = mlflow.search_runs(experiment_names=["churn-byod-synthetic"], output_format="list")[0]
    assert run.data.params["search"] == "optuna TPE, inner CV"
    assert {f"fold{i}_num_leaves" for i in range(3)} <= set(run.data.params)
    artifacts = MlflowClient().list_artifacts(run.info.run_id, "cross_validation")
    assert "cross_validation/chosen_params.csv" in {a.path for a in artifacts}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the same customer twice: it could sit in a training fold and its own test fold
        (
            "id,x,churn\n1,2,yes\n2,3,no\n1,2,yes\n",
            r"id column 'id' repeats 1 id\(s\) \(export.csv line 2, export.csv line 4\)",
        ),
        # pandas would keep both, the second as churn.1: the label itself as a feature
        ("id,x,churn,churn\n1,2,yes,yes\n2,3,no,no\n", r"names column\(s\) 'churn' more than once"),
        ("id,x,churn\n1,inf,yes\n2,3,no\n3,-Infinity,no\n", r"column 'x' holds infinite values"),
    ],
)
def test_data_that_would_flatter_or_break_the_metrics_is_refused_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(_export(tmp_path, text, id_column="id"))


def test_a_delimiter_after_each_rows_last_field_is_no_extra_column(tmp_path: Path) -> None:
    text = "id,x,churn\n1,2,yes,\n2,3,no,\n3,4,no,\n"  # pandas would read the ids as an index
    features, labels, _ = load_dataset(_export(tmp_path, text, id_column="id"))
    assert features["x"].tolist() == [2.0, 3.0, 4.0] and labels.tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name: t\npaths: [a.csv\n", "cannot be read as YAML"),
        (b"name: t\xff\xfe\n", "cannot be read as YAML"),
        (b"name: t\npaths: []\nlabel: {column: c, positive: '1'}\n", "paths"),
        (b"name: t\npaths: a.csv\nlabel: {column: c, positive: '1'}\ncv: {seed: -1}\n", "seed"),
        (
            b"name: t\npaths: a.csv\nlabel: {column: c, positive: '1'}\n"
            b"lightgbm: {random_state: 3, objective: regression}\n",
            "objective, random_state cannot be pinned",
        ),
    ],
)
def test_the_cli_refuses_a_bad_spec_in_one_line_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content)
    result = CliRunner().invoke(app, ["train", "churn", "--dataset", str(spec)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    folder = CliRunner().invoke(app, ["train", "churn", "--dataset", str(tmp_path)])
    assert folder.exit_code == 2 and "cannot be read as YAML" in folder.output


def test_pinned_parameters_lightgbm_refuses_are_one_error(tmp_path: Path) -> None:
    spec = _synthetic_spec(tmp_path, lightgbm={"num_leaves": 1})
    with pytest.raises(DatasetError, match="LightGBM refuses the pinned `lightgbm` parameters"):
        cross_validate(spec, Economics(), budget_s=1)


def test_a_label_written_1_and_1_0_is_one_value(tmp_path: Path) -> None:
    text = "x,churn\n1,1\n2,0\n3,1.0\n4,0.0\n"  # a gap made part of the column float
    spec = _export(tmp_path, text).model_copy(
        update={"label": byod.Label(column="churn", positive="1")}
    )
    assert load_dataset(spec).labels.tolist() == [1, 0, 1, 0]


def test_the_cli_names_the_spec_and_the_field_of_a_validation_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\npaths: a.csv\nlabel: {column: c, positive: '1'}\nfolds: 3\n")
    result = CliRunner().invoke(app, ["train", "churn", "--dataset", str(spec)])
    assert result.exit_code == 2
    assert f"error: {spec}: folds: Extra inputs are not permitted" in result.output
    assert "pydantic.dev" not in result.output
