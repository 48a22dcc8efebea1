"""The networks service's own database.

Collections:
- ``challenges``: one document per challenge (see challenges.Challenge); the outcome of a
  held meeting it took up is unique among them.
- ``networks``: one document per network (see lifecycle.Network), with its history.
- ``memberships``: one per network and ambassador invited, ``_id`` "<network>:<ambassador>".
- ``held_meetings``: the held meetings this service was told of (events.v1.meeting_held).
- ``skill_merges``: staff's merges of two skill names, ``_id`` the name read as ``into``.
- ``counters``: ``ambassador_changes``, the number of the last change to the read model of
  ambassadors (each entry carries the number of its last change as ``pool_seq``), so that
  every replica's matching pool can catch up with exactly what changed; and
  ``membership_changes``, the number of the last change to the memberships (the
  matching's fatigue is read again when it moved).

The read model of ambassadors is the runtime's (collection ``ambassadors``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from contracts.events import MeetingKind
from contracts.networks import ChallengeStatus, MemberState, NetworkKind, NetworkStatus
from services.networks.alerts import Alert
from services.networks.challenges import Challenge, HeldMeeting
from services.networks.lifecycle import Membership, Network, membership_id
from services.runtime.known_ambassadors import COLLECTION as AMBASSADORS
from services.runtime.known_ambassadors import KnownAmbassador, Standing
from services.runtime.unit_of_work import Scope, UnitOfWork

AMBASSADOR_CHANGES = "ambassador_changes"


async def ensure_indexes(scope: Scope) -> None:
    db = scope.db
    await db.challenges.create_index([("status", ASCENDING), ("raised_at", DESCENDING)])
    await db.challenges.create_index(
        [("from_meeting.meeting_id", ASCENDING), ("from_meeting.outcome_number", ASCENDING)],
        unique=True,
        partialFilterExpression={"from_meeting.meeting_id": {"$type": "string"}},
    )
    await db.held_meetings.create_index("held_at")
    await db.alerts.create_index([("network_id", ASCENDING), ("sent_at", DESCENDING)])
    await db.alerts.create_index("sent_to")
    await db.networks.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
    await db.memberships.create_index([("network_id", ASCENDING), ("state", ASCENDING)])
    await db.memberships.create_index([("ambassador_id", ASCENDING), ("state", ASCENDING)])
    await db.memberships.create_index([("state", ASCENDING), ("reply_by", ASCENDING)])
    await db.memberships.create_index("invited_at")
    await db[AMBASSADORS].create_index("pool_seq", sparse=True)


# ---------------------------------------------------------------- challenges


def _challenge_document(challenge: Challenge) -> dict[str, Any]:
    doc = challenge.model_dump(mode="python", exclude={"id"})
    doc["_id"] = challenge.id
    doc["status"] = challenge.status.value
    doc["themes"] = list(challenge.themes)
    doc["core_areas"] = [a.value for a in challenge.core_areas]
    doc["skills"] = list(challenge.skills)
    if challenge.from_meeting is not None:
        doc["from_meeting"] = challenge.from_meeting.model_dump(mode="json")
    return doc


def _challenge(doc: dict[str, Any]) -> Challenge:
    return Challenge.model_validate({**doc, "id": doc["_id"]})


async def save_challenge(uow: UnitOfWork, challenge: Challenge) -> None:
    await uow.db.challenges.replace_one(
        {"_id": challenge.id}, _challenge_document(challenge), upsert=True, session=uow.session
    )


async def load_challenge(scope: Scope, challenge_id: str) -> Challenge | None:
    doc = await scope.db.challenges.find_one({"_id": challenge_id}, session=scope.session)
    return _challenge(doc) if doc else None


async def challenge_page(
    scope: Scope, status: ChallengeStatus | None, limit: int, offset: int
) -> tuple[int, list[Challenge]]:
    query: dict[str, Any] = {} if status is None else {"status": status.value}
    total = await scope.db.challenges.count_documents(query, session=scope.session)
    cursor = (
        scope.db.challenges.find(query, session=scope.session)
        .sort([("raised_at", DESCENDING), ("_id", ASCENDING)])
        .skip(offset)
        .limit(limit)
    )
    return total, [_challenge(doc) async for doc in cursor]


async def challenge_of_outcome(scope: Scope, meeting_id: str, number: int) -> str | None:
    doc = await scope.db.challenges.find_one(
        {"from_meeting.meeting_id": meeting_id, "from_meeting.outcome_number": number},
        {"_id": 1},
        session=scope.session,
    )
    return str(doc["_id"]) if doc else None


async def taken_outcomes(scope: Scope) -> set[tuple[str, int]]:
    cursor = scope.db.challenges.find(
        {"from_meeting.meeting_id": {"$type": "string"}},
        {"from_meeting.meeting_id": 1, "from_meeting.outcome_number": 1},
        session=scope.session,
    )
    return {
        (d["from_meeting"]["meeting_id"], int(d["from_meeting"]["outcome_number"]))
        async for d in cursor
    }


# ---------------------------------------------------------------- networks


def _network_document(network: Network) -> dict[str, Any]:
    doc = network.model_dump(mode="python", exclude={"id"})
    doc["_id"] = network.id
    doc["kind"] = network.kind.value
    doc["status"] = network.status.value
    doc["outcome"] = network.outcome.value if network.outcome else None
    doc["ends"] = network.ends.isoformat() if network.ends else None  # BSON has no plain date
    doc["rules"] = network.rules.model_dump(mode="json")
    doc["history"] = [c.model_dump(mode="python") for c in network.history]
    return doc


def _network(doc: dict[str, Any]) -> Network:
    return Network.model_validate({**doc, "id": doc["_id"]})


async def save_network(uow: UnitOfWork, network: Network) -> None:
    await uow.db.networks.replace_one(
        {"_id": network.id}, _network_document(network), upsert=True, session=uow.session
    )


async def load_network(scope: Scope, network_id: str) -> Network | None:
    doc = await scope.db.networks.find_one({"_id": network_id}, session=scope.session)
    return _network(doc) if doc else None


async def network_page(
    scope: Scope,
    kind: NetworkKind | None,
    status: NetworkStatus | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Network]]:
    query: dict[str, Any] = {}
    if kind is not None:
        query["kind"] = kind.value
    if status is not None:
        query["status"] = status.value
    total = await scope.db.networks.count_documents(query, session=scope.session)
    cursor = (
        scope.db.networks.find(query, session=scope.session)
        .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
        .skip(offset)
        .limit(limit)
    )
    return total, [_network(doc) async for doc in cursor]


async def public_networks(scope: Scope) -> list[Network]:
    """Action and volunteer networks at work, and those closed with something to show,
    newest first."""
    cursor = scope.db.networks.find(
        {
            "kind": {"$in": ["action", "volunteer"]},
            "$or": [
                {"status": NetworkStatus.ACTIVE.value},
                {
                    "status": NetworkStatus.CLOSED.value,
                    "outcome": {"$in": ["initiative", "handed_over"]},
                },
            ],
        },
        session=scope.session,
    ).sort([("created_at", DESCENDING), ("_id", ASCENDING)])
    return [_network(doc) async for doc in cursor]


def _membership_document(membership: Membership) -> dict[str, Any]:
    doc = membership.model_dump(mode="python")
    doc["_id"] = membership.id
    doc["state"] = membership.state.value
    return doc


def _membership(doc: dict[str, Any]) -> Membership:
    return Membership.model_validate(doc)


async def save_memberships(uow: UnitOfWork, memberships: Iterable[Membership]) -> None:
    """Saved, and numbered as a change, so that every replica's fatigue catches up."""
    await _bump(uow, MEMBERSHIP_CHANGES)
    for membership in memberships:
        await uow.db.memberships.replace_one(
            {"_id": membership.id},
            _membership_document(membership),
            upsert=True,
            session=uow.session,
        )


