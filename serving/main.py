"""The app as uvicorn starts it (`retain serve`): settings from configs/ and the environment."""

from __future__ import annotations

from fastapi import FastAPI

from features.settings import FeatureSettings
from features.store import open_store
from retain.base.settings import load_settings
from serving.actions import ActionLog, open_engine
from serving.app import ServingState, create_app, load_serving_state
from serving.auth import load_keys
from serving.engine import action_engine
from serving.reload import ModelWatcher
from serving.scoring import Scorer, alias_version, load_champion
from serving.settings import DailySettings, ServingSettings
from training.settings import TrainingSettings


def build_app() -> FastAPI:
    """An app factory for uvicorn: keys are checked now, so a bad key stops the start."""
    settings = load_settings(ServingSettings)
    keys = load_keys(settings.api_keys_file, settings.dev_mode)
    features = load_settings(FeatureSettings)
    tracking = load_settings(TrainingSettings)

    def open_scorer() -> Scorer:
        return Scorer(load_champion(settings, tracking), open_store(features), settings)

    def load_state() -> ServingState:
        action_log = ActionLog(open_engine(settings.action_db_url))
        return load_serving_state(
            keys,
            open_scorer,
            action_log,
            lambda scorer: action_engine(scorer, action_log, settings, features.tables_dir),
        )

    def start_watching(state: ServingState) -> ModelWatcher | None:
        if not settings.reload_interval_s:
            return None
        return ModelWatcher(
            state,
            lambda: alias_version(settings, tracking),
            open_scorer,
            settings.reload_interval_s,
        ).start()

    return create_app(settings, load_state, start_watching, load_settings(DailySettings).output_dir)
