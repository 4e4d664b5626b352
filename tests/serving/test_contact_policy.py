"""The contact policy at its edges: consent, quiet hours to the second, caps, cooldown and the
one-a-day rule in the customer's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.contact import SENT, check, quiet_until
from serving.domain import Contact, PastAction, Suppression, Verdict
from serving.scoring import CHANNEL_CONSENT, read_contact
from serving.settings import ContactPolicy
from tests.serving.builders import NO_CONSENT, NOON, contact, past, proposal

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
CHANNELS = ("sms", "app_push", "email", "phone")
NIGHT = ContactPolicy(quiet_start=time(21, 0), quiet_end=time(8, 0))
NO_QUIET = ContactPolicy(quiet_start=time(0, 0), quiet_end=time(0, 0))
SHANGHAI = ContactPolicy(timezone="Asia/Shanghai", quiet_start=time(0), quiet_end=time(0))
NOT_SENT = ("suppressed", "expired", "failed")


def _at(hour: int, minute: int = 0, second: int = 0, micro: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, micro, tzinfo=UTC)


# --- consent ------------------------------------------------------------------------------


def test_a_channel_missing_from_the_consent_map_is_not_consented() -> None:
    partial = contact(consent={"sms": True})  # app_push, email and phone unknown
    verdict = check(proposal(), partial, [], NO_QUIET, NOON)
    assert verdict.allowed and verdict.channel == "sms"
    assert verdict.suppressions == [
        Suppression("no_consent", "no consent for app_push", "app_push")
    ]


@pytest.mark.parametrize(
    ("stored", "consents"),
    [
        (None, False),
        (float("nan"), False),
        (np.nan, False),
        (pd.NA, False),
        (False, False),
        (np.False_, False),
        (0, False),
        (True, True),
        (np.True_, True),
        (1, True),
    ],
    ids=["None", "nan", "np.nan", "pd.NA", "False", "np.False_", "0", "True", "np.True_", "1"],
)
def test_consent_read_from_the_store_is_given_only_by_a_true_value(
    stored: object, consents: bool
) -> None:
    values = {
        "segment": "consumer",
        "region": "harbour",
        "cell_site_id": "S1",
        "contract_type": "one_year",
        "monthly_fee": 55.5,
        "has_account_manager": np.True_,
        **dict.fromkeys(CHANNEL_CONSENT.values(), True),
        "consent_sms": stored,
    }
    read = read_contact("C9", values)
    assert read.consent == {"sms": consents, "app_push": True, "email": True, "phone": True}
    assert read == Contact("C9", "consumer", "harbour", "S1", "one_year", 55.5, True, read.consent)
    assert check(proposal("retention_offer", "sms"), read, [], NO_QUIET, NOON).allowed is consents


@given(
    consent=st.fixed_dictionaries({c: st.booleans() for c in CHANNELS}),
    order=st.permutations(CHANNELS),
)
def test_marketing_goes_out_only_on_the_first_consented_channel(
    consent: dict[str, bool], order: list[str]
) -> None:
    verdict = check(
        proposal("seasonal_package", *order), contact(consent=consent), [], NO_QUIET, NOON
    )
    consented = [c for c in order if consent[c]]
    refused = order[: order.index(consented[0])] if consented else order
    expected = [Suppression("no_consent", f"no consent for {c}", c) for c in refused]
    if consented:
        assert verdict.allowed and verdict.channel == consented[0]
        assert verdict.suppressions == expected
    else:
        assert not verdict.allowed and verdict.channel is None and verdict.send_after is None
        assert verdict.suppressions == [
            *expected,
            Suppression("no_channel", "no channel may carry this action"),
        ]


def test_a_service_message_needs_no_marketing_consent() -> None:
    notice = proposal("outage_notice", "sms", "app_push")
    verdict = check(notice, contact(consent=NO_CONSENT), [], NO_QUIET, NOON)
    assert verdict.allowed and verdict.channel == "sms" and verdict.suppressions == []


# --- quiet hours --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "resume"),
    [
        (_at(20, 59, 59), None),
        (_at(20, 59, 59, 999_999), None),
        (_at(21), _at(8, day=3)),  # exactly the start: quiet
        (_at(21, 0, 0, 1), _at(8, day=3)),
        (_at(23, 59, 59), _at(8, day=3)),
        (_at(0, day=3), _at(8, day=3)),  # after midnight: the same day's end
        (_at(7, 59, 59), _at(8)),
        (_at(7, 59, 59, 999_999), _at(8)),
        (_at(8), None),  # exactly the end: not quiet
        (_at(12), None),
    ],
)
def test_overnight_quiet_hours_hold_from_their_start_to_the_second_before_their_end(
    now: datetime, resume: datetime | None
) -> None:
    assert quiet_until(now, NIGHT) == resume


@pytest.mark.parametrize(
    ("now", "resume"),
    [
        (_at(11, 59, 59), None),
        (_at(12), _at(14)),
        (_at(13, 59, 59), _at(14)),
        (_at(14), None),
        (_at(23), None),
        (_at(1), None),
    ],
)
def test_daytime_quiet_hours_do_not_wrap_around_midnight(
    now: datetime, resume: datetime | None
) -> None:
    lunch = ContactPolicy(quiet_start=time(12), quiet_end=time(14))
    assert quiet_until(now, lunch) == resume


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_equal_start_and_end_mean_no_quiet_hours(moment: datetime) -> None:
    assert quiet_until(moment.replace(tzinfo=UTC), NO_QUIET) is None
    assert (
        quiet_until(
            moment.replace(tzinfo=UTC), ContactPolicy(quiet_start=time(9), quiet_end=time(9))
        )
        is None
    )


def test_quiet_hours_end_at_the_local_clock_time_across_a_daylight_saving_change() -> None:
    berlin = ContactPolicy(timezone="Europe/Berlin", quiet_start=time(21), quiet_end=time(8))
    # 22:30 in Berlin on the night the clocks go forward (CET to CEST on 29 March 2026)
    night = datetime(2026, 3, 28, 21, 30, tzinfo=UTC)
    assert quiet_until(night, berlin) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert quiet_until(datetime(2026, 3, 29, 5, 59, 59, tzinfo=UTC), berlin) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 3, 29, 6, 0, tzinfo=UTC), berlin) is None


def test_the_resume_instant_is_given_in_the_callers_offset() -> None:
    beijing = timezone(timedelta(hours=8))
    now = datetime(2026, 11, 3, 6, 30, tzinfo=beijing)  # 22:30 UTC: quiet in UTC
    resume = quiet_until(now, NIGHT)
    assert resume == _at(8, day=3)
    assert resume is not None and resume.utcoffset() == timedelta(hours=8)


@given(
    moment=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1)),
    start=st.times(),
    end=st.times(),
    zone=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata"]),
)
def test_quiet_hours_end_at_the_next_local_end_time_or_are_not_running(
    moment: datetime, start: time, end: time, zone: str
) -> None:
    policy = ContactPolicy(timezone=zone, quiet_start=start, quiet_end=end)
    now = moment.replace(tzinfo=UTC)
    clock = now.astimezone(ZoneInfo(zone)).time()
    if start == end:
        inside = False
    elif start < end:
        inside = start <= clock < end
    else:
        inside = clock >= start or clock < end
    resume = quiet_until(now, policy)
    if not inside:
        assert resume is None
        return
    assert resume is not None and now < resume <= now + timedelta(hours=25)
    local = resume.astimezone(ZoneInfo(zone))
    if not _skipped_by_a_clock_change(local):
        assert local.time() == end


def _skipped_by_a_clock_change(local: datetime) -> bool:
    """Whether `local`'s wall time does not exist (it fell into a DST gap)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) != local.replace(tzinfo=None)


