"""kill -9 the newsletter service while an issue goes out: after a restart, one copy each.

The issue's promise (issue 3, "Delivery that never loses or doubles a mail"): kill -9 the
service while an issue goes to 2,000 subscribers; after a restart every subscriber has
exactly one copy in the SMTP sink.

Each test runs its own nats-server and SMTP sink (so the sink's directory and its
duplicates log hold only this test's mail) against the session's SecantusDB with a
database of its own. The service runs as a real process and is killed with SIGKILL:

- ``test_kill_while_the_issue_goes_out``: killed once a few hundred copies reached the
  sink, well before all 2,000; the delivery batches it was sending stay claimed until
  their lease runs out, and the restarted worker sends the mails of theirs that have no
  record again, with the same Message-ID.
- ``test_kill_during_the_fan_out``: killed while the fan-out is still queueing mail records
  (some subscribers queued, the rest not yet); the restarted fan-out resumes from its cursor.

After the restart, once the issue is ``sent`` and none of its mails is queued or sending,
the sink must hold exactly one copy per subscriber (by envelope recipient and To header),
each with the issue's subject and the Message-ID that follows from the mail's dedupe key,
no copy for anyone else, and no Message-ID twice. The sink drops a repeated Message-ID (as
Mailpit does); those drops are counted and must all be mails the killed worker had in
flight, at most what one worker holds between claim and mark. A worker that resent with a
new Message-ID would leave two copies; one that skipped a mail, a recipient without one.
Last, the sent issue must say it went to 2,000 recipients.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.newsletter import Endpoints
from services.newsletter.delivery.states import mail_id_for, message_id_for
from services.newsletter.delivery.worker import BATCHES_AHEAD, batch_size_for
from services.newsletter.settings import NewsletterSettings
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.processes import ManagedProcess
from stack.smtp_sink import ENVELOPE_TO_HEADER, SmtpSink, read_duplicates
from stack.streams import NEWSLETTER_PRODUCERS, declare_streams_at
from tests.support.chaos import poll
from tests.support.newsletter_seed import SeededSubscriber, seed_confirmed_subscribers
from tests.support.stack import TOKEN_SECRETS, settings_of, start_service

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

Document = dict[str, Any]

SUBSCRIBERS = 2000
# Delivery settings of the service under test (given to it as SAMSKAB_* variables).
# A short lease: the restarted worker takes over the mails the killed one left "sending"
# within seconds (the default, 120 s, only delays, never loses). Not much shorter: a worker
# whose own claims outlive their lease, as on a loaded machine, takes them over and sends
# them again (see check_one_copy_each). A rate limit: the issue takes long enough to go out
# (about 13 s) that the kill reliably lands mid-delivery.
SERVICE_SETTINGS: dict[str, Any] = {
    "mail_send_lease_seconds": 10.0,
    "mail_rate_per_second": 150.0,
    "mail_batch_size": 50,
    "mail_concurrency": 4,
    # Nothing should fail here; if a send does, it is retried quickly, not in 30 s.
    "mail_retry_backoff_seconds": [0.5, 1.0],
    "outbox_claim_timeout_seconds": 3,
    # The fan-out writes one delivery batch at a time: the kill can land in the middle of it.
    "newsletter_fanout_page": 1,
}
# Subscribers the fan-out queues in one step: a page of delivery batches, each as large as
# the worker's batch at this rate and lease.
FANOUT_BATCH = (
    batch_size_for(settings_of(NewsletterSettings, **SERVICE_SETTINGS))
    * SERVICE_SETTINGS["newsletter_fanout_page"]
)
# Killed once this many copies are in the sink: some went out, most did not.
KILL_AT_MAILS = SUBSCRIBERS // 5
DONE_TIMEOUT_SECONDS = 120.0
RECIPIENTS_MISCOUNTED = (
    "the issue records (and its issue_sent event announces) a wrong number of recipients: "
    "handlers.fanout adds up the sizes of the issue's delivery batches; a batch queued twice "
    "(a resumed fan-out that did not find the one it wrote) is counted twice"
)


# ---------------------------------------------------------------------------- plumbing


def env_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


@dataclass
class World:
    """One test's world: its nats-server, SMTP sink and database, and the service."""

    nats: NatsServer
    sink: SmtpSink
    mongo_url: str
    database: str
    db: AsyncDatabase[Document]
    data_dir: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    overrides: dict[str, Any] = field(default_factory=dict)
    process: ManagedProcess | None = None

    @property
    def domain(self) -> str:
        # Message-IDs of this run only.
        return f"kaos-{self.run}.samskab.test"

    def service_settings(self) -> dict[str, Any]:
        return {**SERVICE_SETTINGS, **self.overrides, "mail_message_id_domain": self.domain}

    def settings(self) -> NewsletterSettings:
        """The settings the service process runs with, as the test derives bounds from."""
        return settings_of(NewsletterSettings, **self.service_settings())

    def env(self) -> dict[str, str]:
        return {
            **TOKEN_SECRETS,
            "SAMSKAB_NATS_URL": self.nats.url,
            "SAMSKAB_MONGO_URL": self.mongo_url,
            "SAMSKAB_MONGO_DATABASE": self.database,
            "SAMSKAB_SMTP_HOST": self.sink.host,
            "SAMSKAB_SMTP_PORT": str(self.sink.port),
            "SAMSKAB_DATA_DIR": str(self.data_dir),
            "SAMSKAB_PUBLIC_URL": "https://samskab.test.example",
            "SAMSKAB_LOG_LEVEL": "INFO",
            **{f"SAMSKAB_{k.upper()}": env_value(v) for k, v in self.service_settings().items()},
        }

    async def start_service(self) -> ManagedProcess:
        self.process = await asyncio.to_thread(
            start_service,
            "newsletter",
            nats_url=self.nats.url,
            env=self.env(),
            log_path=self.data_dir / "log" / "newsletter.log",
        )
        return self.process

    async def restart(self, timeout: float = 60.0) -> None:
        process = self.process
        assert process is not None and not process.running

        def run() -> None:
            process.start()
            process.wait_ready(timeout=timeout, interval=0.2)

        await asyncio.to_thread(run)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        assert self.process.returncode == -9, "the service was not killed"

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[ServiceClient]:
        client = ServiceClient(ClientSettings(_env_file=None, nats_url=self.nats.url))
        await client.connect()
        try:
            yield client
        finally:
            await client.close()


