"""The events service's own database: meetings and invitations.

Collections:
- ``meetings``: one document per meeting (see domain.Meeting).
- ``networks``: the open networks the networks service announced (id, title), and
  ``network_members``: who is in each now (``_id`` "<network>:<ambassador>"), fed by its
  formed/closed and member_joined/member_left: the audience of a network's meetings.
- ``invitations``: one per meeting and invitee, ``_id`` "<meeting>:<ambassador>"; an
  invitation of an older release also has the ``token_hash`` of its answer links.

The ambassadors this service may invite are the runtime's read model
(``services.runtime.known_ambassadors``, collection ``ambassadors``); erasure's bookkeeping
(``erasures``) is the runtime's too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne

from contracts.events import MeetingState, Participation
from services.events.domain import Invitation, Meeting, invitation_id
from services.runtime.mongo import DatabaseT, drop_indexes
from services.runtime.tokens import token_hash
from services.runtime.unit_of_work import Scope, UnitOfWork

# Legacy answer tokens hashed per bulk write at start-up.
_MIGRATION_BATCH = 500


async def ensure_indexes(scope: Scope) -> None:
    db = scope.db
    await db.meetings.create_index([("state", ASCENDING), ("starts_at", ASCENDING)])
    await db.meetings.create_index("inviting", sparse=True)
    await db.meetings.create_index(
        [("reminder_pending", ASCENDING), ("reminder_due_at", ASCENDING)]
    )
    await db.meetings.create_index(
        "plan_key", unique=True, partialFilterExpression={"plan_key": {"$type": "string"}}
    )
    await db.meetings.create_index("attended")
    await db.invitations.create_index([("meeting_id", ASCENDING), ("participation", ASCENDING)])
    await db.invitations.create_index("ambassador_id")
    await db.network_members.create_index("network_id")
    await db.network_members.create_index("ambassador_id")
    await _hash_legacy_tokens(db)
    await db.invitations.create_index("token_hash", sparse=True)


async def _hash_legacy_tokens(db: DatabaseT) -> None:
    """Invitations of older releases kept their answer token readable (``token``, unique
    index ``token_1``): they keep only its hash, so that the links already mailed still
    work. The unique index goes first (without the field every invitation would be a null
    in it); the rest is looked for on every start, so a start stopped halfway is finished
    by the next (after the first, a query that finds nothing)."""
    await drop_indexes(db.invitations, ["token_1"])
    batch: list[UpdateOne] = []
    async for doc in db.invitations.find({"token": {"$exists": True}}, {"token": 1}):
        batch.append(
            UpdateOne(
                {"_id": doc["_id"]},
                {"$set": {"token_hash": token_hash(str(doc["token"]))}, "$unset": {"token": ""}},
            )
        )
        if len(batch) >= _MIGRATION_BATCH:
            await db.invitations.bulk_write(batch, ordered=False)
            batch = []
    if batch:
        await db.invitations.bulk_write(batch, ordered=False)


# ---------------------------------------------------------------- meetings


def _meeting_document(meeting: Meeting) -> dict[str, Any]:
    doc = meeting.model_dump(mode="python", exclude={"id"})
    doc["_id"] = meeting.id
    doc["kind"] = meeting.kind.value
    doc["state"] = meeting.state.value
    doc["audience"] = meeting.audience.model_dump(mode="json")
    doc["outcomes"] = list(meeting.outcomes)
    doc["attended"] = list(meeting.attended)
    doc["attending_organisations"] = list(meeting.attending_organisations)
    # Only meetings with invitations to send are in the sparse "inviting" index: a sparse
    # index leaves out documents without the field, but it does index a null.
    if not meeting.inviting:
        del doc["inviting"]
    return doc


def _meeting(doc: dict[str, Any]) -> Meeting:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    doc["inviting"] = bool(doc.get("inviting"))
    return Meeting.model_validate(doc)


async def save_meeting(scope: Scope, meeting: Meeting) -> None:
    await scope.db.meetings.replace_one(
        {"_id": meeting.id}, _meeting_document(meeting), upsert=True, session=scope.session
    )


async def load_meeting(scope: Scope, meeting_id: str) -> Meeting | None:
    doc = await scope.db.meetings.find_one({"_id": meeting_id}, session=scope.session)
    return _meeting(doc) if doc else None


async def meeting_with_plan_key(scope: Scope, key: str) -> Meeting | None:
    doc = await scope.db.meetings.find_one({"plan_key": key}, session=scope.session)
    return _meeting(doc) if doc else None


async def meeting_page(
    scope: Scope, *, upcoming_after: datetime | None, limit: int, offset: int
) -> tuple[int, list[Meeting]]:
    if upcoming_after is not None:
        query: dict[str, Any] = {
            "state": MeetingState.SCHEDULED.value,
            "starts_at": {"$gt": upcoming_after},
        }
        order = ASCENDING
    else:
        query, order = {}, DESCENDING
    meetings = scope.db.meetings
    total = await meetings.count_documents(query, session=scope.session)
    cursor = meetings.find(query, session=scope.session).sort("starts_at", order)
    return total, [_meeting(doc) async for doc in cursor.skip(offset).limit(limit)]


async def upcoming_meetings(scope: Scope, now: datetime) -> list[Meeting]:
    cursor = scope.db.meetings.find(
        {"state": MeetingState.SCHEDULED.value, "starts_at": {"$gt": now}}, session=scope.session
    )
    return [_meeting(doc) async for doc in cursor]


async def public_meetings(scope: Scope) -> list[Meeting]:
    cursor = scope.db.meetings.find({"public": True}, session=scope.session).sort(
        "starts_at", ASCENDING
    )
    return [_meeting(doc) async for doc in cursor]


async def planning_jobs(scope: Scope) -> list[str]:
    """The plan-year jobs still following their meetings' invitations."""
    cursor = scope.db.meetings.find(
        {"plan_job": {"$type": "string"}}, {"plan_job": 1}, session=scope.session
    )
    return sorted({doc["plan_job"] async for doc in cursor})