async def memberships_of_network(scope: Scope, network_id: str) -> dict[str, Membership]:
    cursor = scope.db.memberships.find({"network_id": network_id}, session=scope.session).sort(
        "invited_at", ASCENDING
    )
    return {m.ambassador_id: m async for m in (_membership(d) async for d in cursor)}


async def memberships_of_ambassador(scope: Scope, ambassador_id: str) -> list[Membership]:
    cursor = scope.db.memberships.find({"ambassador_id": ambassador_id}, session=scope.session)
    return [_membership(d) async for d in cursor]


async def load_membership(scope: Scope, network_id: str, ambassador_id: str) -> Membership | None:
    doc = await scope.db.memberships.find_one(
        {"_id": membership_id(network_id, ambassador_id)}, session=scope.session
    )
    return _membership(doc) if doc else None


async def close_memberships(uow: UnitOfWork, network_id: str) -> None:
    """A closed network no longer weighs on its members (the matching's fatigue)."""
    await _bump(uow, MEMBERSHIP_CHANGES)
    await uow.db.memberships.update_many(
        {"network_id": network_id}, {"$set": {"network_open": False}}, session=uow.session
    )


async def networks_with_expired_invitations(scope: Scope, now: datetime) -> list[str]:
    cursor = scope.db.memberships.find(
        {"state": MemberState.INVITED.value, "reply_by": {"$lte": now}, "network_open": True},
        {"network_id": 1},
        session=scope.session,
    )
    return sorted({str(d["network_id"]) async for d in cursor})


