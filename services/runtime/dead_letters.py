"""Dead letters: events a consumer could not apply within its bounded deliveries.

JetStream announces an exhausted message with a MAX_DELIVERIES advisory. Each service
captures the advisories about its own durable consumer in a small stream of its own
(``DLQ_<SERVICE>``), so none is lost while the service is down, and stores the original
message here with the last error its handler raised. Operators list, show and replay them
through the CLI; replay runs the same inbox-guarded handler again.

A dead letter about a person keeps their id (``person``): when they are erased, its payload
and error go (:func:`scrub_person`), and one stored after the erasure is stored without.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pymongo import DESCENDING

from contracts.envelope import Event
from contracts.operations import DeadLetterView
from services.runtime.mongo import DatabaseT, Session
from services.runtime.rpc import refusal

ADVISORY_PREFIX = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
ERROR_MAX = 2000
SCRUBBED_REASON = "the person it was about was erased"

# Whether a dead letter (its subject and payload) is about someone erased meanwhile.
Scrub = Callable[[str | None, bytes], Awaitable[bool]]


def advisory_stream_name(service: str) -> str:
    return f"DLQ_{service.upper()}"


def advisory_subject(durable: str) -> str:
    return f"{ADVISORY_PREFIX}.*.{durable}"


def dead_letter_id(stream: str, seq: int) -> str:
    return f"{stream}-{seq}"


async def ensure_advisory_stream(
    js: JetStreamContext, service: str, durable: str, replicas: int, max_age_days: int = 90
) -> None:
    config = StreamConfig(
        name=advisory_stream_name(service),
        subjects=[advisory_subject(durable)],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        num_replicas=replicas,
        # The advisories go with the dead letters they point at (the same period).
        max_age=max_age_days * 24 * 3600,
    )
    try:
        await js.stream_info(config.name or "")
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)


async def ensure_dead_letter_indexes(db: DatabaseT) -> None:
    await db.dead_letters.create_index([("dead_at", DESCENDING)])
    await db.dead_letters.create_index("person", sparse=True)
    await db.failures.create_index("updated_at", expireAfterSeconds=90 * 24 * 3600)
    await db.failures.create_index("person", sparse=True)


def person_of(event: Event | None) -> str | None:
    """The ambassador an event is about, if it names one."""
    if event is None or event.person_field is None:
        return None
    value = getattr(event, event.person_field, None)
    return str(value) if value else None


def _person_in(payload: bytes) -> str | None:
    # A poison payload may be anything (nested 10,000 deep, say): read only a readable one.
    if refusal(payload) is not None:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = data.get("ambassador_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


async def record_failure(
    db: DatabaseT, consumer: str, stream: str, seq: int, error: str, event: Event | None = None
) -> None:
    """Keep the last error of a delivery so a dead letter can say why it died."""
    update: dict[str, Any] = {
        "$set": {"consumer": consumer, "error": error[:ERROR_MAX], "updated_at": _now()},
        "$inc": {"attempts": 1},
    }
    person = person_of(event)
    if person is not None:
        update["$set"]["person"] = person
    await db.failures.update_one({"_id": dead_letter_id(stream, seq)}, update, upsert=True)


async def store_dead_letter(
    db: DatabaseT,
    js: JetStreamContext,
    advisory: dict[str, Any],
    reason: str | None = None,
    scrub: Scrub | None = None,
) -> str:
    """Store the message an advisory names; idempotent for a repeated advisory."""
    stream = str(advisory["stream"])
    seq = int(advisory["stream_seq"])
    key = dead_letter_id(stream, seq)
    gone = False
    try:
        original = await js.get_msg(stream, seq)
    except NotFoundError:
        # Aged out or purged: record what the advisory knows. Failing here instead would
        # redeliver the advisory forever.
        original, gone = RawStreamMsg(stream=stream, seq=seq), True
    failure = await db.failures.find_one({"_id": key})
    data = original.data or b""
    event_id = (original.headers or {}).get("Nats-Msg-Id")
    reason = reason or (failure or {}).get("error") or "deliveries exhausted"
    if gone:
        reason += " (the message is no longer in the stream)"
    doc: dict[str, Any] = {
        "stream": stream,
        "seq": seq,
        "consumer": advisory.get("consumer"),
        "subject": original.subject,
        "event_id": event_id,
        "payload": data,
        "deliveries": advisory.get("deliveries"),
        "reason": reason,
        "dead_at": _now(),
        "replays": [],
    }
    person = _person_in(data)
    if person is not None:
        doc["person"] = person
    if scrub is not None and data and await scrub(original.subject, data):
        doc |= _scrubbed(_now())
    await db.dead_letters.update_one({"_id": key}, {"$setOnInsert": doc}, upsert=True)
    return key


async def store_poison(
    db: DatabaseT,
    *,
    stream: str,
    seq: int,
    consumer: str,
    subject: str,
    payload: bytes,
    reason: str,
) -> str:
    """A message that can never be applied (it does not parse) goes straight here."""
    key = dead_letter_id(stream, seq)
    doc: dict[str, Any] = {
        "stream": stream,
        "seq": seq,
        "consumer": consumer,
        "subject": subject,
        "event_id": None,
        "payload": payload,
        "deliveries": 1,
        "reason": reason[:ERROR_MAX],
        "dead_at": _now(),
        "replays": [],
    }
    person = _person_in(payload)
    if person is not None:
        doc["person"] = person
    await db.dead_letters.update_one({"_id": key}, {"$setOnInsert": doc}, upsert=True)
    return key


def _scrubbed(now: datetime) -> dict[str, Any]:
    return {"payload": b"", "reason": SCRUBBED_REASON, "scrubbed_at": now}


async def scrub_person(db: DatabaseT, person: str, session: Session | None, now: datetime) -> int:
    """Erasure: the payload and error of every dead letter and failure about ``person`` go.

    Found by the id kept with each (events that name an ambassador), and by a look through
    the payloads of the rest (few: dead letters are rare), so that a message that did not
    parse, but names the person, goes too."""
    ids = {
        doc["_id"]
        async for doc in db.dead_letters.find({"person": person}, {"_id": 1}, session=session)
    }
    needle = person.encode()
    async for doc in db.dead_letters.find(
        {"scrubbed_at": None}, {"_id": 1, "payload": 1, "reason": 1}, session=session
    ):
        if needle in bytes(doc.get("payload") or b"") or person in str(doc.get("reason") or ""):
            ids.add(doc["_id"])
    if ids:
        await db.dead_letters.update_many(
            {"_id": {"$in": list(ids)}}, {"$set": _scrubbed(now)}, session=session
        )
    await db.failures.update_many(
        {"$or": [{"person": person}, {"_id": {"$in": list(ids)}}]},
        {"$set": {"error": SCRUBBED_REASON}},
        session=session,
    )
    return len(ids)


async def load(db: DatabaseT, dead_letter: str) -> dict[str, Any] | None:
    return await db.dead_letters.find_one({"_id": dead_letter})


async def page(db: DatabaseT, *, include_replayed: bool, limit: int) -> list[DeadLetterView]:
    criteria: dict[str, Any] = {} if include_replayed else {"replayed_at": None}
    cursor = db.dead_letters.find(criteria).sort("dead_at", DESCENDING).limit(limit)
    return [view(doc) async for doc in cursor]


async def count_waiting(db: DatabaseT) -> int:
    """Dead letters not yet replayed."""
    return int(await db.dead_letters.count_documents({"replayed_at": None}))


async def show(db: DatabaseT, dead_letter: str) -> DeadLetterView | None:
    doc = await load(db, dead_letter)
    return view(doc, with_payload=True) if doc is not None else None


async def record_replay(
    db: DatabaseT, dead_letter: str, now: datetime, error: BaseException | None
) -> None:
    replay = {"at": now, "error": repr(error)[:500] if error is not None else None}
    update: dict[str, Any] = {"$push": {"replays": replay}}
    if error is None:
        update["$set"] = {"replayed_at": now}
    await db.dead_letters.update_one({"_id": dead_letter}, update)


def view(doc: dict[str, Any], with_payload: bool = False) -> DeadLetterView:
    found = DeadLetterView(
        id=doc["_id"],
        stream=doc["stream"],
        seq=doc["seq"],
        consumer=doc.get("consumer"),
        subject=doc.get("subject"),
        event_id=doc.get("event_id"),
        deliveries=doc.get("deliveries"),
        reason=doc.get("reason"),
        dead_at=doc["dead_at"].isoformat(),
        replayed_at=doc["replayed_at"].isoformat() if doc.get("replayed_at") else None,
        replays=len(doc.get("replays", [])),
        scrubbed=doc.get("scrubbed_at") is not None,
    )
    if with_payload and not found.scrubbed:
        show_payload(found, doc.get("payload"))
    return found


def show_payload(view: DeadLetterView, payload: bytes | None) -> None:
    """The message as it was: JSON as JSON, anything else as base64."""
    data = bytes(payload or b"")
    if refusal(data) is None:
        try:
            view.payload = json.loads(data)
            return
        except (ValueError, RecursionError):
            pass
    # Not JSON, or JSON nobody should have to read (nested 10,000 deep).
    view.payload_base64 = base64.b64encode(data).decode()


def _now() -> datetime:
    return datetime.now(UTC)
