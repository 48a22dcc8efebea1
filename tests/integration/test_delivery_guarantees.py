"""Never lose, never double: the shared runtime against a real nats-server and SecantusDB.

Each test runs its services in this process against the session's servers, in a corner of
its own: a fresh ``tp<hex>`` subject prefix (so its own stream), fresh service names (so
their own durable consumers, dead-letter streams and databases). Tests wait for conditions
with a deadline; none sleeps and then hopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, RawStreamMsg
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient

from contracts.endpoints import Endpoint
from contracts.envelope import Event
from contracts.errors import ErrorCode, ServiceError
from contracts.operations import (
    dead_letters_list_subject,
    dead_letters_replay_subject,
    dead_letters_show_subject,
    health_subject,
)
from services.runtime.client import ServiceClient
from services.runtime.dead_letters import advisory_stream_name, dead_letter_id
from services.runtime.mongo import (
    DatabaseOwnedByAnother,
    DatabaseT,
    Document,
    Session,
    connect,
    in_transaction,
)
from services.runtime.outbox import (
    OutboxRelay,
    add_to_outbox,
    ensure_outbox_indexes,
    published_events,
    purge_published_events,
)
from services.runtime.service import Service
from services.runtime.settings import ServiceSettings
from services.runtime.unit_of_work import UnitOfWork
from stack.mongo import MongoServer
from stack.nats import NatsServer
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def short_id() -> str:
    return uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------- a test's world


class ThingHappened(Event):
    """The producer's event; each test derives its own subject from it (see thing_event)."""

    key_field: ClassVar[str | None] = "thing"

    thing: str


def thing_event(prefix: str) -> type[ThingHappened]:
    class Thing(ThingHappened):
        subject: ClassVar[str] = f"{prefix}.v1.thing_happened"
        producer_name: ClassVar[str] = prefix

    return Thing


@dataclass
class Bed:
    """One test's private corner of the session servers: a producer prefix and its stream."""

    nats_url: str
    mongo_url: str
    nc: Client
    mongo: AsyncMongoClient[Document]
    prefix: str = field(default_factory=lambda: f"tp{short_id()}")

    def __post_init__(self) -> None:
        self.thing = thing_event(self.prefix)

    @property
    def stream(self) -> str:
        return self.prefix.upper()

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    def settings(self, service: str, **overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "nats_url": self.nats_url,
            "mongo_url": self.mongo_url,
            "mongo_database": f"t_{service}",
            "consumer_max_deliver": 3,
            "consumer_backoff_seconds": [0.2],
            "consumer_ack_wait_seconds": 5,
            "outbox_poll_seconds": 0.05,
            "request_timeout_seconds": 5,
        }
        values.update(overrides)
        return ServiceSettings(_env_file=None, **values)

    async def create_stream(self) -> None:
        await self.js.add_stream(name=self.stream, subjects=[f"{self.prefix}.v1.>"])

    async def publish(self, data: bytes, msg_id: str) -> int:
        """Publish raw bytes on the producer's subject; returns the stream sequence."""
        ack = await self.js.publish(self.thing.subject, data, headers={"Nats-Msg-Id": msg_id})
        assert not ack.duplicate, f"{msg_id} was dropped as a duplicate"
        return ack.seq

    async def stream_messages(self) -> list[RawStreamMsg]:
        state = (await self.js.stream_info(self.stream)).state
        if not state.messages:
            return []
        found = []
        for seq in range(state.first_seq, state.last_seq + 1):
            with contextlib.suppress(NotFoundError):  # a deleted message leaves a gap
                found.append(await self.js.get_msg(self.stream, seq))
        return found

    async def stream_count(self) -> int:
        return (await self.js.stream_info(self.stream)).state.messages

    def db(self, name: str) -> DatabaseT:
        return self.mongo[f"t_{name}"]


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


@pytest.fixture
async def mongo(mongo_server: MongoServer) -> AsyncIterator[AsyncMongoClient[Document]]:
    client = connect(mongo_server.url, "delivery-guarantee-tests")
    yield client
    await client.close()


@pytest.fixture
def bed(
    nats_server: NatsServer,
    mongo_server: MongoServer,
    nc: Client,
    mongo: AsyncMongoClient[Document],
) -> Bed:
    return Bed(nats_server.url, mongo_server.url, nc, mongo)


@asynccontextmanager
async def running(*services: Service) -> AsyncIterator[None]:
    """Start the services' FastStream apps in this process; stop them afterwards."""
    async with AsyncExitStack() as stack:
        for service in services:
            stack.push_async_callback(service.app.stop)
            await service.app.start()
        yield


