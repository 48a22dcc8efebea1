"""Delivery never loses nor doubles a mail: the worker against real SecantusDB and SMTP.

Mails go either to the session's SMTP sink (the one ``make up`` runs, which drops a
repeated Message-ID) or to a scripted aiosmtpd server in this process that can answer 4xx
or 5xx, hold DATA, or close connections. Each test has a database of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.newsletter.delivery import erase_recipient, store
from services.newsletter.delivery.smtp import SmtpPool
from services.newsletter.delivery.states import (
    MailRecord,
    MailState,
    MaterializedMail,
    NotReady,
    TransientFailure,
    cancelled,
    delivered,
    transient_failure,
)
from services.newsletter.delivery.worker import DeliveryWorker
from services.runtime.mongo import DatabaseT, Session, in_transaction
from services.runtime.unit_of_work import UnitOfWork
from stack.mongo import MongoServer
from stack.smtp_sink import SmtpSink, read_duplicates, read_mailbox
from tests.integration.newsletter_delivery_support import (
    delivery_database,
    mails,
    materialize,
    run_id,
    scripted_smtp,
    settings_for,
)
from tests.support.polling import eventually
from tests.support.stack import start_smtp_sink

pytestmark = pytest.mark.integration


def scope(db: DatabaseT, session: Session) -> UnitOfWork:
    """The unit of work a handler would run these in (the session is the test's)."""
    return UnitOfWork(db, session, now=datetime.now(UTC))


@pytest.fixture
async def db(mongo_server: MongoServer) -> AsyncIterator[DatabaseT]:
    async with delivery_database(mongo_server.url, "nl-delivery") as database:
        yield database


async def states(db: DatabaseT) -> Counter[str]:
    return Counter({k: v for k, v in (await store.count_by_state(db)).items() if v})


async def all_final(db: DatabaseT, total: int) -> Counter[str] | None:
    # Counted state by state, not in one snapshot: a mail moving from sending to sent
    # between two counts shows twice. Only a count with none in flight is an answer.
    counts = await states(db)
    final = counts["sent"] + counts["failed"] + counts["cancelled"]
    settled = counts["queued"] == counts["sending"] == 0
    return counts if final == total and settled else None


async def records(db: DatabaseT) -> list[MailRecord]:
    return [MailRecord.from_document(doc) async for doc in db[store.COLLECTION].find({})]


def sink_copies(sink: SmtpSink, message_ids: set[str]) -> Counter[str]:
    return Counter(
        str(m["Message-ID"]) for m in read_mailbox(sink.mail_dir) if m["Message-ID"] in message_ids
    )


async def run_until_final(worker: DeliveryWorker, db: DatabaseT, total: int) -> Counter[str]:
    worker.start()
    try:
        return await eventually(lambda: all_final(db, total), f"{total} mails final")
    finally:
        await worker.stop()


# ---------------------------------------------------------------- the happy path


async def test_200_mails_arrive_once_each_with_their_message_id(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port)
    queued = mails(run_id(), 200)
    assert await store.queue_many(db, queued) == 200
    delivered: list[MailRecord] = []

    async def on_delivered(batch: list[MailRecord]) -> None:
        delivered.extend(batch)

    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, materialize, on_delivered=on_delivered)
    counts = await run_until_final(worker, db, 200)
    await pool.close()

    assert counts == Counter(sent=200)
    ids = {r.message_id for r in queued}
    copies = sink_copies(smtp_sink, ids)
    assert set(copies) == ids and set(copies.values()) == {1}
    stored = await records(db)
    assert all(r.attempts == 1 and r.sent_at is not None for r in stored)
    assert all(r.claimed_by is None and r.claimed_until is None for r in stored)
    assert sorted(r.id for r in delivered) == sorted(r.id for r in queued)
    assert all(r.state is MailState.SENT for r in delivered)
    # Connections are kept, not opened per mail.
    assert pool.connects <= settings.mail_concurrency


