"""The transactional outbox and its relay: the only way an event reaches the bus.

A handler calls :func:`add_to_outbox` inside the same transaction as its state change. The
relay claims pending entries atomically (several replicas may run), publishes each to
JetStream with ``Nats-Msg-Id = event_id`` so the server drops a re-publish after a crash,
waits for the ack, then marks the entry published. It retries forever with backoff.

Entries written by a process that runs a relay are born claimed by that relay (state
``in_progress`` with its lease) and handed to it in memory after the commit: the common case
costs no claim queries at all. If the process dies first, the lease runs out and any relay
publishes them, exactly as for an entry whose relay died mid-publish.

Marking a batch published moves it out of the outbox: one ``outbox_published`` document
records where each of its events went (subject, key, stream position, not the payload: the
stream holds the event, and personal data is not kept twice), and the entries are deleted.
So the outbox holds only what is still to be published, and an entry is written twice in
its life (inserted, deleted) rather than rewritten with every index it has. The records are
what :func:`purge_published_events` needs to delete a person's events on erasure.

An entry that can never be published (its subject is not on the service's stream, its
payload is larger than the server takes, the stream refuses it) moves to the ``failed``
state with the reason: the relay goes on with the rest, ``samskab health`` counts it and
``samskab dead-letters`` shows it, and replaying it queues it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from pymongo import ASCENDING

from contracts.envelope import Event
from contracts.operations import DeadLetterView
from services.runtime import tracing
from services.runtime.background import Loop, retry
from services.runtime.dead_letters import show_payload
from services.runtime.logging import get_logger
from services.runtime.mongo import DatabaseT, Session, delete_in, drop_indexes, find_in, update_in

log = get_logger(__name__)

PENDING = "pending"
IN_PROGRESS = "in_progress"
FAILED = "failed"  # can never be published: kept with the reason for an operator
PUBLISHED = "published"  # only entries an older release left in the outbox are

# JetStream's "message size exceeds maximum allowed" (the stream's max_msg_size).
JS_MESSAGE_TOO_LARGE = 10054
# How a failed outbox entry is named among the dead letters.
FAILED_PREFIX = "outbox-"

# Records of published events are kept as long as their event can be in a stream, so a
# person's events can still be found and purged on erasure.
PUBLISHED_RETENTION = timedelta(days=400)


@dataclass(frozen=True)
class Claim:
    """Who publishes a new entry and until when, when it is born claimed."""

    worker_id: str
    until: datetime


def outbox_document(event: Event, order: int, claim: Claim | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": str(event.event_id),
        "subject": event.subject,
        "key": event.key(),
        "payload": event.model_dump_json().encode(),
        "state": PENDING,
        "order": order,
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }
    # The trace of the handler that emitted it, continued by whoever consumes it.
    if trace := tracing.carrier():
        doc["trace"] = trace
    if claim is not None:
        doc |= {
            "state": IN_PROGRESS,
            "claimed_by": claim.worker_id,
            "claimed_until": claim.until,
            "attempts": 1,
        }
    return doc


async def add_to_outbox(
    db: DatabaseT, session: Session | None, events: Iterable[Event], claim: Claim | None = None
) -> list[dict[str, Any]]:
    """Record events as part of the caller's transaction; returns the entries written."""
    base = time.time_ns()
    docs = [outbox_document(event, base + i, claim) for i, event in enumerate(events)]
    if docs:
        await db.outbox.insert_many(docs, session=session, ordered=True)
    return docs


@dataclass(frozen=True)
class PublishedEvent:
    """Where one published event went, as its ``outbox_published`` record says."""

    event_id: str
    subject: str
    key: str | None
    stream: str
    seq: int
    published_at: datetime


# Indexes of older releases, which kept published entries in the outbox.
_LEGACY_OUTBOX_INDEXES = ("claimed_by_1", "key_1_state_1", "published_at_1")


async def ensure_outbox_indexes(db: DatabaseT) -> None:
    await db.outbox.create_index([("state", ASCENDING), ("order", ASCENDING)])
    # Each index costs every insert and delete a write; the outbox needs only its claim
    # order now that published entries leave it.
    await drop_indexes(db.outbox, _LEGACY_OUTBOX_INDEXES)
    ttl = int(PUBLISHED_RETENTION.total_seconds())
    await db.outbox_published.create_index("published_at", expireAfterSeconds=ttl)
    await db.outbox_published.create_index("events.key", sparse=True)
    await _move_published_entries(db)


