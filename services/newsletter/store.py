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
from services.newsletter.domain import Issue, Item, StoredImage, Subscriber, section_pictures
from services.runtime.mongo import DatabaseT, drop_indexes, find_in, update_in
from services.runtime.tokens import token_hash
from services.runtime.unit_of_work import Scope


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
    # Unsubscribe links of older releases carried a stored token: kept as its hash, so
    # mails already sent still work (today's links are signed and need nothing stored).
    await _hash_unsubscribe_tokens(db)
    await db.subscribers.create_index("unsubscribe_token_hash", sparse=True)
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
    # The digest's meeting sections: public scheduled ones by start, held ones by when.
    await db.meetings.create_index(
        [("state", ASCENDING), ("public", ASCENDING), ("starts_at", ASCENDING)]
    )
    await db.meetings.create_index([("state", ASCENDING), ("held_at", ASCENDING)])
    await db.networks.create_index("formed_at")
    await db.networks.create_index("closed_at", sparse=True)


async def _hash_unsubscribe_tokens(db: DatabaseT) -> None:
    """Older releases stored each subscriber's unsubscribe token as it was: hashed, once."""
    async for doc in db.subscribers.find({"unsubscribe_token": {"$type": "string"}}):
        await db.subscribers.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {"unsubscribe_token_hash": token_hash(doc["unsubscribe_token"])},
                "$unset": {"unsubscribe_token": ""},
            },
        )
    await drop_indexes(db.subscribers, ["unsubscribe_token_1"])


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


async def _find_subscriber(scope: Scope, criteria: dict[str, Any]) -> Subscriber | None:
    doc = await scope.db.subscribers.find_one(criteria, session=scope.session)
    return _subscriber(doc) if doc else None


async def load_subscriber(scope: Scope, subscriber_id: str) -> Subscriber | None:
    return await _find_subscriber(scope, {"_id": subscriber_id})


async def load_subscribers(scope: Scope, ids: Iterable[str]) -> dict[str, Subscriber]:
    return {doc["_id"]: _subscriber(doc) for doc in await find_in(scope.db.subscribers, ids)}


async def subscriber_by_address(scope: Scope, key: str) -> Subscriber | None:
    return await _find_subscriber(scope, {"address_key": key})


async def subscriber_by_token_hash(scope: Scope, digest: str) -> Subscriber | None:
    return await _find_subscriber(scope, {"token_hash": digest})


async def subscriber_by_confirmed_token_hash(scope: Scope, digest: str) -> Subscriber | None:
    return await _find_subscriber(scope, {"confirmed_token_hash": digest})


async def subscriber_by_unsubscribe_token_hash(scope: Scope, digest: str) -> Subscriber | None:
    """A subscriber by the unsubscribe token an older release mailed (stored as its hash)."""
    return await _find_subscriber(scope, {"unsubscribe_token_hash": digest})


async def subscriber_of_ambassador(scope: Scope, ambassador_id: str) -> Subscriber | None:
    return await _find_subscriber(scope, {"ambassador_id": ambassador_id})


async def save_subscriber(scope: Scope, subscriber: Subscriber) -> None:
    await scope.db.subscribers.replace_one(
        {"_id": subscriber.id}, _to_document(subscriber), upsert=True, session=scope.session
    )


async def delete_subscriber(scope: Scope, subscriber_id: str) -> None:
    await scope.db.subscribers.delete_one({"_id": subscriber_id}, session=scope.session)


