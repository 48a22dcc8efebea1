"""kill -9 the database (SecantusDB) mid-work: nothing lost, nothing doubled, no restart needed.

The test runs a SecantusDB and a nats-server of its own (the database is killed; the stream
must hold only this test's events) and the real ambassadors service as a process. Staff
sign-ups go in with some concurrency; after a third of them are acknowledged, SecantusDB is
killed with SIGKILL and started again on the same data directory and port a few seconds
later, while sign-ups keep arriving. The service is never restarted. Then:

- the service is still the process it was (no crash, no crash loop) and answers again;
- every request sent while the database was down failed with a structured error (what the
  service answers) or a client-side timeout (what the client library turns into
  ``service_unavailable``), and no reply was anything else;
- every acknowledged sign-up is stored exactly once, with one consent record: SecantusDB's
  write-ahead log kept every committed transaction across the kill;
- the outbox relay resumed by itself and drained: the ``signed_up`` and ``activated`` events
  of every stored ambassador are on the stream exactly once each (distinct ``event_id``s,
  ``Nats-Msg-Id`` = ``event_id``), none for a sign-up that is not stored, and the stream and
  the outbox agree entry for entry;
- certificates keep distinct numbers (their counter lives outside the sign-up transaction,
  so it must survive the kill too), the certificate worker renders again without a
  restart, and ``certificate_issued`` is never doubled;
- a client retrying what it got no answer to ends with every sign-up stored once, and
  sign-ups sent after the restart succeed.

What a caller sees during the outage (measured, not a contract; the test accepts it):

- a sign-up gets no answer: ``in_transaction`` (pymongo's ``with_transaction``) retries the
  transaction for up to 120 s, so the client's own timeout fires ("did not answer in
  time", ``service_unavailable``) and the sign-up is usually stored once the database is
  back; a retry then answers ``conflict``;
- a query, and a sign-up that fails outside its transaction (the certificate serial
  counter), answer ``internal`` ("internal error: ServerSelectionTimeoutError") after
  pymongo's 10 s server selection timeout; ``ambassadors.health`` says
  ``service_unavailable`` with the database error;
- rarely, ``conflict`` for a sign-up's first request: its commit reached the disk just
  before the kill but the reply did not, and SecantusDB forgets committed transactions
  when it restarts (mongod keeps them in ``config.transactions``), so pymongo's retried
  commit fails with NoSuchTransaction + TransientTransactionError, ``with_transaction``
  runs the handler again and it meets its own record. Nothing is lost or doubled (the
  sign-up handler is idempotent in effect); the caller is only told the wrong thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
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
from tests.support.stack import TOKEN_SECRETS, start_mongo, start_service

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

SIGNED_UP = "ambassadors.v1.signed_up"
ACTIVATED = "ambassadors.v1.activated"
CERTIFICATE_ISSUED = "ambassadors.v1.certificate_issued"
OURS = (SIGNED_UP, ACTIVATED)

TOTAL = 150  # sign-ups in the first wave
KILL_AFTER = 50  # acknowledged sign-ups before the database is killed
CONCURRENCY = 16  # requests in flight at once (the service's endpoint_concurrency)
# How long the database stays down: longer than pymongo's server selection timeout (10 s,
# services/runtime/mongo.py), so reads and the relay's writes fail instead of just waiting.
OUTAGE_SECONDS = 12.0
REQUEST_TIMEOUT = 3.0  # client-side, per sign-up
PROBE_TIMEOUT = 25.0  # client-side, for a query: long enough for the service's own answer
# What a caller may be told while the database is down.
OUTAGE_CODES = {ErrorCode.SERVICE_UNAVAILABLE.value, ErrorCode.INTERNAL.value}
AFTER_RESTART = 20  # fresh sign-ups once everything has recovered
# The relay holds entries it publishes under a lease; one it lost track of when its write
# to the dead database failed is published again after the lease (default 30 s).
CLAIM_TIMEOUT_SECONDS = 3
RECOVERY_TIMEOUT_SECONDS = 45.0

Document = dict[str, Any]


# ---------------------------------------------------------------------------- plumbing


@dataclass
class Outcome:
    """What the client saw for one sign-up request, and whether the database was up."""

    email: str
    ambassador_id: str | None = None
    code: str | None = None
    message: str | None = None
    sent_during_outage: bool = False

    @property
    def acked(self) -> bool:
        return self.ambassador_id is not None


@dataclass
class Harness:
    """One test's world: its SecantusDB, its nats-server, its ambassadors service."""

    mongo: MongoServer
    nats: NatsServer
    data_dir: Path
    database: str
    db: AsyncDatabase[Document]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    processes: list[ManagedProcess] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            **TOKEN_SECRETS,
            "SAMSKAB_NATS_URL": self.nats.url,
            "SAMSKAB_MONGO_URL": self.mongo.url,
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

    def payload(self, label: str) -> dict[str, Any]:
        return {
            "name": f"Databasekaos {label}",
            "email": f"dbchaos-{self.run}-{label}@example.org",
            "kind": "citizen",
            "consent": True,
        }

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[ServiceClient]:
        client = ServiceClient(ClientSettings(_env_file=None, nats_url=self.nats.url))
        await client.connect()
        try:
            yield client
        finally:
            await client.close()