async def test_two_workers_share_the_queue_without_doubling(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port, mail_batch_size=10)
    queued = mails(run_id(), 120)
    await store.queue_many(db, queued)
    ids = {r.message_id for r in queued}
    duplicates_before = len(read_duplicates(smtp_sink.mail_dir))
    pools = [SmtpPool(settings), SmtpPool(settings)]
    workers = [DeliveryWorker(db, pool, settings, materialize) for pool in pools]
    for worker in workers:
        worker.start()
    try:
        assert await eventually(lambda: all_final(db, 120), "120 sent") == Counter(sent=120)
    finally:
        for worker in workers:
            await worker.stop()
        for pool in pools:
            await pool.close()
    copies = sink_copies(smtp_sink, ids)
    assert set(copies) == ids and set(copies.values()) == {1}
    # Not even a duplicate the sink had to drop: claims never overlapped.
    assert len(read_duplicates(smtp_sink.mail_dir)) == duplicates_before


# ---------------------------------------------------------------- 4xx and 5xx


async def test_4xx_is_retried_after_the_backoff_and_delivered_once(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 20)
    await store.queue_many(db, queued)
    greylisted = [r.to_address for r in queued[:5] if r.to_address]
    async with scripted_smtp() as server:
        server.handler.script(greylisted, "451 4.7.1 Greylisted, try again later")
        settings = settings_for(mongo_server.url, server.host, server.port)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize, poll_seconds=0.05)
        counts = await run_until_final(worker, db, 20)
        await pool.close()
    assert counts == Counter(sent=20)
    assert server.handler.message_ids() == Counter({r.message_id: 1 for r in queued})
    for address in greylisted:
        assert server.handler.rcpt_calls[address] == 2
    by_id = {r.id: r for r in await records(db)}
    assert [by_id[r.id].attempts for r in queued] == [2] * 5 + [1] * 15
    assert all(r.last_error is None for r in by_id.values())


async def test_5xx_fails_at_once_and_reports_the_hard_bounce(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 10)
    await store.queue_many(db, queued)
    unknown = [r.to_address for r in queued[:3] if r.to_address]
    bounced: list[MailRecord] = []
    delivered: list[MailRecord] = []
    async with scripted_smtp() as server:
        for address in unknown:
            server.handler.script([address], f"550 5.1.1 <{address}>: Recipient address rejected")
        settings = settings_for(mongo_server.url, server.host, server.port)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(
            db,
            pool,
            settings,
            materialize,
            on_delivered=delivered.extend,
            on_hard_bounce=bounced.extend,
        )
        counts = await run_until_final(worker, db, 10)
        await pool.close()
    assert counts == Counter(sent=7, failed=3)
    assert sorted(r.to_address or "" for r in bounced) == sorted(unknown)
    assert all(r.state is MailState.FAILED and r.last_code == 550 for r in bounced)
    assert len(delivered) == 7
    for address in unknown:
        assert server.handler.rcpt_calls[address] == 1, "a 5xx is never retried"
    failed = [r for r in await records(db) if r.state is MailState.FAILED]
    for record in failed:
        assert record.attempts == 1 and record.last_error is not None
        assert record.to_address is not None and record.to_address not in record.last_error