async def networks_ending_unnoticed(scope: Scope) -> list[str]:
    """Open networks with an end date whose week-ahead notice was not given (the rule of
    when is lifecycle.ending_soon's)."""
    cursor = scope.db.networks.find(
        {
            "status": {"$ne": NetworkStatus.CLOSED.value},
            "ends": {"$type": "string"},
            "ending_noticed": {"$ne": True},
        },
        {"_id": 1},
        session=scope.session,
    )
    return [str(d["_id"]) async for d in cursor]


async def delete_memberships_of(uow: UnitOfWork, ambassador_id: str) -> None:
    await _bump(uow, MEMBERSHIP_CHANGES)
    await uow.db.memberships.delete_many({"ambassador_id": ambassador_id}, session=uow.session)


# ---------------------------------------------------------------- alerts


async def save_alert(uow: UnitOfWork, alert: Alert) -> None:
    doc = alert.model_dump(mode="python", exclude={"id"})
    doc["_id"] = alert.id
    doc["sent_to"] = list(alert.sent_to)
    doc["answers"] = {k: v.model_dump(mode="python") for k, v in alert.answers.items()}
    await uow.db.alerts.replace_one({"_id": alert.id}, doc, upsert=True, session=uow.session)


def _alert(doc: dict[str, Any]) -> Alert:
    answers = {k: {**v, "at": _aware(v["at"])} for k, v in (doc.get("answers") or {}).items()}
    return Alert.model_validate(
        {
            **doc,
            "id": doc["_id"],
            "sent_at": _aware(doc["sent_at"]),
            "answer_by": _aware(doc["answer_by"]),
            "answers": answers,
        }
    )


async def load_alert(scope: Scope, alert_id: str) -> Alert | None:
    doc = await scope.db.alerts.find_one({"_id": alert_id}, session=scope.session)
    return _alert(doc) if doc else None


async def alerts_of_network(scope: Scope, network_id: str) -> list[Alert]:
    cursor = scope.db.alerts.find({"network_id": network_id}, session=scope.session).sort(
        "sent_at", DESCENDING
    )
    return [_alert(doc) async for doc in cursor]


async def forget_in_alerts(uow: UnitOfWork, ambassador_id: str) -> None:
    """An erased member: out of every call-out's list and answers."""
    await uow.db.alerts.update_many(
        {"sent_to": ambassador_id},
        {"$pull": {"sent_to": ambassador_id}, "$unset": {f"answers.{ambassador_id}": ""}},
        session=uow.session,
    )


# ---------------------------------------------------------------- held meetings


async def save_held_meeting(uow: UnitOfWork, held: HeldMeeting) -> None:
    doc = held.model_dump(mode="python", exclude={"id"})
    doc["_id"] = held.id
    doc["kind"] = held.kind.value
    doc["date"] = held.date.isoformat()  # BSON has no plain date
    doc["outcomes"] = list(held.outcomes)
    await uow.db.held_meetings.replace_one({"_id": held.id}, doc, upsert=True, session=uow.session)


async def load_held_meeting(scope: Scope, meeting_id: str) -> HeldMeeting | None:
    doc = await scope.db.held_meetings.find_one({"_id": meeting_id}, session=scope.session)
    return HeldMeeting.model_validate({**doc, "id": doc["_id"]}) if doc else None


async def held_meetings_with_outcomes(scope: Scope) -> list[HeldMeeting]:
    cursor = scope.db.held_meetings.find(
        {"outcomes.0": {"$exists": True}}, session=scope.session
    ).sort("held_at", DESCENDING)
    return [HeldMeeting.model_validate({**d, "id": d["_id"]}) async for d in cursor]


# ---------------------------------------------------------------- the initiatives goal


async def networks_started(scope: Scope) -> list[tuple[datetime, NetworkKind]]:
    cursor = scope.db.networks.find(
        {"started_at": {"$ne": None}}, {"started_at": 1, "kind": 1}, session=scope.session
    )
    return [(_aware(d["started_at"]), NetworkKind(d["kind"])) async for d in cursor]


async def meetings_held(scope: Scope) -> list[tuple[date, MeetingKind]]:
    cursor = scope.db.held_meetings.find({}, {"date": 1, "kind": 1}, session=scope.session)
    return [(date.fromisoformat(str(d["date"])), MeetingKind(d["kind"])) async for d in cursor]