async def _move_published_entries(db: DatabaseT, chunk: int = 500) -> None:
    """Move the published entries an older release left in the outbox into records.

    Their stream positions are on the entry or in an ``outbox_batches`` document; a crash
    (or a second replica doing the same) midway only means some are recorded twice, which a
    purge tolerates.
    """
    while entries := await db.outbox.find({"state": PUBLISHED}).limit(chunk).to_list():
        batch_ids = list({e["batch"] for e in entries if "batch" in e})
        positions: dict[str, Any] = {}
        async for batch in db.outbox_batches.find({"_id": {"$in": batch_ids}}):
            positions |= batch.get("positions", {})
        events = []
        for entry in entries:
            position = (
                [entry["stream"], entry["stream_seq"]]
                if "stream_seq" in entry
                else positions.get(entry["_id"])
            )
            if position is None or "purged_at" in entry:
                continue  # aged out of its record, or already purged from the stream
            events.append(_record(entry, position[0], int(position[1])))
        if events:
            newest = max(e.get("published_at") or datetime.now(UTC) for e in entries)
            await db.outbox_published.insert_one(
                {"_id": uuid.uuid4().hex, "published_at": newest, "events": events}
            )
        await db.outbox.delete_many({"_id": {"$in": [e["_id"] for e in entries]}})
    # The old ``outbox_batches`` documents are left to their TTL index: a replica starting
    # at the same moment may still be reading them.


def _record(entry: dict[str, Any], stream: str, seq: int) -> dict[str, Any]:
    return {
        "id": entry["_id"],
        "subject": entry["subject"],
        "key": entry.get("key"),
        "stream": stream,
        "seq": seq,
    }


async def published_events(
    db: DatabaseT, subjects: Iterable[str] | None = None
) -> list[PublishedEvent]:
    """The records of published events (of ``subjects``), oldest first. An event published
    again after its relay died before recording it appears once per record."""
    wanted = set(subjects) if subjects is not None else None
    criteria = {"events.subject": {"$in": list(wanted)}} if wanted is not None else {}
    found = []
    async for record in db.outbox_published.find(criteria).sort("published_at", ASCENDING):
        found += [
            PublishedEvent(
                event_id=e["id"],
                subject=e["subject"],
                key=e.get("key"),
                stream=e["stream"],
                seq=int(e["seq"]),
                published_at=record["published_at"],
            )
            for e in record["events"]
            if wanted is None or e["subject"] in wanted
        ]
    return found


async def purge_published_events(
    db: DatabaseT, js: JetStreamContext, key: str, keep_subjects: Iterable[str] = ()
) -> int:
    """Delete the published events about ``key`` from their streams.

    Returns how many of its events are not published yet (call again later for those).
    Events whose subject is in ``keep_subjects`` stay: consumers still need them.
    """
    keep = list(keep_subjects)
    # Counted first: an entry is recorded before it leaves the outbox, so whatever is not
    # counted here is in a record the loop below reads. (The outbox holds only unpublished
    # entries: no index on the key is worth its writes.)
    unpublished = await db.outbox.count_documents(
        {"key": key, "state": {"$in": [PENDING, IN_PROGRESS]}}
    )
    async for record in db.outbox_published.find({"events.key": key}):
        for event in record["events"]:
            if event.get("key") == key and event["subject"] not in keep:
                with contextlib.suppress(NotFoundError):  # aged out of the stream already
                    await js.delete_msg(event["stream"], int(event["seq"]))
        # Deleted from the stream, so out of the record: a second purge finds nothing.
        await db.outbox_published.update_one(
            {"_id": record["_id"]},
            {"$pull": {"events": {"key": key, "subject": {"$nin": keep}}}},
        )
    return unpublished


@dataclass(frozen=True)
class OutboxCounts:
    pending: int
    failed: int


async def counts(db: DatabaseT) -> OutboxCounts:
    pending = await db.outbox.count_documents({"state": {"$in": [PENDING, IN_PROGRESS]}})
    failed = await db.outbox.count_documents({"state": FAILED})
    return OutboxCounts(pending=pending, failed=failed)