class Counter:
    """A consumer of the bed's event that counts things in its own collection.

    Its handler writes first and fails afterwards (``fail_first`` deliveries, or every one
    while ``broken``), so a failed attempt that left a trace would show in the count. It
    fails by calling ``fault(thing, attempt)``, which raises a RuntimeError unless given.
    """

    def __init__(
        self,
        bed: Bed,
        *,
        fail_first: int = 0,
        broken: bool = False,
        name: str | None = None,
        fault: Callable[[str, int], object] | None = None,
        **settings: Any,
    ) -> None:
        self.name = name or f"tc{short_id()}"
        self.bed = bed
        self.service = Service(self.name, bed.settings(self.name, **settings))
        self.fail_first = fail_first
        self.broken = broken
        self.fault = fault or self._cannot_count
        self.attempts: list[tuple[str, float]] = []
        self.service.react(bed.thing, self._count)

    async def _count(self, uow: UnitOfWork, event: Any) -> None:
        self.attempts.append((str(event.event_id), time.monotonic()))
        await uow.db.things.update_one(
            {"_id": event.thing},
            {"$inc": {"count": 1}, "$push": {"event_ids": str(event.event_id)}},
            upsert=True,
            session=uow.session,
        )
        if self.broken or len(self.attempts) <= self.fail_first:
            self.fault(event.thing, len(self.attempts))
            raise AssertionError("the fault did not raise")

    @staticmethod
    def _cannot_count(thing: str, attempt: int) -> None:
        raise RuntimeError(f"cannot count {thing} (attempt {attempt})")

    @property
    def db(self) -> DatabaseT:
        return self.bed.db(self.name)

    async def counted(self, thing: str) -> int:
        doc = await self.db.things.find_one({"_id": thing})
        return int(doc["count"]) if doc else 0

    async def inbox_records(self, event_id: uuid.UUID) -> int:
        return await self.db.inbox.count_documents({"event_id": str(event_id)})

    async def consumer_info(self) -> ConsumerInfo:
        info: ConsumerInfo = await self.bed.js.consumer_info(self.bed.stream, self.name)
        return info

    async def acked_through(self, seq: int) -> bool:
        """Every message up to ``seq`` is acknowledged: none will be delivered again."""
        info = await self.consumer_info()
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        return floor >= seq and info.num_ack_pending == 0

    async def dead_letter(self, seq: int) -> Document | None:
        return await self.db.dead_letters.find_one({"_id": dead_letter_id(self.bed.stream, seq)})


# --------------------------------------------------------------------------- consumers


async def test_a_duplicated_event_is_applied_once(bed: Bed) -> None:
    await bed.create_stream()
    counter = Counter(bed)
    event = bed.thing(thing="apple")
    data = event.model_dump_json().encode()
    async with running(counter.service):
        # Two different Nats-Msg-Ids: the server's dedupe does not help, the stream holds both.
        first = await bed.publish(data, msg_id=f"{event.event_id}-a")
        await eventually(lambda: counter.acked_through(first), "the first copy to be acked")
        second = await bed.publish(data, msg_id=f"{event.event_id}-b")
        await eventually(lambda: counter.acked_through(second), "the second copy to be acked")

    assert await bed.stream_count() == 2
    assert await counter.counted("apple") == 1
    assert await counter.inbox_records(event.event_id) == 1
    # The inbox recognised the second copy before the handler ran.
    assert [event_id for event_id, _ in counter.attempts] == [str(event.event_id)]


async def test_duplicates_delivered_together_are_applied_once(bed: Bed) -> None:
    await bed.create_stream()
    counter = Counter(bed)
    event = bed.thing(thing="pear")
    data = event.model_dump_json().encode()
    # Stored before the consumer starts, so both copies arrive in one pull batch and are
    # handled concurrently: the inbox's unique key has to stop the second transaction.
    copies = [await bed.publish(data, msg_id=f"{event.event_id}-{n}") for n in range(3)]
    async with running(counter.service):
        await eventually(lambda: counter.acked_through(copies[-1]), "all copies to be acked")

    assert counter.attempts, "the handler never ran"
    assert await counter.counted("pear") == 1
    assert await counter.inbox_records(event.event_id) == 1
    thing = await counter.db.things.find_one({"_id": "pear"})
    assert thing is not None and thing["event_ids"] == [str(event.event_id)]


async def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds(bed: Bed) -> None:
    await bed.create_stream()
    counter = Counter(bed, fail_first=2)
    event = bed.thing(thing="plum")
    async with running(counter.service):
        seq = await bed.publish(event.model_dump_json().encode(), msg_id=str(event.event_id))
        await eventually(lambda: counter.acked_through(seq), "the event to be applied and acked")

    assert [event_id for event_id, _ in counter.attempts] == [str(event.event_id)] * 3
    # The two failed attempts wrote before raising; their transactions were rolled back.
    assert await counter.counted("plum") == 1
    assert await counter.inbox_records(event.event_id) == 1
    # NACKed with the configured delay (0.2 s), not redelivered at once.
    times = [at for _, at in counter.attempts]
    assert all(later - earlier >= 0.15 for earlier, later in itertools.pairwise(times))
    assert await counter.dead_letter(seq) is None
    failure = await counter.db.failures.find_one({"_id": dead_letter_id(bed.stream, seq)})
    assert failure is not None and failure["attempts"] == 2


