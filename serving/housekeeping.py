"""`retain housekeeping`: customer data is kept no longer than its retention period.

Run daily, beside `retain daily`. Risk lists (`risk_lists/<date>/`) older than
`retention.risk_lists_days` are deleted; the file sink's messages delivered longer ago
than `retention.delivered_messages_days` are removed from its file; decisions in the
action log older than `retention.action_log_personal_days` are pseudonymized
(`serving.action_log.retention`): their rows stay, so the campaign results and budgets
are unchanged. Each step leaves alone what an earlier run already did: a second run the
same day changes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from serving.action_log.log import ActionLog
from serving.attribution import HORIZON_DAYS
from serving.delivery import prune_delivered
from serving.settings import DailySettings, Retention, ServingSettings

# risk_lists/ entries of one day: its published link (or a folder from before links),
# its versions and a link left half made (`retain.base.publish`)
DAY_ENTRY = re.compile(r"\.?(\d{4}-\d{2}-\d{2})(-(link-)?[0-9a-f]{12})?")
MIN_SECRET_CHARS = 32
SECRET_ENV = "RETAIN_SERVING_RETENTION__PSEUDONYM_SECRET"


class RetentionError(ValueError):
    """The retention settings would break something or cannot be applied; nothing done."""


@dataclass(frozen=True)
class Housekept:
    """What one run removed or pseudonymized."""

    risk_list_days: list[str]  # the days whose lists were deleted
    messages: int  # delivered messages removed from the file sink's file
    actions: int  # decisions pseudonymized
    outcomes: int  # their outcome rows pseudonymized
    audit: int = 0  # audit rows pseudonymized


def check_retention(retention: Retention, serving: ServingSettings) -> None:
    """Refuse a period after which something still needs a decision's customer: the
    attribution of its outcomes, and the offer cooldown of the contact policy."""
    needs = {
        f"the attribution horizon ({HORIZON_DAYS} days: outcomes need the customer id)": (
            HORIZON_DAYS
        ),
        f"contact.offer_cooldown_days ({serving.contact.offer_cooldown_days})": (
            serving.contact.offer_cooldown_days
        ),
    }
    for what, days in needs.items():
        if retention.action_log_personal_days < days:
            raise RetentionError(
                f"retention.action_log_personal_days is {retention.action_log_personal_days}: "
                f"it must be at least {days} days, {what}"
            )


def pseudonym_key(retention: Retention) -> bytes:
    """The pseudonyms' secret, refused when missing or too short to resist guessing."""
    secret = retention.pseudonym_secret
    if secret is None or len(secret.get_secret_value()) < MIN_SECRET_CHARS:
        raise RetentionError(
            f"no pseudonym secret of at least {MIN_SECRET_CHARS} characters: set {SECRET_ENV} "
            "(e.g. `openssl rand -hex 32`) and keep it, or the same customer gets a new "
            "pseudonym"
        )
    return secret.get_secret_value().encode()


def prune_risk_lists(output_dir: Path, before: date) -> list[str]:
    """Delete the risk lists of the days before `before`; those days, sorted.

    A day's published link goes first, so a reader never finds a half-deleted list; then
    its versions. Other files there (the campaign results page) are left alone."""
    old = []
    for entry in output_dir.iterdir() if output_dir.is_dir() else []:
        found = DAY_ENTRY.fullmatch(entry.name)
        if found is not None and _day(found.group(1)) < before:
            old.append((entry.name.startswith("."), entry, found.group(1)))
    for _, entry, _ in sorted(old):  # published names (no leading dot) first
        if entry.is_symlink() or entry.is_file():
            os.unlink(entry)
        elif entry.is_dir():
            shutil.rmtree(entry)
    return sorted({day for hidden, _, day in old if not hidden})


def _day(text: str) -> date:
    """The day a risk-list entry is for; a name that is no date is never old."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return date.max


def housekeeping(
    serving: ServingSettings, daily: DailySettings, log: ActionLog | None, now: datetime
) -> Housekept:
    """Apply the retention periods at `now`; `log` None: there is no action log yet."""
    retention = serving.retention
    check_retention(retention, serving)
    key = pseudonym_key(retention) if log is not None else b""
    today = now.astimezone(ZoneInfo(serving.contact.timezone)).date()
    days = prune_risk_lists(daily.output_dir, today - timedelta(days=retention.risk_lists_days))
    # the file is pruned whichever sink delivers now: what it holds is customer data
    before = now - timedelta(days=retention.delivered_messages_days)
    messages = prune_delivered(serving.delivery.file_path, before)
    actions = outcomes = audited = 0
    if log is not None:
        before = now - timedelta(days=retention.action_log_personal_days)
        actions, outcomes = log.pseudonymize(before, key, retention.batch)
        audited = log.pseudonymize_audit(before, key, retention.batch)
    return Housekept(days, messages, actions, outcomes, audited)
