"""kill -9 the ambassadors service (and nats-server) mid-work: nothing lost, nothing doubled.

Each test runs its own nats-server (so the AMBASSADORS stream holds only this test's events
and nats-server itself can be killed) against the session's SecantusDB with a database of its
own. What is checked after every crash and restart, once the outbox relay has drained:

- every acknowledged sign-up is stored exactly once (one ambassador, one consent in it);
- the ``signed_up`` and ``activated`` events of every stored ambassador are on the stream
  exactly once each (distinct ``event_id``s, ``Nats-Msg-Id`` = ``event_id``), and the stream
  holds exactly 2 x stored of them: none for an ambassador that is not stored (no phantom
  publish) and no outbox entry missing (no gap);
- ``certificate_issued`` events, which keep coming while certificates render, are never
  doubled and never for an unknown ambassador.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import DiscardPolicy, StreamConfig
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.ambassadors import STREAM, Endpoints
from contracts.errors import ErrorCode, ServiceError
from services.runtime.client import ServiceClient
from services.runtime.outbox import published_events
from services.runtime.settings import ClientSettings
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.processes import ManagedProcess
from tests.support.chaos import poll, stream_events
from tests.support.stack import TOKEN_SECRETS, start_service

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

SIGNED_UP = "ambassadors.v1.signed_up"
ACTIVATED = "ambassadors.v1.activated"
CERTIFICATE_ISSUED = "ambassadors.v1.certificate_issued"
OURS = (SIGNED_UP, ACTIVATED)

# A relay killed mid-batch leaves its claimed entries "in progress" until their lease runs
# out; a short lease keeps the tests fast (the default, 30 s, only delays, never loses).
CLAIM_TIMEOUT_SECONDS = 3
DRAIN_TIMEOUT_SECONDS = 90.0
# A sign-up killed mid-transaction leaves that transaction open in the database until it is
# reaped (transactionLifetimeLimitSeconds: 60 s in mongod and SecantusDB); a retry of the
# same sign-up conflicts with it (same e-mail key) and waits that long. Slow, not wrong;
# the tests here end such transactions at once (Harness.end_orphaned_transactions), the
# deadline still allows for the wait.
RETRY_TIMEOUT_SECONDS = 75.0

Document = dict[str, Any]


# ---------------------------------------------------------------------------- plumbing


@dataclass
class Outcome:
    """What the client saw for one sign-up request."""

    email: str
    ambassador_id: str | None = None
    error: str | None = None

    @property
    def acked(self) -> bool:
        return self.ambassador_id is not None


@dataclass
class Harness:
    """One test's world: its nats-server, its database, its ambassadors service."""

    nats: NatsServer
    mongo_url: str
    database: str
    data_dir: Path
    db: AsyncDatabase[Document]
    processes: list[ManagedProcess] = field(default_factory=list)
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    async def end_orphaned_transactions(self) -> None:
        """End the transactions a killed service left open, as an operator can after a
        crash (``killAllSessions``), instead of waiting the 60 s until the database reaps
        them: that wait is slow, not wrong, and test_kill_events goes through it. Only
        this test's processes use its database server, and the killed one is gone."""
        await self.db.client.admin.command("killAllSessions", [])

    def env(self) -> dict[str, str]:
        return {
            **TOKEN_SECRETS,
            "SAMSKAB_NATS_URL": self.nats.url,
            "SAMSKAB_MONGO_URL": self.mongo_url,
            "SAMSKAB_MONGO_DATABASE": self.database,
            "SAMSKAB_DEMO_IMPORT": "false",
            "SAMSKAB_DATA_DIR": str(self.data_dir),
            "SAMSKAB_OUTBOX_CLAIM_TIMEOUT_SECONDS": str(CLAIM_TIMEOUT_SECONDS),
        }

    async def start_service(self) -> ManagedProcess:
        process = await asyncio.to_thread(
            start_service,
            "ambassadors",
            nats_url=self.nats.url,
            env=self.env(),
            log_path=self.data_dir / "log" / "ambassadors.log",
        )
        self.processes.append(process)
        return process

    def payloads(self, count: int) -> list[dict[str, Any]]:
        return [
            {
                "name": f"Kaos Ambassadør {i}",
                "email": f"chaos-{self.run}-{i}@example.org",
                "kind": "citizen",
                "consent": True,
            }
            for i in range(count)
        ]

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[ServiceClient]:
        client = ServiceClient(ClientSettings(_env_file=None, nats_url=self.nats.url))
        await client.connect()
        try:
            yield client
        finally:
            await client.close()


