"""kill -9 the events service while a meeting's 500 invitations fan out, and the newsletter
service while it mails them: after restarts, one invitation each.

A meeting for every active ambassador is invited in rounds (``SAMSKAB_EVENTS_FANOUT_BATCH``,
10 here, so 50 rounds): each round commits its invitations, their ``invited`` events (to
the outbox) and the fan-out's cursor in one transaction, and the relay publishes the events
with ``Nats-Msg-Id = event_id``. The newsletter service turns each ``invited`` into one mail
(deduplicated by event), sent with a Message-ID fixed when it was queued.

Each test runs its own nats-server and SMTP sink against the session's SecantusDB, with a
database per service. 500 active ambassadors are announced on the ``AMBASSADORS`` stream as
the ambassadors service would (tests/support/ambassadors_seed.py; their welcome mails, one
each, are extra mail the checks tell apart by subject). Then:

1. the meeting is scheduled; as soon as some ``invited`` events are on the EVENTS stream,
   well before 500, the events service is killed with SIGKILL, and restarted;
2. once invitation mails are arriving, the newsletter service is killed with SIGKILL, and
   restarted;
3. once 500 invitation mails are in the sink and none is queued or sending:

- the sink holds exactly one invitation per ambassador (by envelope recipient), each with
  its own Message-ID; what it dropped as a repeated Message-ID (it does, as Mailpit does)
  were resends, once each, of mails the killed newsletter had in flight: at-least-once to
  SMTP with the same Message-ID is allowed, a second different invitation to one address
  is not;
- the EVENTS stream holds exactly one ``invited`` per ambassador (500 distinct event ids, no
  ambassador twice), each published with ``Nats-Msg-Id = event_id``;
- the events service's database holds 500 invitations, one per ambassador, and the
  newsletter's 500 invitation mail records, all sent.

Recovery takes a while, and the deadlines allow for it: a process killed inside a MongoDB
transaction leaves that transaction open on the server, holding what it wrote, until the
server expires it (60 s on SecantusDB, as MongoDB's transactionLifetimeLimitSeconds
default; not configurable). The restarted service's first transaction that touches the
same document (the meeting's fan-out cursor, the inbox entry of a redelivered event) gets
a write conflict, which pymongo's with_transaction retries silently until then. Messages
the killed consumer had taken come again after ack_wait (shortened here).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from icalendar import Calendar
from nats.js.errors import NotFoundError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events import COPENHAGEN, STREAM, Endpoints
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.processes import ManagedProcess
from stack.smtp_sink import ENVELOPE_TO_HEADER, SmtpSink, read_duplicates
from stack.streams import declare_streams_at
from tests.support.ambassadors_seed import SeededAmbassador, publish_active_ambassadors
from tests.support.chaos import poll
from tests.support.stack import TOKEN_SECRETS, start_service
from tests.support.streams import read_stream

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

Document = dict[str, Any]

AMBASSADORS = 500
FANOUT_BATCH = 10
INVITED = "events.v1.invited"
# The newsletter's invitation subject (mail/templates/meeting_invitation.subject.j2).
INVITATION_PREFIX = "Du er inviteret:"
# The events service is killed once this many invited events are on the stream: a round
# or so, of 50.
KILL_EVENTS_AT = FANOUT_BATCH
# The newsletter service is killed once this many invitations are in the sink.
KILL_NEWSLETTER_AT = 100
READ_MODEL_TIMEOUT = 60.0
# Each restart may wait up to a minute for the killed process's open transaction to
# expire (see above) before it gets on.
RESUME_TIMEOUT = 120.0
DONE_TIMEOUT = 120.0

# Messages a killed consumer had taken and not acked come again after ack_wait (60 s by
# default): shorter here, still far above the slowest handler, so the test ends sooner.
ACK_WAIT_SECONDS = 15.0
EVENTS_SETTINGS: dict[str, Any] = {
    "events_fanout_batch": FANOUT_BATCH,
    "consumer_ack_wait_seconds": ACK_WAIT_SECONDS,
    # After the restart the fan-out resumes at once anyway (housekeeping starts with it).
    "events_poll_seconds": 0.5,
    # Outbox entries the killed relay had claimed are taken over after this.
    "outbox_claim_timeout_seconds": 3,
}
NEWSLETTER_SETTINGS: dict[str, Any] = {
    # As in test_kill_newsletter: the restarted worker takes over the mails the killed one
    # left "sending" within seconds; a rate limit makes the 1,000 mails (welcomes, then
    # invitations) take long enough that the kill lands mid-delivery.
    "mail_send_lease_seconds": 10.0,
    "mail_rate_per_second": 100.0,
    "mail_retry_backoff_seconds": [0.5, 1.0],
    "outbox_claim_timeout_seconds": 3,
    "consumer_ack_wait_seconds": ACK_WAIT_SECONDS,
}


# ---------------------------------------------------------------------------- plumbing


def env_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


@dataclass(frozen=True)
class Copy:
    """What the sink stored of one message: the headers the checks read."""

    name: str
    envelope_to: tuple[str, ...]
    subject: str
    message_id: str


@dataclass
class Sink:
    """The test's SMTP sink, its stored messages read once each (headers only)."""

    sink: SmtpSink
    _seen: dict[str, Copy] = field(default_factory=dict)
    _parser: email.parser.BytesHeaderParser = field(
        default_factory=lambda: email.parser.BytesHeaderParser(policy=email.policy.default)
    )

    def copies(self) -> list[Copy]:
        for path in sorted(Path(self.sink.mail_dir).glob("*.eml")):
            if path.name in self._seen:
                continue
            with path.open("rb") as file:
                headers = self._parser.parse(file)
            self._seen[path.name] = Copy(
                name=path.name,
                envelope_to=tuple(str(v) for v in headers.get_all(ENVELOPE_TO_HEADER) or []),
                subject=str(headers["Subject"]),
                message_id=str(headers["Message-ID"]).strip(),
            )
        return sorted(self._seen.values(), key=lambda c: c.name)

    def invitations(self, title: str) -> list[Copy]:
        return [
            c
            for c in self.copies()
            if c.subject.startswith(INVITATION_PREFIX) and title in c.subject
        ]

    def path(self, copy: Copy) -> Path:
        return Path(self.sink.mail_dir) / copy.name


