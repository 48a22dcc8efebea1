"""An issue's mails go out in bulk batches: queued, claimed, recorded and erased a batch at a time.

On the session's SecantusDB, with the delivery worker sending to a scripted aiosmtpd server
in this process (or nowhere, where only the database matters). What a batch promises:
every mail of it ends with exactly one record in ``mails``, one copy is sent per mail, a
worker that dies leaves the batch to the next one after its lease, a fan-out resumed
after a crash neither doubles nor skips a batch, and an erased person's address is gone
from the batches as from the records.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.newsletter.delivery import batches, erase_recipient, store
from services.newsletter.delivery.batches import BatchState, PlannedBatch
from services.newsletter.delivery.smtp import SmtpPool
from services.newsletter.delivery.states import MailRecord, MailState
from services.newsletter.delivery.worker import DeliveryWorker
from services.runtime.mongo import DatabaseT, Session, in_transaction
from services.runtime.unit_of_work import UnitOfWork
from stack.mongo import MongoServer
from tests.integration.newsletter_delivery_support import (
    delivery_database,
    mails,
    materialize,
    run_id,
    scripted_smtp,
    settings_for,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def scope(db: DatabaseT, session: Session) -> UnitOfWork:
    """The unit of work a handler would run these in (the session is the test's)."""
    return UnitOfWork(db, session, now=datetime.now(UTC))


LEASE = timedelta(seconds=30)


@pytest.fixture
async def db(mongo_server: MongoServer) -> AsyncIterator[DatabaseT]:
    async with delivery_database(mongo_server.url, "nl-batches") as database:
        yield database


def chain_of(
    records: Sequence[MailRecord], size: int, after: str | None = None
) -> list[PlannedBatch]:
    """Batches of ``size`` as the fan-out plans them: each starts where the last ended."""
    planned = []
    for start in range(0, len(records), size):
        part = records[start : start + size]
        last = str(part[-1].subscriber_id)
        issue_id = str(part[0].issue_id)
        planned.append(PlannedBatch(batches.batch_id_for(issue_id, after), issue_id, part, last))
        after = last
    return planned


async def records_by_id(db: DatabaseT) -> dict[str, MailRecord]:
    return {
        str(doc["_id"]): MailRecord.from_document(doc)
        async for doc in db[store.COLLECTION].find({})
    }


async def claims(db: DatabaseT) -> dict[str, dict[str, Any]]:
    return {str(doc["_id"]): doc async for doc in db[batches.CLAIMS].find({})}


async def everything_done(db: DatabaseT, total: int) -> dict[str, MailRecord] | None:
    found = await records_by_id(db)
    live = [c for c in (await claims(db)).values() if c["state"] != BatchState.DONE]
    return found if len(found) == total and not live else None


async def test_an_issue_in_batches_reaches_everyone_once_and_leaves_no_address_behind(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    run = run_id()
    queued = mails(run, 120)
    now = datetime.now(UTC)
    count, cursor = await batches.queue_batches(db, chain_of(queued, 50), now)
    assert (count, cursor) == (120, queued[-1].subscriber_id)
    progress = await batches.issue_progress(db, f"issue-{run}")
    assert (progress.recipients, progress.pending) == (120, 120)
    assert await db[store.COLLECTION].count_documents({}) == 0, "no record before sending"
    delivered: list[MailRecord] = []

    async with scripted_smtp() as server:
        settings = settings_for(mongo_server.url, server.host, server.port)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize, on_delivered=delivered.extend)
        worker.start()
        try:
            found = await eventually(lambda: everything_done(db, 120), "every batch done")
        finally:
            await worker.stop()
            await pool.close()

    assert server.handler.message_ids() == Counter({r.message_id: 1 for r in queued})
    assert {r.id for r in queued} == set(found)
    for record in queued:
        stored = found[record.id]
        assert stored.state is MailState.SENT and stored.sent_at is not None
        assert stored.message_id == record.message_id and stored.attempts == 1
        assert stored.claimed_by is None and stored.issue_id == f"issue-{run}"
    assert sorted(r.id for r in delivered) == sorted(r.id for r in queued)
    progress = await batches.issue_progress(db, f"issue-{run}")
    assert (progress.recipients, progress.pending) == (120, 0)
    # Finished batches keep no addresses: the records are the history.
    async for doc in db[batches.COLLECTION].find({}):
        assert doc["mails"] == []


async def test_a_fan_out_queued_again_after_a_crash_goes_on_after_the_batch_it_wrote(
    db: DatabaseT,
) -> None:
    run = run_id()
    queued = mails(run, 100)
    now = datetime.now(UTC)
    first = chain_of(queued[:50], 25)
    assert await batches.queue_batches(db, first, now) == (50, queued[49].subscriber_id)
    # The crash came before the cursor was stored: the same page is planned again, and
    # meanwhile subscribers changed, so the boundaries differ from the first time.
    again = chain_of([*queued[:10], *queued[15:60]], 30)
    count, cursor = await batches.queue_batches(db, again, now)
    assert count == 0, "nothing is queued twice"
    assert cursor == queued[24].subscriber_id, "the fan-out goes on after the stored batch"
    # From there: the next batch was stored too, and after it comes what is new.
    rest = chain_of(queued[25:], 25, after=queued[24].subscriber_id)
    assert await batches.queue_batches(db, rest, now) == (0, queued[49].subscriber_id)
    rest = chain_of(queued[50:], 25, after=queued[49].subscriber_id)
    assert await batches.queue_batches(db, rest, now) == (50, queued[99].subscriber_id)

    mails_in_batches: Counter[str] = Counter()
    async for doc in db[batches.COLLECTION].find({}):
        mails_in_batches.update(str(m["_id"]) for m in doc["mails"])
    assert mails_in_batches == Counter({r.id: 1 for r in queued}), "each mail in one batch"
    progress = await batches.issue_progress(db, f"issue-{run}")
    assert progress.recipients == 100
    assert await db[batches.CLAIMS].count_documents({}) == 4


async def test_a_claim_written_after_a_crash_between_the_two_documents(db: DatabaseT) -> None:
    queued = mails(run_id(), 10)
    planned = chain_of(queued, 10)
    now = datetime.now(UTC)
    await batches.queue_batches(db, planned, now)
    await db[batches.CLAIMS].delete_many({})  # as if the crash came before the claim
    assert await batches.queue_batches(db, planned, now) == (0, queued[-1].subscriber_id)
    claim = await db[batches.CLAIMS].find_one({"_id": planned[0].id})
    assert claim is not None and claim["state"] == BatchState.QUEUED and claim["size"] == 10


async def test_two_workers_never_claim_the_same_batch(db: DatabaseT) -> None:
    queued = mails(run_id(), 60)
    now = datetime.now(UTC)
    await batches.queue_batches(db, chain_of(queued, 20), now)
    results = await asyncio.gather(
        *(batches.claim_batch(db, f"worker-{i}", now, LEASE) for i in range(6))
    )
    claimed = [r for r in results if r is not None]
    assert len(claimed) == 3 and len({c.id for c in claimed}) == 3
    ids = [record.id for c in claimed for record in c.records]
    assert sorted(ids) == sorted(r.id for r in queued)
    for c in claimed:
        assert all(r.state is MailState.SENDING and r.attempts == 1 for r in c.records)


async def test_a_batch_whose_worker_died_is_taken_over_after_its_lease(db: DatabaseT) -> None:
    queued = mails(run_id(), 30)
    now = datetime.now(UTC)
    await batches.queue_batches(db, chain_of(queued, 30), now)
    dead = await batches.claim_batch(db, "worker-dead", now, LEASE)
    assert dead is not None and len(dead.records) == 30
    # It sent ten and wrote their records, then died before anything else.
    sent = [
        r.model_copy(update={"state": MailState.SENT, "claimed_by": None})
        for r in dead.records[:10]
    ]
    await db[store.COLLECTION].insert_many([r.to_document() for r in sent])

    assert await batches.claim_batch(db, "worker-next", now + LEASE / 2, LEASE) is None
    later = now + LEASE + timedelta(seconds=1)
    taken = await batches.claim_batch(db, "worker-next", later, LEASE)
    assert taken is not None and taken.id == dead.id
    assert {r.id for r in taken.records} == {r.id for r in queued[10:]}, "the rest, not the sent"
    assert all(r.attempts == 2 and r.claimed_by == "worker-next" for r in taken.records)

    finished = [
        r.model_copy(update={"state": MailState.SENT, "claimed_by": None}) for r in taken.records
    ]
    written = await batches.record(db, taken.id, finished, later)
    assert written == {r.id for r in queued[10:]}
    claim = (await claims(db))[taken.id]
    assert claim["state"] == BatchState.DONE
    # The dead worker comes back to life and records what it had sent: nothing is doubled.
    assert await batches.record(db, dead.id, sent, later) == set()
    assert await db[store.COLLECTION].count_documents({}) == 30


async def test_a_stopping_worker_hands_its_batch_back(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 40)
    await batches.queue_batches(db, chain_of(queued, 40), datetime.now(UTC))
    async with scripted_smtp() as server:
        server.handler.data_delay = 0.2  # slow enough that most are not started at the stop
        settings = settings_for(mongo_server.url, server.host, server.port, mail_concurrency=1)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize)
        worker.start()
        await eventually(lambda: asyncio.sleep(0, len(server.handler.received)), "a first mail")
        await worker.stop()
        first = len(server.handler.received)
        claim = (await claims(db))[chain_of(queued, 40)[0].id]
        assert claim["state"] == BatchState.QUEUED and claim["claimed_by"] is None
        assert await db[store.COLLECTION].count_documents({}) == first < 40

        server.handler.data_delay = 0
        worker = DeliveryWorker(db, pool, settings, materialize)
        worker.start()
        try:
            await eventually(lambda: everything_done(db, 40), "the rest after the restart")
        finally:
            await worker.stop()
            await pool.close()
    assert server.handler.message_ids() == Counter({r.message_id: 1 for r in queued})