async def sign_up(
    client: ServiceClient, payload: dict[str, Any], timeout: float = REQUEST_TIMEOUT
) -> Outcome:
    """One request; a ServiceError is the structured error (the service's or the client's)."""
    try:
        result = await client.request(Endpoints.REGISTER.subject, payload, timeout=timeout)
    except ServiceError as exc:
        return Outcome(payload["email"], code=exc.code.value, message=exc.error.message)
    return Outcome(payload["email"], ambassador_id=str(result["ambassador"]["id"]))


@dataclass
class Probe:
    """A request's structured error (None when it succeeded)."""

    code: str | None
    message: str | None

    @property
    def answered_by_service(self) -> bool:
        return self.code is not None and "did not answer in time" not in (self.message or "")


async def request(client: ServiceClient, subject: str, payload: dict[str, Any]) -> Probe:
    try:
        await client.request(subject, payload, timeout=PROBE_TIMEOUT)
    except ServiceError as exc:
        return Probe(exc.code.value, exc.error.message)
    return Probe(None, None)


def restart(server: MongoServer) -> None:
    server.start()
    server.wait_ready(timeout=30.0, interval=0.1)


async def wait_drained(db: AsyncDatabase[Document]) -> None:
    """Every outbox entry published: the relay resumed by itself after the outage."""

    async def drained() -> bool:
        return await db.outbox.count_documents({}) == 0

    await poll("the outbox relay to publish every entry", drained, RECOVERY_TIMEOUT_SECONDS, 0.3)


