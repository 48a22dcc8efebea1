"""The ambassadors service's own database: collections, indexes, loading and saving."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from contracts.ambassadors import Erased, Kind, ListAmbassadors, Status
from services.ambassadors.domain import Ambassador, GoalRecord
from services.runtime import erasure
from services.runtime.background import retry
from services.runtime.mongo import DatabaseT, drop_indexes
from services.runtime.unit_of_work import Scope


async def ensure_indexes(db: DatabaseT) -> None:
    # Older releases kept a partial unique index and a lookup index per field (SecantusDB
    # never uses a partial index for a query): one unique sparse index does both.
    if await drop_indexes(db.ambassadors, _REPLACED_INDEXES):
        # Stored documents leave out empty lookup fields (see to_document): SecantusDB keeps
        # an index entry for a stored null, and each entry costs every sign-up a write. The
        # releases with the replaced indexes stored the nulls: drop them, once (each is a
        # scan of the collection).
        for field in (*_SPARSE_FIELDS, "certificate.pending_render"):
            await db.ambassadors.update_many({field: {"$type": "null"}}, {"$unset": {field: ""}})
    # Unique among non-erased ambassadors: erasure clears email_key.
    await db.ambassadors.create_index("email_key", unique=True, sparse=True)
    await db.ambassadors.create_index("certificate.verification_code", unique=True, sparse=True)
    await db.ambassadors.create_index("token_hash", sparse=True)
    await db.ambassadors.create_index("confirmed_token_hash", sparse=True)
    await db.ambassadors.create_index("past_certificates.verification_code", sparse=True)
    await db.ambassadors.create_index([("status", ASCENDING), ("signed_up_at", ASCENDING)])
    await db.ambassadors.create_index("certificate.pending_render", sparse=True)
    await db.ambassadors.create_index("certificate.purge_object", sparse=True)
    await _fold_in_consents(db)
    await _hand_erasures_to_the_runtime(db)


async def _hand_erasures_to_the_runtime(db: DatabaseT) -> None:
    """Older releases marked erased ambassadors whose events were still to be purged from
    the stream (``purge_events``); the runtime's erasure sweep does that now. Once."""
    if "purge_events_1" not in await db.ambassadors.index_information():
        return
    async for doc in db.ambassadors.find({"purge_events": True}, {"erased_at": 1}):
        await db[erasure.COLLECTION].update_one(
            {"_id": doc["_id"]},
            {
                "$setOnInsert": {
                    "erased_at": doc.get("erased_at") or datetime.now(UTC),
                    "keep_subjects": [Erased.subject],
                }
            },
            upsert=True,
        )
    await db.ambassadors.update_many({"purge_events": True}, {"$unset": {"purge_events": ""}})
    await drop_indexes(db.ambassadors, ["purge_events_1"])


async def _fold_in_consents(db: DatabaseT) -> None:
    """Older releases kept consents in a collection of their own, one more insert in every
    sign-up's transaction: they move into their ambassadors' documents, once."""
    async for doc in db.consents.find({}).sort("given_at", ASCENDING):
        consent = {"version": doc["version"], "given_at": doc["given_at"]}
        await db.ambassadors.update_one(
            {"_id": doc["ambassador_id"]}, {"$addToSet": {"consents": consent}}
        )
        await db.consents.delete_one({"_id": doc["_id"]})


_SPARSE_FIELDS = ("email_key", "token_hash", "confirmed_token_hash")
_REPLACED_INDEXES = (
    "email_key_unique",
    "email_key_lookup",
    "verification_code_unique",
    "verification_code_lookup",
)


def to_document(ambassador: Ambassador) -> dict[str, Any]:
    doc = ambassador.model_dump(mode="python", exclude={"id"})
    doc["_id"] = ambassador.id
    for field in _SPARSE_FIELDS:
        if doc[field] is None:
            # Absent, not null: out of its sparse index (and the model's default on reading).
            del doc[field]
    if ambassador.profile is not None:
        doc["profile"]["themes"] = list(ambassador.profile.themes)
        doc["profile"]["core_areas"] = [a.value for a in ambassador.profile.core_areas]
        doc["profile"]["skills"] = list(ambassador.profile.skills)
        # BSON has no plain date: kept as its ISO text, which the model reads back.
        paused = ambassador.profile.paused_until
        doc["profile"]["paused_until"] = paused.isoformat() if paused else None
    doc["past_certificates"] = [c.model_dump(mode="python") for c in ambassador.past_certificates]
    doc["earlier_memberships"] = [m.model_dump() for m in ambassador.earlier_memberships]
    doc["consents"] = [c.model_dump() for c in ambassador.consents]
    doc["confirmations_asked"] = list(ambassador.confirmations_asked)
    doc["themes"] = list(ambassador.themes)
    doc["core_areas"] = [a.value for a in ambassador.core_areas]
    if ambassador.certificate is not None:
        # A certificate not yet in the Object Store is marked for the renderer.
        if ambassador.certificate.rendered_at is None and ambassador.status == Status.ACTIVE:
            doc["certificate"]["pending_render"] = True
        else:
            doc["certificate"].pop("pending_render", None)
        if ambassador.status == Status.ERASED:
            # The PDF carries the name: the renderer's sweep deletes it from the bucket.
            doc["certificate"]["purge_object"] = True
    return doc


