"""The ``mail_batches`` collection: bulk mail (an issue's fan-out) queued, claimed and
recorded a batch at a time.

An issue to ten thousand subscribers is ten thousand mails, and SecantusDB pays for every
document write. Queued one record each, every mail cost an insert, a claim and a mark
before it was sent. Queued as batches, one document holds a batch of recipients that
share everything but the recipient; a worker claims the batch (one write), sends its
mails, and writes each finished mail once, in its final state, as an ordinary record of
``mails`` (a mail that needs a retry is written ``queued`` and from then on goes the
per-mail way). What is promised stays the same:

- never lost: a batch stays ``sending`` under its claim until every one of its mails has
  a record in ``mails``; a worker that dies leaves it to its lease, and whoever claims it
  next skips the mails that have a record;
- never doubled by us: a mail's record ``_id`` follows from its dedupe key, so it is
  written once whoever sends it; a mail in flight when its worker died is sent again with
  the same Message-ID, as a per-mail record would be;
- erasure reaches it: a person's address is scrubbed from the batches still to be sent as
  from the mail records, and a record written while the erasure ran is scrubbed by its
  writer (see :func:`record`). A finished batch keeps no address: its mails are dropped
  from it once each has its record.

Each batch is two documents of the same ``_id``: its mails (``mail_batches``, written once,
rewritten only by an erasure, emptied when done) and its claim (``mail_batch_claims``:
state, owner, lease, counts), because SecantusDB rewrites every index entry of a document
it updates, and the claim is updated several times while the batch goes out.

A batch's ``_id`` follows from the issue and the fan-out cursor it starts after, so a
fan-out resumed after a crash (or run by two replicas) finds the batch it wrote already
and carries on from where that batch ends, never overlapping it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from services.newsletter.delivery.states import MailRecord, MailState, erased
from services.newsletter.delivery.store import COLLECTION as MAILS
from services.runtime import metrics
from services.runtime.mongo import DUPLICATE_KEY, DatabaseT, find_in, insert_new
from services.runtime.unit_of_work import Scope

__all__ = [
    "CLAIMS",
    "COLLECTION",
    "BatchState",
    "ClaimedBatch",
    "IssueProgress",
    "PlannedBatch",
    "batch_id_for",
    "claim_batch",
    "ensure_batch_indexes",
    "erase_from_batches",
    "issue_progress",
    "queue_batches",
    "record",
    "release_batch",
]

COLLECTION = "mail_batches"
CLAIMS = "mail_batch_claims"
# Due batches looked at per claim: the first that is still claimable is taken.
CLAIM_CANDIDATES = 20
# What a batch says of each mail; everything else is shared by the batch.
_PER_MAIL = ("dedupe_key", "message_id", "to_address", "to_name", "subscriber_id", "ambassador_id")


class BatchState:
    QUEUED = "queued"
    SENDING = "sending"
    DONE = "done"


LIVE = [BatchState.QUEUED, BatchState.SENDING]


@dataclass(frozen=True)
class PlannedBatch:
    """A batch the fan-out is about to queue: ``records`` (queued mails that differ only
    in their recipient) are the mails of the subscribers after ``id``'s cursor up to and
    including ``last``; some subscribers may have no mail, a batch may have none at all."""

    id: str
    issue_id: str
    records: Sequence[MailRecord]
    last: str


@dataclass(frozen=True)
class ClaimedBatch:
    """A batch this worker now owns, as the mail records still to be sent."""

    id: str
    records: list[MailRecord]


@dataclass(frozen=True)
class IssueProgress:
    recipients: int  # every mail the issue's fan-out queued
    pending: int  # of those, how many have no record in ``mails`` yet


async def ensure_batch_indexes(db: DatabaseT) -> None:
    await db[CLAIMS].create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    await db[CLAIMS].create_index("issue_id")


def batch_id_for(issue_id: str, after: str | None) -> str:
    return f"issue:{issue_id}:after:{after or ''}"


def _shared(record: MailRecord) -> dict[str, Any]:
    """What every mail of a batch has in common, stored once on the batch."""
    return {"kind": record.kind, "context": record.context, "priority": record.priority}


def _documents(batch: PlannedBatch, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batch's mails and its claim, as stored."""
    records = batch.records
    shared: dict[str, Any] = {"kind": None, "context": {}, "priority": 1}
    if records:
        shared = _shared(records[0])
    for record in records:
        if (
            _shared(record) != shared
            or record.issue_id != batch.issue_id
            or record.attachments
            or record.state != MailState.QUEUED
        ):
            raise ValueError("a batch holds queued mails that differ only in their recipient")
    mails = {
        "_id": batch.id,
        "issue_id": batch.issue_id,
        **shared,
        "created_at": records[0].created_at if records else now,
        "size": len(records),
        "last": batch.last,
        "mails": [{"_id": r.id, **{name: getattr(r, name) for name in _PER_MAIL}} for r in records],
    }
    return mails, _claim_document(mails)