async def test_transient_failures_give_up_after_max_attempts_without_a_bounce(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    [record] = mails(run_id(), 1)
    await store.queue_many(db, [record])
    bounced: list[MailRecord] = []
    async with scripted_smtp() as server:
        assert record.to_address is not None
        server.handler.script([record.to_address], *["452 4.2.2 Mailbox full"] * 10)
        settings = settings_for(mongo_server.url, server.host, server.port, mail_max_attempts=3)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(
            db, pool, settings, materialize, on_hard_bounce=bounced.extend, poll_seconds=0.05
        )
        counts = await run_until_final(worker, db, 1)
        await pool.close()
    assert counts == Counter(failed=1)
    [after] = await records(db)
    assert (after.attempts, after.last_code) == (3, 452)
    assert server.handler.rcpt_calls[record.to_address] == 3
    assert bounced == []


# ---------------------------------------------------------------- crash safety


async def test_mails_of_a_worker_that_died_mid_batch_go_out_again_once(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port)
    queued = mails(run_id(), 30)
    await store.queue_many(db, queued)
    ids = {r.message_id for r in queued}
    duplicates_before = Counter(read_duplicates(smtp_sink.mail_dir))

    # The dead worker: claimed all 30 with a short lease, got half of them through SMTP,
    # and died before marking anything.
    lease = timedelta(seconds=1)
    claimed = await store.claim_due(db, "dead-worker", datetime.now(UTC), 100, lease)
    assert len(claimed) == 30
    dead_pool = SmtpPool(settings)
    for record in claimed[:15]:
        mail = materialize(record)
        await dead_pool.send(mail.message, mail.sender, mail.recipients)
    await dead_pool.close()
    assert await states(db) == Counter(sending=30)

    # Nothing is claimable while the lease holds.
    early = await store.claim_due(db, "early-bird", datetime.now(UTC), 100, lease)
    assert early == []

    await asyncio.sleep(lease.total_seconds() + 0.2)
    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, materialize)
    counts = await run_until_final(worker, db, 30)
    await pool.close()

    assert counts == Counter(sent=30)
    copies = sink_copies(smtp_sink, ids)
    assert set(copies) == ids and set(copies.values()) == {1}, "one copy of each in the sink"
    dropped = Counter(read_duplicates(smtp_sink.mail_dir)) - duplicates_before
    assert dropped == Counter({r.message_id: 1 for r in claimed[:15]})
    assert all(r.attempts == 2 for r in await records(db)), "the lost attempt is counted"


async def test_a_mark_from_a_worker_that_lost_its_claim_is_ignored(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    [record] = mails(run_id(), 1)
    await store.queue_many(db, [record])
    now = datetime.now(UTC)
    [slow] = await store.claim_due(db, "slow", now, 10, timedelta(milliseconds=1))
    later = now + timedelta(seconds=1)
    [fast] = await store.claim_due(db, "fast", later, 10, timedelta(seconds=30))
    assert await store.mark(db, "slow", [(slow, cancelled(slow, "late", later))]) == set()
    assert await store.mark(db, "fast", [(fast, delivered(fast, later))]) == {record.id}
    [after] = await records(db)
    assert after.state is MailState.SENT


async def test_graceful_stop_finishes_sends_in_flight_and_hands_back_the_rest(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 12)
    await store.queue_many(db, queued)
    async with scripted_smtp() as server:
        server.handler.data_delay = 0.3
        settings = settings_for(mongo_server.url, server.host, server.port, mail_concurrency=2)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize)
        worker.start()
        await eventually(
            lambda: asyncio.sleep(0, server.handler.data_now > 0), "a send on the wire"
        )
        await worker.stop()
        await pool.close()
        received = server.handler.message_ids()
    counts = await states(db)
    assert "sending" not in counts, "nothing left for a lease to recover"
    assert counts["sent"] == len(received) >= 1
    assert counts["queued"] == 12 - len(received)
    for record in await records(db):
        if record.state is MailState.QUEUED:
            assert record.attempts == 0 and record.claimed_by is None
    assert set(received.values()) == {1}


async def test_cancelling_the_run_is_as_clean_as_stop(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 6)
    await store.queue_many(db, queued)
    async with scripted_smtp() as server:
        server.handler.data_delay = 0.3
        settings = settings_for(mongo_server.url, server.host, server.port, mail_concurrency=2)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize)
        task = asyncio.create_task(worker.run_forever(asyncio.Event()))
        await eventually(
            lambda: asyncio.sleep(0, server.handler.data_now > 0), "a send on the wire"
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await pool.close()
    counts = await states(db)
    assert "sending" not in counts
    assert counts["sent"] >= 1


# ---------------------------------------------------------------- pace


async def test_rate_limit_is_honoured(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(
        mongo_server.url, smtp_sink.host, smtp_sink.port, mail_rate_per_second=20.0
    )
    queued = mails(run_id(), 40)
    await store.queue_many(db, queued)
    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, materialize)
    started = time.monotonic()
    counts = await run_until_final(worker, db, 40)
    elapsed = time.monotonic() - started
    await pool.close()
    assert counts == Counter(sent=40)
    # 40 mails at 20 per second, evenly spaced: 39 gaps of 50 ms.
    assert 1.5 <= elapsed < 10, elapsed


async def test_concurrency_is_bounded_and_connections_are_reused(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 60)
    await store.queue_many(db, queued)
    async with scripted_smtp() as server:
        server.handler.data_delay = 0.02
        settings = settings_for(mongo_server.url, server.host, server.port, mail_concurrency=3)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize)
        counts = await run_until_final(worker, db, 60)
        await pool.close()
    assert counts == Counter(sent=60)
    assert server.open_max == 3
    assert server.handler.data_max == 3
    assert server.connections == 3, "one connection per slot, kept across mails"
    assert server.handler.message_ids() == Counter({r.message_id: 1 for r in queued})