async def check_exactly_once(harness: Harness, acked: list[Outcome]) -> dict[str, str]:
    """Assert the invariants of the module docstring; returns the stored ids by e-mail."""
    db = harness.db
    await wait_drained(db)

    docs = [
        doc
        async for doc in db.ambassadors.find(
            {}, {"_id": 1, "profile.email": 1, "certificate.number": 1, "consents": 1}
        )
    ]
    emails = Counter(str(doc["profile"]["email"]) for doc in docs)
    doubled = {email: n for email, n in emails.items() if n > 1}
    assert not doubled, f"sign-ups stored more than once: {doubled}"
    by_email = {str(doc["profile"]["email"]): str(doc["_id"]) for doc in docs}
    stored = set(by_email.values())

    missing = [o for o in acked if by_email.get(o.email) != o.ambassador_id]
    assert not missing, (
        f"{len(missing)} acknowledged sign-ups are not stored after the database crash: "
        f"{missing[:3]}"
    )

    consents = {str(doc["_id"]): len(doc.get("consents") or []) for doc in docs}
    assert 0 not in consents.values(), "every stored ambassador needs its consent record"
    assert set(consents.values()) == {1}, "a consent record is stored twice"

    numbers = Counter(str(doc["certificate"]["number"]) for doc in docs)
    reused = {number: n for number, n in numbers.items() if n > 1}
    assert not reused, f"certificate numbers given twice (serial counter lost): {reused}"

    events = await stream_events(harness.nats.url, STREAM)
    ours = [e for e in events if e.subject in OURS]
    ids = Counter(e.event_id for e in ours)
    assert all(n == 1 for n in ids.values()), "an event_id is on the stream twice"
    assert all(e.msg_id == e.event_id for e in ours), "Nats-Msg-Id must be the event_id"
    phantoms = [e for e in events if e.ambassador_id not in stored]
    assert not phantoms, f"events for sign-ups that are not stored: {phantoms[:3]}"
    for subject in OURS:
        per_ambassador = Counter(e.ambassador_id for e in ours if e.subject == subject)
        lacking = stored - set(per_ambassador)
        assert not lacking, f"{subject} missing for {len(lacking)} stored ambassadors"
        doubled_events = {a: n for a, n in per_ambassador.items() if n != 1}
        assert not doubled_events, f"{subject} more than once for: {doubled_events}"
    assert len(ours) == 2 * len(stored)

    recorded = {e.event_id for e in await published_events(db, OURS)}
    assert recorded == set(ids), "the outbox and the stream disagree (a gap or an extra)"

    certificates = Counter(e.ambassador_id for e in events if e.subject == CERTIFICATE_ISSUED)
    assert all(n == 1 for n in certificates.values()), "a certificate was announced twice"
    return by_email


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[MongoServer]:
    """A SecantusDB for this test alone (the session's must not be killed)."""
    server = start_mongo(tmp_path / "own-mongo")
    yield server
    server.stop()


@pytest.fixture
async def harness(
    own_mongo: MongoServer, own_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[Harness]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        own_mongo.url, tz_aware=True, serverSelectionTimeoutMS=10_000
    )
    database = f"chaos_db_{uuid.uuid4().hex[:10]}"
    world = Harness(
        mongo=own_mongo, nats=own_nats, data_dir=tmp_path, database=database, db=client[database]
    )
    yield world
    for process in reversed(world.processes):
        process.stop()
    for process in world.processes:
        print(f"--- ambassadors log {process.log_path}\n{process.log_tail(60)}")
    print(f"--- secantusdb log {own_mongo.log_path}\n{own_mongo.log_tail(30)}")
    await client.close()


# ---------------------------------------------------------------------------- the test