async def test_an_erased_subscriber_is_scrubbed_from_a_batch_not_yet_sent(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 20)
    await batches.queue_batches(db, chain_of(queued, 10), datetime.now(UTC))
    erased = queued[13]
    assert erased.subscriber_id is not None and erased.to_address is not None

    async def erase(session: Session) -> int:
        assert erased.subscriber_id is not None
        return await erase_recipient(scope(db, session), subscriber_id=erased.subscriber_id)

    await in_transaction(db.client, erase)
    async for doc in db[batches.COLLECTION].find({}):
        assert erased.to_address not in str(doc)

    async with scripted_smtp() as server:
        settings = settings_for(mongo_server.url, server.host, server.port)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize)
        worker.start()
        try:
            found = await eventually(lambda: everything_done(db, 20), "every batch done")
        finally:
            await worker.stop()
            await pool.close()
    assert found[erased.id].state is MailState.CANCELLED
    assert found[erased.id].to_address is None and found[erased.id].last_error == "recipient erased"
    assert erased.message_id not in server.handler.message_ids()
    assert sum(server.handler.message_ids().values()) == 19


async def test_a_record_written_after_an_erasure_is_scrubbed_by_its_writer(
    db: DatabaseT,
) -> None:
    """The worker claimed the batch (with the address) before the erasure, and records the
    mail it sent after the erasure committed: the record must not bring the address back."""
    queued = mails(run_id(), 5)
    now = datetime.now(UTC)
    await batches.queue_batches(db, chain_of(queued, 5), now)
    claimed = await batches.claim_batch(db, "worker", now, LEASE)
    assert claimed is not None
    erased = claimed.records[2]
    assert erased.subscriber_id is not None and erased.to_address is not None

    async def erase(session: Session) -> int:
        assert erased.subscriber_id is not None
        return await erase_recipient(scope(db, session), subscriber_id=erased.subscriber_id)

    await in_transaction(db.client, erase)
    finished = [
        r.model_copy(update={"state": MailState.SENT, "claimed_by": None}) for r in claimed.records
    ]
    await batches.record(db, claimed.id, finished, now)
    found = await records_by_id(db)
    assert found[erased.id].to_address is None and found[erased.id].erased_at is not None
    assert all(found[r.id].to_address == r.to_address for r in claimed.records if r is not erased)
    async for doc in db[store.COLLECTION].find({}):
        assert erased.to_address not in str(doc)