async def test_connections_closed_by_the_server_are_reopened(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    queued = mails(run_id(), 30)
    await store.queue_many(db, queued)
    async with scripted_smtp(close_after=4) as server:
        settings = settings_for(mongo_server.url, server.host, server.port, mail_concurrency=2)
        pool = SmtpPool(settings)
        worker = DeliveryWorker(db, pool, settings, materialize, poll_seconds=0.05)
        counts = await run_until_final(worker, db, 30)
        await pool.close()
    assert counts == Counter(sent=30)
    assert server.connections >= 30 // 4
    assert server.handler.message_ids() == Counter({r.message_id: 1 for r in queued})


# ---------------------------------------------------------------- what materialize says


async def test_not_ready_requeues_without_an_attempt_and_none_cancels(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    queued = mails(run_id(), 6)
    await store.queue_many(db, queued)
    waiting = {r.id for r in queued[:2]}
    gone = {r.id for r in queued[2:4]}

    async def materialize_some(record: MailRecord) -> MaterializedMail | None:
        if record.id in waiting:
            raise NotReady("certificate not rendered yet")
        if record.id in gone:
            return None
        return materialize(record)

    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port)
    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, materialize_some)
    before = datetime.now(UTC)
    assert await worker.deliver_once() == 6
    assert await worker.deliver_once() == 0, "not-ready mails wait a little"
    await pool.close()
    by_id = {r.id: r for r in await records(db)}
    for mail_id in waiting:
        record = by_id[mail_id]
        assert (record.state, record.attempts) == (MailState.QUEUED, 0)
        assert record.next_attempt_at >= before + timedelta(seconds=9)
        assert record.last_error == "not ready: certificate not rendered yet"
    for mail_id in gone:
        assert by_id[mail_id].state is MailState.CANCELLED
    assert Counter(r.state for r in by_id.values())[MailState.SENT] == 2


async def test_a_failing_materialize_is_retried_then_failed(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    [record] = mails(run_id(), 1)
    await store.queue_many(db, [record])

    def broken(record: MailRecord) -> MaterializedMail:
        raise KeyError("template missing")

    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port, mail_max_attempts=2)
    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, broken, poll_seconds=0.05)
    counts = await run_until_final(worker, db, 1)
    await pool.close()
    assert counts == Counter(failed=1)
    [after] = await records(db)
    assert after.attempts == 2 and "template missing" in (after.last_error or "")


# ---------------------------------------------------------------- queueing and erasure


async def test_queue_mail_in_a_transaction_skips_a_repeated_dedupe_key(db: DatabaseT) -> None:
    first, again = mails("same-run", 1)[0], mails("same-run", 1)[0]
    # The same dedupe key makes the same mail id and Message-ID.
    assert first.dedupe_key == again.dedupe_key and first.message_id == again.message_id

    async def work(session: Session) -> tuple[bool, bool]:
        await db.other.insert_one({"_id": "state change"}, session=session)
        return (
            await store.queue_mail(scope(db, session), first),
            await store.queue_mail(scope(db, session), again),
        )

    assert await in_transaction(db.client, work) == (True, False)
    assert await db.other.count_documents({}) == 1, "the caller's transaction committed"

    async def later(session: Session) -> bool:
        return await store.queue_mail(scope(db, session), again)

    assert await in_transaction(db.client, later) is False
    assert [r.id for r in await records(db)] == [first.id]