@dataclass
class World:
    """One test's world: its nats-server, SMTP sink, two databases and two services."""

    nats: NatsServer
    sink: Sink
    mongo_url: str
    mongo: AsyncMongoClient[Document]
    data_dir: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return f"kaos-{self.run}.samskab.test"

    def database(self, service: str) -> str:
        return f"kaos_{service[:2]}_{self.run}"

    def db(self, service: str) -> AsyncDatabase[Document]:
        return self.mongo[self.database(service)]

    def env(self, service: str, settings: dict[str, Any]) -> dict[str, str]:
        return {
            "SAMSKAB_NATS_URL": self.nats.url,
            "SAMSKAB_MONGO_URL": self.mongo_url,
            "SAMSKAB_MONGO_DATABASE": self.database(service),
            "SAMSKAB_SMTP_HOST": self.sink.sink.host,
            "SAMSKAB_SMTP_PORT": str(self.sink.sink.port),
            "SAMSKAB_DATA_DIR": str(self.data_dir),
            "SAMSKAB_PUBLIC_URL": "https://samskab.test.example",
            "SAMSKAB_LOG_LEVEL": "INFO",
            "SAMSKAB_MAIL_MESSAGE_ID_DOMAIN": self.domain,
            **TOKEN_SECRETS,
            **{f"SAMSKAB_{k.upper()}": env_value(v) for k, v in settings.items()},
        }

    async def start(self, service: str, settings: dict[str, Any]) -> None:
        self.processes[service] = await asyncio.to_thread(
            start_service,
            service,
            nats_url=self.nats.url,
            env=self.env(service, settings),
            log_path=self.data_dir / "log" / f"{service}.log",
            timeout=60.0,
        )

    def kill(self, service: str) -> None:
        process = self.processes[service]
        process.kill()
        assert process.returncode == -9, f"{service} was not killed"

    async def restart(self, service: str, timeout: float = 60.0) -> None:
        process = self.processes[service]
        assert not process.running

        def run() -> None:
            process.start()
            process.wait_ready(timeout=timeout, interval=0.2)

        await asyncio.to_thread(run)