def from_document(doc: dict[str, Any]) -> Ambassador:
    absent = {field: None for field in _SPARSE_FIELDS if field not in doc}
    return Ambassador.model_validate({**doc, **absent, "id": doc["_id"]})


async def load(scope: Scope, ambassador_id: str) -> Ambassador | None:
    doc = await scope.db.ambassadors.find_one({"_id": ambassador_id}, session=scope.session)
    return from_document(doc) if doc else None


async def load_by_email_key(scope: Scope, key: str) -> Ambassador | None:
    doc = await scope.db.ambassadors.find_one({"email_key": key}, session=scope.session)
    return from_document(doc) if doc else None


async def load_by_token_hash(scope: Scope, digest: str) -> Ambassador | None:
    """A pending sign-up of an older release, by the hash of the token it was mailed."""
    doc = await scope.db.ambassadors.find_one({"token_hash": digest}, session=scope.session)
    return from_document(doc) if doc else None


async def load_by_confirmed_token_hash(scope: Scope, digest: str) -> Ambassador | None:
    doc = await scope.db.ambassadors.find_one(
        {"confirmed_token_hash": digest}, session=scope.session
    )
    return from_document(doc) if doc else None


# Current and past certificates' codes, asked one at a time: each query uses its index,
# where an $or of the two may scan the collection.
_CODE_FIELDS = ("certificate.verification_code", "past_certificates.verification_code")


async def load_by_code(scope: Scope, code: str) -> Ambassador | None:
    """The ambassador whose current or past certificate has this verification code."""
    for field in _CODE_FIELDS:
        doc = await scope.db.ambassadors.find_one({field: code}, session=scope.session)
        if doc:
            return from_document(doc)
    return None


async def insert(scope: Scope, ambassador: Ambassador) -> None:
    """A new ambassador (cheaper than an upsert, which looks for the document first)."""
    await scope.db.ambassadors.insert_one(to_document(ambassador), session=scope.session)


async def save(scope: Scope, ambassador: Ambassador) -> None:
    await scope.db.ambassadors.replace_one(
        {"_id": ambassador.id}, to_document(ambassador), upsert=True, session=scope.session
    )


class CertificateSerials:
    """Certificate serials, reserved from the year's counter a block at a time.

    Taken outside the caller's transaction on purpose: inside it, the one counter every
    activation writes would make concurrent sign-ups conflict and retry (40 % of them with
    two writers). A block per process makes the counter one write per ``block`` sign-ups
    instead of one each; the price is gaps (a stop or a crash forgets the rest of the block,
    an aborted sign-up its number) and, with several replicas, numbers that are not in
    activation order. Nothing needs the numbers gapless or ordered: they only must be unique.
    """

    def __init__(self, block: int = 10) -> None:
        self.block = block
        self._free: dict[int, range] = {}
        self._lock = asyncio.Lock()

    async def take(self, scope: Scope, year: int) -> int:
        async with self._lock:
            free = self._free.get(year)
            if not free:
                last = await _reserve(scope.db, year, self.block)
                free = range(last - self.block + 1, last + 1)
            self._free[year] = free[1:]
            return free[0]


class _LostFirstSerialRace(Exception):
    """SecantusDB answers None to the loser of two first upserts of a year's counter
    (MongoDB raises a duplicate key): either way, incrementing again succeeds."""


