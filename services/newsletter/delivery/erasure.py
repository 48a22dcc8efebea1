"""A person erased: their address and name out of every mail record and bulk batch."""

from __future__ import annotations

from datetime import UTC, datetime

from services.newsletter.delivery import batches, store
from services.runtime.mongo import DatabaseT, Session

__all__ = ["erase_recipient"]


async def erase_recipient(
    db: DatabaseT,
    session: Session,
    *,
    ambassador_id: str | None = None,
    subscriber_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Scrub the person from ``mails`` (queued mails cancelled, see
    ``store.erase_from_mails``) and from the batches an issue is still going out in; in the
    caller's transaction. Returns how many mail records held them.
    """
    now = now or datetime.now(UTC)
    touched = await store.erase_from_mails(
        db, session, ambassador_id=ambassador_id, subscriber_id=subscriber_id, now=now
    )
    if subscriber_id is not None:
        await batches.erase_from_batches(db, session, field="subscriber_id", person=subscriber_id)
    if ambassador_id is not None:
        await batches.erase_from_batches(db, session, field="ambassador_id", person=ambassador_id)
    return touched