async def test_an_event_that_keeps_failing_becomes_a_replayable_dead_letter(bed: Bed) -> None:
    await bed.create_stream()
    counter = Counter(bed, broken=True)
    event = bed.thing(thing="quince")
    key = dead_letter_id(bed.stream, 1)
    async with running(counter.service), ServiceClient(counter.service.settings) as client:
        seq = await bed.publish(event.model_dump_json().encode(), msg_id=str(event.event_id))
        assert seq == 1

        async def lagging() -> bool:
            # While it is being retried, the event counts as not yet handled.
            health = await client.request(health_subject(counter.name), {})
            return bool((health["consumer_lag"] or 0) >= 1)

        await eventually(lagging, "samskab health to show the event not yet handled", timeout=10)
        # The MAX_DELIVERIES advisory lands in the service's DLQ stream, which stores it.
        dead = await eventually(lambda: counter.dead_letter(seq), "the dead letter", timeout=20)
        assert dead["reason"] == "RuntimeError: cannot count quince (attempt 3)"
        assert dead["deliveries"] == 3
        assert dead["event_id"] == str(event.event_id)
        assert dead["subject"] == bed.thing.subject
        assert dead["consumer"] == counter.name
        assert len(counter.attempts) == 3  # max_deliver, and not one more
        info = await counter.consumer_info()
        assert info.num_ack_pending == 0 and info.num_pending == 0
        assert await counter.counted("quince") == 0
        advisories = await bed.js.stream_info(advisory_stream_name(counter.name))
        assert advisories.state.messages == 1

        listed = await client.request(dead_letters_list_subject(counter.name), {})
        assert [item["id"] for item in listed["items"]] == [key]
        shown = await client.request(dead_letters_show_subject(counter.name), {"id": key})
        assert shown["payload"]["thing"] == "quince"
        # It waits for an operator: samskab health says so, and that nothing else waits.
        health = await client.request(health_subject(counter.name), {})
        assert (health["status"], health["dead_letters"], health["consumer_lag"]) == (
            "degraded",
            1,
            0,
        )
        assert health["problems"] == ["1 dead letter waits to be replayed or looked at"]
        assert health["version"]

        # The dead letter does not block the consumer: the next event goes through.
        counter.broken = False
        later = bed.thing(thing="quince")
        later_seq = await bed.publish(later.model_dump_json().encode(), msg_id=str(later.event_id))
        await eventually(lambda: counter.acked_through(later_seq), "the next event to be applied")
        assert await counter.counted("quince") == 1

        replay = dead_letters_replay_subject(counter.name)
        assert await client.request(replay, {"id": key}) == {
            "service": counter.name,
            "id": key,
            "applied": True,
            "already_applied": False,
        }
        assert await counter.counted("quince") == 2
        again = await client.request(replay, {"id": key})
        assert again["applied"] is False and again["already_applied"] is True
        assert await counter.counted("quince") == 2
        assert await counter.inbox_records(event.event_id) == 1

        assert (await client.request(dead_letters_list_subject(counter.name), {}))["items"] == []
        health = await client.request(health_subject(counter.name), {})
        assert (health["status"], health["dead_letters"], health["problems"]) == ("ok", 0, [])
        everything = await client.request(
            dead_letters_list_subject(counter.name), {"include_replayed": True}
        )
        assert [(item["id"], item["replays"]) for item in everything["items"]] == [(key, 2)]

    # Three deliveries and the one replay that applied it; the second replay stopped at the
    # inbox before the handler, and nothing was redelivered after the advisory.
    assert len([a for a in counter.attempts if a[0] == str(event.event_id)]) == 4


async def test_a_replay_that_fails_again_is_reported_and_kept(bed: Bed) -> None:
    await bed.create_stream()
    counter = Counter(bed, broken=True)
    event = bed.thing(thing="lime")
    async with running(counter.service), ServiceClient(counter.service.settings) as client:
        seq = await bed.publish(event.model_dump_json().encode(), msg_id=str(event.event_id))
        await eventually(lambda: counter.dead_letter(seq), "the dead letter", timeout=20)
        key = dead_letter_id(bed.stream, seq)
        with pytest.raises(ServiceError) as failed:
            await client.request(dead_letters_replay_subject(counter.name), {"id": key})
        assert failed.value.code == ErrorCode.INTERNAL
        assert "cannot count lime" in str(failed.value)
        listed = await client.request(dead_letters_list_subject(counter.name), {})
        assert [(item["id"], item["replays"]) for item in listed["items"]] == [(key, 1)]
        assert await counter.counted("lime") == 0


async def test_a_poison_event_is_dead_lettered_at_once_and_does_not_block(bed: Bed) -> None:
    await bed.create_stream()
    counter = Counter(bed)
    good = bed.thing(thing="fig")
    async with running(counter.service):
        not_json = await bed.publish(b"{this is not json", msg_id="poison-1")
        not_the_model = await bed.publish(b'{"event_id": "not-a-uuid"}', msg_id="poison-2")
        good_seq = await bed.publish(good.model_dump_json().encode(), msg_id=str(good.event_id))
        await eventually(lambda: counter.acked_through(good_seq), "the good event to be applied")
        for seq in (not_json, not_the_model):
            dead = await counter.dead_letter(seq)
            assert dead is not None, f"message {seq} was not dead-lettered"
            assert dead["reason"].startswith("invalid event:")
            assert dead["deliveries"] == 1
            assert dead["event_id"] is None
        assert bytes((await counter.dead_letter(not_json) or {})["payload"]) == b"{this is not json"
        info = await counter.consumer_info()
        assert info.num_redelivered == 0 and info.num_ack_pending == 0

    # The handler never saw the poison, only the good event.
    assert [event_id for event_id, _ in counter.attempts] == [str(good.event_id)]
    assert await counter.counted("fig") == 1