async def test_queue_many_resumes_a_fan_out_without_doubling(db: DatabaseT) -> None:
    run = run_id()
    assert await store.queue_many(db, mails(run, 50)) == 50
    # A fan-out that crashed after 50 and starts over: new ids, same dedupe keys.
    assert await store.queue_many(db, mails(run, 120)) == 70
    assert await db[store.COLLECTION].count_documents({}) == 120
    assert await store.queue_many(db, []) == 0


async def test_erasure_removes_the_person_from_every_mail_and_cancels_queued_ones(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    run = run_id()
    theirs = [
        r.model_copy(update={"ambassador_id": "amb-erased", "subscriber_id": "sub-erased"})
        for r in mails(run, 3, kind="welcome")
    ]
    theirs[2] = theirs[2].model_copy(update={"ambassador_id": None, "context": {"name": "Hanne"}})
    others = mails(run_id(), 2, kind="issue")
    await store.queue_many(db, [*theirs[:1], *others])
    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port)
    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, materialize)
    assert await worker.deliver_once() == 3
    await store.queue_many(db, theirs[1:])

    async def erase(session: Session) -> int:
        return await erase_recipient(
            scope(db, session), ambassador_id="amb-erased", subscriber_id="sub-erased"
        )

    assert await in_transaction(db.client, erase) == 3
    by_id = {r.id: r for r in await records(db)}
    assert by_id[theirs[0].id].state is MailState.SENT
    assert [by_id[r.id].state for r in theirs[1:]] == [MailState.CANCELLED] * 2
    for record in theirs:
        after = by_id[record.id]
        assert (after.to_address, after.to_name, after.context) == (None, None, {})
        assert after.erased_at is not None
    assert all(by_id[r.id].to_address is not None for r in others)
    for doc in [d async for d in db[store.COLLECTION].find({})]:
        for record in theirs:
            assert record.to_address and record.to_address not in str(doc)
    # Nothing left to send for them.
    assert await worker.deliver_once() == 0
    await pool.close()


async def test_a_mail_erased_while_waiting_for_a_retry_is_cancelled(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    [record] = mails(run_id(), 1)
    await store.queue_many(db, [record])
    now = datetime.now(UTC)
    # Erased while being sent: the send's outcome (a 4xx) puts it back in the queue...
    [claimed] = await store.claim_due(db, "w", now, 1, timedelta(seconds=30))

    async def erase(session: Session) -> int:
        return await erase_recipient(scope(db, session), subscriber_id=claimed.subscriber_id)

    await in_transaction(db.client, erase)
    failure = TransientFailure("451 later", 451)
    update = transient_failure(claimed, failure, now, max_attempts=5, backoff=[0.0])
    await store.mark(db, "w", [(claimed, update)])
    # ...where the worker finds no address and cancels it without calling materialize.
    called: list[str] = []

    def spy(record: MailRecord) -> MaterializedMail:
        called.append(record.id)
        return materialize(record)

    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port)
    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, spy)
    assert await worker.deliver_once() == 1
    await pool.close()
    [after] = await records(db)
    assert after.state is MailState.CANCELLED and called == []
    assert after.to_address is None


async def test_counts_by_state_per_issue(db: DatabaseT) -> None:
    run = run_id()
    await store.queue_many(db, mails(run, 4))
    await store.queue_many(db, mails(run_id(), 2))
    counts = await store.count_by_state(db, issue_id=f"issue-{run}")
    assert counts == {"queued": 4, "sending": 0, "sent": 0, "failed": 0, "cancelled": 0}
    assert (await store.count_by_state(db))["queued"] == 6


# ---------------------------------------------------------------- the sink


