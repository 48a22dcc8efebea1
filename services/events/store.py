"""The events service's own database: meetings, invitations, and the ambassadors it may invite.

Collections:
- ``meetings``: one document per meeting (see domain.Meeting).
- ``invitations``: one per meeting and invitee, ``_id`` "<meeting>:<ambassador>".
- ``ambassadors``: the read model of active ambassadors (id, name, e-mail, organisation,
  themes, core areas), fed by the ambassadors service's events.
- ``erasures``: erased ambassadors whose events on the stream are still to be purged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from contracts.events import MeetingState, Participation
from services.events.domain import Invitation, KnownAmbassador, Meeting, invitation_id
from services.runtime.mongo import DatabaseT, Session


async def ensure_indexes(db: DatabaseT) -> None:
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
    await db.invitations.create_index("token", unique=True)


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


async def save_meeting(db: DatabaseT, meeting: Meeting, session: Session) -> None:
    await db.meetings.replace_one(
        {"_id": meeting.id}, _meeting_document(meeting), upsert=True, session=session
    )


async def load_meeting(
    db: DatabaseT, meeting_id: str, session: Session | None = None
) -> Meeting | None:
    doc = await db.meetings.find_one({"_id": meeting_id}, session=session)
    return _meeting(doc) if doc else None


async def meeting_with_plan_key(db: DatabaseT, key: str, session: Session) -> Meeting | None:
    doc = await db.meetings.find_one({"plan_key": key}, session=session)
    return _meeting(doc) if doc else None


async def meeting_page(
    db: DatabaseT, *, upcoming_after: datetime | None, limit: int, offset: int
) -> tuple[int, list[Meeting]]:
    if upcoming_after is not None:
        query: dict[str, Any] = {
            "state": MeetingState.SCHEDULED.value,
            "starts_at": {"$gt": upcoming_after},
        }
        order = ASCENDING
    else:
        query, order = {}, DESCENDING
    total = await db.meetings.count_documents(query)
    cursor = db.meetings.find(query).sort("starts_at", order).skip(offset).limit(limit)
    return total, [_meeting(doc) async for doc in cursor]


async def upcoming_meetings(db: DatabaseT, now: datetime, session: Session) -> list[Meeting]:
    cursor = db.meetings.find(
        {"state": MeetingState.SCHEDULED.value, "starts_at": {"$gt": now}}, session=session
    )
    return [_meeting(doc) async for doc in cursor]


async def public_meetings(db: DatabaseT) -> list[Meeting]:
    cursor = db.meetings.find({"public": True}).sort("starts_at", ASCENDING)
    return [_meeting(doc) async for doc in cursor]


async def meetings_inviting(db: DatabaseT, limit: int = 20) -> list[str]:
    cursor = db.meetings.find({"inviting": True}, {"_id": 1}).limit(limit)
    return [doc["_id"] async for doc in cursor]


async def meetings_due_for_reminders(db: DatabaseT, now: datetime, limit: int = 20) -> list[str]:
    cursor = db.meetings.find(
        {"reminder_pending": True, "reminder_due_at": {"$lte": now}}, {"_id": 1}
    ).limit(limit)
    return [doc["_id"] async for doc in cursor]


async def meetings_attended_by(
    db: DatabaseT, ambassador_id: str, session: Session
) -> list[Meeting]:
    cursor = db.meetings.find({"attended": ambassador_id}, session=session)
    return [_meeting(doc) async for doc in cursor]


# ---------------------------------------------------------------- invitations


def _invitation_document(invitation: Invitation) -> dict[str, Any]:
    doc = invitation.model_dump(mode="python")
    doc["_id"] = invitation.id
    doc["participation"] = invitation.participation.value
    return doc


def _invitation(doc: dict[str, Any]) -> Invitation:
    return Invitation.model_validate(doc)


async def insert_invitations(
    db: DatabaseT, invitations: Sequence[Invitation], session: Session
) -> None:
    if invitations:
        await db.invitations.insert_many(
            [_invitation_document(i) for i in invitations], session=session
        )


async def save_invitations(
    db: DatabaseT, invitations: Iterable[Invitation], session: Session
) -> None:
    for invitation in invitations:
        await db.invitations.replace_one(
            {"_id": invitation.id}, _invitation_document(invitation), session=session
        )


async def load_invitation(
    db: DatabaseT, meeting_id: str, ambassador_id: str, session: Session | None = None
) -> Invitation | None:
    doc = await db.invitations.find_one(
        {"_id": invitation_id(meeting_id, ambassador_id)}, session=session
    )
    return _invitation(doc) if doc else None


async def invitation_by_token(db: DatabaseT, token: str, session: Session) -> Invitation | None:
    doc = await db.invitations.find_one({"token": token}, session=session)
    return _invitation(doc) if doc else None


async def invited_among(
    db: DatabaseT, meeting_id: str, ambassador_ids: Sequence[str], session: Session
) -> set[str]:
    ids = [invitation_id(meeting_id, a) for a in ambassador_ids]
    cursor = db.invitations.find({"_id": {"$in": ids}}, {"ambassador_id": 1}, session=session)
    return {doc["ambassador_id"] async for doc in cursor}


async def invitations_of_meeting(
    db: DatabaseT,
    meeting_id: str,
    session: Session | None = None,
    participations: Iterable[Participation] | None = None,
) -> list[Invitation]:
    query: dict[str, Any] = {"meeting_id": meeting_id}
    if participations is not None:
        query["participation"] = {"$in": [p.value for p in participations]}
    cursor = db.invitations.find(query, session=session).sort("_id", ASCENDING)
    return [_invitation(doc) async for doc in cursor]


async def invitations_of_ambassador(
    db: DatabaseT, ambassador_id: str, session: Session
) -> list[Invitation]:
    cursor = db.invitations.find({"ambassador_id": ambassador_id}, session=session)
    return [_invitation(doc) async for doc in cursor]


async def delete_invitations(
    db: DatabaseT, invitations: Iterable[Invitation], session: Session
) -> None:
    ids = [i.id for i in invitations]
    if ids:
        await db.invitations.delete_many({"_id": {"$in": ids}}, session=session)


async def participation_counts(
    db: DatabaseT, meeting_ids: Sequence[str]
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
    async for row in await db.invitations.aggregate(pipeline):
        counts[row["_id"]["m"]][row["_id"]["p"]] = row["n"]
    return counts


# ---------------------------------------------------------------- ambassadors (read model)


def _ambassador_document(a: KnownAmbassador) -> dict[str, Any]:
    doc = a.model_dump(mode="python", exclude={"id"})
    doc["_id"] = a.id
    doc["themes"] = list(a.themes)
    doc["core_areas"] = [c.value for c in a.core_areas]
    return doc


def _ambassador(doc: dict[str, Any]) -> KnownAmbassador:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    return KnownAmbassador.model_validate(doc)


async def save_ambassador(db: DatabaseT, a: KnownAmbassador, session: Session) -> None:
    await db.ambassadors.replace_one(
        {"_id": a.id}, _ambassador_document(a), upsert=True, session=session
    )


async def load_ambassador(
    db: DatabaseT, ambassador_id: str, session: Session | None = None
) -> KnownAmbassador | None:
    doc = await db.ambassadors.find_one({"_id": ambassador_id}, session=session)
    return _ambassador(doc) if doc else None


async def delete_ambassador(db: DatabaseT, ambassador_id: str, session: Session) -> None:
    await db.ambassadors.delete_one({"_id": ambassador_id}, session=session)


async def ambassadors_by_id(
    db: DatabaseT, ids: Iterable[str], session: Session | None = None
) -> dict[str, KnownAmbassador]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    cursor = db.ambassadors.find({"_id": {"$in": wanted}}, session=session)
    return {doc["_id"]: _ambassador(doc) async for doc in cursor}


async def ambassadors_after(
    db: DatabaseT, after: str | None, limit: int, session: Session
) -> list[KnownAmbassador]:
    """Active ambassadors in id order after ``after``: one round of an invitation fan-out."""
    query: dict[str, Any] = {"_id": {"$gt": after}} if after is not None else {}
    cursor = db.ambassadors.find(query, session=session).sort("_id", ASCENDING).limit(limit)
    return [_ambassador(doc) async for doc in cursor]


# ---------------------------------------------------------------- erasures


async def remember_erasure(db: DatabaseT, ambassador_id: str, session: Session) -> None:
    await db.erasures.update_one(
        {"_id": ambassador_id},
        {"$setOnInsert": {"erased_at": datetime.now(UTC)}},
        upsert=True,
        session=session,
    )


async def erasures_to_purge(db: DatabaseT, limit: int = 50) -> list[str]:
    cursor = db.erasures.find({}, {"_id": 1}).limit(limit)
    return [doc["_id"] async for doc in cursor]


async def erasure_purged(db: DatabaseT, ambassador_id: str) -> None:
    await db.erasures.delete_one({"_id": ambassador_id})