def sink_count(sink: SmtpSink) -> int:
    """Messages stored so far (the sink writes ``.eml`` files atomically, dot-tmp first)."""
    with os.scandir(sink.mail_dir) as entries:
        return sum(1 for entry in entries if entry.name.endswith(".eml"))


@dataclass(frozen=True)
class Copy:
    """What the sink stored for one message: envelope recipient and the headers we check."""

    envelope_to: tuple[str, ...]
    to: tuple[str, ...]
    subject: str
    message_id: str


def stored_copies(sink: SmtpSink) -> list[Copy]:
    # Headers only: 2,000 full MIME parses would be most of the test's checking time.
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    copies = []
    for path in sorted(Path(sink.mail_dir).glob("*.eml")):
        with path.open("rb") as file:
            headers = parser.parse(file)
        to = headers["To"]
        copies.append(
            Copy(
                envelope_to=tuple(str(v) for v in headers.get_all(ENVELOPE_TO_HEADER) or []),
                to=tuple(a.addr_spec for a in to.addresses) if to is not None else (),
                subject=str(headers["Subject"]),
                message_id=str(headers["Message-ID"]).strip(),
            )
        )
    return copies


async def issue_mail_states(db: AsyncDatabase[Document], issue_id: str) -> Counter[str]:
    states: Counter[str] = Counter()
    async for doc in db.mails.find({"refs": f"issue:{issue_id}"}, {"state": 1}):
        states[str(doc["state"])] += 1
    return states