async def test_an_event_on_a_subject_the_consumer_did_not_expect_is_not_acted_on(
    bed: Bed,
) -> None:
    """The consumer sees its stream's every subject; it applies only those it routes. A
    message that looks like the bed's event but arrives on another subject of the stream
    (and one nested too deep to be read) changes nothing, and blocks nothing after it."""
    await bed.create_stream()
    counter = Counter(bed)
    good = bed.thing(thing="kiwi")
    lookalike = bed.thing(thing="kiwi").model_dump_json().encode()
    async with running(counter.service):
        ack = await bed.js.publish(
            f"{bed.prefix}.v1.made_up", lookalike, headers={"Nats-Msg-Id": "made-up-1"}
        )
        deep = await bed.publish(b'{"thing": ' + b"[" * 5000 + b"]" * 5000 + b"}", "deep-1")
        good_seq = await bed.publish(good.model_dump_json().encode(), msg_id=str(good.event_id))
        await eventually(lambda: counter.acked_through(good_seq), "the good event to be applied")
        assert ack.seq < deep < good_seq
        assert await counter.dead_letter(ack.seq) is None  # not ours: acknowledged, not dead
        dead = await counter.dead_letter(deep)
        assert dead is not None and "deeper than" in dead["reason"]
        # An operator can look at it: the payload comes back as it was, in base64.
        async with ServiceClient(counter.service.settings) as client:
            shown = await client.request(
                dead_letters_show_subject(counter.name), {"id": dead["_id"]}
            )
        assert shown.get("payload") is None and shown["payload_base64"]
    assert [event_id for event_id, _ in counter.attempts] == [str(good.event_id)]
    assert await counter.counted("kiwi") == 1


async def test_a_validation_error_raised_by_the_handler_is_retried_not_poison(
    bed: Bed,
) -> None:
    """Only an event that does not parse is poison; a pydantic error in handler code is a
    failure like any other."""

    class Strict(BaseModel):
        n: int

    await bed.create_stream()
    counter = Counter(bed, fail_first=1, fault=lambda thing, _: Strict.model_validate({"n": thing}))
    event = bed.thing(thing="kiwi")
    async with running(counter.service):
        seq = await bed.publish(event.model_dump_json().encode(), msg_id=str(event.event_id))
        await eventually(lambda: counter.acked_through(seq), "the event to be applied")

    assert len(counter.attempts) == 2
    assert await counter.dead_letter(seq) is None
    assert await counter.counted("kiwi") == 1
    failure = await counter.db.failures.find_one({"_id": dead_letter_id(bed.stream, seq)})
    assert failure is not None and failure["error"].startswith("ValidationError:")


async def test_an_advisory_for_a_message_no_longer_stored_is_still_recorded(bed: Bed) -> None:
    await bed.create_stream()
    counter = Counter(bed)
    advisories = advisory_stream_name(counter.name)
    subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{bed.stream}.{counter.name}"
    advisory = {
        "type": "io.nats.jetstream.advisory.v1.max_deliver",
        "stream": bed.stream,
        "consumer": counter.name,
        "stream_seq": 42,
        "deliveries": 3,
    }
    async with running(counter.service):
        await bed.js.publish(subject, b"not an advisory")
        await bed.js.publish(subject, json.dumps(advisory).encode())
        dead = await eventually(lambda: counter.dead_letter(42), "the dead letter")

        async def settled() -> bool:
            info = await bed.js.consumer_info(advisories, counter.name)
            return (
                bool(info.ack_floor and info.ack_floor.stream_seq == 2) and not info.num_ack_pending
            )

        # Both advisories are settled: neither is redelivered in a loop.
        await eventually(settled, "both advisories to be settled")
        assert (await bed.js.consumer_info(advisories, counter.name)).num_redelivered == 0
    assert dead["reason"] == "deliveries exhausted (the message is no longer in the stream)"
    assert dead["subject"] is None and bytes(dead["payload"]) == b""
    assert await counter.db.dead_letters.count_documents({}) == 1


async def test_a_redeployed_consumer_takes_its_new_delivery_settings(bed: Bed) -> None:
    await bed.create_stream()
    before = Counter(bed, consumer_max_deliver=10, consumer_ack_wait_seconds=60)
    async with running(before.service):
        assert (await before.consumer_info()).config.max_deliver == 10
    # The same service (same durable) restarted with other settings.
    after = Counter(bed, name=before.name, consumer_max_deliver=3, consumer_ack_wait_seconds=5)
    async with running(after.service):
        config = (await after.consumer_info()).config
    assert (config.max_deliver, config.ack_wait) == (3, 5)


# --------------------------------------------------------------------------- outbox


def producer_db(bed: Bed) -> DatabaseT:
    return bed.db(bed.prefix)


async def _all_published(db: DatabaseT, expected: int) -> bool:
    """Every entry recorded as published and out of the outbox."""
    published = await published_events(db)
    return len(published) == expected and await db.outbox.count_documents({}) == 0