def _failed_view(doc: dict[str, Any], with_payload: bool = False) -> DeadLetterView:
    found = DeadLetterView(
        id=f"{FAILED_PREFIX}{doc['_id']}",
        kind="outbox",
        subject=doc.get("subject"),
        event_id=doc["_id"],
        deliveries=doc.get("attempts"),
        reason=doc.get("failed_reason"),
        dead_at=(doc.get("failed_at") or doc["created_at"]).isoformat(),
    )
    if with_payload:
        show_payload(found, doc.get("payload"))
    return found


async def failed_entries(db: DatabaseT, *, limit: int) -> list[DeadLetterView]:
    """Entries that can never be published, newest first (the dead letters list them)."""
    cursor = db.outbox.find({"state": FAILED}, {"payload": 0}).sort("order", -1).limit(limit)
    return [_failed_view(doc) async for doc in cursor]


async def failed_entry(db: DatabaseT, name: str) -> DeadLetterView | None:
    if not name.startswith(FAILED_PREFIX):
        return None
    doc = await db.outbox.find_one({"_id": name.removeprefix(FAILED_PREFIX), "state": FAILED})
    return _failed_view(doc, with_payload=True) if doc is not None else None


async def retry_failed(db: DatabaseT, name: str) -> bool:
    """Queue a failed entry for publishing again (after its cause was mended)."""
    if not name.startswith(FAILED_PREFIX):
        return False
    result = await db.outbox.update_one(
        {"_id": name.removeprefix(FAILED_PREFIX), "state": FAILED},
        {"$set": {"state": PENDING}, "$unset": {"failed_reason": "", "failed_at": ""}},
    )
    return result.modified_count == 1


def never_publishable(error: BaseException) -> bool:
    """An error no retry can mend: the message is too large for the server or the stream."""
    if isinstance(error, MaxPayloadError):
        return True
    return isinstance(error, APIError) and error.err_code == JS_MESSAGE_TOO_LARGE


