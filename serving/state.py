"""What a running API serves: its keys, the champion's scorer and the decision service.

The model watcher (`serving.reload`) swaps a newly promoted champion in here; requests
in flight keep the scorer they started with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from serving.action_log.log import ActionLog
from serving.auth import ApiKeys
from serving.decisions import DecisionService
from serving.scoring import ModelLoadError, Scorer

log = logging.getLogger("retain.serving")


@dataclass
class ServingState:
    """`scorer` and `decisions` are None until a model loads (see /readyz)."""

    keys: ApiKeys
    scorer: Scorer | None
    load_error: str | None = None
    decisions: DecisionService | None = None
    reload_error: str | None = None  # a newer champion that could not be loaded
    action_log: ActionLog | None = None  # open even while no model is: delivery goes on
    decisions_for: Callable[[Scorer], DecisionService] | None = None

    def serve(self, scorer: Scorer) -> None:
        """Start serving `scorer` (a reference swap: requests in flight keep theirs)."""
        if self.decisions is None and self.decisions_for is not None:
            self.decisions = self.decisions_for(scorer)
        elif self.decisions is not None:
            self.decisions.scorer = scorer
        self.scorer = scorer


def load_serving_state(
    keys: ApiKeys,
    open_scorer: Callable[[], Scorer],
    action_log: ActionLog,
    decisions_for: Callable[[Scorer], DecisionService],
) -> ServingState:
    """Keys are required; a model that fails to load leaves the API up but not ready (the
    model watcher may load one later) and the outbox still draining."""
    state = ServingState(keys, None, action_log=action_log, decisions_for=decisions_for)
    try:
        state.serve(open_scorer())
    except ModelLoadError as error:
        log.error("model not loaded: %s", error)
        state.load_error = str(error)
    return state