async def test_outbox_publishes_committed_events_once_in_order_never_aborted_ones(
    bed: Bed,
) -> None:
    producer = Service(bed.prefix, bed.settings(bed.prefix), produces=[bed.thing])

    class Abort(Exception):
        pass

    aborted = [bed.thing(thing=f"aborted-{n}") for n in range(3)]
    committed = [bed.thing(thing=f"committed-{n}") for n in range(5)]

    async def abort(uow: UnitOfWork) -> None:
        await uow.db.notes.insert_one({"note": "aborted"}, session=uow.session)
        uow.emit(*aborted)
        raise Abort

    async def commit(uow: UnitOfWork) -> str:
        await uow.db.notes.insert_one({"note": "committed"}, session=uow.session)
        uow.emit(*committed)
        return "done"

    async with running(producer):
        with pytest.raises(Abort):
            await producer.run(abort, name="a unit that fails")
        assert await producer.run(commit, name="a unit that commits") == "done"
        await eventually(
            lambda: _all_published(producer.db, len(committed)), "the outbox to be published"
        )

    messages = await bed.stream_messages()
    expected = [str(event.event_id) for event in committed]
    assert [json.loads(m.data or b"")["event_id"] for m in messages] == expected
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in messages] == expected
    assert {m.subject for m in messages} == {bed.thing.subject}
    assert [e.event_id for e in await published_events(producer_db(bed))] == expected
    assert [doc["note"] async for doc in producer_db(bed).notes.find()] == ["committed"]


async def _outbox(bed: Bed, events: int, per_transaction: int = 100) -> DatabaseT:
    db = producer_db(bed)
    await ensure_outbox_indexes(db)
    things = [bed.thing(thing=f"t{n}") for n in range(events)]

    for start in range(0, events, per_transaction):
        chunk = things[start : start + per_transaction]

        async def add(session: Session, chunk: list[ThingHappened] = chunk) -> None:
            await add_to_outbox(db, session, chunk)

        await in_transaction(bed.mongo, add)
    return db


async def _drain(relay: OutboxRelay, db: DatabaseT) -> int:
    """Run ``relay`` until the outbox holds nothing unpublished; how many did it publish."""
    published = 0
    while True:
        batch = await relay.relay_once()
        published += batch
        if batch == 0:
            if await db.outbox.count_documents({}) == 0:
                return published
            # Jittered: two relays in one event loop otherwise fall into lockstep, the same
            # one winning every race for the same entries.
            await asyncio.sleep(random.uniform(0.0, 0.02))


async def test_two_relays_on_one_outbox_publish_each_entry_exactly_once(
    bed: Bed, nats_server: NatsServer
) -> None:
    await bed.create_stream()
    db = await _outbox(bed, 300)
    second_nc = await nats.connect(nats_server.url)
    try:
        relays = [
            OutboxRelay(db, bed.js, batch_size=10),
            OutboxRelay(db, second_nc.jetstream(), batch_size=10),
        ]
        counts = await asyncio.wait_for(
            asyncio.gather(*(_drain(relay, db) for relay in relays)), timeout=60
        )
    finally:
        await second_nc.close()

    # Counted on the relays' side: the server's dedupe would hide a doubly claimed entry.
    assert min(counts) > 0, f"one relay did all the work, nothing raced: {counts}"
    assert sum(counts) == 300, counts
    messages = await bed.stream_messages()
    assert len(messages) == 300
    ids = {json.loads(m.data or b"")["event_id"] for m in messages}
    assert len(ids) == 300
    assert ids == {(m.headers or {}).get("Nats-Msg-Id") for m in messages}
    # Recorded once each: a doubly claimed entry would have two records.
    recorded = [e.event_id for e in await published_events(db)]
    assert len(recorded) == 300 and set(recorded) == ids


async def test_an_entry_of_a_relay_that_died_is_republished_and_deduplicated(bed: Bed) -> None:
    await bed.create_stream()
    db = await _outbox(bed, 1)
    entry = await db.outbox.find_one({})
    assert entry is not None
    # A relay claimed it, published it and died before recording it: its claim stays.
    await bed.js.publish(
        entry["subject"], bytes(entry["payload"]), headers={"Nats-Msg-Id": entry["_id"]}
    )
    now = datetime.now(UTC)
    await db.outbox.update_one(
        {"_id": entry["_id"]},
        {
            "$set": {
                "state": "in_progress",
                "claimed_by": "a-relay-that-died",
                "claimed_until": now + timedelta(seconds=60),
            },
            "$inc": {"attempts": 1},
        },
    )
    second = OutboxRelay(db, bed.js)
    assert await second.relay_once() == 0, "took an entry whose lease has not run out"
    assert await db.outbox.count_documents({}) == 1

    await db.outbox.update_one(
        {"_id": entry["_id"]}, {"$set": {"claimed_until": now - timedelta(seconds=1)}}
    )
    assert await second.relay_once() == 1
    assert await db.outbox.count_documents({}) == 0
    # Published twice with the same Nats-Msg-Id: the stream kept one copy, and the record
    # names that copy's position.
    messages = await bed.stream_messages()
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in messages] == [entry["_id"]]
    [record] = await published_events(db)
    assert (record.event_id, record.stream, record.seq) == (entry["_id"], bed.stream, 1)