async def test_sink_drops_a_repeated_message_id_even_after_a_restart(tmp_path: Path) -> None:
    sink = start_smtp_sink(tmp_path)
    [record] = mails(run_id(), 1)
    mail = materialize(record)
    try:
        settings = settings_for("mongodb://unused", sink.host, sink.port)
        pool = SmtpPool(settings)
        await pool.send(mail.message, mail.sender, mail.recipients)
        await pool.send(mail.message, mail.sender, mail.recipients)
        await pool.close()
    finally:
        sink.stop()
    again = start_smtp_sink(tmp_path)
    try:
        settings = settings_for("mongodb://unused", again.host, again.port)
        pool = SmtpPool(settings)
        await pool.send(mail.message, mail.sender, mail.recipients)
        await pool.close()
        assert [m["Message-ID"] for m in again.messages()] == [record.message_id]
        assert again.duplicates() == [record.message_id] * 2
        assert all(p.suffix == ".eml" for p in again.mail_dir.iterdir())
    finally:
        again.stop()


async def test_a_confirmation_does_not_wait_behind_an_issue_fan_out(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    run = run_id()
    await store.queue_many(db, mails(run, 100, kind="issue"))
    [confirmation] = mails(run, 1, kind="confirmation")
    await store.queue_many(db, [confirmation])
    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port, mail_batch_size=10)
    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, materialize)
    assert await worker.deliver_once() == 10
    await pool.close()
    after = await store.get_mail(db, confirmation.id)
    assert after is not None and after.state is MailState.SENT


# ---------------------------------------------------------------- batching what a batch needs


async def test_a_mark_applies_to_the_mails_still_owned_and_says_which(
    db: DatabaseT, mongo_server: MongoServer
) -> None:
    kept, lost = mails(run_id(), 2)
    await store.queue_many(db, [kept, lost])
    now = datetime.now(UTC)
    claimed = await store.claim_due(db, "slow", now, 10, timedelta(milliseconds=1))
    assert {r.id for r in claimed} == {kept.id, lost.id}
    later = now + timedelta(seconds=1)
    # Only `lost` comes back to another worker (the other is not a candidate for it).
    [fast] = await store.claim_ids(db, "fast", [], [lost.id], later, timedelta(seconds=30))
    applied = await store.mark(db, "slow", [(r, delivered(r, later)) for r in claimed])
    assert applied == {kept.id}, "the matched count came up short: the ids marked are read back"
    by_id = {r.id: r for r in await records(db)}
    assert by_id[kept.id].state is MailState.SENT
    assert by_id[lost.id].state is MailState.SENDING and by_id[lost.id].claimed_by == "fast"
    assert await store.mark(db, "fast", [(fast, delivered(fast, later))]) == {lost.id}


async def test_each_claimed_batch_is_prefetched_once_before_its_mails_materialize(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port, mail_batch_size=10)
    queued = mails(run_id(), 35)
    await store.queue_many(db, queued)
    prefetched: list[list[str]] = []
    before: list[bool] = []

    async def prefetch(batch: list[MailRecord]) -> None:
        await asyncio.sleep(0.01)  # a query's round trip
        prefetched.append([r.id for r in batch])

    def checked(record: MailRecord) -> MaterializedMail:
        before.append(any(record.id in batch for batch in prefetched))
        return materialize(record)

    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, checked, prefetch=prefetch, poll_seconds=0.05)
    counts = await run_until_final(worker, db, 35)
    await pool.close()
    assert counts == Counter(sent=35)
    assert all(before) and len(before) == 35
    assert all(len(batch) <= 10 for batch in prefetched)
    assert sorted(i for batch in prefetched for i in batch) == sorted(r.id for r in queued)


async def test_a_failing_prefetch_does_not_stop_delivery(
    db: DatabaseT, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(mongo_server.url, smtp_sink.host, smtp_sink.port)
    await store.queue_many(db, mails(run_id(), 20))

    async def prefetch(batch: list[MailRecord]) -> None:
        raise RuntimeError("database gone")

    pool = SmtpPool(settings)
    worker = DeliveryWorker(db, pool, settings, materialize, prefetch=prefetch)
    assert await worker.deliver_once() == 20
    await pool.close()
    assert await states(db) == Counter(sent=20)
