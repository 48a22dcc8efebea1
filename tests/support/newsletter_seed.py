"""Many confirmed newsletter subscribers, written straight into the newsletter's database.

Why not ``samskab newsletter subscribe`` + ``confirm`` for each? Every subscribe is a
transaction that also queues a confirmation mail, and every confirm another transaction:
thousands of them take minutes on SecantusDB and put thousands of confirmation mails into
the SMTP sink a crash test then has to tell apart from the issue. What the test needs is the
state those two commands leave behind, so this builds it with the service's own rules and
serialisation: :func:`domain.subscribe` then :func:`domain.confirm` (exactly what the
``subscribe`` and ``confirm`` handlers call), stored in the form ``store.save_subscriber``
writes, in a few ``insert_many`` calls. The one thing skipped is the ``subscribed`` event
``confirm`` puts in the outbox, which nothing in delivery reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from contracts.newsletter import SubscriberStatus
from services.newsletter import domain, store
from services.newsletter.settings import NewsletterSettings
from services.runtime.mongo import DatabaseT
from tests.support.stack import settings_of

__all__ = ["SeededSubscriber", "seed_confirmed_subscribers", "subscriber_address"]

INSERT_CHUNK = 500


@dataclass(frozen=True)
class SeededSubscriber:
    id: str
    address: str
    name: str | None


def subscriber_address(run: str, index: int) -> str:
    return f"kaos-{run}-{index:05d}@example.org"


def _confirmed(run: str, index: int, now: datetime, token_ttl: timedelta) -> domain.Subscriber:
    email = domain.normalised_email(subscriber_address(run, index))
    # A Danish letter in every name: the To header has to carry it (RFC 2047).
    name = domain.normalised_name(f"Læser {index}")
    pending = domain.subscribe(None, email=email, name=name, now=now, token_ttl=token_ttl)
    return domain.confirm(pending.subscriber, now)


async def seed_confirmed_subscribers(
    db: DatabaseT, run: str, count: int, settings: NewsletterSettings | None = None
) -> list[SeededSubscriber]:
    """``count`` confirmed direct subscribers ``kaos-<run>-<i>@example.org``; returns them."""
    settings = settings or settings_of(NewsletterSettings)
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
    ttl = timedelta(hours=settings.newsletter_token_ttl_hours)
    subscribers = [_confirmed(run, i, now, ttl) for i in range(count)]
    # The service's own document form (store.save_subscriber writes the same, one by one).
    docs = [store._to_document(s) for s in subscribers]
    for start in range(0, len(docs), INSERT_CHUNK):
        await db.subscribers.insert_many(docs[start : start + INSERT_CHUNK])
    seeded = []
    for s in subscribers:
        assert s.status == SubscriberStatus.CONFIRMED and s.address is not None
        seeded.append(SeededSubscriber(id=s.id, address=s.address, name=s.name))
    return seeded
