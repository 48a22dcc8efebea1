"""A person erased: their address and name out of every mail record and bulk batch."""

from __future__ import annotations

from services.newsletter.delivery import batches, store
from services.runtime.unit_of_work import Scope

__all__ = ["erase_recipient"]


async def erase_recipient(
    scope: Scope,
    *,
    ambassador_id: str | None = None,
    subscriber_id: str | None = None,
) -> int:
    """Scrub the person from ``mails`` (queued mails cancelled, see
    ``store.erase_from_mails``) and from the batches an issue is still going out in; in the
    caller's unit of work. Returns how many mail records held them.
    """
    touched = await store.erase_from_mails(
        scope, ambassador_id=ambassador_id, subscriber_id=subscriber_id
    )
    if subscriber_id is not None:
        await batches.erase_from_batches(scope, field="subscriber_id", person=subscriber_id)
    if ambassador_id is not None:
        await batches.erase_from_batches(scope, field="ambassador_id", person=ambassador_id)
    return touched