async def _reserve(db: DatabaseT, year: int, count: int) -> int:
    """Advance the year's counter by ``count``; returns the last serial reserved."""

    async def advance() -> int:
        counter = await db.counters.find_one_and_update(
            {"_id": f"certificate-{year}"},
            {"$inc": {"value": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if counter is None:
            raise _LostFirstSerialRace(year)
        return int(counter["value"])

    return await retry(
        advance,
        what=f"reserving certificate serials for {year}",
        on=(DuplicateKeyError, _LostFirstSerialRace),
        attempts=5,
        wait_initial=0.0,
        jitter=0.0,
        quiet=True,
    )


def list_filter(query: ListAmbassadors) -> dict[str, Any]:
    criteria: dict[str, Any] = {}
    if query.status is not None:
        criteria["status"] = query.status.value
    if query.kind is not None:
        criteria["kind"] = query.kind.value
    if query.theme is not None:
        criteria["themes"] = query.theme
    if query.skill is not None:
        criteria["profile.skills"] = query.skill
    return criteria


async def find_page(
    scope: Scope, criteria: dict[str, Any], *, limit: int, offset: int
) -> tuple[int, list[Ambassador]]:
    total = await scope.db.ambassadors.count_documents(criteria)
    cursor = (
        scope.db.ambassadors.find(criteria)
        .sort([("signed_up_at", ASCENDING), ("_id", ASCENDING)])
        .skip(offset)
        .limit(limit)
    )
    return total, [from_document(doc) async for doc in cursor]


async def directory_entries(scope: Scope) -> list[Ambassador]:
    cursor = scope.db.ambassadors.find({"status": Status.ACTIVE.value, "profile.public": True})
    found = [from_document(doc) async for doc in cursor]
    return sorted(found, key=lambda a: a.profile.display_name.casefold() if a.profile else "")


async def goal_records(scope: Scope) -> list[GoalRecord]:
    cursor = scope.db.ambassadors.find(
        {},
        {
            "status": 1,
            "kind": 1,
            "themes": 1,
            "core_areas": 1,
            "activated_at": 1,
            "withdrawn_at": 1,
            "erased_at": 1,
            "earlier_memberships": 1,
        },
    )
    return [
        GoalRecord(
            status=Status(doc["status"]),
            kind=Kind(doc["kind"]),
            themes=doc.get("themes") or [],
            core_areas=doc.get("core_areas") or [],
            activated_at=doc.get("activated_at"),
            left_at=doc.get("withdrawn_at") or doc.get("erased_at"),
            earlier=[(m["activated_at"], m["left_at"]) for m in doc.get("earlier_memberships", ())],
        )
        async for doc in cursor
    ]


async def count(scope: Scope) -> int:
    return await scope.db.ambassadors.count_documents({})


async def claim_certificates_to_render(
    scope: Scope, lease: timedelta, limit: int
) -> list[Ambassador]:
    """Up to ``limit`` certificates waiting for their PDF that no other worker is rendering,
    claimed for ``lease``: replicas render each certificate once, and one that keeps failing
    waits its lease out instead of blocking the rest. Saving the rendered certificate drops
    the claim."""
    # Candidates by the indexed flag alone, in index (insertion) order: a compound test or
    # a sort on another field here would read every waiting certificate on each claim.
    db, now = scope.db, scope.now
    cursor = db.ambassadors.find(
        {"certificate.pending_render": True}, {"_id": 1, "certificate.render_claimed_until": 1}
    ).limit(limit * 2)
    free = [
        doc["_id"]
        async for doc in cursor
        if doc["certificate"].get("render_claimed_until", now) <= now
    ][:limit]
    if not free:
        return []
    claim = uuid.uuid4().hex
    # The filter repeats the test, so of two racing workers one gets each certificate.
    await db.ambassadors.update_many(
        {
            "_id": {"$in": free},
            "certificate.pending_render": True,
            "certificate.render_claimed_until": {"$not": {"$gt": now}},
        },
        {
            "$set": {
                "certificate.render_claimed_until": now + lease,
                "certificate.render_claim": claim,
            }
        },
    )
    claimed = db.ambassadors.find({"_id": {"$in": free}, "certificate.render_claim": claim})
    return [from_document(doc) async for doc in claimed]


async def release_render_claim(scope: Scope, ambassador_id: str) -> None:
    await scope.db.ambassadors.update_one(
        {"_id": ambassador_id},
        {"$unset": {"certificate.render_claimed_until": "", "certificate.render_claim": ""}},
    )


async def certificates_to_purge(scope: Scope, limit: int) -> list[dict[str, Any]]:
    cursor = scope.db.ambassadors.find(
        # Only erased ambassadors carry the flag; querying the indexed flag alone avoids a scan.
        {"certificate.purge_object": True},
        {"certificate.object_name": 1},
    ).limit(limit)
    return [doc async for doc in cursor]


async def mark_purged(scope: Scope, ambassador_id: str) -> None:
    await scope.db.ambassadors.update_one(
        {"_id": ambassador_id},
        {
            "$unset": {"certificate.purge_object": ""},
            "$set": {"certificate.purged_at": scope.now},
        },
    )
