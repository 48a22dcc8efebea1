"""The ``mails`` collection: queue, claim, mark, erase.

SecantusDB answers ``$or``/``$ne``/``$nin`` with collection scans and ignores partial
indexes, so every query here is an equality, ``$in`` or range on an indexed field, and a
claim follows :mod:`services.runtime.outbox`: find candidates, then claim them by ``_id``
with the claimable test repeated in the update filter, then read back what we own. Writes
outside a transaction each cost an fsync'd commit there, so results are marked with one
statement per batch and outcome (no transaction: see :func:`mark`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateMany, UpdateOne

from services.newsletter.delivery.states import (
    MailRecord,
    MailState,
    Update,
    claim,
    erased,
)
from services.runtime import metrics
from services.runtime.mongo import DatabaseT, find_in, in_chunks, insert_new, update_in
from services.runtime.unit_of_work import Scope

__all__ = [
    "COLLECTION",
    "claim_due",
    "claim_ids",
    "count_by_state",
    "due_ids",
    "ensure_mail_indexes",
    "erase_from_mails",
    "expired_ids",
    "get_mail",
    "mark",
    "queue_mail",
    "queue_many",
]

COLLECTION = "mails"
# Set by each mark() on the mails it applied to: see mark().
MARK_TOKEN = "mark_token"


async def ensure_mail_indexes(db: DatabaseT) -> None:
    """Few indexes on purpose: SecantusDB rewrites every index entry of a document on each
    update, and a mail is updated twice on its way out (claimed, marked). The ``_id`` is
    derived from the dedupe key (so it is unique without an index of its own), expired
    claims are found among the few ``sending`` mails through the state index, and one
    multikey ``refs`` index serves erasure and issue progress.
    """
    mails = db[COLLECTION]
    await mails.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    await mails.create_index("refs")


async def queue_mail(scope: Scope, record: MailRecord) -> bool:
    """Queue one mail in the caller's transaction; False if its dedupe_key is queued already.

    Checked first, inside the session, rather than left to the unique ``_id``: a duplicate
    key error would abort the caller's whole transaction. Two transactions racing on the
    same key still collide at commit, and in_transaction runs the loser again.
    """
    doc = record.to_document()
    mails = scope.db[COLLECTION]
    found = await mails.find_one({"_id": doc["_id"]}, {"_id": 1}, session=scope.session)
    if found is not None:
        return False
    await mails.insert_one(doc, session=scope.session)
    metrics.count_mails(scope, "queued")
    return True


async def queue_many(db: DatabaseT, records: Iterable[MailRecord]) -> int:
    """Queue many mails outside any transaction; returns how many were new.

    Records whose dedupe_key exists already are skipped, so queueing the same mails again
    after a crash is a no-op. Any other write error is raised.
    """
    docs = [record.to_document() for record in records]
    queued = len(docs) - len(await insert_new(db[COLLECTION], docs))
    metrics.count_mails(db, "queued", queued)
    return queued


async def due_ids(db: DatabaseT, now: datetime, limit: int) -> list[str]:
    """Ids of up to ``limit`` queued mails due by ``now``: transactional before bulk, oldest first.

    SecantusDB examines every due mail for this query whatever the limit, so callers fetch
    many ids at once and claim them a batch at a time (see the worker), rather than run it
    per batch while an issue's fan-out has thousands queued.
    """
    cursor = (
        db[COLLECTION]
        .find(
            {"state": MailState.QUEUED.value, "next_attempt_at": {"$lte": now}},
            {"_id": 1},
        )
        .sort([("priority", ASCENDING), ("next_attempt_at", ASCENDING)])
        .limit(limit)
    )
    return [str(doc["_id"]) async for doc in cursor]


async def expired_ids(db: DatabaseT, now: datetime, limit: int) -> list[str]:
    """Ids of mails left ``sending`` by a worker whose lease ran out (it died or hung).

    Few mails are ``sending`` at any time (the batches in flight), so they are read
    through the state index and the lease compared here, sparing an index on claimed_until.
    """
    cursor = db[COLLECTION].find({"state": MailState.SENDING.value}, {"_id": 1, "claimed_until": 1})
    expired: list[str] = []
    async for doc in cursor:
        until = doc.get("claimed_until")
        if until is None or until < now:
            expired.append(str(doc["_id"]))
            if len(expired) >= limit:
                break
    return expired


async def claim_ids(
    db: DatabaseT,
    worker_id: str,
    queued: Sequence[str],
    expired: Sequence[str],
    now: datetime,
    lease: timedelta,
) -> list[MailRecord]:
    """Claim these candidates for ``worker_id``; returns the ones it now owns.

    Each filter repeats the claimable test: of two workers racing for a mail, exactly one
    update matches it, and a stale candidate (sent, cancelled, erased meanwhile) is skipped.
    """
    if not queued and not expired:
        return []
    mails = db[COLLECTION]
    update = claim(worker_id, now, lease)
    await update_in(
        mails, queued, {"state": MailState.QUEUED.value, "next_attempt_at": {"$lte": now}}, update
    )
    await update_in(
        mails, expired, {"state": MailState.SENDING.value, "claimed_until": {"$lt": now}}, update
    )
    owned = await find_in(
        mails, [*queued, *expired], {"state": MailState.SENDING.value, "claimed_by": worker_id}
    )
    found = [MailRecord.from_document(doc) for doc in owned]
    found.sort(key=lambda record: (record.priority, record.next_attempt_at))
    return found


async def claim_due(
    db: DatabaseT, worker_id: str, now: datetime, limit: int, lease: timedelta
) -> list[MailRecord]:
    """Claim up to ``limit`` mails to send: due queued ones first, then abandoned ones.

    A mail is abandoned when it is ``sending`` and its lease ran out (its worker died or
    hung); it is sent again with the same Message-ID, which receivers deduplicate.
    """
    queued = await due_ids(db, now, limit)
    expired = await expired_ids(db, now, limit - len(queued)) if len(queued) < limit else []
    return await claim_ids(db, worker_id, queued, expired, now, lease)


async def mark(
    db: DatabaseT, worker_id: str, results: Sequence[tuple[MailRecord, Update]]
) -> set[str]:
    """Apply each transition to a mail this worker still owns; returns the ids applied.

    Mails with the same outcome share one update_many, so a delivered batch costs one
    statement. Not a transaction: a worker killed mid-mark would leave one open, holding
    the mails until the server reaps it a minute later and stalling the next worker's
    claim; each statement repeats the owner test instead. A mail another worker took
    over (our lease ran out) is left alone; its new owner marks it.

    Usually every mail is still ours, and the updates' matched counts say so: no read is
    needed. Each update also stores this call's ``mark_token``, so when a count comes up
    short, one read finds which of the mails this call did mark (a mail marked by its new
    owner looks otherwise the same: no longer sending, claimed by nobody).
    """
    if not results:
        return set()
    token = uuid.uuid4().hex
    # SecantusDB's cost is per statement as much as per document.
    groups: dict[str, tuple[Update, list[str]]] = {}
    for record, update in results:
        key = repr(sorted((op, sorted(fields.items())) for op, fields in update.items()))
        groups.setdefault(key, (update, []))[1].append(record.id)
    ops: list[UpdateOne | UpdateMany] = []
    for update, group in groups.values():
        tagged = update | {"$set": update.get("$set", {}) | {MARK_TOKEN: token}}
        # _id first: SecantusDB looks up the first clause it has an index for, and the
        # state index would have it read every mail being sent.
        owner: dict[str, Any] = {"claimed_by": worker_id, "state": MailState.SENDING.value}
        if len(group) == 1:
            ops.append(UpdateOne({"_id": group[0]} | owner, tagged))
        else:
            ops += [
                UpdateMany({"_id": {"$in": chunk}} | owner, tagged) for chunk in in_chunks(group)
            ]
    ids = [record.id for record, _ in results]
    outcome = await db[COLLECTION].bulk_write(ops, ordered=False)
    if outcome.matched_count >= len(set(ids)):
        return set(ids)
    marked = await find_in(db[COLLECTION], ids, {MARK_TOKEN: token}, {"_id": 1})
    return {str(doc["_id"]) for doc in marked}


async def erase_from_mails(
    scope: Scope,
    *,
    ambassador_id: str | None = None,
    subscriber_id: str | None = None,
) -> int:
    """Remove a person's address, name, mail context and attachments from every mail record
    (see ``states.erased``); cancel queued ones. (``erasure.erase_recipient`` covers the
    bulk batches too.)

    Runs in the caller's transaction (the erasure event's). Mails being sent right now
    keep going; their worker marks them without touching the erased fields, and one that
    comes back for a retry has no address and is cancelled.
    Returns how many mail records held the person.
    """
    db, session, now = scope.db, scope.session, scope.now
    filters = []
    if ambassador_id is not None:
        filters.append({"refs": f"ambassador:{ambassador_id}"})
    if subscriber_id is not None:
        filters.append({"refs": f"subscriber:{subscriber_id}"})
    touched: set[Any] = set()
    mails = db[COLLECTION]
    # One query per id rather than an $or, which SecantusDB would answer with a scan.
    for person in filters:
        cursor = mails.find(person, {"_id": 1}, session=session)
        touched.update([doc["_id"] async for doc in cursor])
        await mails.update_many(
            {**person, "state": MailState.QUEUED.value},
            {
                "$set": {
                    "state": MailState.CANCELLED.value,
                    "finished_at": now,
                    "last_error": "recipient erased",
                }
            },
            session=session,
        )
        await mails.update_many(
            person,
            {"$set": erased(now)},
            session=session,
        )
    if touched:
        # SMTP replies often quote the address; errors of finished mails go too.
        await mails.update_many(
            {
                "_id": {"$in": list(touched)},
                "state": {"$in": [MailState.SENT.value, MailState.FAILED.value]},
            },
            {"$set": {"last_error": None}},
            session=session,
        )
    return len(touched)


async def count_by_state(db: DatabaseT, issue_id: str | None = None) -> dict[str, int]:
    """How many mails are in each state (of one issue, if given): for the CLI and health."""
    counts: dict[str, int] = {}
    for state in MailState:
        query: dict[str, Any] = {"state": state.value}
        if issue_id is not None:
            query = {"refs": f"issue:{issue_id}", "state": state.value}
        counts[state.value] = await db[COLLECTION].count_documents(query)
    return counts


async def get_mail(db: DatabaseT, mail_id: str) -> MailRecord | None:
    doc = await db[COLLECTION].find_one({"_id": mail_id})
    return None if doc is None else MailRecord.from_document(doc)