@pytest.mark.parametrize("action_type", ["retention_offer", "outage_notice"])
def test_a_message_at_exactly_the_start_of_quiet_hours_is_deferred(action_type: str) -> None:
    at_start = check(proposal(action_type), contact(), [], NIGHT, _at(21))
    assert at_start.allowed and at_start.send_after == _at(8, day=3)
    second_before = check(proposal(action_type), contact(), [], NIGHT, _at(20, 59, 59))
    assert second_before.allowed and second_before.send_after is None
    at_end = check(proposal(action_type), contact(), [], NIGHT, _at(8))
    assert at_end.send_after is None


def test_a_caller_may_send_through_quiet_hours() -> None:
    verdict = check(proposal("outage_notice"), contact(), [], NIGHT, _at(23), False)
    assert verdict.allowed and verdict.send_after is None


# --- weekly caps --------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(SENT))
def test_every_message_that_went_out_counts_against_the_cap(status: str) -> None:
    history = [past("seasonal_package", "sms", NOON - DAY, status)] * 2
    verdict = check(proposal("retention_offer", "sms", "email"), contact(), history, NO_QUIET, NOON)
    assert verdict.channel == "email"
    assert verdict.suppressions == [
        Suppression("frequency_cap", "2 sms messages in 7 days (cap 2)", "sms")
    ]


