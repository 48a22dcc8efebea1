"""Erasure as every service does it, written once.

When an ambassador is erased, each service removes what it holds about them. The parts
that are the same everywhere are here:

- the person's **dead letters and failures** lose their payload and error (in the erasure's
  own unit of work);
- the person's **events on the service's own stream** are deleted (they carry names and
  addresses): recorded in ``erasures`` in the same unit of work, and done by a background
  sweep once every one of them is published (an event still in the outbox is waited for);
  failed outbox entries about them are deleted;
- in a consuming service, the **read model** keeps a tombstone (see known_ambassadors), so
  nothing about them is applied afterwards.

What is particular to a service (its own records: subscribers and mail records, invitations
and attendance) its reaction to ``ambassadors.v1.erased`` removes, in the same unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence

from nats.js import JetStreamContext

from services.runtime import dead_letters
from services.runtime.logging import get_logger
from services.runtime.outbox import FAILED, purge_published_events
from services.runtime.unit_of_work import Reading, Scope

log = get_logger(__name__)

COLLECTION = "erasures"
SWEEP_BATCH = 50


async def forget(scope: Scope, person: str, *, keep_subjects: Sequence[str] = ()) -> None:
    """Erase ``person`` from what every service keeps, in the caller's unit of work.

    ``keep_subjects``: events about them that stay on the stream (the producer keeps its
    ``erased`` event: consumers that have not seen the person yet learn there is nothing
    to keep)."""
    await dead_letters.scrub_person(scope.db, person, scope.session, scope.now)
    await scope.db.outbox.delete_many(
        {"key": person, "state": FAILED, "subject": {"$nin": list(keep_subjects)}},
        session=scope.session,
    )
    await scope.db[COLLECTION].update_one(
        {"_id": person},
        {"$setOnInsert": {"erased_at": scope.now, "keep_subjects": list(keep_subjects)}},
        upsert=True,
        session=scope.session,
    )


async def sweep(scope: Reading, js: JetStreamContext) -> bool:
    """Delete erased people's events from the service's stream; True if there is more.

    Each person is tried on their own: one that fails is logged and tried on the next round;
    one whose events are not all published yet waits for the next round.
    """
    db = scope.db
    pending = await db[COLLECTION].find({}).limit(SWEEP_BATCH).to_list()
    done = 0
    for erasure in pending:
        person = str(erasure["_id"])
        try:
            left = await purge_published_events(
                db, js, person, keep_subjects=erasure.get("keep_subjects") or ()
            )
        except Exception:
            log.exception("purging an erased person's events failed", person=person)
            continue
        if left == 0:
            await db[COLLECTION].delete_one({"_id": person})
            done += 1
    return len(pending) == SWEEP_BATCH and done > 0
