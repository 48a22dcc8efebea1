"""A 3-node NATS cluster loses nodes while 1,000 people sign up and an issue goes to 2,000
subscribers: nothing is lost, nothing is doubled.

The cluster runs the shipped ``deploy/nats/cluster/`` configs on loopback (shipped users and
permissions, fsync always; see tests/support/nats_cluster.py), every stream with three
replicas (``SAMSKAB_STREAM_REPLICAS=3``). Two replicas of every service run against it,
every one listing all three nodes in ``SAMSKAB_NATS_URL``; each pair shares its durable
consumers and its outbox.

While the sign-ups come in and the issue goes out, the leader of the AMBASSADORS stream is
killed (``kill -9``) and later started again; then another node is stopped (SIGTERM) and
started again. Afterwards:

- every acknowledged sign-up is stored exactly once; one that got no answer is retried,
  as a client would, and is then stored once (or was, and the retry is a conflict);
- the ``signed_up`` and ``activated`` events of every stored ambassador are on the stream
  exactly once each, and none for anybody else;
- every subscriber has exactly one copy of the issue (the 2,000 seeded ones and the new
  ambassadors subscribed before it went out), and no mail went out twice (the sink records
  a repeated Message-ID);
- every service that follows the ambassadors (networks, events, newsletter, social) knows
  every stored ambassador: no event was lost to a pair of replicas sharing a consumer.

It prints how long publishing to the AMBASSADORS stream stalled at each failover: the
longest gap between two stored messages around it, while sign-ups kept coming (target:
under 5 s; a figure, not an assertion, as the project's timing targets are).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.ambassadors import STREAM
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import Endpoints as Newsletter
from services import registry
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings, ServiceSettings
from stack.embedded import default_service_command
from stack.mongo import MongoServer
from stack.nats import service_is_healthy
from stack.nats_accounts import CLI_USER
from stack.processes import ManagedProcess
from stack.smtp_sink import SmtpSink, read_duplicates
from stack.streams import declare_streams_at
from tests.chaos.test_kill_newsletter import (
    issue_mail_states,
    issue_state,
    prepare_issue,
    stored_copies,
)
from tests.support.chaos import poll
from tests.support.nats_cluster import Cluster, Node, start_cluster
from tests.support.newsletter_seed import SeededSubscriber, seed_confirmed_subscribers
from tests.support.stack import REPO_ROOT, TOKEN_SECRETS
from tests.support.streams import read_stream

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

Document = dict[str, Any]

SIGN_UPS = 1000
SUBSCRIBERS = 2000
REPLICATED = tuple(registry.built())
# The services that keep a read model of the ambassadors from their events.
FOLLOWERS = ("networks", "events", "newsletter", "social")
FOLLOWERS_TIMEOUT_SECONDS = 420.0
REPLICAS = 2
IN_FLIGHT = 16
SIGNED_UP = "ambassadors.v1.signed_up"
ACTIVATED = "ambassadors.v1.activated"
OURS = (SIGNED_UP, ACTIVATED)
# When, by acknowledged sign-ups, each step of the scenario happens.
SEND_AT = SIGN_UPS // 10
KILL_LEADER_AT = SIGN_UPS // 4
RESTART_LEADER_AT = SIGN_UPS // 2
STOP_SECOND_AT = SIGN_UPS * 7 // 10
RESTART_SECOND_AT = SIGN_UPS * 17 // 20
# A request that meets a dying node gets no answer: the client waits this long, then the
# sign-up is retried at the end.
REQUEST_TIMEOUT_SECONDS = 10.0
DONE_TIMEOUT_SECONDS = 240.0
SERVICE_SETTINGS: dict[str, Any] = {
    "stream_replicas": 3,
    "outbox_claim_timeout_seconds": 3,
    "mail_send_lease_seconds": 10.0,
    "mail_rate_per_second": 300.0,
    "mail_batch_size": 50,
    "mail_concurrency": 4,
    "mail_retry_backoff_seconds": [0.5, 1.0],
}


@dataclass
class World:
    cluster: Cluster
    sink: SmtpSink
    mongo_url: str
    mongo: AsyncMongoClient[Document]
    data_dir: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    processes: dict[str, list[ManagedProcess]] = field(default_factory=dict)

    def db(self, service: str) -> AsyncDatabase[Document]:
        return self.mongo[self.database(service)]

    def database(self, service: str) -> str:
        return f"cluster_{self.run}_{service}"

    def env(self, service: str) -> dict[str, str]:
        settings = {
            **SERVICE_SETTINGS,
            "mail_message_id_domain": f"klynge-{self.run}.samskab.test",
        }
        return {
            **os.environ,
            **TOKEN_SECRETS,
            "PYTHONUNBUFFERED": "1",
            "SAMSKAB_NATS_URL": self.cluster.url,
            "SAMSKAB_NATS_USER": service,
            "SAMSKAB_NATS_PASSWORD": self.cluster.passwords[service],
            "SAMSKAB_MONGO_URL": self.mongo_url,
            "SAMSKAB_MONGO_DATABASE": self.database(service),
            "SAMSKAB_SMTP_HOST": self.sink.host,
            "SAMSKAB_SMTP_PORT": str(self.sink.port),
            "SAMSKAB_DATA_DIR": str(self.data_dir / service),
            "SAMSKAB_PUBLIC_URL": "https://samskab.test.example",
            "SAMSKAB_DEMO_IMPORT": "false",
            **{f"SAMSKAB_{key.upper()}": _env_value(value) for key, value in settings.items()},
        }

    def healthy(self, service: str) -> bool:
        node = self.cluster.running()[0]
        return service_is_healthy(
            node.url, service, user=CLI_USER, password=self.cluster.passwords[CLI_USER]
        )

    async def start_replicas(self) -> None:
        for service in REPLICATED:
            for replica in range(1, REPLICAS + 1):
                process = ManagedProcess(
                    f"{service}-{replica}",
                    default_service_command(service),
                    log_path=self.data_dir / "log" / f"{service}-{replica}.log",
                    env=self.env(service),
                    cwd=REPO_ROOT,
                )
                process.start()
                # The first replica answers health for both: each waits for its own start.
                await asyncio.to_thread(
                    process.wait_ready, functools.partial(_says_ready, process), 60.0, 0.2
                )
                self.processes.setdefault(service, []).append(process)
            assert await asyncio.to_thread(self.healthy, service)

    def client(self) -> ServiceClient:
        """A caller that outlives a node (as the website does): it reconnects to another."""
        return ServiceClient(
            ClientSettings(
                _env_file=None,
                nats_url=self.cluster.url,
                nats_user=CLI_USER,
                nats_password=self.cluster.passwords[CLI_USER],
            ),
            long_lived=True,
        )


def _env_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


def _says_ready(process: ManagedProcess) -> bool:
    """The service's own "service ready" line, after this start's marker in its log."""
    try:
        text = process.log_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return False
    return "service ready" in text.rsplit("\n=== ", 1)[-1]


# ---------------------------------------------------------------------------- the stream


@dataclass(frozen=True)
class Stored:
    seq: int
    subject: str
    at: datetime
    event_id: str
    ambassador_id: str
    msg_id: str | None


async def stream_messages(cluster: Cluster) -> list[Stored]:
    """Every message on the AMBASSADORS stream with the time its leader stored it."""
    found = []
    for msg in await read_stream(cluster.url, STREAM, **cluster.login("ambassadors")):
        assert msg.at is not None, f"message {msg.seq} has no time"
        found.append(
            Stored(
                seq=msg.seq,
                subject=msg.subject,
                at=msg.at,
                event_id=str(msg.data.get("event_id")),
                ambassador_id=str(msg.data.get("ambassador_id")),
                msg_id=msg.msg_id,
            )
        )
    return found


async def stream_leader(cluster: Cluster, timeout: float = 30.0) -> str:
    """The node leading the stream. Just after a node came back the cluster may take a
    while to answer (the restarted node catching up, a leader being elected): asked again
    until one is named."""
    nc = await nats.connect(cluster.url.split(","), **cluster.login("ambassadors"))
    leader: list[str] = []

    async def named() -> bool:
        try:
            info = await nc.jetstream().stream_info(STREAM)
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            return False
        if info.cluster is None or not info.cluster.leader:
            return False
        leader.append(info.cluster.leader)
        return True

    try:
        await poll(f"a leader of {STREAM} to be named", named, timeout)
    finally:
        await nc.close()
    return leader[0]


def stall_at(messages: list[Stored], moment: datetime) -> float:
    """How long the stream stored nothing across ``moment``: from the last message before it
    to the first after it (sign-ups keep coming the whole time, dozens a second)."""
    before = [m.at for m in messages if m.at <= moment]
    after = [m.at for m in messages if m.at > moment]
    if not before or not after:
        return 0.0
    return (after[0] - before[-1]).total_seconds()


# ---------------------------------------------------------------------------- sign-ups


@dataclass
class Outcome:
    email: str
    ambassador_id: str | None = None
    error: str | None = None


def payload(run: str, i: int) -> dict[str, Any]:
    return {
        "name": f"Klynge Ambassadør {i}",
        "email": f"klynge-{run}-{i}@example.org",
        "kind": "citizen",
        "consent": True,
    }


async def sign_up(client: ServiceClient, body: dict[str, Any]) -> Outcome:
    try:
        result = await client.request(
            Ambassadors.REGISTER.subject, body, timeout=REQUEST_TIMEOUT_SECONDS
        )
    except ServiceError as exc:
        return Outcome(body["email"], error=exc.code.value)
    except Exception as exc:  # a node died under the request
        return Outcome(body["email"], error=type(exc).__name__)
    return Outcome(body["email"], ambassador_id=str(result["ambassador"]["id"]))


# ---------------------------------------------------------------------------- the scenario


class Progress:
    """The acknowledged sign-ups so far, for the steps that wait for a number of them."""

    def __init__(self) -> None:
        self.acked: list[Outcome] = []
        self.finished = False
        self._changed = asyncio.Condition()

    async def add(self, outcome: Outcome) -> None:
        async with self._changed:
            self.acked.append(outcome)
            self._changed.notify_all()

    async def finish(self) -> None:
        async with self._changed:
            self.finished = True
            self._changed.notify_all()

    async def reached(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.acked) >= count or self.finished)


@dataclass
class Failover:
    what: str
    node: str
    at: datetime


async def kill_and_stop_nodes(world: World, progress: Progress) -> list[Failover]:
    """The node failures, each when enough sign-ups have been acknowledged."""
    until = progress.reached
    cluster = world.cluster
    failovers = []

    await until(KILL_LEADER_AT)
    leader = cluster.node(await stream_leader(cluster))
    leader.process.kill()
    failovers.append(Failover("killed the AMBASSADORS leader", leader.name, datetime.now(UTC)))

    await until(RESTART_LEADER_AT)
    await asyncio.to_thread(_restart, cluster, leader)

    await until(STOP_SECOND_AT)
    now_leading = await stream_leader(cluster)
    second = cluster.node(now_leading) if now_leading != leader.name else _other(cluster, leader)
    stopped_at = datetime.now(UTC)
    await asyncio.to_thread(second.process.stop)
    failovers.append(Failover("stopped a second node", second.name, stopped_at))

    await until(RESTART_SECOND_AT)
    await asyncio.to_thread(_restart, cluster, second)
    return failovers


def _restart(cluster: Cluster, node: Node) -> None:
    node.process.start()
    cluster.wait_ready([node], timeout=60.0)


def _other(cluster: Cluster, not_this: Node) -> Node:
    return next(node for node in cluster.nodes if node.name != not_this.name)


async def wait_sent(world: World, issue_id: str) -> None:
    db = world.db("newsletter")

    async def sent() -> bool:
        if await issue_state(db, issue_id) != "sent":
            return False
        states = await issue_mail_states(db, issue_id)
        return sum(states.values()) >= SUBSCRIBERS and not states["queued"] + states["sending"]

    await poll("the issue to reach every subscriber", sent, DONE_TIMEOUT_SECONDS, 0.5)


async def wait_published(world: World) -> None:
    db = world.db("ambassadors")

    async def drained() -> bool:
        return await db.outbox.count_documents({"subject": {"$in": list(OURS)}}) == 0

    await poll("the outbox relays to publish every sign-up event", drained, DONE_TIMEOUT_SECONDS)


# ---------------------------------------------------------------------------- checks


async def check_sign_ups(world: World, acked: list[Outcome], messages: list[Stored]) -> int:
    docs = [
        doc
        async for doc in world.db("ambassadors").ambassadors.find(
            {}, {"_id": 1, "profile.email": 1}
        )
    ]
    emails = Counter(str(doc["profile"]["email"]) for doc in docs)
    doubled = {email: n for email, n in emails.items() if n > 1}
    assert not doubled, f"sign-ups stored more than once: {list(doubled)[:3]}"
    by_email = {str(doc["profile"]["email"]): str(doc["_id"]) for doc in docs}
    missing = [o for o in acked if by_email.get(o.email) != o.ambassador_id]
    assert not missing, f"{len(missing)} acknowledged sign-ups are not stored: {missing[:3]}"
    assert len(by_email) == SIGN_UPS, f"{len(by_email)} of {SIGN_UPS} sign-ups stored"

    stored = set(by_email.values())
    ours = [m for m in messages if m.subject in OURS]
    twice = {e: n for e, n in Counter(m.event_id for m in ours).items() if n > 1}
    assert not twice, f"{len(twice)} events are on the stream twice: {list(twice)[:3]}"
    assert all(m.msg_id == m.event_id for m in ours), "Nats-Msg-Id must be the event_id"
    phantoms = [m for m in ours if m.ambassador_id not in stored]
    assert not phantoms, f"events for ambassadors that are not stored: {phantoms[:3]}"
    for subject in OURS:
        per_ambassador = Counter(m.ambassador_id for m in ours if m.subject == subject)
        assert set(per_ambassador) == stored, f"{subject}: some stored ambassador lacks it"
        assert set(per_ambassador.values()) == {1}, f"{subject} more than once for someone"
    return len(ours)


async def check_issue_mails(
    world: World, issue_id: str, subject: str, subscribers: list[SeededSubscriber]
) -> int:
    """One copy for each of the issue's recipients: the seeded subscribers and the new
    ambassadors whose subscription was confirmed before the fan-out."""
    records = [
        doc
        async for doc in world.db("newsletter").mails.find(
            {"refs": f"issue:{issue_id}"}, {"to_address": 1, "state": 1}
        )
    ]
    addresses = Counter(str(doc["to_address"]) for doc in records)
    assert set(addresses.values()) == {1}, "an issue mail is recorded twice for someone"
    assert {str(doc["state"]) for doc in records} == {"sent"}
    seeded = {s.address for s in subscribers}
    assert seeded <= set(addresses), f"{len(seeded - set(addresses))} subscribers have no mail"

    copies = [c for c in stored_copies(world.sink) if c.subject == subject]
    per_recipient = Counter(c.envelope_to for c in copies)
    expected = {(address,) for address in addresses}
    missing = expected - set(per_recipient)
    assert not missing, f"{len(missing)} subscribers have no copy: {sorted(missing)[:3]}"
    strangers = set(per_recipient) - expected
    assert not strangers, f"the issue went to non-subscribers: {sorted(strangers)[:3]}"
    doubled = {r: n for r, n in per_recipient.items() if n > 1}
    assert not doubled, f"{len(doubled)} subscribers have more than one copy"
    dropped = read_duplicates(world.sink.mail_dir)
    assert not dropped, f"{len(dropped)} mails were sent twice (same Message-ID): {dropped[:3]}"
    return len(records)


async def check_read_models(world: World) -> int:
    """Every stored ambassador is in each follower's read model (each at most once: the
    read model is keyed by the ambassador's id); how many."""
    stored = await world.db("ambassadors").ambassadors.distinct("_id")

    async def knows_all(service: str) -> bool:
        found: int = await world.db(service).ambassadors.count_documents({"_id": {"$in": stored}})
        return found == len(stored)

    started = time.monotonic()
    for service in FOLLOWERS:
        left = started + FOLLOWERS_TIMEOUT_SECONDS - time.monotonic()
        await poll(
            f"{service} to know all {len(stored)} stored ambassadors",
            functools.partial(knows_all, service),
            max(left, 0.0),
            0.5,
        )
        print(f"{service} knew every ambassador {time.monotonic() - started:.1f} s after the mails")
    return len(stored)