async def test_a_relay_takes_the_backlog_behind_entries_another_relay_holds(bed: Bed) -> None:
    await bed.create_stream()
    db = await _outbox(bed, 20)
    ids = [doc["_id"] async for doc in db.outbox.find().sort("order", 1)]
    until = datetime.now(UTC) + timedelta(seconds=60)
    await db.outbox.update_many(
        {"_id": {"$in": ids[:10]}},
        {"$set": {"state": "in_progress", "claimed_by": "a-live-relay", "claimed_until": until}},
    )
    relay = OutboxRelay(db, bed.js, batch_size=10)
    assert await relay.relay_once() == 10
    messages = await bed.stream_messages()
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in messages] == ids[10:]
    assert [doc["_id"] async for doc in db.outbox.find().sort("order", 1)] == ids[:10]


async def test_a_relay_keeps_retrying_until_the_stream_exists(bed: Bed) -> None:
    db = await _outbox(bed, 2)
    ordered = [doc["_id"] async for doc in db.outbox.find().sort("order", 1)]
    relay = OutboxRelay(db, bed.js, poll_seconds=0.05)
    relay.start()
    try:
        # No stream captures the subject yet: JetStream answers "no responders".
        await eventually(
            lambda: db.outbox.count_documents(
                {"state": "pending", "attempts": {"$gte": 2}, "last_error": {"$exists": True}}
            ),
            "failed attempts to be recorded",
        )
        failed = await db.outbox.find_one({"attempts": {"$gte": 2}})
        assert failed is not None and "NoStreamResponse" in failed["last_error"]
        await bed.create_stream()
        await eventually(lambda: _all_published(db, 2), "the relay to publish", timeout=20)
    finally:
        await asyncio.wait_for(relay.stop(), timeout=5)
    messages = await bed.stream_messages()
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in messages] == ordered


async def test_a_relay_stops_promptly_while_backing_off(bed: Bed) -> None:
    db = await _outbox(bed, 1)
    relay = OutboxRelay(db, bed.js, poll_seconds=0.05)
    relay.start()
    # Three failures in (no stream): the relay now waits 1.6 s before its next attempt.
    await eventually(
        lambda: db.outbox.count_documents({"state": "pending", "attempts": {"$gte": 3}}),
        "three failed attempts",
    )
    started = time.monotonic()
    await asyncio.wait_for(relay.stop(), timeout=5)
    assert time.monotonic() - started < 0.5
    # Handed back, not left claimed until a lease runs out.
    assert await db.outbox.count_documents({"state": "pending", "claimed_by": None}) == 1


# --------------------------------------------------------------------------- databases


async def test_a_service_refuses_a_database_another_service_owns(bed: Bed) -> None:
    first, second = f"own{short_id()}", f"other{short_id()}"
    shared = bed.settings(first)  # the second is pointed at the first's database
    owner = Service(first, shared, produces=[bed.thing])
    async with running(owner):
        pass
    intruder = Service(second, shared)
    with pytest.raises(DatabaseOwnedByAnother) as refused:
        await intruder.app.start()
    await intruder.app.stop()
    assert f"belongs to the {first} service" in str(refused.value)
    assert "SAMSKAB_MONGO_DATABASE" in str(refused.value)
    # The database still belongs to its owner, which starts on it again as before.
    claim = await bed.db(first).service_owner.find_one({"_id": "owner"})
    assert claim is not None and claim["service"] == first
    async with running(Service(first, shared, produces=[bed.thing])):
        pass


# --------------------------------------------------------------------------- request/reply


class Register(BaseModel):
    name: str = Field(min_length=1)
    age: int = Field(ge=0)


class Registered(BaseModel):
    registered: str


async def test_requests_that_do_not_validate_get_a_structured_error(bed: Bed) -> None:
    name = f"tr{short_id()}"
    service = Service(name, bed.settings(name))
    subject = f"{name}.cmd.register"

    async def register(uow: UnitOfWork, command: Register) -> Registered:
        return Registered(registered=command.name)

    service.command(Endpoint(subject, Register, Registered), register)

    async with running(service), ServiceClient(service.settings) as client:
        reply = json.loads((await bed.nc.request(subject, b"{not json", timeout=5)).data)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "validation_failed"
        assert [detail["field"] for detail in reply["error"]["details"]] == ["(payload)"]

        reply = json.loads((await bed.nc.request(subject, b'{"age": -1}', timeout=5)).data)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "validation_failed"
        assert sorted(detail["field"] for detail in reply["error"]["details"]) == ["age", "name"]

        with pytest.raises(ServiceError) as invalid:
            await client.request(subject, {"name": "", "age": "old"})
        assert invalid.value.code == ErrorCode.VALIDATION_FAILED
        assert sorted(d.field for d in invalid.value.error.details) == ["age", "name"]

        assert await client.request(subject, {"name": "Ada", "age": 36}) == {"registered": "Ada"}


async def test_a_request_nobody_serves_says_which_service_is_not_running(bed: Bed) -> None:
    nobody = f"nobody{short_id()}"
    async with ServiceClient(bed.settings(nobody)) as client:
        started = time.monotonic()
        with pytest.raises(ServiceError) as unavailable:
            await client.request(f"{nobody}.query.anything", {})
        assert unavailable.value.code == ErrorCode.SERVICE_UNAVAILABLE
        assert str(unavailable.value) == f"the {nobody} service is not running"
        # No responders is an answer, not a timeout.
        assert time.monotonic() - started < 2