async def meetings_of_plan_job(scope: Scope, job_id: str) -> list[Meeting]:
    cursor = scope.db.meetings.find({"plan_job": job_id}, session=scope.session)
    return sorted([_meeting(doc) async for doc in cursor], key=lambda m: m.starts_at)


async def invitation_count(scope: Scope, meeting_ids: Sequence[str]) -> int:
    return await scope.db.invitations.count_documents(
        {"meeting_id": {"$in": list(meeting_ids)}}, session=scope.session
    )


async def meetings_inviting(scope: Scope, limit: int = 20) -> list[str]:
    cursor = scope.db.meetings.find({"inviting": True}, {"_id": 1}, session=scope.session)
    return [doc["_id"] async for doc in cursor.limit(limit)]


async def meetings_due_for_reminders(scope: Scope, now: datetime, limit: int = 20) -> list[str]:
    cursor = scope.db.meetings.find(
        {"reminder_pending": True, "reminder_due_at": {"$lte": now}},
        {"_id": 1},
        session=scope.session,
    )
    return [doc["_id"] async for doc in cursor.limit(limit)]


async def meetings_attended_by(scope: Scope, ambassador_id: str) -> list[Meeting]:
    cursor = scope.db.meetings.find({"attended": ambassador_id}, session=scope.session)
    return [_meeting(doc) async for doc in cursor]


# ---------------------------------------------------------------- invitations


def _invitation_fields(invitation: Invitation) -> dict[str, Any]:
    doc = invitation.model_dump(mode="python")
    doc["participation"] = invitation.participation.value
    return doc


def _invitation_document(invitation: Invitation) -> dict[str, Any]:
    return {"_id": invitation.id, **_invitation_fields(invitation)}


def _invitation(doc: dict[str, Any]) -> Invitation:
    return Invitation.model_validate(doc)


async def insert_invitations(scope: Scope, invitations: Sequence[Invitation]) -> None:
    if invitations:
        await scope.db.invitations.insert_many(
            [_invitation_document(i) for i in invitations], session=scope.session
        )


async def save_invitations(scope: Scope, invitations: Iterable[Invitation]) -> None:
    for invitation in invitations:
        # $set, not a replacement: an older release's invitation keeps its token_hash.
        await scope.db.invitations.update_one(
            {"_id": invitation.id},
            {"$set": _invitation_fields(invitation)},
            session=scope.session,
        )


async def load_invitation(scope: Scope, meeting_id: str, ambassador_id: str) -> Invitation | None:
    doc = await scope.db.invitations.find_one(
        {"_id": invitation_id(meeting_id, ambassador_id)}, session=scope.session
    )
    return _invitation(doc) if doc else None


async def invitation_by_token_hash(scope: Scope, digest: str) -> Invitation | None:
    """An invitation of an older release, by the hash of the token its mails carry."""
    doc = await scope.db.invitations.find_one({"token_hash": digest}, session=scope.session)
    return _invitation(doc) if doc else None