def _claim_document(mails: dict[str, Any]) -> dict[str, Any]:
    return {
        "_id": mails["_id"],
        "issue_id": mails["issue_id"],
        # A batch with no mail (its subscribers had no address) is done from the start.
        "state": BatchState.QUEUED if mails["size"] else BatchState.DONE,
        "next_attempt_at": mails["created_at"],
        "claimed_by": None,
        "claimed_until": None,
        "claims": 0,
        "size": mails["size"],
        "recorded": 0,
        # Erasures that scrubbed this batch: see record().
        "erasures": 0,
    }


async def queue_batches(
    db: DatabaseT, chain: Sequence[PlannedBatch], now: datetime
) -> tuple[int, str | None]:
    """Queue a run of batches, each starting where the one before ends.

    Returns how many mails were queued now and where the fan-out goes on. When a batch of
    the run exists already (a fan-out resumed after a crash, or a second replica), the run
    stops there: that batch stands as it was queued, its claim is written if the crash came
    between the two documents, and the fan-out goes on after it.
    """
    if not chain:
        return 0, None
    mails, claims = zip(*(_documents(batch, now) for batch in chain), strict=True)
    stored = len(chain)
    try:
        await db[COLLECTION].insert_many(list(mails), ordered=True)
    except BulkWriteError as exc:
        errors = dict(exc.details).get("writeErrors", [])
        if not errors or errors[0].get("code") != DUPLICATE_KEY:
            raise
        stored = int(errors[0]["index"])
    await insert_new(db[CLAIMS], list(claims[:stored]))
    queued = sum(len(batch.records) for batch in chain[:stored])
    metrics.count_mails(db, "queued", queued)
    if stored == len(chain):
        return queued, chain[-1].last
    existing = chain[stored].id
    found = await db[COLLECTION].find_one({"_id": existing}, {"mails": 0})
    if found is None:  # pragma: no cover (batches are never deleted)
        raise RuntimeError(f"batch {existing} is a duplicate key but cannot be read")
    await insert_new(db[CLAIMS], [_claim_document(found)])
    return queued, str(found["last"])


def _records(claim: dict[str, Any], mails: dict[str, Any], skip: set[str]) -> list[MailRecord]:
    shared = {
        "kind": mails["kind"],
        "issue_id": mails.get("issue_id"),
        "context": mails.get("context") or {},
        "priority": mails.get("priority", 1),
        "state": MailState.SENDING,
        "attempts": claim["claims"],
        "next_attempt_at": claim["next_attempt_at"],
        "claimed_by": claim["claimed_by"],
        "claimed_until": claim["claimed_until"],
        "created_at": mails["created_at"],
    }
    return [
        MailRecord.model_validate({"id": mail["_id"], **shared, **mail})
        for mail in mails["mails"]
        if mail["_id"] not in skip
    ]


