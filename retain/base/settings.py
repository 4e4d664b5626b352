"""Typed, layered settings: defaults < configs/<stage>.yaml < environment < CLI flags.

Each stage declares one pydantic-settings model with its YAML file name and environment
prefix; `load_settings` builds it from those layers. Nothing is read at import time: the
caller decides when, and passes the result on explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_DIR_ENV = "RETAIN_CONFIG_DIR"
DEFAULT_CONFIG_DIR = Path("configs")


class StageSettings(BaseSettings):
    """Base for one stage's settings; subclasses set `config_file` and an env prefix."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")
    config_file: ClassVar[str]


class RunLoggingSettings(StageSettings):
    """Base for a stage that logs runs to MLflow: what its artifacts may hold.

    Anyone who can read MLflow reads its artifacts, while customer-level data is only for
    the roles the API grants it to; so runs hold aggregates, plots, metrics and digests,
    and customer rows only when a stage's settings ask for them explicitly.
    """

    log_customer_rows: bool = Field(
        False,
        description="Sensitive: also copy customer-level rows (held-out rows, the daily "
        "risk list, campaign candidates) into the run's MLflow artifacts.",
    )


S = TypeVar("S", bound=StageSettings)


def config_dir() -> Path:
    """The folder holding the stage YAML files (`RETAIN_CONFIG_DIR`, else ./configs).

    A folder named explicitly must exist: a typo must not silently mean "defaults".
    """
    named = os.environ.get(CONFIG_DIR_ENV)
    if named is None:
        return DEFAULT_CONFIG_DIR
    if not Path(named).is_dir():
        raise FileNotFoundError(f"{CONFIG_DIR_ENV}={named}: no such folder")
    return Path(named)


class SettingsFileError(ValueError):
    """A stage's YAML file is there but is not a readable mapping of settings."""


def check_settings_file(path: Path) -> None:
    """Refuse a settings file that is not UTF-8 YAML holding a mapping, naming it (the
    settings library would fail on it with an error that names neither file nor line)."""
    if not path.exists():
        return  # the model's defaults apply
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())
        raise SettingsFileError(f"{path}: not a readable YAML settings file ({reason})") from None
    if document is not None and not isinstance(document, dict):
        raise SettingsFileError(
            f"{path}: expected a mapping of settings, found a {type(document).__name__}"
        )


def load_settings(
    settings_cls: type[S],
    overrides: Mapping[str, Any] | None = None,
    directory: Path | None = None,
) -> S:
    """Build `settings_cls` from its YAML file, the environment and explicit overrides.

    Overrides whose value is None are ignored, so CLI options can default to None and
    only the flags the user actually gave take precedence. A missing YAML file is not an
    error (the model's defaults apply); an unknown key in it is.
    """
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    yaml_path = (directory or config_dir()) / settings_cls.config_file
    check_settings_file(yaml_path)
    sources = (
        InitSettingsSource(settings_cls, init_kwargs=flags),
        EnvSettingsSource(settings_cls),
        YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path),
    )
    # `_build_sources` is pydantic-settings' documented hook for explicit sources; its mypy
    # signature is only visible through the pydantic plugin.
    return settings_cls(_build_sources=(sources, flags))  # type: ignore[call-arg]