async def restart(process: ManagedProcess, timeout: float = 60.0) -> None:
    """Start a killed process again and wait until it answers its health check."""

    def run() -> None:
        process.start()
        process.wait_ready(timeout=timeout, interval=0.2)

    await asyncio.to_thread(run)


async def sign_up(client: ServiceClient, payload: dict[str, Any], timeout: float) -> Outcome:
    try:
        result = await client.request(Endpoints.REGISTER.subject, payload, timeout=timeout)
    except ServiceError as exc:
        return Outcome(payload["email"], error=exc.code.value)
    except Exception as exc:  # the connection died with nats-server
        return Outcome(payload["email"], error=type(exc).__name__)
    return Outcome(payload["email"], ambassador_id=str(result["ambassador"]["id"]))


async def undrained(db: AsyncDatabase[Document]) -> int:
    """Outbox entries of sign-up events (the outbox holds only what is not yet published)."""
    return await db.outbox.count_documents({"subject": {"$in": list(OURS)}})


async def wait_drained(db: AsyncDatabase[Document], timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
    async def drained() -> bool:
        return await undrained(db) == 0

    await poll("the outbox relay to publish every sign-up event", drained, timeout, 0.3)


async def stream_limits(
    nats_url: str, *, max_msgs: int | None, discard: DiscardPolicy | None
) -> StreamConfig:
    """Set the AMBASSADORS stream's message limit; returns the config it had before."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        config = (await js.stream_info(STREAM)).config
        before = dataclasses.replace(config)
        config.max_msgs = max_msgs
        config.discard = discard
        await js.update_stream(config)
        return before
    finally:
        await nc.close()


@dataclass
class Checked:
    """The stored ambassadors by e-mail, as the invariants found them."""

    by_email: dict[str, str]
    stream_count: int


async def check_exactly_once(harness: Harness, acked: list[Outcome]) -> Checked:
    """Assert every invariant of the module docstring; returns what is stored."""
    db = harness.db
    await wait_drained(db)

    docs = [
        doc async for doc in db.ambassadors.find({}, {"_id": 1, "profile.email": 1, "consents": 1})
    ]
    emails = Counter(str(doc["profile"]["email"]) for doc in docs)
    doubled = {email: n for email, n in emails.items() if n > 1}
    assert not doubled, f"sign-ups stored more than once: {doubled}"
    by_email = {str(doc["profile"]["email"]): str(doc["_id"]) for doc in docs}
    stored = set(by_email.values())

    missing = [o for o in acked if by_email.get(o.email) != o.ambassador_id]
    assert not missing, f"{len(missing)} acknowledged sign-ups are not stored: {missing[:3]}"

    consents = {str(doc["_id"]): len(doc.get("consents") or []) for doc in docs}
    assert set(consents.values()) == {1}, (
        "every stored ambassador must have exactly one consent record"
    )

    events = await stream_events(harness.nats.url, STREAM)
    ours = [e for e in events if e.subject in OURS]
    ids = Counter(e.event_id for e in ours)
    assert all(n == 1 for n in ids.values()), "an event_id is on the stream twice"
    assert all(e.msg_id == e.event_id for e in ours), "Nats-Msg-Id must be the event_id"
    phantoms = [e for e in events if e.ambassador_id not in stored]
    assert not phantoms, f"events for ambassadors that are not stored: {phantoms[:3]}"
    for subject in OURS:
        per_ambassador = Counter(e.ambassador_id for e in ours if e.subject == subject)
        assert set(per_ambassador) == stored, f"{subject}: some stored ambassador lacks it"
        doubled_events = {a: n for a, n in per_ambassador.items() if n != 1}
        assert not doubled_events, f"{subject} more than once for: {doubled_events}"
    assert len(ours) == 2 * len(stored)

    recorded = {e.event_id for e in await published_events(db, OURS)}
    assert recorded == set(ids), "the outbox and the stream disagree (a gap or an extra)"

    certificates = Counter(e.ambassador_id for e in events if e.subject == CERTIFICATE_ISSUED)
    assert all(n == 1 for n in certificates.values()), "a certificate was announced twice"
    return Checked(by_email=by_email, stream_count=len(ours))


async def retry_unacknowledged(
    client: ServiceClient, harness: Harness, outcomes: list[Outcome], before: Checked
) -> list[Outcome]:
    """A client retries what it never got an answer to: each ends stored once."""
    payloads = {p["email"]: p for p in harness.payloads(len(outcomes))}
    retries = [o for o in outcomes if not o.acked]
    gate = asyncio.Semaphore(16)

    async def retry(outcome: Outcome) -> Outcome:
        async with gate:
            return await sign_up(client, payloads[outcome.email], timeout=RETRY_TIMEOUT_SECONDS)

    results = await asyncio.gather(*(retry(o) for o in retries))
    for result in results:
        if result.email in before.by_email:
            # Stored before its first request was lost: the retry is a conflict, not a copy.
            assert result.error == ErrorCode.CONFLICT.value, result
        else:
            assert result.acked, f"a retry of a sign-up that was not stored failed: {result}"
    return [o for o in outcomes if o.acked] + [r for r in results if r.acked]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def harness(
    own_nats: NatsServer, own_mongo: MongoServer, tmp_path: Path
) -> AsyncIterator[Harness]:
    database = f"chaos_{uuid.uuid4().hex[:12]}"
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(own_mongo.url, tz_aware=True)
    world = Harness(
        nats=own_nats,
        mongo_url=own_mongo.url,
        database=database,
        data_dir=tmp_path,
        db=mongo[database],
    )
    yield world
    for process in reversed(world.processes):
        process.stop()
    if world.processes:
        tail = world.processes[0].log_tail(60)
        print(f"--- ambassadors log {world.processes[0].log_path}\n{tail}")
    # No drop_database: SecantusDB livelocks (and stops answering anyone) when a database is
    # dropped while a transaction orphaned by a killed client is still open in it. The
    # session's store is a temporary directory anyway.
    await mongo.close()


# ---------------------------------------------------------------------------- tests


async def test_kill_with_200_sign_ups_in_flight(harness: Harness) -> None:
    """kill -9 while 200 staff sign-ups are in flight; restart; nothing lost or doubled."""
    total, kill_after = 200, 50
    service = await harness.start_service()
    payloads = harness.payloads(total)
    outcomes: list[Outcome | None] = [None] * total
    acked = 0
    in_flight_at_kill = 0

    async with harness.client() as client:

        async def one(i: int) -> None:
            nonlocal acked, in_flight_at_kill
            outcome = await sign_up(client, payloads[i], timeout=15.0)
            outcomes[i] = outcome
            if outcome.acked:
                acked += 1
                if acked == kill_after:
                    service.kill()  # SIGKILL to its process group: the renderer dies too
                    in_flight_at_kill = sum(1 for o in outcomes if o is None)

        await asyncio.gather(*(one(i) for i in range(total)))
        results = [o for o in outcomes if o is not None]
        assert service.returncode == -9, "the service was not killed mid-run"
        assert in_flight_at_kill >= 50, f"only {in_flight_at_kill} sign-ups were in flight"
        unanswered = {o.error for o in results if not o.acked}
        assert unanswered <= {ErrorCode.SERVICE_UNAVAILABLE.value}, unanswered
        first_acks = [o for o in results if o.acked]
        assert kill_after <= len(first_acks) < total

        await harness.end_orphaned_transactions()
        await restart(service)
        before = await check_exactly_once(harness, first_acks)
        # Requests in flight at the kill may have committed without an answer: fine, but
        # then they are complete (checked above), and nothing else is stored.
        assert set(before.by_email) <= {p["email"] for p in payloads}
        assert len(before.by_email) >= len(first_acks)

        all_acked = await retry_unacknowledged(client, harness, results, before)
        after = await check_exactly_once(harness, all_acked)
        assert set(after.by_email) == {p["email"] for p in payloads}
        assert after.stream_count == 2 * total
    print(
        f"acked before kill: {len(first_acks)}, in flight at kill: {in_flight_at_kill}, "
        f"stored without an answer: {len(before.by_email) - len(first_acks)}"
    )


async def test_kill_with_outbox_backlog(harness: Harness) -> None:
    """kill -9 while the relay has a backlog (JetStream refusing more), then mid-drain."""
    total, accepted = 100, 60
    service = await harness.start_service()

    # JetStream takes `accepted` messages, then refuses: the relay publishes those, fails on
    # the next, hands its batch back and backs off, so the rest piles up in the outbox.
    shipped = await stream_limits(harness.nats.url, max_msgs=accepted, discard=DiscardPolicy.NEW)

    async with harness.client() as client:
        gate = asyncio.Semaphore(16)

        async def one(payload: dict[str, Any]) -> Outcome:
            async with gate:
                return await sign_up(client, payload, timeout=30.0)

        outcomes = await asyncio.gather(*(one(p) for p in harness.payloads(total)))
    assert all(o.acked for o in outcomes), [o for o in outcomes if not o.acked][:3]
    db = harness.db

    async def backlog_stuck() -> bool:
        published = len(await published_events(db))
        refused = await db.outbox.count_documents({"last_error": {"$exists": True}})
        return published == accepted and refused > 0

    await poll("the relay to hit the stream limit", backlog_stuck, 30.0)
    pending = await undrained(db)
    assert pending >= 2 * total - accepted
    service.kill()

    # JetStream accepts again (as after an operator raised the limit); the relay resumes
    # after the restart. Kill it again as soon as it has published part of the backlog.
    await stream_limits(harness.nats.url, max_msgs=shipped.max_msgs, discard=shipped.discard)
    await restart(service)
    killed_mid_drain = False
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        left = await undrained(db)
        if left == 0:
            break
        if left < pending:
            service.kill()
            killed_mid_drain = True
            break
        await asyncio.sleep(0.005)
    print(f"backlog at first kill: {pending}; killed again mid-drain: {killed_mid_drain}")
    if not service.running:
        await restart(service)
    await check_exactly_once(harness, list(outcomes))


async def test_kill_nats_server_during_sign_ups(harness: Harness) -> None:
    """kill -9 nats-server mid-run, restart it on the same store: the relay catches up."""
    total, kill_after = 200, 50
    await harness.start_service()
    payloads = harness.payloads(total)
    outcomes: list[Outcome | None] = [None] * total
    acked = 0
    nats_server = harness.nats

    async with harness.client() as client:
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            nonlocal acked
            async with gate:
                if not nats_server.running:
                    outcomes[i] = Outcome(payloads[i]["email"], error="nats down")
                    return
                outcome = await sign_up(client, payloads[i], timeout=5.0)
            outcomes[i] = outcome
            if outcome.acked:
                acked += 1
                if acked == kill_after:
                    nats_server.kill()

        await asyncio.gather(*(one(i) for i in range(total)))
    results = [o for o in outcomes if o is not None]
    first_acks = [o for o in results if o.acked]
    assert nats_server.returncode == -9
    assert kill_after <= len(first_acks) < total

    await restart(nats_server, timeout=30.0)
    # The service reconnects by itself; wait until it answers again.
    process = harness.processes[0]
    assert process.running, "the service must survive a nats-server crash"
    await asyncio.to_thread(process.wait_ready, timeout=60.0, interval=0.2)
    before = await check_exactly_once(harness, first_acks)
    async with harness.client() as client:
        all_acked = await retry_unacknowledged(client, harness, results, before)
    after = await check_exactly_once(harness, all_acked)
    assert set(after.by_email) == {p["email"] for p in payloads}
    print(
        f"acked before nats-server died: {len(first_acks)}, "
        f"stored without an answer: {len(before.by_email) - len(first_acks)}, "
        f"retried: {total - len(first_acks)}"
    )
