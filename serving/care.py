"""Contact with care: the operators' guides ask for large-print bills, a preferred channel
(a phone call or an SMS rather than an app notification) and dedicated agents for older
customers and for those with accessibility needs.

Pure functions over the contact profile; the contact policy (`serving.contact`) orders
every message's channels by it, and every recorded action carries the needs.
"""

from __future__ import annotations

from serving.domain import Channel, Contact, ContactProfile
from serving.settings import Care


def in_care(contact: Contact, care: Care) -> bool:
    """An older customer (a configured age band) or one who asked for large print."""
    return contact.large_print or (contact.age_band in care.age_bands)


def contact_profile(contact: Contact, care: Care) -> ContactProfile:
    """The customer's channel preferences and needs; nothing special for the rest."""
    if not in_care(contact, care):
        return ContactProfile()
    older = contact.age_band in care.age_bands
    return ContactProfile(
        preferred=tuple(care.preferred_channels),
        avoided=tuple(care.avoided_channels),
        large_print=contact.large_print,
        dedicated_agent=older and care.dedicated_agent,
    )


def ordered_channels(channels: tuple[Channel, ...], profile: ContactProfile) -> tuple[Channel, ...]:
    """The action's own channels, the preferred first (in the profile's order), the avoided
    last; a channel the action cannot use is never added."""
    preferred = [c for c in profile.preferred if c in channels]
    avoided = [c for c in channels if c in profile.avoided and c not in preferred]
    middle = [c for c in channels if c not in preferred and c not in avoided]
    return (*preferred, *middle, *avoided)
