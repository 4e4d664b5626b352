"""Settings layering: model defaults < configs/<stage>.yaml < environment < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from features.lifecycle.settings import DataSettings
from retain.base.settings import SettingsFileError, load_settings

REPO = Path(__file__).resolve().parents[1]


def _yaml(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data.yaml").write_text(text)
    return tmp_path


def test_the_shipped_yaml_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETAIN_DATA_CUSTOMERS", raising=False)
    settings = load_settings(DataSettings, directory=REPO / "configs")
    assert settings.customers == 20_000 and settings.months == 24 and settings.seed == 7


def test_yaml_overrides_defaults(tmp_path: Path) -> None:
    settings = load_settings(
        DataSettings, directory=_yaml(tmp_path, "customers: 500\ndrivers: {bill_shock: 2.0}\n")
    )
    assert settings.customers == 500
    assert settings.drivers.bill_shock == 2.0
    assert settings.drivers.intercept == DataSettings().drivers.intercept


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_DATA_CUSTOMERS", "700")
    monkeypatch.setenv("RETAIN_DATA_DRIVERS__BILL_SHOCK", "1.5")
    settings = load_settings(DataSettings, directory=_yaml(tmp_path, "customers: 500\n"))
    assert settings.customers == 700
    assert settings.drivers.bill_shock == 1.5


def test_flags_override_environment_and_none_flags_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAIN_DATA_CUSTOMERS", "700")
    settings = load_settings(
        DataSettings, {"customers": 900, "seed": None}, directory=_yaml(tmp_path, "seed: 3\n")
    )
    assert settings.customers == 900
    assert settings.seed == 3


def test_a_missing_yaml_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(DataSettings, directory=tmp_path).customers == 20_000


def test_a_missing_config_dir_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match="RETAIN_CONFIG_DIR"):
        load_settings(DataSettings)


def test_the_config_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(_yaml(tmp_path, "months: 12\n")))
    assert load_settings(DataSettings).months == 12


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("customerz: 5\n", "customerz"),
        ("months: 2\n", "months"),
        ("as_of: '2026-01-01'\n", "as_of"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        load_settings(DataSettings, directory=_yaml(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (": : :\n", "not a readable YAML settings file"),
        ("- a\n- b\n", "expected a mapping of settings, found a list"),
        (b"\x7fELF\x02\x01\x01\x00\xd0\xcf", "not a readable YAML settings file"),
    ],
    ids=["not yaml", "a list", "binary"],
)
def test_a_settings_file_that_is_not_a_mapping_is_refused_naming_it(
    tmp_path: Path, text: str | bytes, said: str
) -> None:
    path = tmp_path / "data.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(SettingsFileError, match=said) as refused:
        load_settings(DataSettings, directory=tmp_path)
    assert str(path) in str(refused.value)


def test_an_empty_settings_file_means_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("# nothing set yet\n")
    assert load_settings(DataSettings, directory=tmp_path) == DataSettings()