@pytest.mark.parametrize(
    "uncounted",
    [
        *(past("seasonal_package", "sms", NOON - DAY, s) for s in NOT_SENT),
        past("outage_notice", "sms", NOON - DAY),  # a service message
        past("retention_offer", "email", NOON - DAY),  # another channel
        past("retention_offer", "sms", NOON - 7 * DAY),  # exactly a week ago
        past("retention_offer", "sms", NOON - 8 * DAY),
    ],
    ids=[*NOT_SENT, "service message", "other channel", "exactly 7 days ago", "8 days ago"],
)
def test_the_cap_counts_only_marketing_sent_on_the_channel_within_the_week(
    uncounted: PastAction,
) -> None:
    one_counted = past("retention_offer", "sms", NOON - 7 * DAY + SECOND)
    history = [one_counted, *[uncounted] * 5]
    verdict = check(proposal("seasonal_package", "sms"), contact(), history, NO_QUIET, NOON)
    assert verdict.allowed and verdict.channel == "sms" and verdict.suppressions == []


def test_outage_notices_never_fill_the_marketing_cap_nor_are_capped() -> None:
    notices = [past("outage_notice", "sms", NOON - timedelta(hours=h)) for h in range(1, 10)]
    offer = check(proposal("retention_offer", "sms"), contact(), notices, NO_QUIET, NOON)
    assert offer.allowed and offer.channel == "sms"
    marketing = [past("seasonal_package", "sms", NOON - timedelta(hours=h)) for h in (1, 2, 3)]
    notice = check(proposal("outage_notice", "sms"), contact(), marketing, NO_QUIET, NOON)
    assert notice.allowed and notice.channel == "sms" and notice.suppressions == []


def test_a_channel_is_capped_at_exactly_its_cap() -> None:
    policy = NO_QUIET.model_copy(update={"weekly_caps": {"app_push": 3}})
    pushes = [past("seasonal_package", "app_push", NOON - timedelta(hours=h)) for h in (1, 2, 3)]
    offer = proposal("retention_offer", "app_push")
    assert check(offer, contact(), pushes[:2], policy, NOON).allowed
    capped = check(offer, contact(), pushes, policy, NOON)
    assert not capped.allowed
    assert capped.suppressions[0] == Suppression(
        "frequency_cap", "3 app_push messages in 7 days (cap 3)", "app_push"
    )
    # a channel without a cap takes any number; a cap of zero takes none
    many = [past("seasonal_package", "email", NOON - timedelta(hours=h)) for h in range(1, 30)]
    assert check(proposal("retention_offer", "email"), contact(), many, policy, NOON).allowed
    closed = NO_QUIET.model_copy(update={"weekly_caps": {"email": 0}})
    assert not check(proposal("retention_offer", "email"), contact(), [], closed, NOON).allowed


HISTORY = st.lists(
    st.builds(
        PastAction,
        action_type=st.sampled_from(["retention_offer", "seasonal_package", "outage_notice"]),
        channel=st.sampled_from([*CHANNELS, None]),
        status=st.sampled_from([*SENT, *NOT_SENT]),
        created_at=st.integers(0, 10 * 24 * 3600).map(lambda s: NOON - timedelta(seconds=s)),
    ),
    max_size=12,
)


@given(history=HISTORY, order=st.permutations(CHANNELS))
def test_a_marketing_message_never_exceeds_a_weekly_cap(
    history: list[PastAction], order: list[str]
) -> None:
    policy = NO_QUIET.model_copy(update={"offer_cooldown_days": 0})
    verdict = check(proposal("seasonal_package", *order), contact(), history, policy, NOON)
    if verdict.allowed:
        sent = [
            a
            for a in history
            if a.channel == verdict.channel
            and a.status in SENT
            and a.action_type != "outage_notice"
            and NOON - a.created_at < timedelta(days=7)
        ]
        assert len(sent) < policy.weekly_caps[verdict.channel]  # type: ignore[index]


# --- offer cooldown -----------------------------------------------------------------------


def test_the_offer_cooldown_ends_exactly_its_length_after_the_last_offer() -> None:
    policy = NO_QUIET.model_copy(update={"offer_cooldown_days": 30})
    for status in sorted(SENT):
        just_inside = [past("retention_offer", "sms", NOON - 30 * DAY + SECOND, status)]
        cooled = check(proposal(), contact(), just_inside, policy, NOON)
        assert not cooled.allowed, status
        assert cooled.suppressions == [
            Suppression("offer_cooldown", "an offer was made 29 days ago (cooldown 30 days)")
        ]
    at_limit = [past("retention_offer", "sms", NOON - 30 * DAY)]
    assert check(proposal(), contact(), at_limit, policy, NOON).allowed