async def invited_on_stream(js: Any) -> int:
    try:
        info = await js.stream_info(STREAM, subjects_filter=INVITED)
    except NotFoundError:
        return 0
    return int((info.state.subjects or {}).get(INVITED, 0))


def local(instant: datetime) -> str:
    return instant.astimezone(COPENHAGEN).replace(tzinfo=None).isoformat(timespec="minutes")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def world(
    own_nats: NatsServer, own_sink: SmtpSink, own_mongo: MongoServer, tmp_path: Path
) -> AsyncIterator[World]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(own_mongo.url, tz_aware=True)
    here = World(
        nats=own_nats,
        sink=Sink(own_sink),
        mongo_url=own_mongo.url,
        mongo=mongo,
        data_dir=tmp_path,
    )
    yield here
    for name, process in reversed(here.processes.items()):
        process.stop()
        print(f"--- {name} log {process.log_path}\n{process.log_tail(40)}")
    # No drop_database (see test_kill_ambassadors): the store is a temporary directory.
    await mongo.close()


# ---------------------------------------------------------------------------- steps


async def wait_until_events_knows_everyone(world: World) -> None:
    known = world.db("events").ambassadors

    async def all_known() -> bool:
        return await known.count_documents({}) >= AMBASSADORS

    await poll("the events service to know every ambassador", all_known, READ_MODEL_TIMEOUT, 0.5)
    assert await known.count_documents({}) == AMBASSADORS