async def test_a_published_entry_leaves_the_outbox_and_its_record_keeps_no_payload(
    bed: Bed,
) -> None:
    await bed.create_stream()
    db = await _outbox(bed, 2)
    entries = [doc async for doc in db.outbox.find({}).sort("order", 1)]
    assert await OutboxRelay(db, bed.js).relay_once() == 2
    assert await db.outbox.count_documents({}) == 0
    messages = await bed.stream_messages()
    records = await published_events(db)
    assert [(r.event_id, r.subject, r.key) for r in records] == [
        (e["_id"], e["subject"], e["key"]) for e in entries
    ]
    assert [(r.stream, r.seq) for r in records] == [(bed.stream, m.seq) for m in messages]
    async for raw in db.outbox_published.find({}):
        assert all(set(e) == {"id", "subject", "key", "stream", "seq"} for e in raw["events"])


async def test_the_published_events_about_one_key_can_be_purged_from_the_stream(bed: Bed) -> None:
    await bed.create_stream()
    db = producer_db(bed)
    await ensure_outbox_indexes(db)
    about_anna = [bed.thing(thing="anna"), bed.thing(thing="anna")]
    about_bo = [bed.thing(thing="bo")]

    async def add(session: Session) -> None:
        await add_to_outbox(db, session, [about_anna[0], about_bo[0], about_anna[1]])

    await in_transaction(bed.mongo, add)
    assert await OutboxRelay(db, bed.js).relay_once() == 3

    left = await purge_published_events(db, bed.js, "anna")

    assert left == 0
    remaining = await bed.stream_messages()
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in remaining] == [str(about_bo[0].event_id)]
    # A second purge finds nothing more to do and does not fail on the deleted messages.
    assert await purge_published_events(db, bed.js, "anna") == 0


async def test_published_entries_an_older_release_left_in_the_outbox_become_records(
    bed: Bed,
) -> None:
    """Older releases marked entries published in place, their positions on the entry or
    in an ``outbox_batches`` document; starting up moves them out of the outbox."""
    db = producer_db(bed)
    when = datetime(2026, 6, 1, tzinfo=UTC)
    legacy = {"subject": bed.thing.subject, "state": "published", "published_at": when}
    await db.outbox_batches.insert_one(
        {"_id": "b1", "published_at": when, "positions": {"e1": [bed.stream, 7]}}
    )
    await db.outbox.insert_many(
        [
            legacy | {"_id": "e1", "key": "anna", "order": 1, "batch": "b1"},
            legacy | {"_id": "e2", "key": "bo", "order": 2, "stream": bed.stream, "stream_seq": 8},
            legacy
            | {"_id": "e3", "key": "anna", "order": 3, "stream": "S", "stream_seq": 9}
            | {"purged_at": when},
            {
                "_id": "e4",
                "subject": bed.thing.subject,
                "key": "cy",
                "state": "pending",
                "order": 4,
            },
        ]
    )
    await db.outbox.create_index([("key", 1), ("state", 1)], sparse=True)
    await db.outbox.create_index("published_at", expireAfterSeconds=3600)

    await ensure_outbox_indexes(db)
    await ensure_outbox_indexes(db)  # and again, as every start does: nothing more moves

    records = await published_events(db)
    assert [(r.event_id, r.key, r.stream, r.seq) for r in records] == [
        ("e1", "anna", bed.stream, 7),
        ("e2", "bo", bed.stream, 8),
    ]
    assert [doc["_id"] async for doc in db.outbox.find({})] == ["e4"]
    assert set(await db.outbox.index_information()) == {"_id_", "state_1_order_1"}


# --------------------------------------------------------------------------- failed outbox


