"""Follow the champion alias: serve a newly promoted model without a restart.

A background thread asks the registry which version the alias points at. When it moves,
the new model is loaded and checked against the online features *beside* the serving
one; only a model that loads and matches replaces it, in one reference swap, so requests
in flight finish on the model they started with. A model that fails keeps the old one
serving and the error visible on /readyz and /v1/model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from serving.background import BackgroundLoop
from serving.scoring import Scorer
from serving.state import ServingState

log = logging.getLogger("retain.reload")
RETRY_FAILED_AFTER = 10  # polls before a version that failed to load is tried again


class ModelWatcher(BackgroundLoop):
    name = "model-watcher"

    def __init__(
        self,
        state: ServingState,
        alias_version: Callable[[], str],
        open_scorer: Callable[[], Scorer],
        interval_s: float,
    ) -> None:
        self.state = state
        self.alias_version = alias_version
        self.open_scorer = open_scorer
        self.interval_s = interval_s
        self._failed_version: str | None = None
        self._skips = 0
        super().__init__()

    def poll_once(self) -> bool:
        """Swap in the alias's model if it moved and loads; True when swapped."""
        try:
            wanted = self.alias_version()
        except Exception as error:  # the registry is unreachable: keep serving
            self.state.reload_error = f"cannot read the model registry: {error}"
            return False
        current = self.state.scorer.version_key if self.state.scorer else None
        if wanted == current:
            self.state.reload_error = None
            return False
        if wanted == self._failed_version and self._skips < RETRY_FAILED_AFTER:
            self._skips += 1  # a version that failed is tried again now and then, not each poll
            return False
        try:
            scorer = self.open_scorer()
        except Exception as error:  # any failure: the old model keeps serving
            self._failed_version, self._skips = wanted, 0
            self.state.reload_error = (
                f"version {wanted} not loaded, still serving {current}: {error}"
            )
            log.error("%s", self.state.reload_error)
            return False
        self.state.serve(scorer)
        self.state.reload_error = None
        self.state.load_error = None
        self._failed_version = None
        log.info("now serving model version %s (was %s)", wanted, current)
        return True

    def step(self) -> float:
        self.poll_once()
        return self.interval_s
