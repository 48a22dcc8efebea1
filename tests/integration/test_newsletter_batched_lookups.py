"""What the newsletter's delivery looks up in batches, against real SecantusDB: the fan-out's
windowed reads of confirmed subscribers, the subscribers prefetched for a claimed batch,
and the bounce counters a delivered batch resets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from contracts.newsletter import SubscriberStatus
from services.newsletter import delivery, domain, store
from services.newsletter.context import Context
from services.newsletter.delivery import MailRecord
from services.newsletter.domain import Subscriber, Unsubscriber
from services.newsletter.outgoing import Outgoing, SubscriberLoader
from services.runtime.mongo import DatabaseT, connect
from services.runtime.unit_of_work import Reading, Scope
from stack.mongo import MongoServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_server: MongoServer) -> AsyncIterator[DatabaseT]:
    client = connect(mongo_server.url, "test-newsletter-batched")
    database = client[f"nl_batched_{uuid.uuid4().hex[:10]}"]
    await store.ensure_indexes(database)
    try:
        yield database
    finally:
        await client.drop_database(database.name)
        await client.close()


def reading(db: DatabaseT) -> Reading:
    return Reading(db, datetime.now(UTC))


def fake_ctx(db: DatabaseT) -> Context:
    """Just what the loader and on_delivered use of a Context."""
    ctx = SimpleNamespace(service=SimpleNamespace(db=db, reading=lambda: reading(db)))
    return cast(Context, ctx)


async def confirmed(db: DatabaseT, i: int, hard_bounces: int = 0) -> Subscriber:
    now = datetime.now(UTC)
    outcome = domain.subscribe(
        None, email=f"person-{i}@example.org", name=None, now=now, token_ttl=timedelta(hours=1)
    )
    subscriber = domain.confirm(outcome.subscriber, now).model_copy(
        update={"hard_bounces": hard_bounces}
    )
    await db.subscribers.insert_one(store._to_document(subscriber))
    return subscriber


def mail_to(subscriber: Subscriber) -> MailRecord:
    assert subscriber.address is not None
    return delivery.new_mail(
        kind="issue",
        dedupe_key=f"issue:i:{subscriber.id}",
        to_address=subscriber.address,
        subscriber_id=subscriber.id,
        issue_id="i",
        message_id_domain="test.example",
    )


async def walk(db: DatabaseT, batch: int) -> tuple[list[str], store.ConfirmedScan]:
    scan = store.ConfirmedScan()
    cursor: str | None = None
    seen: list[str] = []
    while found := await store.confirmed_after(reading(db), cursor, batch, scan):
        assert len(found) <= batch
        seen.extend(str(doc["_id"]) for doc in found)
        cursor = seen[-1]
    return seen, scan


async def test_the_fan_out_reads_every_confirmed_subscriber_once_in_id_order(
    db: DatabaseT,
) -> None:
    docs: list[dict[str, Any]] = [
        {"_id": uuid.uuid4().hex, "status": "confirmed", "address": f"a{i}@example.org"}
        for i in range(600)
    ]
    # Ids that are not uuid hex still come, in order: the windows are only a guess.
    odd = ["-first", "0", "ABC", "ffffffffffffzz", "zzz", "g" * 32]
    docs += [{"_id": i, "status": "confirmed", "address": f"{i}@example.org"} for i in odd]
    docs += [{"_id": uuid.uuid4().hex, "status": "unsubscribed", "address": "x@example.org"}]
    await db.subscribers.insert_many(docs)
    expected = sorted(str(d["_id"]) for d in docs if d["status"] == "confirmed")
    for batch in (7, 200, 1000):
        seen, scan = await walk(db, batch)
        assert seen == expected, f"batch {batch}"
        assert scan.count > 0


async def test_the_fan_out_of_nobody_ends_at_once(db: DatabaseT) -> None:
    seen, scan = await walk(db, 200)
    assert seen == [] and scan.count == 0


async def test_a_prefetched_subscriber_is_used_once_and_not_when_too_old(
    db: DatabaseT,
) -> None:
    ctx = fake_ctx(db)
    one, two = await confirmed(db, 1), await confirmed(db, 2)
    loader = SubscriberLoader(ctx)
    await loader.prefetch([mail_to(one), mail_to(two)])
    now = datetime.now(UTC)
    gone, _ = domain.unsubscribe(one, now, by=Unsubscriber.SELF)
    await db.subscribers.replace_one({"_id": one.id}, store._to_document(gone))
    # The batch's lookup answers its mail (the unsubscribe came after the claim) ...
    first = await loader.load(one.id)
    assert first is not None and first.status == SubscriberStatus.CONFIRMED
    # ... and only that one: asked again, the subscriber is looked up as it is now.
    again = await loader.load(one.id)
    assert again is not None and again.status == SubscriberStatus.UNSUBSCRIBED
    # forget() drops what an unsubscribe handled here made stale.
    await loader.prefetch([mail_to(one)])
    loader.forget(one.id)
    fresh = await loader.load(one.id)
    assert fresh is not None and fresh.status == SubscriberStatus.UNSUBSCRIBED
    # Too old: looked up again.
    stale = SubscriberLoader(ctx, max_age=0.0)
    await stale.prefetch([mail_to(one)])
    late = await stale.load(one.id)
    assert late is not None and late.status == SubscriberStatus.UNSUBSCRIBED
    other = await loader.load(two.id)
    assert other is not None and other.id == two.id
    assert await loader.load("nobody") is None


async def test_a_delivered_batch_resets_only_the_counters_it_saw(db: DatabaseT) -> None:
    ctx = Outgoing(fake_ctx(db))
    clean, bouncing, bounced_since = (
        await confirmed(db, 1),
        await confirmed(db, 2, hard_bounces=2),
        await confirmed(db, 3),
    )
    records = [mail_to(clean), mail_to(bouncing), mail_to(bounced_since)]
    # What materialize remembers: the subscriber had hard bounces when the mail was made.
    ctx.bounced_before[records[1].id] = (0.0, bouncing.id)
    await db.subscribers.update_one({"_id": bounced_since.id}, {"$set": {"hard_bounces": 1}})
    writes: list[list[str]] = []
    reset = store.reset_bounces

    async def counting(scope: Scope, ids: list[str]) -> None:
        writes.append(list(ids))
        await reset(scope, ids)

    store_reset = pytest.MonkeyPatch()
    store_reset.setattr(store, "reset_bounces", counting)
    try:
        await ctx.on_delivered(records)
        await ctx.on_delivered([mail_to(clean)])  # nothing bounced: no write
    finally:
        store_reset.undo()
    assert writes == [[bouncing.id]]
    assert ctx.bounced_before == {}
    ids = [s.id for s in (clean, bouncing, bounced_since)]
    after = await store.load_subscribers(reading(db), ids)
    assert after[bouncing.id].hard_bounces == 0
    assert after[bounced_since.id].hard_bounces == 1  # bounced after its mail was made