async def issue_state(db: AsyncDatabase[Document], issue_id: str) -> str | None:
    doc = await db.issues.find_one({"_id": issue_id}, {"state": 1})
    return None if doc is None else str(doc["state"])


async def wait_until_sent(world: World, issue_id: str, total: int) -> None:
    """The issue is ``sent`` and every one of its mails has left queued/sending."""

    async def done() -> bool:
        if await issue_state(world.db, issue_id) != "sent":
            return False
        states = await issue_mail_states(world.db, issue_id)
        return sum(states.values()) == total and not states["queued"] and not states["sending"]

    await poll("the issue to be sent and its mails delivered", done, DONE_TIMEOUT_SECONDS, 0.5)


async def prepare_issue(run: str, client: ServiceClient) -> tuple[str, str]:
    """One news item, a draft with it; returns the draft's id and its mail subject."""
    await client.request(
        Endpoints.ITEM_ADD.subject,
        {
            "title": f"Kaos i Fredericia {run}",
            "body": "Tjenesten bliver dræbt midt i udsendelsen.\n\nAlle får alligevel ét brev.",
            "link": "fredericia.dk/kaos",
        },
    )
    draft = await client.request(Endpoints.DRAFT.subject, {"title": f"Nyhedsbrev under kaos {run}"})
    assert draft["items"] == 1
    preview = await client.request(Endpoints.PREVIEW.subject, {"issue_id": draft["id"]})
    return str(draft["id"]), str(preview["subject"])


@dataclass(frozen=True)
class Delivered:
    duplicates: int
    # What the issue says it was sent to (and its issue_sent event announced).
    recipients: int


async def check_one_copy_each(
    world: World,
    issue_id: str,
    subject: str,
    subscribers: list[SeededSubscriber],
    sending_at_kill: set[str],
) -> Delivered:
    """Every invariant of the module docstring; returns what the sink dropped."""
    total = len(subscribers)
    await wait_until_sent(world, issue_id, total)

    # The Message-ID each subscriber's copy must carry, from the dedupe key alone: the same
    # for every attempt, whatever the records say.
    expected = {
        s.address: message_id_for(mail_id_for(f"issue:{issue_id}:{s.id}"), world.domain)
        for s in subscribers
    }
    found = [
        doc
        async for doc in world.db.mails.find(
            {"refs": f"issue:{issue_id}"},
            {"to_address": 1, "message_id": 1, "state": 1, "attempts": 1},
        )
    ]
    records = {str(doc["to_address"]): doc for doc in found}
    assert len(found) == total and set(records) == set(expected), (
        "the mail records are not one per subscriber"
    )
    assert {a: str(r["message_id"]) for a, r in records.items()} == expected
    assert {str(r["state"]) for r in records.values()} == {"sent"}

    copies = stored_copies(world.sink)
    ids = Counter(c.message_id for c in copies)
    twice = {m: n for m, n in ids.items() if n > 1}
    assert not twice, f"{len(twice)} Message-IDs stored more than once: {list(twice)[:3]}"
    per_recipient = Counter(c.envelope_to for c in copies)
    strangers = [r for r in per_recipient if len(r) != 1 or r[0] not in expected]
    assert not strangers, f"mail for someone who is no subscriber: {strangers[:3]}"
    missing = [a for a in expected if per_recipient[(a,)] == 0]
    assert not missing, f"{len(missing)} subscribers have no copy: {missing[:3]}"
    doubled = {r[0]: n for r, n in per_recipient.items() if n > 1}
    assert not doubled, f"{len(doubled)} subscribers have more than one copy: {doubled}"
    for copy in copies:
        (address,) = copy.envelope_to
        assert copy.to == (address,), copy
        assert copy.subject == subject, copy
        assert copy.message_id == expected[address], copy
    assert len(copies) == total

    # What the sink dropped were resends of mails the killed worker had in flight (sent,
    # not yet marked); a real mail server would not drop them, so nothing else may be sent
    # twice. (A live worker that holds a mail past its lease, sent but not yet marked,
    # claims and sends it again: the lease above makes that take a stall of 10 s.)
    dropped = read_duplicates(world.sink.mail_dir)
    by_message_id = {str(r["message_id"]): str(r["_id"]) for r in records.values()}
    dropped_ids = [by_message_id.get(m) for m in dropped]
    assert None not in dropped_ids, f"the sink dropped a mail of no record: {dropped[:3]}"
    assert len(set(dropped)) == len(dropped), "a mail was resent more than once"
    assert set(dropped_ids) <= sending_at_kill, "a mail not in flight at the kill was resent"
    bound = in_flight_bound(world.settings())
    assert len(dropped) <= bound, f"{len(dropped)} mails sent twice; in flight at most {bound}"
    issue = await world.db.issues.find_one({"_id": issue_id}, {"recipients": 1})
    assert issue is not None
    return Delivered(duplicates=len(dropped), recipients=int(issue["recipients"]))