class OutboxRelay:
    """Publishes outbox entries; one per service process, safe to run in several replicas."""

    def __init__(
        self,
        db: DatabaseT,
        js: JetStreamContext,
        *,
        batch_size: int = 100,
        poll_seconds: float = 0.2,
        claim_timeout_seconds: float = 30.0,
        publish_timeout_seconds: float = 5.0,
        mark_delay_seconds: float = 0.1,
        subjects: str | None = None,
        max_payload: Callable[[], int] | None = None,
    ) -> None:
        self._db = db
        self._js = js
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._claim_timeout = timedelta(seconds=claim_timeout_seconds)
        self._publish_timeout = publish_timeout_seconds
        # What the service's stream takes: subjects with this prefix, up to this size.
        self._subjects = subjects
        self._max_payload = max_payload
        self._stopping = False
        self._last_poll = 0.0
        # Backoff capped at a second: when a stream's leader fails over (4-9 s in a NATS
        # cluster), the relay publishes again within a second of the new one, instead of
        # after a wait grown to tens of seconds; a failed try costs one request.
        self._loop = Loop(
            "outbox relay", self._step, every=poll_seconds, wait_initial=0.2, wait_max=1.0
        )
        self._handed: list[dict[str, Any]] = []
        # Published, not yet marked: marked together a moment later, off the publishing path.
        self._unmarked: list[tuple[dict[str, Any], Any]] = []
        self._marker: asyncio.Task[None] | None = None
        self._mark_delay = mark_delay_seconds
        self.worker_id = uuid.uuid4().hex

    def claim(self) -> Claim:
        """The claim new entries are born with, when this relay will publish them itself."""
        return Claim(self.worker_id, datetime.now(UTC) + self._claim_timeout)

    def hand_over(self, entries: Iterable[dict[str, Any]]) -> None:
        """Committed entries born with :meth:`claim`: published next, without a query."""
        self._handed.extend(entries)
        self._loop.wake()

    def wake(self) -> None:
        """Look for entries now (e.g. a failed one queued again), not at the next poll."""
        self._last_poll = 0.0
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        self._stopping = True
        # The publish in flight finishes, so a clean restart has nothing to wait for.
        await self._loop.stop(graceful=True)
        if self._handed:
            # Last try, so a clean restart does not wait for their lease to run out.
            with contextlib.suppress(Exception):
                await self._publish_handed()
        if self._marker is not None:
            await self._marker

    async def _step(self) -> bool:
        """One round: what was handed over, and every poll interval a claim for what no
        one handed over (a dead relay's entries, released ones, other writers'): once per
        interval, not on every hand-over, which would cost each sign-up a query. True
        while there is more to publish at once."""
        published = 0
        if self._handed:
            published = await self._publish_handed()
        if time.monotonic() - self._last_poll >= self._poll:
            self._last_poll = time.monotonic()
            published += await self._publish(await self._claim(), defer_mark=True)
        return published > 0 or bool(self._handed)

    async def _publish_handed(self) -> int:
        batch = self._handed[: self._batch_size]
        del self._handed[: len(batch)]
        return await self._publish(batch, defer_mark=True)

    async def relay_once(self) -> int:
        """Claim one batch and publish it; returns how many were published."""
        return await self._publish(await self._claim())

    async def _publish(self, batch: list[dict[str, Any]], *, defer_mark: bool = False) -> int:
        """Publish entries this relay holds the claim of, mark them; failed ones released.

        ``defer_mark``: leave the marking to the background marker, which marks whatever
        was published meanwhile in one go; the next batch is published without waiting.
        """
        if not batch:
            return 0
        unpublishable = [(entry, self._refusal(entry)) for entry in batch]
        if any(reason for _, reason in unpublishable):
            await self._fail([(e["_id"], reason) for e, reason in unpublishable if reason])
            batch = [entry for entry, reason in unpublishable if reason is None]
            if not batch:
                return 0
        # Sent back to back, in order, then the acks awaited together: one round trip per
        # batch instead of one per event. Only a failure can leave a later event ahead of
        # an earlier one on the stream.
        results = await asyncio.gather(
            *(
                self._js.publish(
                    entry["subject"],
                    bytes(entry["payload"]),
                    headers={"Nats-Msg-Id": entry["_id"], **entry.get("trace", {})},
                    timeout=self._publish_timeout,
                )
                for entry in batch
            ),
            return_exceptions=True,
        )
        published = [
            (entry, ack)
            for entry, ack in zip(batch, results, strict=True)
            if not isinstance(ack, BaseException)
        ]
        if published and defer_mark:
            self._unmarked.extend(published)
            if self._marker is None or self._marker.done():
                self._marker = asyncio.create_task(self._mark_deferred(), name="outbox-marker")
        elif published:
            await self._mark_published(published)
        log.debug("outbox entries published", published=len(published), batch=len(batch))
        errors = [
            (entry["_id"], error)
            for entry, error in zip(batch, results, strict=True)
            if isinstance(error, BaseException)
        ]
        hopeless = [
            (entry_id, repr(error)) for entry_id, error in errors if never_publishable(error)
        ]
        if hopeless:
            await self._fail(hopeless)
        failed = [(entry_id, error) for entry_id, error in errors if not never_publishable(error)]
        if failed:
            # Hand them back at once so none waits for its lease to run out.
            await self._release([entry_id for entry_id, _ in failed], repr(failed[0][1]))
            raise failed[0][1]
        return len(published)

    def _refusal(self, entry: dict[str, Any]) -> str | None:
        """Why ``entry`` can never be published, found before trying; None if it can."""
        if self._subjects is not None and not str(entry["subject"]).startswith(self._subjects):
            return f"subject {entry['subject']} is not on this service's stream ({self._subjects}>)"
        size = len(bytes(entry["payload"]))
        limit = self._max_payload() if self._max_payload is not None else None
        if limit is not None and size > limit:
            return f"payload of {size} bytes exceeds the server's limit of {limit} bytes"
        return None

    async def _fail(self, reasons: list[tuple[str, str]]) -> None:
        """Out of the way for good: ``failed`` with the reason, until an operator replays it."""
        for entry_id, reason in reasons:
            log.error("outbox entry can never be published", event_id=entry_id, reason=reason)
            await self._db.outbox.update_one(
                {"_id": entry_id, "claimed_by": self.worker_id},
                {
                    "$set": {
                        "state": FAILED,
                        "failed_reason": reason[:500],
                        "failed_at": datetime.now(UTC),
                    },
                    "$unset": {"claimed_by": "", "claimed_until": ""},
                },
            )

    async def _mark_deferred(self) -> None:
        """Mark what was published, a batch every ``mark_delay`` while there is any.

        Until marked, entries stay claimed by this relay; if marking keeps failing their
        lease runs out and they are published again, which the stream drops as duplicates.
        """
        while self._unmarked:
            if not self._stopping:
                await asyncio.sleep(self._mark_delay)  # let more gather: one mark for all
            batch = self._unmarked[:1000]
            try:
                await retry(
                    functools.partial(self._mark_published, batch),
                    what="marking published outbox entries",
                    attempts=3 if self._stopping else None,
                    wait_max=5.0,
                )
            except Exception:
                return  # stopping: their lease brings them back after a restart
            del self._unmarked[: len(batch)]

    async def _mark_published(self, published: list[tuple[dict[str, Any], Any]]) -> None:
        """Record where a batch went, then take it out of the outbox: two writes for the batch.

        Per-entry writes would cost a commit (an fsync) each; one transaction for them all
        would leave the entries locked for a minute when the process dies mid-mark (an
        abandoned transaction lives until the server reaps it, and the next relay's claim
        waits on it). So the record goes in first and one plain delete follows; a crash
        between the two only means the entries are published again, which the stream drops
        as duplicates (its ack names the first copy's position), and recorded twice.
        """
        await self._db.outbox_published.insert_one(
            {
                "_id": uuid.uuid4().hex,
                "published_at": datetime.now(UTC),
                "events": [_record(entry, ack.stream, ack.seq) for entry, ack in published],
            }
        )
        # Only while still ours: had the lease run out, the relay that took over deletes it.
        await delete_in(
            self._db.outbox,
            [entry["_id"] for entry, _ in published],
            {"claimed_by": self.worker_id},
        )

    async def _claim(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        # Two queries on the indexed (state, order), not one over both states: entries other
        # relays hold must not fill the window, or a second replica would find only those
        # while a backlog waits behind them. (An $or would make MongoDB-compatible servers
        # scan the whole outbox.)
        fields = {"_id": 1, "state": 1, "order": 1}
        waiting = self._db.outbox.find({"state": PENDING}, fields)
        # An entry claimed by a relay that died is claimable again once its lease ran out.
        abandoned = self._db.outbox.find(
            {"state": IN_PROGRESS, "claimed_until": {"$lt": now}}, fields
        )
        found = [
            doc
            for cursor in (waiting, abandoned)
            async for doc in cursor.sort("order", ASCENDING).limit(self._batch_size)
        ]
        candidates = sorted(found, key=lambda doc: doc["order"])[: self._batch_size]
        pending = [doc["_id"] for doc in candidates if doc["state"] == PENDING]
        expired = [doc["_id"] for doc in candidates if doc["state"] == IN_PROGRESS]
        if not pending and not expired:
            return []
        log.debug("outbox entries to claim", pending=len(pending), expired=len(expired))
        claim = {
            "$set": {
                "state": IN_PROGRESS,
                "claimed_by": self.worker_id,
                "claimed_until": now + self._claim_timeout,
            },
            "$inc": {"attempts": 1},
        }
        # Each filter repeats the claimable test, so of two relays racing for an entry
        # exactly one update matches it.
        await update_in(self._db.outbox, pending, {"state": PENDING}, claim)
        await update_in(
            self._db.outbox,
            expired,
            {"state": IN_PROGRESS, "claimed_until": {"$lt": now}},
            claim,
        )
        claimed = await find_in(
            self._db.outbox,
            pending + expired,
            {"state": IN_PROGRESS, "claimed_by": self.worker_id},
        )
        return sorted(claimed, key=lambda doc: doc["order"])

    async def _release(self, ids: list[str], error: str) -> None:
        await update_in(
            self._db.outbox,
            ids,
            {"claimed_by": self.worker_id, "state": IN_PROGRESS},
            {
                "$set": {"state": PENDING, "last_error": error[:500]},
                "$unset": {"claimed_by": "", "claimed_until": ""},
            },
        )