def test_the_cooldown_names_the_latest_offer() -> None:
    offers = [past("retention_offer", "sms", NOON - d * DAY) for d in (20, 3, 11)]
    verdict = check(proposal(), contact(), offers, NO_QUIET, NOON)
    assert verdict.suppressions[0].message == "an offer was made 3 days ago (cooldown 30 days)"


@pytest.mark.parametrize("status", NOT_SENT)
def test_an_offer_that_never_went_out_starts_no_cooldown(status: str) -> None:
    history = [past("retention_offer", "sms", NOON - 2 * DAY, status)]
    assert check(proposal(), contact(), history, NO_QUIET, NOON).allowed


def test_the_cooldown_is_for_offers_only() -> None:
    yesterday_offer = [past("retention_offer", "sms", NOON - DAY)]
    package = check(proposal("seasonal_package"), contact(), yesterday_offer, NO_QUIET, NOON)
    assert package.allowed
    yesterday_package = [past("seasonal_package", "sms", NOON - DAY)]
    assert check(proposal(), contact(), yesterday_package, NO_QUIET, NOON).allowed
    no_cooldown = NO_QUIET.model_copy(update={"offer_cooldown_days": 0})
    assert check(proposal(), contact(), yesterday_offer, no_cooldown, NOON).allowed


# --- one a day ----------------------------------------------------------------------------


def test_the_one_a_day_rule_follows_the_customers_midnight() -> None:
    # 16:00 UTC is midnight in Shanghai: 15:59:59 UTC was the day before there
    midnight = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    yesterday = [past("seasonal_package", "app_push", midnight - SECOND)]
    assert check(proposal("seasonal_package"), contact(), yesterday, SHANGHAI, midnight).allowed
    today = [past("seasonal_package", "app_push", midnight)]
    again = check(proposal("seasonal_package"), contact(), today, SHANGHAI, midnight + 7 * SECOND)
    assert not again.allowed
    assert again.suppressions == [
        Suppression("duplicate_today", "a seasonal_package was already made today")
    ]
    # in UTC both moments are on the same day
    utc = SHANGHAI.model_copy(update={"timezone": "UTC"})
    assert not check(proposal("seasonal_package"), contact(), yesterday, utc, midnight).allowed


@pytest.mark.parametrize("status", NOT_SENT)
def test_an_action_that_never_went_out_does_not_count_as_made_today(status: str) -> None:
    history = [past("seasonal_package", "sms", NOON - SECOND, status)]
    assert check(proposal("seasonal_package"), contact(), history, NO_QUIET, NOON).allowed


def test_the_one_a_day_rule_is_per_action_type_and_not_for_service_messages() -> None:
    history = [past("seasonal_package", "app_push", NOON - SECOND)]
    assert check(proposal("retention_offer"), contact(), history, NO_QUIET, NOON).allowed
    notices = [past("outage_notice", "sms", NOON - SECOND)]
    assert check(proposal("outage_notice"), contact(), notices, NO_QUIET, NOON).allowed


def test_a_duplicate_is_reported_alone_before_the_cooldown() -> None:
    offer_today = [past("retention_offer", "sms", NOON - SECOND)]
    verdict = check(proposal(), contact(consent=NO_CONSENT), offer_today, NO_QUIET, NOON)
    assert [s.code for s in verdict.suppressions] == ["duplicate_today"]
    assert verdict.channel is None and verdict.send_after is None


@pytest.mark.parametrize(
    ("history", "channels", "suppression"),
    [
        (
            [past("retention_offer", "sms", NOON - SECOND)],
            ("sms",),
            Suppression("duplicate_today", "a retention_offer was already made today"),
        ),
        (
            [past("retention_offer", "sms", NOON - 2 * DAY)],
            ("sms",),
            Suppression("offer_cooldown", "an offer was made 2 days ago (cooldown 30 days)"),
        ),
    ],
    ids=["duplicate", "cooldown"],
)
def test_a_refusal_sends_nothing_on_no_channel_at_no_time(
    history: list[PastAction], channels: tuple[str, ...], suppression: Suppression
) -> None:
    verdict = check(proposal("retention_offer", *channels), contact(), history, NIGHT, _at(23))
    assert verdict == Verdict(False, None, None, [suppression])
    nothing = check(proposal(), contact(consent=NO_CONSENT), [], NIGHT, _at(23))
    assert nothing == Verdict(
        False,
        None,
        None,
        [
            *(
                Suppression("no_consent", f"no consent for {c}", c)
                for c in ("app_push", "sms", "email")
            ),
            Suppression("no_channel", "no channel may carry this action"),
        ],
    )
