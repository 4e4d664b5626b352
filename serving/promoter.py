"""Each day's free callback slots to the waiting callbacks, by priority, in a background
thread of the API; those that waited too long expire. The same pass escalates complaint
follow-ups past their deadline (`serving.follow_ups`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from serving.background import BackgroundLoop, report_failure
from serving.decisions import DecisionService

log = logging.getLogger("retain.serving")


class CallbackPromoter(BackgroundLoop):
    name = "callback-promoter"

    def __init__(self, decisions: Callable[[], DecisionService | None], interval_s: float) -> None:
        self.decisions, self.interval_s = decisions, interval_s
        super().__init__()

    def step(self) -> float:
        service = self.decisions()
        if service is not None and service.log is not None:
            try:
                service.promote_waiting(datetime.now(UTC))
            except Exception as error:  # the database is briefly unavailable: try again later
                report_failure(log, "callback promotion failed", error)
            try:
                for record in service.follow_ups.escalate_overdue(datetime.now(UTC)):
                    log.warning("follow-up escalated: %s", record.details.get("reason"))
            except Exception as error:
                report_failure(log, "follow-up escalation failed", error)
        return self.interval_s
