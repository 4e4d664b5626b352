"""Drain the outbox to a channel: at least once, with retries and backoff.

A message is claimed with a token (its next attempt pushed a lease into the future, so a
second worker or process skips it), sent, and only then marked delivered; only the holder
of the claim may settle it, and a delivered message is never reopened. A crash after the
channel accepted a message but before it was marked means it is sent again: every
message carries its action id, which the receiver uses to drop repeats.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import requests

from serving.action_log.outbox import Outbox
from serving.background import BackgroundLoop, report_failure
from serving.domain import ActionRecord
from serving.settings import Delivery

log = logging.getLogger("retain.delivery")


class Sink(Protocol):
    def send(self, message: dict[str, Any]) -> None:
        """Hand the message over; raise if the channel did not accept it."""


DELIVERED_AT = "delivered_at"  # the file sink's stamp on each line, for its retention


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive use of the file sink's file across threads and processes: appends and
    pruning (`prune_delivered`) take turns. The lock is a file of its own beside it, which
    pruning never replaces."""
    with path.with_name(f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class FileSink:
    """One JSON line per message, stamped with the moment it was written (`delivered_at`),
    flushed and synced before the message counts as sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        stamped = {**message, DELIVERED_AT: datetime.now(UTC).isoformat()}
        line = json.dumps(stamped, default=str, sort_keys=True) + "\n"
        with self._lock, _file_lock(self.path), self.path.open("a") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())


def prune_delivered(path: Path, before: datetime) -> int:
    """Remove the file sink's messages delivered before `before`; how many.

    The kept lines are copied to a new file that then replaces the old one in one rename,
    under the sink's lock, so an append is never lost and a reader sees the old file or the
    new one. A line without a readable stamp (not JSON, or from before the stamp) is kept,
    unless the whole file was last written before `before`. Nothing old: the file is left
    untouched."""
    if not path.exists():
        return 0
    removed = 0
    with _file_lock(path):
        unstamped_old = datetime.fromtimestamp(path.stat().st_mtime, UTC) < before
        temporary = path.with_name(f".{path.name}-pruned")
        try:
            with path.open() as source, temporary.open("w") as out:
                for line in source:
                    if _delivered_before(line, before, unstamped_old):
                        removed += 1
                    else:
                        out.write(line)
                out.flush()
                os.fsync(out.fileno())
            if removed:
                os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return removed


def _delivered_before(line: str, before: datetime, unstamped_old: bool) -> bool:
    try:
        stamp = datetime.fromisoformat(json.loads(line)[DELIVERED_AT])
    except (ValueError, KeyError, TypeError):
        return unstamped_old
    return stamp.astimezone(UTC) < before


class WebhookSink:
    """POST the message as JSON; any 2xx is acceptance."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s
        self.session = requests.Session()

    def send(self, message: dict[str, Any]) -> None:
        response = self.session.post(
            self.url,
            json=json.loads(json.dumps(message, default=str)),
            headers={"Idempotency-Key": message["action_id"]},
            timeout=self.timeout_s,
        )
        response.raise_for_status()


def open_sink(settings: Delivery) -> Sink:
    if settings.sink == "webhook":
        assert settings.webhook_url is not None  # checked by the settings model
        return WebhookSink(settings.webhook_url, settings.webhook_timeout_s)
    return FileSink(settings.file_path)


def message(action: ActionRecord) -> dict[str, Any]:
    """What the channel receives for an action."""
    return {
        "action_id": action.id,
        "customer_id": action.customer_id,
        "action_type": action.action_type,
        "channel": action.channel,
        "due_at": action.due_at,
        "details": action.details,
    }


def backoff(attempts: int, settings: Delivery) -> timedelta:
    return timedelta(seconds=min(settings.max_backoff_s, settings.base_backoff_s * 2**attempts))


@dataclass
class Drained:
    delivered: int = 0
    retried: int = 0
    failed: int = 0


def drain_once(
    outbox: Outbox, sink: Sink, settings: Delivery, now: datetime | None = None
) -> Drained:
    """Send every message due now (up to a batch).

    Each message is claimed at the moment it is sent, with a lease from that moment: a
    slow channel cannot let a claim run out before its message is even tried.
    """
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    result = Drained()
    lease = timedelta(seconds=settings.lease_s)
    for due in outbox.due(clock(), settings.batch):
        action_id = due.action.id
        claim = outbox.claim(action_id, clock(), lease)
        if claim is None:
            continue  # another worker has it
        try:
            sink.send(message(due.action))
        except Exception as error:  # any channel failure: retry later, then give up
            attempts = due.attempts + 1
            if attempts >= settings.max_attempts:
                if outbox.mark_failed(action_id, claim, repr(error), None, clock()):
                    result.failed += 1
            else:
                retry_at = clock() + backoff(attempts - 1, settings)
                if outbox.mark_failed(action_id, claim, repr(error), retry_at, clock()):
                    result.retried += 1
            continue
        outbox.mark_delivered(action_id, claim, clock())
        result.delivered += 1
    return result


def drain_due(outbox: Outbox, sink: Sink, settings: Delivery, now: datetime) -> Drained:
    """Send everything due at `now`, batch after batch (a one-off run, not the worker)."""
    total = Drained()
    while True:
        drained = drain_once(outbox, sink, settings, now)
        total.delivered += drained.delivered
        total.retried += drained.retried
        total.failed += drained.failed
        if drained.delivered + drained.retried + drained.failed < settings.batch:
            return total


class DeliveryWorker(BackgroundLoop):
    """Drains the outbox in a background thread until stopped."""

    name = "delivery"

    def __init__(self, outbox: Outbox, sink: Sink, settings: Delivery) -> None:
        self.outbox, self.sink, self.settings = outbox, sink, settings
        super().__init__()

    def step(self) -> float:
        try:
            drained = drain_once(self.outbox, self.sink, self.settings)
        except Exception as error:  # the database is briefly unavailable: try again later
            report_failure(log, "delivery drain failed", error)
            return self.settings.interval_s
        busy = drained.delivered + drained.retried + drained.failed >= self.settings.batch
        return 0.0 if busy else self.settings.interval_s