async def test_kill_database_during_sign_ups(harness: Harness) -> None:
    """kill -9 SecantusDB with sign-ups in flight, restart it: the service recovers alone."""
    started = time.monotonic()
    service = await harness.start_service()
    mongo = harness.mongo
    payloads = [harness.payload(str(i)) for i in range(TOTAL)]
    outcomes: list[Outcome | None] = [None] * TOTAL
    acked = 0
    down = False
    enough = asyncio.Event()

    async with harness.client() as client:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            nonlocal acked
            async with gate:
                during = down
                outcome = await sign_up(client, payloads[i])
            outcome.sent_during_outage = during
            outcomes[i] = outcome
            if outcome.acked:
                acked += 1
                if acked >= KILL_AFTER:
                    enough.set()

        wave = asyncio.gather(*(one(i) for i in range(TOTAL)))
        await asyncio.wait_for(enough.wait(), timeout=60.0)
        mongo.kill()  # SIGKILL, as a crash of the database would
        down, down_at = True, time.monotonic()
        assert mongo.returncode == -9

        # What the service itself answers while its database is gone (it gives up on a
        # read after pymongo's server selection timeout, 10 s): a structured error.
        some_id = next(o.ambassador_id for o in outcomes if o is not None and o.acked)
        probes = asyncio.gather(
            request(client, Endpoints.SHOW.subject, {"ambassador_id": some_id}),
            request(client, "ambassadors.health", {}),
        )
        await asyncio.sleep(OUTAGE_SECONDS)
        # On a slow machine the database stays down until the service has answered them.
        show, health = await probes
        await asyncio.to_thread(restart, mongo)  # same data directory and port
        down, up_at, up_wall = False, time.monotonic(), datetime.now(UTC)

        await wave
        results = [o for o in outcomes if o is not None]
        assert len(results) == TOTAL

        # The service lived through it: the same process, started once, healthy again.
        assert service.running, f"the service died with the database:\n{service.log_tail(40)}"
        assert service.starts == 1
        await asyncio.to_thread(service.wait_ready, timeout=RECOVERY_TIMEOUT_SECONDS)

        failed = [o for o in results if not o.acked]
        during = [o for o in results if o.sent_during_outage]
        codes = Counter(f"{o.code}: {o.message}" for o in failed)
        print(
            f"\nacked {len(results) - len(failed)}/{TOTAL}; sent during the outage: "
            f"{len(during)} ({sum(o.acked for o in during)} acked); failures: {dict(codes)}; "
            f"show during the outage: {show}; health: {health}"
        )
        for probe in (show, health):
            # Answered by the service (not the client giving up), as a structured error.
            assert probe.code in OUTAGE_CODES and probe.answered_by_service, probe
        assert health.code == ErrorCode.SERVICE_UNAVAILABLE.value, health
        assert sum(o.sent_during_outage and not o.acked for o in results) >= CONCURRENCY, (
            "too few sign-ups met the dead database"
        )
        # Every failed sign-up is a structured error a caller can act on: the client's "did
        # not answer in time" (the service keeps retrying its transaction meanwhile), or
        # the service's own answer.
        assert {o.code for o in failed} <= {*OUTAGE_CODES, ErrorCode.CONFLICT.value}, codes
        first_acks = [o for o in results if o.acked]
        assert KILL_AFTER <= len(first_acks) < TOTAL

        before = await check_exactly_once(harness, first_acks)
        # A request that timed out may still have committed once the database was back:
        # then it is complete (checked above); nothing outside our payloads is stored.
        assert set(before) <= {p["email"] for p in payloads}
        # A CONFLICT for a first request: its commit was lost in the kill's reply, and
        # the handler ran again and met its own record (see the module docstring). It must
        # then be stored, once, with its events (checked above).
        conflicts = [o for o in failed if o.code == ErrorCode.CONFLICT.value]
        assert all(o.email in before for o in conflicts), conflicts

        # The client retries what it never got an answer to: each is then stored once.
        retry_gate = asyncio.Semaphore(CONCURRENCY)
        by_email = {p["email"]: p for p in payloads}

        async def retry(outcome: Outcome) -> Outcome:
            async with retry_gate:
                return await sign_up(client, by_email[outcome.email], timeout=30.0)

        retried = await asyncio.gather(*(retry(o) for o in failed))
        for result in retried:
            if result.email in before:
                assert result.code == ErrorCode.CONFLICT.value, result
            else:
                assert result.acked, f"a retry of an unstored sign-up failed: {result}"

        # New sign-ups after the restart go through, at full concurrency.
        fresh = [harness.payload(f"after-{i}") for i in range(AFTER_RESTART)]
        after = await asyncio.gather(*(sign_up(client, p) for p in fresh))
        assert all(o.acked for o in after), [o for o in after if not o.acked][:3]

        # The certificate worker (a background task on the same database) resumed too.
        async def rendering_again() -> bool:
            published = await published_events(harness.db, [CERTIFICATE_ISSUED])
            return any(e.published_at > up_wall for e in published)

        await poll("a certificate rendered after the restart", rendering_again, 30.0, 0.3)

    everything = first_acks + [r for r in retried if r.acked] + list(after)
    final = await check_exactly_once(harness, everything)
    assert set(final) == {p["email"] for p in payloads + fresh}
    assert service.running and service.starts == 1
    print(
        f"database down {up_at - down_at:.1f} s; stored without an answer: "
        f"{len(before) - len(first_acks)}; conflicts for own commits: {len(conflicts)}; "
        f"retried: {len(failed)}; total {time.monotonic() - started:.1f} s"
    )