# ---------------------------------------------------------------------------- fixture, test


@pytest.fixture
async def world(own_sink: SmtpSink, own_mongo: MongoServer, tmp_path: Path) -> AsyncIterator[World]:
    cluster = await asyncio.to_thread(start_cluster, tmp_path / "cluster")
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(own_mongo.url, tz_aware=True)
    here = World(
        cluster=cluster, sink=own_sink, mongo_url=own_mongo.url, mongo=mongo, data_dir=tmp_path
    )
    # Every stream the two services consume, R3, declared by its producer's own user (only
    # a producer may manage its stream); the running services update theirs to the same.
    settings = ServiceSettings(_env_file=None, stream_replicas=3)
    for producer in registry.built():
        await declare_streams_at(
            cluster.url, [producer], settings, user=producer, password=cluster.passwords[producer]
        )
    try:
        yield here
    finally:
        for replicas in here.processes.values():
            for process in replicas:
                process.stop()
        for replicas in here.processes.values():
            for process in replicas:
                print(f"--- {process.name} log {process.log_path}\n{process.log_tail(20)}")
        cluster.stop()
        await mongo.close()


async def test_the_cluster_loses_its_stream_leader_and_then_another_node(world: World) -> None:
    started = time.monotonic()
    await world.start_replicas()
    subscribers = await seed_confirmed_subscribers(world.db("newsletter"), world.run, SUBSCRIBERS)
    print(f"cluster, {REPLICAS} replicas of {REPLICATED} up in {time.monotonic() - started:.1f} s")

    client = world.client()
    await client.connect()
    try:
        issue_id, subject = await prepare_issue(world.run, client)
        progress = Progress()
        outcomes: list[Outcome] = []
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> None:
            async with gate:
                outcome = await sign_up(client, payload(world.run, i))
            outcomes.append(outcome)
            if outcome.ambassador_id is not None:
                await progress.add(outcome)

        async def send_issue() -> None:
            await progress.reached(SEND_AT)
            await client.request(Newsletter.SEND.subject, {"issue_id": issue_id}, timeout=30.0)

        failures = asyncio.create_task(kill_and_stop_nodes(world, progress))
        sending = asyncio.create_task(send_issue())
        signing = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(SIGN_UPS)))
        await progress.finish()
        failovers = await failures
        await sending
        acked = progress.acked
        print(
            f"{len(acked)} of {SIGN_UPS} sign-ups acknowledged in "
            f"{time.monotonic() - signing:.1f} s; unanswered: "
            f"{dict(Counter(o.error for o in outcomes if o.ambassador_id is None))}"
        )

        # What got no answer, the client sends again: stored once, or a conflict if it was.
        for outcome in [o for o in outcomes if o.ambassador_id is None]:
            index = int(outcome.email.split("-")[-1].split("@")[0])
            again = await sign_up(client, payload(world.run, index))
            assert again.ambassador_id is not None or again.error == ErrorCode.CONFLICT.value, again
            if again.ambassador_id is not None:
                acked.append(again)
    finally:
        await client.close()

    await wait_published(world)
    await wait_sent(world, issue_id)
    messages = await stream_messages(world.cluster)
    on_stream = await check_sign_ups(world, acked, messages)
    recipients = await check_issue_mails(world, issue_id, subject, subscribers)
    known = await check_read_models(world)

    for failover in failovers:
        stall = stall_at(messages, failover.at)
        print(f"{failover.what} ({failover.node}): publishing stalled {stall:.2f} s")
    print(
        f"{on_stream} sign-up events on the R3 stream, once each; {recipients} recipients of "
        f"the issue ({SUBSCRIBERS} seeded) one copy each; {known} ambassadors known to "
        f"each of {', '.join(FOLLOWERS)}; "
        f"whole test {time.monotonic() - started:.1f} s"
    )