async def schedule_for_everyone(world: World, title: str) -> str:
    starts = (datetime.now(UTC) + timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    client = ServiceClient(ClientSettings(_env_file=None, nats_url=world.nats.url))
    await client.connect()
    try:
        meeting = await client.request(
            Endpoints.SCHEDULE.subject,
            {
                "kind": "ambassador_meeting",
                "title": title,
                "starts": local(starts),
                "ends": local(starts + timedelta(hours=2)),
                "place": "Fredericia Rådhus",
            },
        )
    finally:
        await client.close()
    assert meeting["audience"] == {
        "themes": [],
        "core_areas": [],
        "network_id": None,
        "ambassador_ids": [],
    }
    return str(meeting["id"])


async def kill_events_mid_fan_out(world: World, meeting_id: str) -> dict[str, int]:
    """SIGKILL once some invited events are on the stream; what was done at that moment."""
    nc = await nats.connect(world.nats.url)
    try:
        js = nc.jetstream()
        started = time.monotonic()
        while (on_stream := await invited_on_stream(js)) < KILL_EVENTS_AT:
            assert time.monotonic() - started < 30.0, f"only {on_stream} invited after 30 s"
            await asyncio.sleep(0.005)
        world.kill("events")
        on_stream = await invited_on_stream(js)
    finally:
        await nc.close()
    invitations = await world.db("events").invitations.count_documents({"meeting_id": meeting_id})
    pending = await world.db("events").outbox.count_documents({})
    assert on_stream < AMBASSADORS // 2, f"killed too late: {on_stream} invited published"
    assert invitations < AMBASSADORS, "killed after the fan-out had invited everyone"
    return {"on_stream": on_stream, "invitations": invitations, "outbox_pending": pending}


async def fan_out_resumed(world: World, meeting_id: str, at_kill: int) -> float:
    """Seconds until the restarted events service invited someone more."""
    started = time.monotonic()
    invitations = world.db("events").invitations

    async def more() -> bool:
        return await invitations.count_documents({"meeting_id": meeting_id}) > at_kill

    await poll("the fan-out to resume after the restart", more, RESUME_TIMEOUT, 0.2)
    return time.monotonic() - started


@dataclass(frozen=True)
class NewsletterKill:
    delivered: int
    # Message-IDs of the mails (any kind) the killed worker had in flight.
    in_flight: frozenset[str]


async def kill_newsletter_mid_delivery(world: World, title: str) -> NewsletterKill:
    started = time.monotonic()
    while (delivered := len(world.sink.invitations(title))) < KILL_NEWSLETTER_AT:
        assert time.monotonic() - started < RESUME_TIMEOUT, (
            f"only {delivered} invitations after {RESUME_TIMEOUT:g} s"
        )
        await asyncio.sleep(0.02)
    world.kill("newsletter")
    await asyncio.sleep(0.5)  # the sink may still be storing a message whose DATA arrived
    at_kill = len(world.sink.invitations(title))
    cursor = world.db("newsletter").mails.find({"state": "sending"}, {"kind": 1, "message_id": 1})
    sending = {str(doc["message_id"]): str(doc["kind"]) async for doc in cursor}
    assert at_kill < AMBASSADORS, f"killed too late: {at_kill} invitations delivered"
    assert "meeting_invitation" in sending.values(), "no invitation was in flight at the kill"
    return NewsletterKill(delivered=at_kill, in_flight=frozenset(sending))


async def wait_until_all_mailed(world: World, title: str) -> None:
    mails = world.db("newsletter").mails

    async def done() -> bool:
        if len(world.sink.invitations(title)) < AMBASSADORS:
            return False
        states: Counter[str] = Counter()
        async for doc in mails.find({"kind": "meeting_invitation"}, {"state": 1}):
            states[str(doc["state"])] += 1
        return not states["queued"] and not states["sending"]

    await poll("every invitation mailed", done, DONE_TIMEOUT, 0.5)


# ---------------------------------------------------------------------------- checks


def check_one_invitation_mail_each(
    world: World, title: str, seeded: list[SeededAmbassador], in_flight: frozenset[str]
) -> int:
    """One stored invitation per address, each its own Message-ID; what the sink dropped
    were resends of mails in flight at the kill. Returns how many it dropped."""
    addresses = {a.email for a in seeded}
    invitations = world.sink.invitations(title)
    per_address = Counter(c.envelope_to for c in invitations)
    strangers = [r for r in per_address if len(r) != 1 or r[0] not in addresses]
    assert not strangers, f"invitations to someone not invited: {strangers[:3]}"
    missing = [a for a in addresses if per_address[(a,)] == 0]
    assert not missing, f"{len(missing)} ambassadors got no invitation: {missing[:3]}"
    doubled = {r[0]: n for r, n in per_address.items() if n > 1}
    assert not doubled, f"{len(doubled)} ambassadors got two different invitations: {doubled}"
    assert len(invitations) == AMBASSADORS
    assert len({c.message_id for c in invitations}) == AMBASSADORS

    stored = {c.message_id for c in world.sink.copies()}
    dropped = read_duplicates(world.sink.sink.mail_dir)
    assert set(dropped) <= stored, "the sink dropped a Message-ID it never stored"
    assert len(set(dropped)) == len(dropped), "a mail was resent more than once"
    assert set(dropped) <= in_flight, "a mail not in flight at the kill was sent twice"

    # A few in full: the calendar entry is there, one meeting, one UID.
    uids = set()
    for copy in invitations[:: AMBASSADORS // 5]:
        message = email.parser.BytesParser(policy=email.policy.default).parse(
            world.sink.path(copy).open("rb")
        )
        parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
        assert len(parts) == 1 and str(parts[0].get_param("method")) == "REQUEST", copy
        content = parts[0].get_content()
        calendar = Calendar.from_ical(content if isinstance(content, str) else bytes(content))
        [event] = calendar.walk("VEVENT")
        uids.add(str(event.get("uid")))
    assert len(uids) == 1, uids
    return len(dropped)


async def check_one_invited_event_each(
    world: World, meeting_id: str, seeded: list[SeededAmbassador]
) -> None:
    invited = [m for m in await read_stream(world.nats.url, STREAM) if m.subject == INVITED]
    assert {m.data["meeting"]["meeting_id"] for m in invited} == {meeting_id}
    event_ids = Counter(str(m.data["event_id"]) for m in invited)
    per_ambassador = Counter(str(m.data["ambassador_id"]) for m in invited)
    twice = [a for a, n in per_ambassador.items() if n > 1]
    assert not twice, f"{len(twice)} ambassadors invited twice on the stream: {twice[:3]}"
    assert len(event_ids) == AMBASSADORS and len(invited) == AMBASSADORS, (
        f"{len(invited)} invited events, {len(event_ids)} distinct event ids"
    )
    assert set(per_ambassador) == {a.id for a in seeded}
    assert all(m.msg_id == str(m.data["event_id"]) for m in invited), "Nats-Msg-Id != event_id"


async def check_the_databases(world: World, meeting_id: str) -> None:
    events = world.db("events")
    invitations = [
        doc async for doc in events.invitations.find({"meeting_id": meeting_id}, {"_id": 1})
    ]
    assert len(invitations) == AMBASSADORS, f"{len(invitations)} invitations in the events db"
    meeting = await events.meetings.find_one({"_id": meeting_id})
    assert meeting is not None and not meeting.get("inviting"), "the fan-out did not finish"
    pending = await events.outbox.count_documents({})
    assert pending == 0, f"{pending} events still in the events service's outbox"

    states: Counter[str] = Counter()
    async for doc in world.db("newsletter").mails.find({"kind": "meeting_invitation"}):
        states[str(doc["state"])] += 1
    assert states == Counter({"sent": AMBASSADORS}), states


# ---------------------------------------------------------------------------- the test


async def test_kill_events_mid_fan_out_and_newsletter_mid_delivery(world: World) -> None:
    began = time.monotonic()
    title = f"Ambassadørmøde under kaos {world.run}"
    # As the ambassadors service would: its stream first (each service waits at start-up
    # for the streams it consumes); the events service declares EVENTS, which the
    # newsletter waits for.
    await declare_streams_at(world.nats.url, ["ambassadors"])
    await world.start("events", EVENTS_SETTINGS)
    await world.start("newsletter", NEWSLETTER_SETTINGS)
    seeded = await publish_active_ambassadors(world.nats.url, world.run, AMBASSADORS)
    await wait_until_events_knows_everyone(world)
    print(f"{AMBASSADORS} ambassadors known to events after {time.monotonic() - began:.1f} s")

    meeting_id = await schedule_for_everyone(world, title)
    scheduled = time.monotonic()
    events_kill = await kill_events_mid_fan_out(world, meeting_id)
    killed = time.monotonic()
    await world.restart("events")
    events_back = time.monotonic()
    resumed = await fan_out_resumed(world, meeting_id, events_kill["invitations"])

    newsletter_kill = await kill_newsletter_mid_delivery(world, title)
    await world.restart("newsletter")
    await wait_until_all_mailed(world, title)
    done = time.monotonic()

    dropped = check_one_invitation_mail_each(world, title, seeded, newsletter_kill.in_flight)
    await check_one_invited_event_each(world, meeting_id, seeded)
    await check_the_databases(world, meeting_id)
    print(
        f"events killed {killed - scheduled:.1f} s after scheduling with {events_kill}, "
        f"back {events_back - killed:.1f} s later, its fan-out resumed after {resumed:.1f} s "
        f"more; newsletter killed with "
        f"{newsletter_kill.delivered} invitations delivered, "
        f"{len(newsletter_kill.in_flight)} mails in flight; "
        f"all {AMBASSADORS} invitations mailed {done - scheduled:.1f} s after scheduling; "
        f"the sink dropped {dropped} resent Message-IDs; whole test "
        f"{time.monotonic() - began:.1f} s"
    )