async def test_an_entry_that_can_never_be_published_fails_visibly_without_blocking_the_relay(
    bed: Bed,
) -> None:
    producer = Service(bed.prefix, bed.settings(bed.prefix), produces=[bed.thing])
    first, last = bed.thing(thing="before"), bed.thing(thing="after")
    # Older than both: a payload larger than the server takes (max_payload 1 MB here), and
    # an event on another service's subject (its stream is not this service's).
    too_large = bed.thing(thing="x" * 1_100_000)

    class Foreign(ThingHappened):
        subject: ClassVar[str] = "someoneelse.v1.thing_happened"
        producer_name: ClassVar[str] = "someoneelse"

    foreign = Foreign(thing="elsewhere")

    async def emit(uow: UnitOfWork, events: Sequence[Event]) -> None:
        uow.emit(*events)

    async with running(producer), ServiceClient(producer.settings) as client:
        await producer.run(
            functools.partial(emit, events=[too_large, foreign, first]), name="emitting"
        )
        await producer.run(functools.partial(emit, events=[last]), name="emitting")

        async def both_published() -> bool:
            ids = {e.event_id for e in await published_events(producer.db)}
            return {str(first.event_id), str(last.event_id)} <= ids

        async def outbox_settled() -> bool:
            # A published batch is recorded first and leaves the outbox a moment later.
            health = await client.request(health_subject(bed.prefix), {})
            return bool(health["outbox_pending"] == 0)

        await eventually(both_published, "the publishable events to go out", timeout=10)
        await eventually(outbox_settled, "the published events to leave the outbox", timeout=10)
        health = await client.request(health_subject(bed.prefix), {})
        assert (health["outbox_pending"], health["outbox_failed"]) == (0, 2)
        assert health["status"] == "degraded"
        assert "2 outbox entries could not be published" in health["problems"]

        listed = await client.request(dead_letters_list_subject(bed.prefix), {})
        failed = {item["event_id"]: item for item in listed["items"]}
        assert set(failed) == {str(too_large.event_id), str(foreign.event_id)}
        assert {item["kind"] for item in failed.values()} == {"outbox"}
        assert "exceeds the server's limit" in failed[str(too_large.event_id)]["reason"]
        assert "not on this service's stream" in failed[str(foreign.event_id)]["reason"]
        shown = await client.request(
            dead_letters_show_subject(bed.prefix), {"id": f"outbox-{foreign.event_id}"}
        )
        assert shown["payload"]["thing"] == "elsewhere"

        # Replayed: queued again (and, its cause not mended, failed again with the reason).
        replayed = await client.request(
            dead_letters_replay_subject(bed.prefix), {"id": f"outbox-{foreign.event_id}"}
        )
        assert replayed["note"] == "queued for publishing again"

        async def failed_again() -> bool:
            entry = await producer.db.outbox.find_one({"_id": str(foreign.event_id)})
            return entry is not None and entry["state"] == "failed" and entry["attempts"] >= 2

        await eventually(failed_again, "the replayed entry to fail again", timeout=10)

    messages = await bed.stream_messages()
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in messages] == [
        str(first.event_id),
        str(last.event_id),
    ]


# --------------------------------------------------------------------------- who asked


class Note(BaseModel):
    audit_target: ClassVar[str | None] = "key"

    key: str = Field(min_length=1)
    text: str = Field(min_length=1)


class Noted(BaseModel):
    key: str
    attempts: int


async def test_commands_need_an_actor_and_leave_an_audit_record_committed_with_them(
    bed: Bed,
) -> None:
    name = f"ta{short_id()}"
    service = Service(name, bed.settings(name))
    note = Endpoint(f"{name}.cmd.note", Note, Noted)

    async def write(uow: UnitOfWork, cmd: Note) -> Noted:
        if cmd.text == "refused":
            raise ServiceError(ErrorCode.INVALID_STATE, "not this one")
        # Unique: a second note with the same key clashes, and the unit is run again.
        existing = await uow.db.notes.find_one({"key": cmd.key}, session=uow.session)
        if existing is None:
            await uow.db.notes.insert_one({"key": cmd.key, "text": cmd.text}, session=uow.session)
        return Noted(key=cmd.key, attempts=uow.attempt)

    service.command(note, write)
    async with running(service):
        await service.db.notes.create_index("key", unique=True)
        reply = json.loads(
            (await bed.nc.request(note.subject, b'{"key": "k1", "text": "hi"}', timeout=5)).data
        )
        assert reply["ok"] is False and reply["error"]["code"] == "validation_failed"
        assert reply["error"]["details"][0]["field"] == "Samskab-Actor"
        assert await service.db.notes.count_documents({}) == 0

        async with ServiceClient(service.settings, actor="staff:jens") as staff:
            assert (await staff.call(note, Note(key="k1", text="hi"))).key == "k1"
            with pytest.raises(ServiceError):
                await staff.call(note, Note(key="k2", text="refused"))
        async with ServiceClient(service.settings) as operator:
            assert (await operator.call(note, Note(key="k1", text="again"))).key == "k1"

        trail = [doc async for doc in service.db.audit.find({}).sort("at", 1)]
    assert [(d["actor"], d["command"], d["targets"], d["outcome"]) for d in trail] == [
        ("staff:jens", note.subject, ["k1"], "ok"),
        ("staff:jens", note.subject, ["k2"], "invalid_state"),
        (trail[2]["actor"], note.subject, ["k1"], "ok"),
    ]
    assert trail[2]["actor"].startswith("operator:")
    # Nothing personal: the note's text is in no record.
    assert "hi" not in repr(trail) and "again" not in repr(trail)


async def test_a_unit_whose_unique_key_was_taken_meanwhile_runs_again_and_sees_it(
    bed: Bed,
) -> None:
    name = f"tu{short_id()}"
    service = Service(name, bed.settings(name))
    attempts: list[int] = []

    async def insert_first(uow: UnitOfWork, key: str) -> str:
        attempts.append(uow.attempt)
        if uow.retried:
            found = await uow.db.keys.find_one({"key": key}, session=uow.session)
            if found is not None:
                return "found the other's"
        await uow.db.keys.insert_one({"key": key, "by": uow.attempt}, session=uow.session)
        return "inserted"

    async with running(service):
        await service.db.keys.create_index("key", unique=True)
        await service.db.keys.insert_one({"key": "taken"})  # as a concurrent request did
        assert (
            await service.run(functools.partial(insert_first, key="taken"), name="inserting")
            == "found the other's"
        )
        assert await service.run(functools.partial(insert_first, key="free"), name="x") == (
            "inserted"
        )
    assert attempts == [1, 2, 1]