async def invited_among(scope: Scope, meeting_id: str, ambassador_ids: Sequence[str]) -> set[str]:
    ids = [invitation_id(meeting_id, a) for a in ambassador_ids]
    cursor = scope.db.invitations.find(
        {"_id": {"$in": ids}}, {"ambassador_id": 1}, session=scope.session
    )
    return {doc["ambassador_id"] async for doc in cursor}


async def invitations_of_meeting(
    scope: Scope, meeting_id: str, participations: Iterable[Participation] | None = None
) -> list[Invitation]:
    query: dict[str, Any] = {"meeting_id": meeting_id}
    if participations is not None:
        query["participation"] = {"$in": [p.value for p in participations]}
    cursor = scope.db.invitations.find(query, session=scope.session).sort("_id", ASCENDING)
    return [_invitation(doc) async for doc in cursor]


async def invitations_of_ambassador(scope: Scope, ambassador_id: str) -> list[Invitation]:
    cursor = scope.db.invitations.find({"ambassador_id": ambassador_id}, session=scope.session)
    return [_invitation(doc) async for doc in cursor]


async def delete_invitations(scope: Scope, invitations: Iterable[Invitation]) -> None:
    ids = [i.id for i in invitations]
    if ids:
        await scope.db.invitations.delete_many({"_id": {"$in": ids}}, session=scope.session)


async def participation_counts(
    scope: Scope, meeting_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per meeting: invitees by participation."""
    counts: dict[str, dict[str, int]] = {m: {} for m in meeting_ids}
    if not meeting_ids:
        return counts
    pipeline: list[dict[str, Any]] = [
        {"$match": {"meeting_id": {"$in": list(meeting_ids)}}},
        {
            "$group": {
                "_id": {"m": "$meeting_id", "p": "$participation"},
                "n": {"$sum": 1},
            }
        },
    ]
    async for row in await scope.db.invitations.aggregate(pipeline, session=scope.session):
        counts[row["_id"]["m"]][row["_id"]["p"]] = row["n"]
    return counts


# ---------------------------------------------------------------- networks (read model)


async def save_network(uow: UnitOfWork, network_id: str, title: str, open_: bool) -> None:
    await uow.db.networks.update_one(
        {"_id": network_id},
        {"$set": {"title": title, "open": open_}},
        upsert=True,
        session=uow.session,
    )


async def network_is_open(scope: Scope, network_id: str) -> bool:
    doc = await scope.db.networks.find_one({"_id": network_id}, session=scope.session)
    return bool(doc and doc.get("open"))


async def network_member_as_of(
    uow: UnitOfWork, network_id: str, ambassador_id: str
) -> datetime | None:
    doc = await uow.db.network_members.find_one(
        {"_id": f"{network_id}:{ambassador_id}"}, {"as_of": 1}, session=uow.session
    )
    at = doc.get("as_of") if doc else None
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


async def set_network_member(
    uow: UnitOfWork, network_id: str, ambassador_id: str, *, present: bool, as_of: datetime
) -> None:
    """In or out of the network as of ``as_of`` (one who left stays as a marker, so a
    joining replayed later, from before the leaving, cannot bring them back)."""
    await uow.db.network_members.replace_one(
        {"_id": f"{network_id}:{ambassador_id}"},
        {
            "_id": f"{network_id}:{ambassador_id}",
            "network_id": network_id,
            "ambassador_id": ambassador_id,
            "present": present,
            "as_of": as_of,
        },
        upsert=True,
        session=uow.session,
    )


async def forget_network_member(uow: UnitOfWork, ambassador_id: str) -> None:
    await uow.db.network_members.delete_many({"ambassador_id": ambassador_id}, session=uow.session)


async def network_members(scope: Scope, network_id: str) -> set[str]:
    cursor = scope.db.network_members.find(
        {"network_id": network_id, "present": True}, {"ambassador_id": 1}, session=scope.session
    )
    return {str(d["ambassador_id"]) async for d in cursor}


async def upcoming_meetings_of_network(
    scope: Scope, network_id: str, now: datetime
) -> list[Meeting]:
    cursor = scope.db.meetings.find(
        {
            "state": MeetingState.SCHEDULED.value,
            "starts_at": {"$gt": now},
            "audience.network_id": network_id,
        },
        session=scope.session,
    )
    return [_meeting(doc) async for doc in cursor]
