"""The contact policy: may this proposal reach this customer now, and on which channel?

Every rule that stops a channel or an action leaves a suppression with a stable code
and a message, so the CRM (and the action log) can show why nothing was sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from serving.care import contact_profile, ordered_channels
from serving.domain import (
    MANDATORY,
    ActionStatus,
    Channel,
    Contact,
    PastAction,
    Proposal,
    Suppression,
    Verdict,
)
from serving.settings import ContactPolicy

# What reached the customer or is on its way: these count against caps, the cooldown and the
# one-a-day rule. Not suppressed, expired or failed actions, which never reached anyone. A
# control-group decision counts as if sent: the control group must meet the same rules as
# the treated (a cooldown after its first decision, not a new one every day).
SENT: frozenset[str] = frozenset(
    {
        ActionStatus.CONTROL,
        ActionStatus.QUEUED,
        ActionStatus.DEFERRED,
        ActionStatus.WAITING_CAPACITY,
        ActionStatus.DELIVERED,
        ActionStatus.ACCEPTED,
        ActionStatus.DECLINED,
        ActionStatus.NO_ANSWER,
    }
)
CAP_WINDOW = timedelta(days=7)


def quiet_until(now: datetime, policy: ContactPolicy) -> datetime | None:
    """When the quiet hours running at `now` end (customer local time), or None."""
    local = now.astimezone(ZoneInfo(policy.timezone))
    start, end, clock = policy.quiet_start, policy.quiet_end, local.time()
    overnight = start > end
    inside = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    resume = datetime.combine(day, end, tzinfo=local.tzinfo)
    return resume.astimezone(now.tzinfo)


def check(
    proposal: Proposal,
    contact: Contact,
    history: list[PastAction],
    policy: ContactPolicy,
    now: datetime,
    respect_quiet_hours: bool = True,
) -> Verdict:
    """Apply de-duplication, cooldown, the do-not-call list, consent, frequency caps and quiet
    hours, trying the channels in the customer's order of preference (`serving.care`).

    Service duties (outage notices, complaint follow-ups) need no marketing consent and are
    not capped; the do-not-call list stops their calls too; quiet hours defer them unless
    the caller says otherwise (an outage whose rule skips them).
    Windows look back from `now` and leave out their far edge: an offer made exactly
    `offer_cooldown_days` ago no longer blocks one, a message sent exactly 7 days ago no
    longer counts against the weekly cap. Missing consent is no consent.
    """
    mandatory = proposal.action_type in MANDATORY
    sent = [a for a in history if a.status in SENT]
    today = now.astimezone(ZoneInfo(policy.timezone)).date()
    same_today = [
        a
        for a in sent
        if a.action_type == proposal.action_type
        and a.created_at.astimezone(ZoneInfo(policy.timezone)).date() == today
    ]
    if same_today and not mandatory:  # a service message is de-duplicated per event instead
        return Verdict(
            False,
            None,
            None,
            [Suppression("duplicate_today", f"a {proposal.action_type} was already made today")],
        )
    if proposal.action_type == "retention_offer" and policy.offer_cooldown_days:
        since = now - timedelta(days=policy.offer_cooldown_days)
        recent = [a for a in sent if a.action_type == "retention_offer" and a.created_at > since]
        if recent:
            last = max(a.created_at for a in recent)
            return Verdict(
                False,
                None,
                None,
                [
                    Suppression(
                        "offer_cooldown",
                        f"an offer was made {(now - last).days} days ago "
                        f"(cooldown {policy.offer_cooldown_days} days)",
                    )
                ],
            )
    suppressions: list[Suppression] = []
    week_ago = now - CAP_WINDOW
    chosen: Channel | None = None
    for channel in ordered_channels(proposal.channels, contact_profile(contact, policy.care)):
        if channel == "phone" and contact.do_not_call:
            suppressions.append(
                Suppression("do_not_call", "the customer is on the do-not-call list", channel)
            )
            continue
        if not mandatory and not contact.consent.get(channel, False):
            suppressions.append(Suppression("no_consent", f"no consent for {channel}", channel))
            continue
        if not mandatory:
            used = sum(
                1
                for a in sent
                if a.channel == channel
                and a.action_type not in MANDATORY
                and a.created_at > week_ago
            )
            cap = policy.weekly_caps.get(channel)
            if cap is not None and used >= cap:
                suppressions.append(
                    Suppression(
                        "frequency_cap", f"{used} {channel} messages in 7 days (cap {cap})", channel
                    )
                )
                continue
        chosen = channel
        break
    if chosen is None:
        suppressions.append(Suppression("no_channel", "no channel may carry this action"))
        return Verdict(False, None, None, suppressions)
    send_after = quiet_until(now, policy) if respect_quiet_hours else None
    return Verdict(True, chosen, send_after, suppressions)
