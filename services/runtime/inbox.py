"""The idempotent-consumer record: which events a consumer has already applied.

Checked and written inside the consumer's own transaction, so an event's effect and its
inbox entry commit together; a redelivered or duplicated event is seen and skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING

from services.runtime.mongo import DatabaseT, Session

# Longer than any redelivery or re-publish window (JetStream dedupe window, max_deliver
# with backoff), after which a duplicate can no longer arrive.
INBOX_RETENTION = timedelta(days=30)


def _key(consumer: str, event_id: str) -> str:
    return f"{consumer}:{event_id}"


async def ensure_inbox_indexes(db: DatabaseT) -> None:
    await db.inbox.create_index([("consumer", ASCENDING), ("event_id", ASCENDING)], unique=True)
    await db.inbox.create_index(
        "processed_at", expireAfterSeconds=int(INBOX_RETENTION.total_seconds())
    )


async def already_processed(
    db: DatabaseT, session: Session | None, consumer: str, event_id: str
) -> bool:
    found = await db.inbox.find_one({"_id": _key(consumer, event_id)}, {"_id": 1}, session=session)
    return found is not None


async def mark_processed(
    db: DatabaseT, session: Session | None, consumer: str, event_id: str
) -> None:
    # A racing replica that applied the same event makes this insert (or the commit)
    # fail; the transaction is retried or the message redelivered, and then skipped.
    await db.inbox.insert_one(
        {
            "_id": _key(consumer, event_id),
            "consumer": consumer,
            "event_id": event_id,
            "processed_at": datetime.now(UTC),
        },
        session=session,
    )
