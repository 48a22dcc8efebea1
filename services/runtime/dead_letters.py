"""Dead letters: events a consumer could not apply within its bounded deliveries.

JetStream announces an exhausted message with a MAX_DELIVERIES advisory. Each service
captures the advisories about its own durable consumer in a small stream of its own
(``DLQ_<SERVICE>``), so none is lost while the service is down, and stores the original
message here with the last error its handler raised. Operators list, show and replay them
through the CLI; replay runs the same inbox-guarded handler again.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pymongo import DESCENDING

from services.runtime.mongo import DatabaseT

ADVISORY_PREFIX = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
ERROR_MAX = 2000


def advisory_stream_name(service: str) -> str:
    return f"DLQ_{service.upper()}"


def advisory_subject(durable: str) -> str:
    return f"{ADVISORY_PREFIX}.*.{durable}"


def dead_letter_id(stream: str, seq: int) -> str:
    return f"{stream}-{seq}"


async def ensure_advisory_stream(
    js: JetStreamContext, service: str, durable: str, replicas: int
) -> None:
    config = StreamConfig(
        name=advisory_stream_name(service),
        subjects=[advisory_subject(durable)],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        num_replicas=replicas,
        max_age=90 * 24 * 3600,
    )
    try:
        await js.stream_info(config.name or "")
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)


async def ensure_dead_letter_indexes(db: DatabaseT) -> None:
    await db.dead_letters.create_index([("dead_at", DESCENDING)])
    await db.failures.create_index("updated_at", expireAfterSeconds=90 * 24 * 3600)


async def record_failure(db: DatabaseT, consumer: str, stream: str, seq: int, error: str) -> None:
    """Keep the last error of a delivery so a dead letter can say why it died."""
    await db.failures.update_one(
        {"_id": dead_letter_id(stream, seq)},
        {
            "$set": {"consumer": consumer, "error": error[:ERROR_MAX], "updated_at": _now()},
            "$inc": {"attempts": 1},
        },
        upsert=True,
    )


async def store_dead_letter(
    db: DatabaseT,
    js: JetStreamContext,
    advisory: dict[str, Any],
    reason: str | None = None,
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
    await db.dead_letters.update_one(
        {"_id": key},
        {
            "$setOnInsert": {
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
        },
        upsert=True,
    )
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
    await db.dead_letters.update_one(
        {"_id": key},
        {
            "$setOnInsert": {
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
        },
        upsert=True,
    )
    return key


def public_view(doc: dict[str, Any], with_payload: bool = False) -> dict[str, Any]:
    view = {
        "id": doc["_id"],
        "stream": doc["stream"],
        "seq": doc["seq"],
        "consumer": doc.get("consumer"),
        "subject": doc.get("subject"),
        "event_id": doc.get("event_id"),
        "deliveries": doc.get("deliveries"),
        "reason": doc.get("reason"),
        "dead_at": doc["dead_at"].isoformat(),
        "replayed_at": doc["replayed_at"].isoformat() if doc.get("replayed_at") else None,
        "replays": len(doc.get("replays", [])),
    }
    if with_payload:
        payload = bytes(doc.get("payload") or b"")
        try:
            view["payload"] = json.loads(payload)
        except ValueError:
            view["payload_base64"] = base64.b64encode(payload).decode()
    return view


def _now() -> datetime:
    return datetime.now(UTC)
