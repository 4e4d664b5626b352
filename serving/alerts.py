"""Alert lines for the people on call: one structured log line per alert and, where a
webhook is configured, the alerts POSTed to it once (monitoring, service KPIs)."""

from __future__ import annotations

import json
import logging
from typing import Any

import requests

log = logging.getLogger("retain.alerts")


def send_alerts(
    event: str,
    context: dict[str, Any],
    alerts: list[dict[str, Any]],
    body: dict[str, Any],
    webhook: tuple[str | None, float],
    idempotency_key: str,
    logger: logging.Logger = log,
) -> None:
    """One structured log line per alert (`event`, `context`, the alert's fields); and, when
    there are alerts and a webhook (url, timeout in seconds), `body` POSTed to it once."""
    for alert in alerts:
        logger.warning(json.dumps({"event": event, **context, **alert}, default=str))
    url, timeout_s = webhook
    if not alerts or url is None:
        return
    try:
        response = requests.post(
            url,
            json=json.loads(json.dumps(body, default=str)),
            headers={"Idempotency-Key": idempotency_key},
            timeout=timeout_s,
        )
        response.raise_for_status()
    except requests.RequestException as error:  # the log line and the result stand
        logger.error("%s webhook %s failed: %s", event, url, error)