def in_flight_bound(settings: NewsletterSettings) -> int:
    """How many mails one worker holds between claim and mark, from its settings.

    It claims another batch while at most BATCHES_AHEAD batches are in flight, so up to
    BATCHES_AHEAD + 1 batches are claimed and not yet sent; its mark loop commits results
    as soon as a batch's worth is waiting, so one more batch may be sent and not marked.
    """
    return (BATCHES_AHEAD + 2) * batch_size_for(settings)


async def sending_ids(db: AsyncDatabase[Document], issue_id: str) -> set[str]:
    """Mails claimed and not finished: records ``sending`` (a retry), and the mails of the
    issue's claimed delivery batches that have no record yet."""
    cursor = db.mails.find({"refs": f"issue:{issue_id}", "state": "sending"}, {"_id": 1})
    ids = {str(doc["_id"]) async for doc in cursor}
    claimed = db.mail_batch_claims.find({"issue_id": issue_id, "state": "sending"}, {"_id": 1})
    async for claim in claimed:
        batch = await db.mail_batches.find_one({"_id": claim["_id"]}, {"mails._id": 1})
        pending = [str(mail["_id"]) for mail in (batch or {}).get("mails", [])]
        recorded = db.mails.find({"_id": {"$in": pending}}, {"_id": 1})
        ids |= set(pending) - {str(doc["_id"]) async for doc in recorded}
    return ids


async def queued_mails(db: AsyncDatabase[Document], issue_id: str) -> int:
    """How many mails the fan-out has queued so far: the sizes of the issue's batches."""
    cursor = db.mail_batch_claims.find({"issue_id": issue_id}, {"size": 1})
    return sum([int(doc["size"]) async for doc in cursor])


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def world(
    own_nats: NatsServer, own_sink: SmtpSink, own_mongo: MongoServer, tmp_path: Path
) -> AsyncIterator[World]:
    database = f"kaos_nl_{uuid.uuid4().hex[:12]}"
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(own_mongo.url, tz_aware=True)
    # The service waits for the streams it consumes; their producers do not run here.
    await declare_streams_at(own_nats.url, NEWSLETTER_PRODUCERS)
    here = World(
        nats=own_nats,
        sink=own_sink,
        mongo_url=own_mongo.url,
        database=database,
        db=mongo[database],
        data_dir=tmp_path,
    )
    yield here
    if here.process is not None:
        here.process.stop()
        print(f"--- newsletter log {here.process.log_path}\n{here.process.log_tail(60)}")
    # No drop_database (see test_kill_ambassadors): the store is a temporary directory.
    await mongo.close()


async def seed(world: World) -> list[SeededSubscriber]:
    started = time.monotonic()
    subscribers = await seed_confirmed_subscribers(world.db, world.run, SUBSCRIBERS)
    print(f"seeded {len(subscribers)} subscribers in {time.monotonic() - started:.1f} s")
    return subscribers


# ---------------------------------------------------------------------------- tests


