"""The newsletter service's own database: subscribers, items, issues, the ambassadors and
meetings read models, the ids of erased ambassadors, and their indexes (the ``mails``
collection belongs to ``delivery.store``).

SecantusDB answers ``$or``/``$ne``/``$nin`` with collection scans and ignores partial
indexes: every lookup here is an equality, ``$in`` or range on an indexed field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from contracts.events import MeetingState
from contracts.newsletter import IssueState, SubscriberStatus
from services.newsletter.domain import Issue, Item, KnownAmbassador, Subscriber
from services.runtime.mongo import DatabaseT, Session


async def ensure_indexes(db: DatabaseT) -> None:
    # Unique among non-erased subscribers: erasure clears address_key.
    await db.subscribers.create_index(
        "address_key",
        unique=True,
        partialFilterExpression={"address_key": {"$type": "string"}},
        name="address_key_unique",
    )
    # Lookups cannot use the partial unique index (SecantusDB never does): their own.
    await db.subscribers.create_index(
        [("address_key", ASCENDING), ("_id", ASCENDING)], name="address_key_lookup"
    )
    await db.subscribers.create_index("token_hash", sparse=True)
    await db.subscribers.create_index("confirmed_token_hash", sparse=True)
    await db.subscribers.create_index("unsubscribe_token", sparse=True)
    await db.subscribers.create_index("ambassador_id", sparse=True)
    # The fan-out streams confirmed subscribers in id order; the list pages by status.
    await db.subscribers.create_index([("status", ASCENDING), ("_id", ASCENDING)])
    await db.items.create_index([("used_in_issue", ASCENDING), ("created_at", ASCENDING)])
    await db.items.create_index([("created_at", ASCENDING), ("_id", ASCENDING)])
    await db.items.create_index("ambassador_id", sparse=True)
    await db.issues.create_index([("state", ASCENDING), ("sent_at", ASCENDING)])
    await db.issues.create_index("number")
    await db.issues.create_index("archive_stale", sparse=True)
    await db.issues.create_index("items.ambassador_id", sparse=True)
    await db.issues.create_index("sections.entries.ambassador_id", sparse=True)
    await db.ambassadors.create_index([("public", ASCENDING), ("activated_at", ASCENDING)])
    # The digest's meeting sections: public scheduled ones by start, held ones by when.
    await db.meetings.create_index(
        [("state", ASCENDING), ("public", ASCENDING), ("starts_at", ASCENDING)]
    )
    await db.meetings.create_index([("state", ASCENDING), ("held_at", ASCENDING)])


# ---------------------------------------------------------------- documents


def _to_document(model: Subscriber | Item | Issue) -> dict[str, Any]:
    doc = model.model_dump(mode="python", exclude={"id"})
    doc["_id"] = model.id
    return doc


def _subscriber(doc: dict[str, Any]) -> Subscriber:
    return Subscriber.model_validate({**doc, "id": doc["_id"]})


def _item(doc: dict[str, Any]) -> Item:
    return Item.model_validate({**doc, "id": doc["_id"]})


def _issue(doc: dict[str, Any]) -> Issue:
    return Issue.model_validate({**doc, "id": doc["_id"]})


def issue_document(issue: Issue) -> dict[str, Any]:
    doc = _to_document(issue)
    doc["items"] = [_to_document(i) for i in issue.items]
    doc["sections"] = [s.model_dump(mode="python") for s in issue.sections]
    # Only a sent issue whose web version needs rewriting carries the flag (sparse index).
    if not issue.archive_stale:
        doc.pop("archive_stale")
    return doc


def _issue_from(doc: dict[str, Any]) -> Issue:
    doc = {**doc, "items": [{**i, "id": i["_id"]} for i in doc.get("items", ())]}
    return _issue(doc)


# ---------------------------------------------------------------- subscribers


async def _find_subscriber(
    db: DatabaseT, criteria: dict[str, Any], session: Session | None = None
) -> Subscriber | None:
    doc = await db.subscribers.find_one(criteria, session=session)
    return _subscriber(doc) if doc else None


async def load_subscriber(
    db: DatabaseT, subscriber_id: str, session: Session | None = None
) -> Subscriber | None:
    return await _find_subscriber(db, {"_id": subscriber_id}, session)


async def load_subscribers(db: DatabaseT, ids: Iterable[str]) -> dict[str, Subscriber]:
    cursor = db.subscribers.find({"_id": {"$in": list(ids)}})
    return {doc["_id"]: _subscriber(doc) async for doc in cursor}


async def subscriber_by_address(db: DatabaseT, key: str, session: Session) -> Subscriber | None:
    return await _find_subscriber(db, {"address_key": key}, session)


async def subscriber_by_token_hash(
    db: DatabaseT, digest: str, session: Session
) -> Subscriber | None:
    return await _find_subscriber(db, {"token_hash": digest}, session)


async def subscriber_by_confirmed_token_hash(
    db: DatabaseT, digest: str, session: Session
) -> Subscriber | None:
    return await _find_subscriber(db, {"confirmed_token_hash": digest}, session)


async def subscriber_by_unsubscribe_token(
    db: DatabaseT, token: str, session: Session
) -> Subscriber | None:
    return await _find_subscriber(db, {"unsubscribe_token": token}, session)


async def subscriber_of_ambassador(
    db: DatabaseT, ambassador_id: str, session: Session
) -> Subscriber | None:
    return await _find_subscriber(db, {"ambassador_id": ambassador_id}, session)


async def save_subscriber(db: DatabaseT, subscriber: Subscriber, session: Session) -> None:
    await db.subscribers.replace_one(
        {"_id": subscriber.id}, _to_document(subscriber), upsert=True, session=session
    )


async def delete_subscriber(db: DatabaseT, subscriber_id: str, session: Session) -> None:
    await db.subscribers.delete_one({"_id": subscriber_id}, session=session)


async def subscriber_page(
    db: DatabaseT, status: SubscriberStatus | None, *, limit: int, offset: int
) -> tuple[int, list[Subscriber]]:
    criteria = {"status": status.value} if status is not None else {}
    total = await db.subscribers.count_documents(criteria)
    cursor = (
        db.subscribers.find(criteria)
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        .skip(offset)
        .limit(limit)
    )
    return total, [_subscriber(doc) async for doc in cursor]


# The fan-out reads confirmed subscribers in windows of the id space (ids are uuid4 hex):
# SecantusDB decodes and sorts every document a range holds before it applies a limit, so
# "the next batch after the cursor" would read all the subscribers still to come, for every
# batch. A window's width follows from how densely the ones read so far were spread.
ID_WINDOW_DIGITS = 12
ID_SPACE = 16**ID_WINDOW_DIGITS
_HEX = frozenset("0123456789abcdef")


@dataclass
class ConfirmedScan:
    """What one fan-out learned about the id space: confirmed subscribers per id unit."""

    count: int = 0
    width: int = 0
    first_width: int = ID_SPACE // 64

    def width_for(self, want: int) -> int:
        if self.count == 0:
            # Nothing seen yet (or only empty windows): try ever wider ones.
            grown: int = self.first_width * 4 ** min(self.width // self.first_width, 8)
            return max(1, grown)
        return max(1, int(want * 1.25 * self.width / self.count))

    def saw(self, count: int, width: int) -> None:
        self.count += count
        self.width += max(width, 1)


def _id_position(subscriber_id: str | None) -> int | None:
    """Where an id (or a window boundary) lies in the id space; None if not hex."""
    if subscriber_id is None:
        return 0
    head = subscriber_id[:ID_WINDOW_DIGITS]
    if len(head) < ID_WINDOW_DIGITS or not set(head) <= _HEX:
        return None
    return int(head, 16)


async def confirmed_after(
    db: DatabaseT, cursor: str | None, limit: int, scan: ConfirmedScan | None = None
) -> list[dict[str, Any]]:
    """The next ``limit`` confirmed subscribers in id order after ``cursor``: the fan-out
    holds one batch in memory, whatever the number of subscribers.

    Read window by window (see ConfirmedScan; pass the same one for a whole fan-out): the
    windows follow one another from the cursor, and the last has no upper bound, so no
    subscriber is skipped, whatever the ids look like (ids that are not hex just make the
    windows poor guesses).
    """
    scan = scan or ConfirmedScan()
    found: list[dict[str, Any]] = []
    low, inclusive = cursor, False
    while len(found) < limit:
        want = limit - len(found)
        start = _id_position(low)
        high: str | None = None
        if start is not None:
            end = start + scan.width_for(want)
            if end < ID_SPACE:
                high = format(end, f"0{ID_WINDOW_DIGITS}x")
        bounds: dict[str, Any] = {}
        if low is not None:
            bounds["$gte" if inclusive else "$gt"] = low
        if high is not None:
            bounds["$lt"] = high
        criteria: dict[str, Any] = {"status": SubscriberStatus.CONFIRMED.value}
        if bounds:
            criteria["_id"] = bounds
        cursor_ = (
            db.subscribers.find(criteria, {"_id": 1, "address": 1, "name": 1})
            .sort("_id", ASCENDING)
            .limit(want)
        )
        docs = [doc async for doc in cursor_]
        found.extend(docs)
        if high is None:
            break  # the last window: there is nothing after it
        assert start is not None
        if len(docs) < want:
            scan.saw(len(docs), int(high, 16) - start)
        else:
            # Cut short by the limit: the window is known as far as its last subscriber.
            last = _id_position(str(docs[-1]["_id"]))
            scan.saw(len(docs), (last if last is not None else int(high, 16)) - start + 1)
        low, inclusive = high, True
    return found[:limit]


async def record_bounces(db: DatabaseT, changed: Sequence[Subscriber], session: Session) -> None:
    for subscriber in changed:
        await db.subscribers.update_one(
            {"_id": subscriber.id},
            {"$set": {"hard_bounces": subscriber.hard_bounces, "status": subscriber.status}},
            session=session,
        )


async def reset_bounces(db: DatabaseT, subscriber_ids: Sequence[str]) -> None:
    """One write for a batch of delivered mails; most subscribers have nothing to reset, and
    the filter on the counter keeps them untouched."""
    await db.subscribers.update_many(
        {"_id": {"$in": list(subscriber_ids)}, "hard_bounces": {"$gt": 0}},
        {"$set": {"hard_bounces": 0}},
    )


# ---------------------------------------------------------------- items


async def insert_item(db: DatabaseT, item: Item, session: Session) -> None:
    await db.items.insert_one(_to_document(item), session=session)


async def load_item(db: DatabaseT, item_id: str, session: Session | None = None) -> Item | None:
    doc = await db.items.find_one({"_id": item_id}, session=session)
    return _item(doc) if doc else None


async def load_items(db: DatabaseT, ids: Iterable[str], session: Session) -> dict[str, Item]:
    cursor = db.items.find({"_id": {"$in": list(ids)}}, session=session)
    return {doc["_id"]: _item(doc) async for doc in cursor}


async def delete_item(db: DatabaseT, item_id: str, session: Session) -> None:
    await db.items.delete_one({"_id": item_id}, session=session)


async def item_page(
    db: DatabaseT, *, unused: bool, limit: int, offset: int
) -> tuple[int, list[Item]]:
    criteria: dict[str, Any] = {"used_in_issue": None} if unused else {}
    total = await db.items.count_documents(criteria)
    cursor = (
        db.items.find(criteria)
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        .skip(offset)
        .limit(limit)
    )
    return total, [_item(doc) async for doc in cursor]


async def unused_items(db: DatabaseT, limit: int) -> list[Item]:
    cursor = db.items.find({"used_in_issue": None}).sort("created_at", ASCENDING).limit(limit)
    return [_item(doc) async for doc in cursor]


async def mark_items_used(
    db: DatabaseT, ids: Sequence[str], issue_id: str, session: Session
) -> None:
    await db.items.update_many(
        {"_id": {"$in": list(ids)}}, {"$set": {"used_in_issue": issue_id}}, session=session
    )


async def forget_item_ambassador_name(db: DatabaseT, ambassador_id: str, session: Session) -> None:
    await db.items.update_many(
        {"ambassador_id": ambassador_id}, {"$set": {"ambassador_name": None}}, session=session
    )


# ---------------------------------------------------------------- issues


async def save_issue(db: DatabaseT, issue: Issue, session: Session) -> None:
    await db.issues.replace_one(
        {"_id": issue.id}, issue_document(issue), upsert=True, session=session
    )


async def load_issue(db: DatabaseT, issue_id: str, session: Session | None = None) -> Issue | None:
    doc = await db.issues.find_one({"_id": issue_id}, session=session)
    return _issue_from(doc) if doc else None


async def sent_issue_by_number(db: DatabaseT, number: int) -> Issue | None:
    doc = await db.issues.find_one({"number": number, "state": IssueState.SENT.value})
    return _issue_from(doc) if doc else None


async def last_sent_until(db: DatabaseT) -> datetime | None:
    doc = await db.issues.find_one(
        {"state": IssueState.SENT.value}, {"until": 1}, sort=[("sent_at", DESCENDING)]
    )
    return doc["until"] if doc else None


async def sent_issues(db: DatabaseT) -> list[Issue]:
    cursor = db.issues.find({"state": IssueState.SENT.value}).sort("sent_at", ASCENDING)
    return [_issue_from(doc) async for doc in cursor]


async def sending_issue_ids(db: DatabaseT) -> list[str]:
    cursor = db.issues.find({"state": IssueState.SENDING.value}, {"_id": 1})
    return [doc["_id"] async for doc in cursor]


async def stale_archive_ids(db: DatabaseT) -> list[str]:
    cursor = db.issues.find({"archive_stale": True}, {"_id": 1})
    return [doc["_id"] async for doc in cursor]


async def archive_refreshed(db: DatabaseT, issue_id: str) -> None:
    await db.issues.update_one({"_id": issue_id}, {"$unset": {"archive_stale": ""}})


async def issues_naming(db: DatabaseT, ambassador_id: str, session: Session) -> list[Issue]:
    """Issues whose items or sections name this ambassador (one query per indexed field)."""
    found: dict[str, Issue] = {}
    for field in ("items.ambassador_id", "sections.entries.ambassador_id"):
        async for doc in db.issues.find({field: ambassador_id}, session=session):
            found[doc["_id"]] = _issue_from(doc)
    return list(found.values())


async def advance_fanout(db: DatabaseT, issue_id: str, cursor: str) -> None:
    # $max: two replicas fanning out the same issue never move the cursor back.
    await db.issues.update_one(
        {"_id": issue_id, "state": IssueState.SENDING.value}, {"$max": {"fanout_cursor": cursor}}
    )


async def current_issue_number(db: DatabaseT) -> int:
    doc = await db.counters.find_one({"_id": "issue_number"})
    return int(doc["value"]) if doc else 0


async def take_issue_number(db: DatabaseT, session: Session) -> int:
    """The number of the issue that starts sending, in its transaction: numbers of sent
    issues have no gaps (a draft never sent takes none)."""
    doc = await db.counters.find_one_and_update(
        {"_id": "issue_number"},
        {"$inc": {"value": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert doc is not None
    return int(doc["value"])


# ---------------------------------------------------------------- the ambassadors read model


def _ambassador(doc: dict[str, Any]) -> KnownAmbassador:
    return KnownAmbassador.model_validate({**doc, "ambassador_id": doc["_id"]})


async def save_ambassador(db: DatabaseT, ambassador: KnownAmbassador, session: Session) -> None:
    doc = ambassador.model_dump(mode="python", exclude={"ambassador_id"})
    doc["themes"] = list(ambassador.themes)
    await db.ambassadors.replace_one(
        {"_id": ambassador.ambassador_id}, doc, upsert=True, session=session
    )


async def load_ambassador(
    db: DatabaseT, ambassador_id: str, session: Session | None = None
) -> KnownAmbassador | None:
    doc = await db.ambassadors.find_one({"_id": ambassador_id}, session=session)
    return _ambassador(doc) if doc else None


async def delete_ambassador(db: DatabaseT, ambassador_id: str, session: Session) -> None:
    await db.ambassadors.delete_one({"_id": ambassador_id}, session=session)


async def public_ambassadors_activated(
    db: DatabaseT, since: datetime, until: datetime
) -> list[KnownAmbassador]:
    cursor = db.ambassadors.find(
        {"public": True, "activated_at": {"$gte": since, "$lt": until}}
    ).sort("activated_at", ASCENDING)
    return [_ambassador(doc) async for doc in cursor]


async def addresses_mailed_for(db: DatabaseT, ambassador_id: str, session: Session) -> set[str]:
    """Addresses of mails sent on an ambassador's behalf (read before their erasure): how an
    erasure finds a subscription of the same person that is not linked to the ambassador."""
    cursor = db.mails.find({"ambassador_id": ambassador_id}, {"to_address": 1}, session=session)
    return {doc["to_address"] async for doc in cursor if doc.get("to_address")}


async def remember_erased_ambassador(
    db: DatabaseT, ambassador_id: str, now: datetime, session: Session
) -> None:
    """The id (nothing else) of an erased ambassador: a meeting mail for them that arrives
    later, on another stream, is not sent."""
    await db.erased_ambassadors.update_one(
        {"_id": ambassador_id}, {"$setOnInsert": {"erased_at": now}}, upsert=True, session=session
    )


async def is_erased_ambassador(db: DatabaseT, ambassador_id: str, session: Session) -> bool:
    if await db.erased_ambassadors.find_one({"_id": ambassador_id}, {"_id": 1}, session=session):
        return True
    # Erased before the collection above existed: the subscriber kept its ambassador id.
    linked = await db.subscribers.find_one(
        {"ambassador_id": ambassador_id}, {"status": 1}, session=session
    )
    return linked is not None and linked.get("status") == SubscriberStatus.ERASED.value


# ---------------------------------------------------------------- the meetings read model


async def load_meeting(
    db: DatabaseT, meeting_id: str, session: Session | None = None
) -> dict[str, Any] | None:
    return await db.meetings.find_one({"_id": meeting_id}, session=session)


async def save_meeting(db: DatabaseT, doc: dict[str, Any], session: Session) -> None:
    await db.meetings.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)


async def public_meetings_starting(
    db: DatabaseT, start: datetime, end: datetime, limit: int
) -> list[dict[str, Any]]:
    """Public meetings still scheduled that start in [start, end), soonest first."""
    cursor = (
        db.meetings.find(
            {
                "state": MeetingState.SCHEDULED.value,
                "public": True,
                "starts_at": {"$gte": start, "$lt": end},
            }
        )
        .sort([("starts_at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    return [doc async for doc in cursor]


async def meetings_held(db: DatabaseT, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Meetings (public or not) held in [since, until), in the order they were held."""
    cursor = db.meetings.find(
        {"state": MeetingState.HELD.value, "held_at": {"$gte": since, "$lt": until}}
    ).sort([("held_at", ASCENDING), ("_id", ASCENDING)])
    return [doc async for doc in cursor]