async def subscriber_page(
    scope: Scope, status: SubscriberStatus | None, *, limit: int, offset: int
) -> tuple[int, list[Subscriber]]:
    criteria = {"status": status.value} if status is not None else {}
    total = await scope.db.subscribers.count_documents(criteria)
    cursor = (
        scope.db.subscribers.find(criteria)
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


async def confirmed_count(scope: Scope) -> int:
    return await scope.db.subscribers.count_documents(
        {"status": SubscriberStatus.CONFIRMED.value}, session=scope.session
    )


async def confirmed_after(
    scope: Scope, cursor: str | None, limit: int, scan: ConfirmedScan | None = None
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
            scope.db.subscribers.find(criteria, {"_id": 1, "address": 1, "name": 1})
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


async def record_bounces(scope: Scope, changed: Sequence[Subscriber]) -> None:
    for subscriber in changed:
        await scope.db.subscribers.update_one(
            {"_id": subscriber.id},
            {"$set": {"hard_bounces": subscriber.hard_bounces, "status": subscriber.status}},
            session=scope.session,
        )


async def reset_bounces(scope: Scope, subscriber_ids: Sequence[str]) -> None:
    """One write for a batch of delivered mails; most subscribers have nothing to reset, and
    the filter on the counter keeps them untouched."""
    await update_in(
        scope.db.subscribers,
        subscriber_ids,
        {"hard_bounces": {"$gt": 0}},
        {"$set": {"hard_bounces": 0}},
    )


# ---------------------------------------------------------------- items


async def insert_item(scope: Scope, item: Item) -> None:
    await scope.db.items.insert_one(_to_document(item), session=scope.session)


async def load_item(scope: Scope, item_id: str) -> Item | None:
    doc = await scope.db.items.find_one({"_id": item_id}, session=scope.session)
    return _item(doc) if doc else None


async def load_items(scope: Scope, ids: Iterable[str]) -> dict[str, Item]:
    cursor = scope.db.items.find({"_id": {"$in": list(ids)}}, session=scope.session)
    return {doc["_id"]: _item(doc) async for doc in cursor}


async def delete_item(scope: Scope, item_id: str) -> None:
    await scope.db.items.delete_one({"_id": item_id}, session=scope.session)


async def item_page(
    scope: Scope, *, unused: bool, limit: int, offset: int
) -> tuple[int, list[Item]]:
    criteria: dict[str, Any] = {"used_in_issue": None} if unused else {}
    total = await scope.db.items.count_documents(criteria)
    cursor = (
        scope.db.items.find(criteria)
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        .skip(offset)
        .limit(limit)
    )
    return total, [_item(doc) async for doc in cursor]


async def unused_items(scope: Scope, limit: int) -> list[Item]:
    cursor = scope.db.items.find({"used_in_issue": None}).sort("created_at", ASCENDING).limit(limit)
    return [_item(doc) async for doc in cursor]


async def mark_items_used(scope: Scope, ids: Sequence[str], issue_id: str) -> None:
    await scope.db.items.update_many(
        {"_id": {"$in": list(ids)}}, {"$set": {"used_in_issue": issue_id}}, session=scope.session
    )


async def forget_item_ambassador_name(scope: Scope, ambassador_id: str) -> None:
    await scope.db.items.update_many(
        {"ambassador_id": ambassador_id}, {"$set": {"ambassador_name": None}}, session=scope.session
    )


# ---------------------------------------------------------------- issues


async def save_issue(scope: Scope, issue: Issue) -> None:
    await scope.db.issues.replace_one(
        {"_id": issue.id}, issue_document(issue), upsert=True, session=scope.session
    )


async def load_issue(scope: Scope, issue_id: str) -> Issue | None:
    doc = await scope.db.issues.find_one({"_id": issue_id}, session=scope.session)
    return _issue_from(doc) if doc else None


async def sent_issue_by_number(scope: Scope, number: int) -> Issue | None:
    doc = await scope.db.issues.find_one({"number": number, "state": IssueState.SENT.value})
    return _issue_from(doc) if doc else None


async def sent_image(scope: Scope, object_name: str) -> StoredImage | None:
    """The picture of that name in a sent issue (only those are public): a news item's, or
    a story's in the stories section."""
    doc = await scope.db.issues.find_one(
        {
            "state": IssueState.SENT.value,
            "$or": [
                {"items.image.object_name": object_name},
                {"sections.entries.picture.name": object_name},
            ],
        },
        session=scope.session,
    )
    if doc is None:
        return None
    issue = _issue_from(doc)
    found = (i.image for i in issue.items if i.image is not None)
    image = next((image for image in found if image.object_name == object_name), None)
    if image is not None:
        return image
    return next((p for p in section_pictures(issue) if p.object_name == object_name), None)


async def last_sent_until(scope: Scope) -> datetime | None:
    doc = await scope.db.issues.find_one(
        {"state": IssueState.SENT.value}, {"until": 1}, sort=[("sent_at", DESCENDING)]
    )
    return doc["until"] if doc else None


async def sent_issues(scope: Scope) -> list[Issue]:
    cursor = scope.db.issues.find({"state": IssueState.SENT.value}).sort("sent_at", ASCENDING)
    return [_issue_from(doc) async for doc in cursor]


async def sending_issue_ids(scope: Scope) -> list[str]:
    cursor = scope.db.issues.find({"state": IssueState.SENDING.value}, {"_id": 1})
    return [doc["_id"] async for doc in cursor]


async def stale_archive_ids(scope: Scope) -> list[str]:
    cursor = scope.db.issues.find({"archive_stale": True}, {"_id": 1})
    return [doc["_id"] async for doc in cursor]


async def archive_refreshed(scope: Scope, issue_id: str) -> None:
    await scope.db.issues.update_one({"_id": issue_id}, {"$unset": {"archive_stale": ""}})


async def issues_naming(scope: Scope, ambassador_id: str) -> list[Issue]:
    """Issues whose items or sections name this ambassador (one query per indexed field)."""
    found: dict[str, Issue] = {}
    for field in ("items.ambassador_id", "sections.entries.ambassador_id"):
        async for doc in scope.db.issues.find({field: ambassador_id}, session=scope.session):
            found[doc["_id"]] = _issue_from(doc)
    return list(found.values())


async def advance_fanout(scope: Scope, issue_id: str, cursor: str) -> None:
    # $max: two replicas fanning out the same issue never move the cursor back.
    await scope.db.issues.update_one(
        {"_id": issue_id, "state": IssueState.SENDING.value}, {"$max": {"fanout_cursor": cursor}}
    )


async def current_issue_number(scope: Scope) -> int:
    doc = await scope.db.counters.find_one({"_id": "issue_number"})
    return int(doc["value"]) if doc else 0


async def take_issue_number(scope: Scope) -> int:
    """The number of the issue that starts sending, in its transaction: numbers of sent
    issues have no gaps (a draft never sent takes none)."""
    doc = await scope.db.counters.find_one_and_update(
        {"_id": "issue_number"},
        {"$inc": {"value": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=scope.session,
    )
    assert doc is not None
    return int(doc["value"])


# ---------------------------------------------------------------- erasure


async def addresses_mailed_for(scope: Scope, ambassador_id: str) -> set[str]:
    """Addresses of mails sent on an ambassador's behalf (read before their erasure): how an
    erasure finds a subscription of the same person that is not linked to the ambassador."""
    cursor = scope.db.mails.find(
        {"ambassador_id": ambassador_id}, {"to_address": 1}, session=scope.session
    )
    return {doc["to_address"] async for doc in cursor if doc.get("to_address")}


async def erased_ambassadors_of_old(db: DatabaseT) -> list[str]:
    """Ambassadors erased by a release that kept no list of them: their subscriber kept the
    ambassador id (for the read model's tombstones, once)."""
    cursor = db.subscribers.find(
        {"status": SubscriberStatus.ERASED.value, "ambassador_id": {"$type": "string"}},
        {"ambassador_id": 1},
    )
    return [doc["ambassador_id"] async for doc in cursor]


# ---------------------------------------------------------------- the meetings read model


async def load_meeting(scope: Scope, meeting_id: str) -> dict[str, Any] | None:
    return await scope.db.meetings.find_one({"_id": meeting_id}, session=scope.session)


async def save_meeting(scope: Scope, doc: dict[str, Any]) -> None:
    await scope.db.meetings.replace_one(
        {"_id": doc["_id"]}, doc, upsert=True, session=scope.session
    )


async def public_meetings_starting(
    scope: Scope, start: datetime, end: datetime, limit: int
) -> list[dict[str, Any]]:
    """Public meetings still scheduled that start in [start, end), soonest first."""
    cursor = (
        scope.db.meetings.find(
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


async def meetings_held(scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Meetings (public or not) held in [since, until), in the order they were held."""
    cursor = scope.db.meetings.find(
        {"state": MeetingState.HELD.value, "held_at": {"$gte": since, "$lt": until}}
    ).sort([("held_at", ASCENDING), ("_id", ASCENDING)])
    return [doc async for doc in cursor]


# ---------------------------------------------------------------- the networks read model


async def save_network(scope: Scope, network_id: str, fields: dict[str, Any]) -> None:
    await scope.db.networks.update_one(
        {"_id": network_id}, {"$set": fields}, upsert=True, session=scope.session
    )


async def networks_formed(scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Action and volunteer networks formed in [since, until), in that order."""
    cursor = scope.db.networks.find(
        {"formed_at": {"$gte": since, "$lt": until}, "kind": {"$in": ["action", "volunteer"]}}
    ).sort([("formed_at", ASCENDING), ("_id", ASCENDING)])
    return [doc async for doc in cursor]


async def networks_closed(scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Networks closed in [since, until) with something to show for it, in that order."""
    cursor = scope.db.networks.find(
        {
            "closed_at": {"$gte": since, "$lt": until},
            "outcome": {"$in": ["initiative", "handed_over"]},
        }
    ).sort([("closed_at", ASCENDING), ("_id", ASCENDING)])
    return [doc async for doc in cursor]


# ---------------------------------------------------------------- stories (social)


async def save_story(scope: Scope, story_id: str, fields: dict[str, Any]) -> None:
    await scope.db.stories.update_one(
        {"_id": story_id}, {"$set": fields}, upsert=True, session=scope.session
    )


async def delete_stories(scope: Scope, query: dict[str, Any]) -> None:
    await scope.db.stories.delete_many(query, session=scope.session)


async def stories_published(scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Stories published on the Page in [since, until), in that order."""
    cursor = scope.db.stories.find(
        {"published_at": {"$gte": since, "$lt": until}}, session=scope.session
    ).sort([("published_at", ASCENDING), ("_id", ASCENDING)])
    return [doc async for doc in cursor]