async def test_kill_while_the_issue_goes_out(world: World) -> None:
    """kill -9 with some hundred copies delivered; restart; one copy each, no more."""
    await world.start_service()
    subscribers = await seed(world)
    async with world.client() as client:
        issue_id, subject = await prepare_issue(world.run, client)
        job = await client.request(Endpoints.SEND.subject, {"issue_id": issue_id}, timeout=30.0)
    assert job["command"] == Endpoints.SEND.subject and job["state"] in ("running", "done")

    started = time.monotonic()
    while (delivered := sink_count(world.sink)) < KILL_AT_MAILS:
        assert time.monotonic() - started < 60.0, f"only {delivered} mails after 60 s"
        await asyncio.sleep(0.01)
    world.kill()
    # The sink may still store a message whose DATA had fully arrived: give it a moment.
    await asyncio.sleep(0.5)
    at_kill = sink_count(world.sink)
    in_flight = await sending_ids(world.db, issue_id)
    states = await issue_mail_states(world.db, issue_id)
    assert KILL_AT_MAILS <= at_kill <= SUBSCRIBERS // 2, f"killed too late: {at_kill} delivered"
    assert in_flight, f"no mail was in flight at the kill: {states}"

    await world.restart()
    result = await check_one_copy_each(world, issue_id, subject, subscribers, in_flight)
    took = time.monotonic() - started
    print(
        f"killed with {at_kill} of {SUBSCRIBERS} in the sink; mails at kill {dict(states)}; "
        f"in flight {len(in_flight)}; duplicates dropped by the sink {result.duplicates} "
        f"(bound {in_flight_bound(world.settings())}); delivery incl. restart {took:.1f} s; "
        f"issue recipients {result.recipients}"
    )
    assert result.recipients == SUBSCRIBERS, RECIPIENTS_MISCOUNTED


async def test_kill_during_the_fan_out(world: World) -> None:
    """kill -9 after the first fan-out batch is queued, before the last; restart; one each."""
    # No rate limit: the fan-out is what is being interrupted, not the sending.
    world.overrides = {"mail_rate_per_second": 0}
    await world.start_service()
    subscribers = await seed(world)
    async with world.client() as client:
        issue_id, subject = await prepare_issue(world.run, client)
        # The send answers at once with its job; the fan-out goes on and is killed.
        job = await client.request(Endpoints.SEND.subject, {"issue_id": issue_id}, timeout=30.0)

        async def queued_so_far() -> int:
            return await queued_mails(world.db, issue_id)

        started = time.monotonic()
        # Killed once the first batch of subscribers is queued and some of it went out
        # (mails in flight as well), and at the latest when the last batch is not queued yet.
        while (queued := await queued_so_far()) < FANOUT_BATCH or (
            sink_count(world.sink) == 0 and queued < SUBSCRIBERS - FANOUT_BATCH
        ):
            assert time.monotonic() - started < 30.0, f"the fan-out is stuck at {queued}"
            await asyncio.sleep(0.005)
        world.kill()
    await asyncio.sleep(0.5)  # as above: the sink may still be storing a message
    queued_at_kill = await queued_so_far()
    in_flight = await sending_ids(world.db, issue_id)
    delivered = sink_count(world.sink)
    assert queued_at_kill < SUBSCRIBERS, "killed after the fan-out had queued every mail"
    assert await issue_state(world.db, issue_id) == "sending"

    await world.restart()
    result = await check_one_copy_each(world, issue_id, subject, subscribers, in_flight)
    print(
        f"killed with {queued_at_kill} of {SUBSCRIBERS} mails queued, {delivered} in the sink, "
        f"{len(in_flight)} in flight; duplicates dropped by the sink {result.duplicates}; "
        f"issue recipients {result.recipients}"
    )
    assert result.recipients == SUBSCRIBERS, RECIPIENTS_MISCOUNTED
    # The send's job, interrupted with the fan-out, went on with it and ended with it.
    async with world.client() as client:
        shown = await client.request(Endpoints.JOB.subject, {"job_id": job["id"]})
    assert (shown["state"], shown["done"], shown["total"]) == ("done", SUBSCRIBERS, SUBSCRIBERS)
    assert shown["report"]["recipients"] == SUBSCRIBERS