# ---------------------------------------------------------------- skills


async def skill_merges(scope: Scope) -> dict[str, str]:
    cursor = scope.db.skill_merges.find({}, session=scope.session)
    return {str(d["_id"]): str(d["into"]) async for d in cursor}


async def save_skill_merge(uow: UnitOfWork, from_skill: str, into_skill: str) -> None:
    await uow.db.skill_merges.replace_one(
        {"_id": from_skill},
        {"_id": from_skill, "into": into_skill, "merged_at": uow.now},
        upsert=True,
        session=uow.session,
    )


async def active_skill_tags(scope: Scope) -> list[list[str]]:
    """The skill tags of every active ambassador, as they typed them."""
    cursor = scope.db[AMBASSADORS].find(
        {"standing": Standing.ACTIVE.value, "skills.0": {"$exists": True}},
        {"skills": 1},
        session=scope.session,
    )
    return [list(d["skills"]) async for d in cursor]


# ---------------------------------------------------------------- fatigue


MEMBERSHIP_CHANGES = "membership_changes"


async def fatigue_facts(
    scope: Scope, *, since: datetime
) -> list[tuple[str, bool, datetime | None]]:
    """(ambassador, in an open network now, invited when) of every membership that weighs
    on someone: joined to an open network, or invited since ``since``."""
    cursor = scope.db.memberships.find(
        {
            "$or": [
                {"state": MemberState.JOINED.value, "network_open": True},
                {"invited_at": {"$gte": since}},
            ]
        },
        {"ambassador_id": 1, "state": 1, "network_open": 1, "invited_at": 1},
        session=scope.session,
    )
    facts = []
    async for doc in cursor:
        joined = doc.get("state") == MemberState.JOINED.value and bool(doc.get("network_open"))
        invited_at = doc.get("invited_at")
        facts.append(
            (str(doc["ambassador_id"]), joined, _aware(invited_at) if invited_at else None)
        )
    return facts


def _aware(value: datetime) -> datetime:
    # PyMongo hands back naive UTC unless the client is told otherwise.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- the matching's pool


async def _bump(uow: UnitOfWork, counter: str) -> int:
    """Number a change in the unit of work that makes it. Every change of a kind writes its
    one counter, so two at once conflict and one is retried: the numbers follow the order
    of the commits."""
    found = await uow.db.counters.find_one_and_update(
        {"_id": counter},
        {"$inc": {"seq": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=uow.session,
    )
    return int(found["seq"]) if found else 1


async def last_change(scope: Scope, counter: str) -> int:
    found = await scope.db.counters.find_one({"_id": counter}, session=scope.session)
    return int(found["seq"]) if found else 0


async def stamp_ambassador_change(uow: UnitOfWork, ambassador_id: str | None = None) -> int:
    """Number the change (a read-model entry applied, a merge of skills) in the unit of
    work that made it. Every change writes the one counter, so two at once conflict and
    one is retried: the numbers follow the order of the commits, and a pool that has seen
    every change up to N misses none when it next reads the entries after N."""
    seq = await _bump(uow, AMBASSADOR_CHANGES)
    if ambassador_id is not None:
        await uow.db[AMBASSADORS].update_one(
            {"_id": ambassador_id}, {"$set": {"pool_seq": seq}}, session=uow.session
        )
    return seq


async def last_ambassador_change(scope: Scope) -> int:
    return await last_change(scope, AMBASSADOR_CHANGES)


# What the matching reads of an entry (never a name or an address).
_CANDIDATE_FIELDS = {
    "standing": 1,
    "kind": 1,
    "themes": 1,
    "core_areas": 1,
    "skills": 1,
    "networks_at_once": 1,
    "paused_until": 1,
}


async def ambassadors_changed_after(
    scope: Scope, seq: int, batch: int = 5000
) -> AsyncIterator[list[KnownAmbassador]]:
    """Entries of the read model changed after change ``seq`` (every entry for 0, active or
    not: the pool drops those that are not), in batches, with what the matching reads."""
    query: dict[str, Any] = {} if seq == 0 else {"pool_seq": {"$gt": seq}}
    cursor = scope.db[AMBASSADORS].find(
        query, _CANDIDATE_FIELDS, session=scope.session, batch_size=batch
    )
    found: list[KnownAmbassador] = []
    async for doc in cursor:
        found.append(KnownAmbassador.model_validate({**doc, "id": doc["_id"]}))
        if len(found) >= batch:
            yield found
            found = []
    if found:
        yield found


def is_candidate(known: KnownAmbassador) -> bool:
    return known.standing == Standing.ACTIVE and known.kind is not None