async def _recorded_ids(db: DatabaseT, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    return {str(doc["_id"]) for doc in await find_in(db[MAILS], ids, projection={"_id": 1})}


async def _candidates(db: DatabaseT, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Due queued batches, oldest first, then batches whose claim ran out (their worker
    died or hung); each with the filter that says it is still claimable."""
    claims = db[CLAIMS]
    found: list[tuple[str, dict[str, Any]]] = []
    queued = claims.find(
        {"state": BatchState.QUEUED, "next_attempt_at": {"$lte": now}}, {"_id": 1}
    ).sort([("next_attempt_at", ASCENDING), ("_id", ASCENDING)])
    async for doc in queued.limit(CLAIM_CANDIDATES):
        found.append((str(doc["_id"]), {"state": BatchState.QUEUED}))
    # Few batches are sending at a time (the ones in flight), so the lease is compared here.
    async for doc in claims.find({"state": BatchState.SENDING}, {"_id": 1, "claimed_until": 1}):
        until = doc.get("claimed_until")
        if until is None or until < now:
            found.append((str(doc["_id"]), {"state": BatchState.SENDING, "claimed_until": until}))
    return found


async def claim_batch(
    db: DatabaseT,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    skip: frozenset[str] = frozenset(),
) -> ClaimedBatch | None:
    """Claim the next batch for ``worker_id``: its mails that have no record yet, to send.

    Of two workers racing for a batch exactly one update matches (the filter repeats the
    claimable test). ``skip``: mail ids the caller is busy with already (its own batch
    whose lease ran out while it was still sending it), left out of the records returned.
    """
    for batch_id, claimable in await _candidates(db, now):
        claim = await db[CLAIMS].find_one_and_update(
            {"_id": batch_id, **claimable},
            {
                "$set": {
                    "state": BatchState.SENDING,
                    "claimed_by": worker_id,
                    "claimed_until": now + lease,
                },
                "$inc": {"claims": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if claim is None:
            continue  # another worker was quicker
        mails = await db[COLLECTION].find_one({"_id": batch_id})
        if mails is None:  # pragma: no cover (the mails are written before the claim)
            continue
        ids = [str(mail["_id"]) for mail in mails["mails"]]
        recorded = await _recorded_ids(db, ids)
        if len(recorded) >= len(ids):
            await _finish(db, batch_id)  # the last owner died after its last record
            continue
        if len(recorded) != claim["recorded"]:
            # The last owner died between writing records and counting them.
            await db[CLAIMS].update_one(
                {"_id": batch_id, "claimed_by": worker_id}, {"$set": {"recorded": len(recorded)}}
            )
        return ClaimedBatch(batch_id, _records(claim, mails, recorded | set(skip)))
    return None


async def record(
    db: DatabaseT, batch_id: str, records: Sequence[MailRecord], now: datetime
) -> set[str]:
    """Write the finished mails of a batch to ``mails``; returns the ids written by us.

    ``records`` are the mails as they now are (sent, failed, cancelled, or queued again
    for a retry). A mail with a record already was finished by another worker (it took
    the batch over after our lease ran out): it is left alone, and not returned.

    Then one write to the batch's claim: it counts the records, and it is what keeps an
    erasure running meanwhile from missing a record written here (an erasure writes the
    claims of the batches it scrubs). Either the erasure committed first, the claim read
    back here says so, and the records of the people it scrubbed are scrubbed now; or its
    transaction collides with this write, runs again, and finds the records itself.
    """
    if not records:
        return set()
    docs = [record.to_document() for record in records]
    existed = await insert_new(db[MAILS], docs)
    written = {str(doc["_id"]) for i, doc in enumerate(docs) if i not in existed}
    claim = await db[CLAIMS].find_one_and_update(
        {"_id": batch_id},
        # Records that existed count too: the count is what says the batch may be done.
        {"$inc": {"recorded": len(docs)}},
        {"size": 1, "recorded": 1, "erasures": 1},
        return_document=ReturnDocument.AFTER,
    )
    if claim is None:  # pragma: no cover (batches are never deleted)
        return written
    mails: list[dict[str, Any]] | None = None
    if claim.get("erasures"):
        mails = await _mails_of(db, batch_id)
        gone = [
            str(mail["_id"])
            for mail in mails
            if mail.get("to_address") is None and str(mail["_id"]) in written
        ]
        if gone:
            await db[MAILS].update_many({"_id": {"$in": gone}}, {"$set": erased(now)})
    if int(claim["recorded"]) >= int(claim["size"]):
        # The count is a hint (a worker that died between its records and this write left
        # it short; two owners of one batch both count a mail): the records decide.
        ids = [str(mail["_id"]) for mail in mails or await _mails_of(db, batch_id)]
        have = len(await _recorded_ids(db, ids))
        if have >= len(ids):
            await _finish(db, batch_id)
        else:
            await db[CLAIMS].update_one({"_id": batch_id}, {"$set": {"recorded": have}})
    return written


async def _mails_of(db: DatabaseT, batch_id: str) -> list[dict[str, Any]]:
    found = await db[COLLECTION].find_one(
        {"_id": batch_id}, {"mails._id": 1, "mails.to_address": 1}
    )
    return list(found["mails"]) if found is not None else []


async def _finish(db: DatabaseT, batch_id: str) -> None:
    """Every mail of the batch has its record: the batch keeps no address, and is done.

    In this order: a crash between the two leaves a batch that is claimed once more and
    found to have nothing left to send.
    """
    await db[COLLECTION].update_one({"_id": batch_id}, {"$set": {"mails": []}})
    await db[CLAIMS].update_one(
        {"_id": batch_id},
        {"$set": {"state": BatchState.DONE, "claimed_by": None, "claimed_until": None}},
    )


async def release_batch(db: DatabaseT, batch_id: str, worker_id: str) -> None:
    """A stopping worker hands back a batch it did not finish; its claim is given back too
    (whoever takes the batch sends only the mails without a record)."""
    await db[CLAIMS].update_one(
        {"_id": batch_id, "claimed_by": worker_id, "state": BatchState.SENDING},
        {
            "$set": {"state": BatchState.QUEUED, "claimed_by": None, "claimed_until": None},
            "$inc": {"claims": -1},
        },
    )


async def erase_from_batches(scope: Scope, *, field: str, person: str) -> int:
    """Scrub a person (``field`` is ``subscriber_id`` or ``ambassador_id``) from every
    batch still to be sent, in the caller's transaction; returns how many held them.

    Their entry stays, without address or name: the batch then writes their mail
    ``cancelled`` (``recipient erased``), and its count still adds up. Finished batches
    hold no addresses (see _finish), so only the live ones are read: an issue's worth at
    most, and only while it goes out.
    """
    db, session = scope.db, scope.session
    live = db[CLAIMS].find({"state": {"$in": LIVE}}, {"_id": 1}, session=session)
    ids = [doc["_id"] async for doc in live]
    if not ids:
        return 0
    touched = 0
    batches = db[COLLECTION]
    async for doc in batches.find({"_id": {"$in": ids}}, {"mails": 1}, session=session):
        if not any(mail.get(field) == person for mail in doc["mails"]):
            continue
        mails = [
            {**mail, "to_address": None, "to_name": None} if mail.get(field) == person else mail
            for mail in doc["mails"]
        ]
        await batches.update_one({"_id": doc["_id"]}, {"$set": {"mails": mails}}, session=session)
        # The claim is what a worker recording this batch's mails writes: see record().
        await db[CLAIMS].update_one({"_id": doc["_id"]}, {"$inc": {"erasures": 1}}, session=session)
        touched += 1
    return touched


async def issue_progress(db: DatabaseT, issue_id: str) -> IssueProgress:
    recipients = pending = 0
    cursor = db[CLAIMS].find({"issue_id": issue_id}, {"size": 1, "recorded": 1, "state": 1})
    async for doc in cursor:
        size = int(doc["size"])
        recipients += size
        if doc["state"] != BatchState.DONE:
            pending += max(0, size - int(doc.get("recorded", 0)))
    return IssueProgress(recipients=recipients, pending=pending)
