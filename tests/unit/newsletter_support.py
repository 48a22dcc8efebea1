"""What the newsletter's handler tests share: the service in memory, on test settings, and
reading back the mails it queued and put together."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from typing import Any

from contracts.newsletter import (
    PAGE_MAX,
    Endpoints,
    ListSubscribers,
    Subscribe,
    SubscriberView,
    SubscriptionReceived,
)
from services.newsletter.context import Context
from services.newsletter.settings import NewsletterSettings
from services.runtime.testing import ServiceHarness

NEWSLETTER_SECRET = "newsletter-handler-tests-0123456789abcdef"
AMBASSADORS_SECRET = "ambassadors-handler-tests-0123456789abcdef"
EVENTS_SECRET = "events-handler-tests-0123456789abcdef0123"
NETWORKS_SECRET = "networks-handler-tests-0123456789abcdef01"
SOCIAL_SECRET = "social-handler-tests-0123456789abcdef0123"
PUBLIC_URL = "https://samskab.example"
# Where the service's clock stands when a test sets it.
NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)

Service = tuple[ServiceHarness, Context]


def settings() -> NewsletterSettings:
    return NewsletterSettings(
        _env_file=None,
        public_url=PUBLIC_URL,
        newsletter_token_secret=NEWSLETTER_SECRET,
        ambassadors_token_secret=AMBASSADORS_SECRET,
        events_token_secret=EVENTS_SECRET,
        networks_token_secret=NETWORKS_SECRET,
        social_token_secret=SOCIAL_SECRET,
    )


def mails_of(h: ServiceHarness, kind: str | None = None) -> list[dict[str, Any]]:
    """The mail records queued (of ``kind``), as stored."""
    return [m for m in h.db.documents("mails") if kind is None or m["kind"] == kind]


def parsed(message: bytes) -> EmailMessage:
    found = email.message_from_bytes(message, policy=policy.default)
    assert isinstance(found, EmailMessage)
    return found


def body(message: EmailMessage, subtype: str) -> str:
    """The ``text/<subtype>`` part of a message, as text."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def subscribe(
    h: ServiceHarness, request: Subscribe, *, actor: str | None = "public"
) -> SubscriberView:
    """Subscribe as anyone may (the answer says nothing about the address), then find the
    subscriber as staff would, in the list."""
    received = await h.call(Endpoints.SUBSCRIBE, request, actor=actor)
    assert received == SubscriptionReceived()
    page = await h.call(Endpoints.SUBSCRIBERS, ListSubscribers(limit=PAGE_MAX))
    key = request.email.strip().casefold()
    [found] = [s for s in page.items if (s.email or "").casefold() == key]
    return found
