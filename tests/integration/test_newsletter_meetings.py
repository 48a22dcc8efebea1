"""Meeting mails and the meeting sections of the digest: the newsletter service as a real
process against real NATS, SecantusDB and the SMTP sink.

No events service runs here: the tests publish its events onto the EVENTS stream
themselves, with ``Nats-Msg-Id = event_id`` as its outbox relay does, and the ambassadors'
erasure onto AMBASSADORS. The service's clock is sent to February 2027 (through
SAMSKAB_CLOCK_FILE): mails are only delivered if the delivery worker reads the same clock
as the handlers that queued them, and the digest's "coming up" is counted from that time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import icalendar
import nats
import pytest
from nats.js import JetStreamContext
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.ambassadors import Erased, Kind, ProfileUpdated, Status
from contracts.envelope import Event
from contracts.events import (
    InvitationCancelled,
    InvitationUpdated,
    Invited,
    MeetingCancelled,
    MeetingHeld,
    MeetingInfo,
    MeetingKind,
    MeetingRescheduled,
    MeetingScheduled,
    Promoted,
    Waitlisted,
)
from contracts.newsletter import Endpoints
from services.newsletter import store
from services.newsletter.sections import coming_up, recently_held
from services.runtime.client import ServiceClient
from services.runtime.clock import travel
from services.runtime.settings import ClientSettings
from services.runtime.tokens import ANSWER, Signer
from services.runtime.unit_of_work import Reading
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.smtp_sink import SmtpSink
from stack.streams import NEWSLETTER_PRODUCERS, declare_streams_at
from tests.conftest import ServiceProcessFactory
from tests.integration.ambassadors_harness import eventually, unique_email, wait_for_log
from tests.support.stack import TOKEN_SECRETS

pytestmark = pytest.mark.integration

Document = dict[str, Any]
PUBLIC_URL = "https://samskab.test.example"
# Where the service's clock is: meetings below are weeks after it.
NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
# 17.00-19.00 in Copenhagen.
STARTS = datetime(2027, 3, 4, 16, 0, tzinfo=UTC)
ENDS = datetime(2027, 3, 4, 18, 0, tzinfo=UTC)


@dataclass
class Newsletter:
    client: ServiceClient
    db: AsyncDatabase[Document]
    js: JetStreamContext
    sink: SmtpSink

    async def publish(self, event: Event, msg_id: str | None = None) -> None:
        """As the producer's outbox relay publishes: deduplicated by the server on the id."""
        await self.js.publish(
            event.subject,
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": msg_id or str(event.event_id)},
        )

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sink.messages() if address in str(m.get("To", ""))]

    async def wait_for_mails(self, address: str, count: int = 1) -> list[EmailMessage]:
        async def probe() -> list[EmailMessage] | None:
            found = self.mails_to(address)
            return found if len(found) >= count else None

        found: list[EmailMessage] = await eventually(
            probe, timeout=30, interval=0.2, what=f"{count} mail(s) to {address}"
        )
        return found

    async def known(self, *people: dict[str, str]) -> None:
        """Make ``people`` active ambassadors the service knows, as the ambassadors service's
        events would (the newsletter mails invitations to no one else), without subscribing
        them: a profile of an active ambassador, and wait for its read model to show them."""
        for who in people:
            await self.publish(
                ProfileUpdated(
                    ambassador_id=who["ambassador_id"],
                    name=who["name"],
                    email=who["email"],
                    kind=Kind.CITIZEN,
                    public=False,
                    changed=["name"],
                    status=Status.ACTIVE,
                )
            )
        ids = {who["ambassador_id"] for who in people}

        async def all_known() -> bool:
            found = self.db.ambassadors.find({"_id": {"$in": list(ids)}, "standing": "active"})
            return len([d async for d in found]) == len(ids)

        await eventually(all_known, timeout=30, what="the invitees to be known ambassadors")

    async def mail_records(self, ambassador_id: str) -> list[Document]:
        return [d async for d in self.db.mails.find({"refs": f"ambassador:{ambassador_id}"})]

    async def request(self, subject: str, payload: dict[str, Any]) -> Any:
        return await self.client.request(subject, payload)


@pytest.fixture
async def newsletter(
    service_process: ServiceProcessFactory,
    nats_server: NatsServer,
    mongo_server: MongoServer,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> AsyncIterator[Newsletter]:
    # Neither the ambassadors nor the events service runs: their streams are declared here.
    await declare_streams_at(nats_server.url, NEWSLETTER_PRODUCERS)
    clock_file = tmp_path / "clock"
    travel(clock_file, NOW)
    database = f"nlm_{uuid.uuid4().hex[:8]}"
    process = service_process(
        "newsletter",
        {
            "SAMSKAB_MONGO_DATABASE": database,
            "SAMSKAB_LOG_LEVEL": "INFO",
            "SAMSKAB_PUBLIC_URL": PUBLIC_URL,
            "SAMSKAB_CLOCK_FILE": str(clock_file),
        },
    )
    wait_for_log(process, "service ready")
    nc = await nats.connect(nats_server.url)
    client = ServiceClient(ClientSettings(_env_file=None, nats_url=nats_server.url), user="tests")
    await client.connect()
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)
    try:
        yield Newsletter(client, mongo[database], nc.jetstream(), smtp_sink)
    finally:
        await client.close()
        await nc.close()
        await mongo.close()


def meeting(**overrides: Any) -> MeetingInfo:
    values: dict[str, Any] = {
        "meeting_id": uuid.uuid4().hex,
        "kind": MeetingKind.AMBASSADOR_MEETING,
        "title": "Ambassadørmøde, forår 2027",
        "description": "Vi taler om bolig og fællesskab.",
        "starts_at": STARTS,
        "ends_at": ENDS,
        "place": "Fredericia Rådhus",
        "public": True,
        **overrides,
    }
    return MeetingInfo(**values)


def ics(info: MeetingInfo, address: str, method: str = "REQUEST") -> str:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//test//samskab//DA")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", f"meeting-{info.meeting_id}@samskab.test.example")
    event.add("dtstamp", NOW)
    event.add("dtstart", info.starts_at)
    event.add("dtend", info.ends_at)
    event.add("sequence", info.sequence)
    event.add("summary", info.title)
    event.add("attendee", icalendar.vCalAddress(f"mailto:{address}"))
    calendar.add_component(event)
    return str(calendar.to_ical().decode("utf-8"))


def answer_token(info: MeetingInfo, who: dict[str, str]) -> str:
    """The token the newsletter signs into the answer links (with the events' key)."""
    signer = Signer(TOKEN_SECRETS["SAMSKAB_EVENTS_TOKEN_SECRET"], ANSWER)
    return signer.sign(info.meeting_id, who["ambassador_id"])


def person() -> dict[str, str]:
    return {"ambassador_id": uuid.uuid4().hex, "email": unique_email("mode"), "name": "Åse Ærø"}


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def calendar_of(message: EmailMessage) -> tuple[EmailMessage, icalendar.Calendar]:
    (part,) = [p for p in message.iter_attachments() if isinstance(p, EmailMessage)]
    return part, icalendar.Calendar.from_ical(part.get_content())


def subjects(messages: Sequence[EmailMessage]) -> list[str]:
    return sorted(str(m["Subject"]) for m in messages)


async def test_each_invitee_event_is_one_mail_with_its_calendar_and_answer_links(
    newsletter: Newsletter,
) -> None:
    info = meeting()
    who, other = person(), person()
    await newsletter.known(who, other)
    token = answer_token(info, who)
    invited = Invited(**who, meeting=info, answerable=True, ics=ics(info, who["email"]))
    await newsletter.publish(invited)
    # The relay publishing again after a crash: the server drops it (same Nats-Msg-Id)...
    await newsletter.publish(invited)
    # ... and once its duplicate window is over, the service's inbox does.
    await newsletter.publish(invited, msg_id=f"{invited.event_id}-later")
    moved = meeting(
        meeting_id=info.meeting_id,
        starts_at=STARTS + timedelta(days=7),
        ends_at=ENDS + timedelta(days=7),
        sequence=1,
    )
    await newsletter.publish(
        InvitationUpdated(
            **who,
            meeting=moved,
            answerable=True,
            ics=ics(moved, who["email"]),
            previous_starts_at=STARTS,
            previous_ends_at=ENDS,
        )
    )
    cancelled = meeting(meeting_id=info.meeting_id, sequence=2)
    await newsletter.publish(
        InvitationCancelled(
            **who,
            meeting=cancelled,
            ics=ics(cancelled, who["email"], "CANCEL"),
            reason="For få tilmeldte",
        )
    )
    await newsletter.publish(Waitlisted(**other, meeting=info, answerable=True, position=2))
    await newsletter.publish(
        Promoted(**other, meeting=info, answerable=True, ics=ics(info, other["email"]))
    )

    await newsletter.wait_for_mails(other["email"], count=2)
    mails = await newsletter.wait_for_mails(who["email"], count=3)

    async def all_sent() -> bool:
        records = await newsletter.mail_records(who["ambassador_id"])
        return len(records) == 3 and all(r["state"] == "sent" for r in records)

    await eventually(all_sent, timeout=30, what="the three mails to be sent")
    mails = newsletter.mails_to(who["email"])
    assert subjects(mails) == [
        "Aflyst: Ambassadørmøde, forår 2027, torsdag den 4. marts 2027",
        "Du er inviteret: Ambassadørmøde, forår 2027, torsdag den 4. marts 2027",
        "Ændret: Ambassadørmøde, forår 2027 er nu torsdag den 11. marts 2027",
    ]
    message_ids = {str(m["Message-ID"]) for m in mails}
    assert not message_ids & set(newsletter.sink.duplicates())

    invitation = next(m for m in mails if str(m["Subject"]).startswith("Du er inviteret"))
    text = text_of(invitation)
    assert "torsdag den 4. marts 2027 kl. 17.00–19.00" in text
    for answer in ("yes", "maybe", "no"):
        assert f"{PUBLIC_URL}/rsvp/{token}/{answer}" in text
    assert "samskab events" not in text, "no command line in a mail"
    assert invitation["List-Unsubscribe"] is None
    # Written by the clock the service was sent to, and delivered by the worker on it.
    assert parsedate_to_datetime(str(invitation["Date"])).year == 2027
    part, calendar = calendar_of(invitation)
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == "invitation.ics"
    assert calendar["METHOD"] == "REQUEST"
    (vevent,) = calendar.walk("VEVENT")
    assert vevent.decoded("dtstart") == STARTS

    cancellation = next(m for m in mails if str(m["Subject"]).startswith("Aflyst"))
    assert "Hvorfor: For få tilmeldte" in text_of(cancellation)
    part, calendar = calendar_of(cancellation)
    assert part.get_param("method") == "CANCEL" and calendar["METHOD"] == "CANCEL"
    assert part.get_filename() == "aflysning.ics"

    others = {str(m["Subject"]): m for m in newsletter.mails_to(other["email"])}
    assert "Du er på ventelisten: Ambassadørmøde, forår 2027" in others
    assert not list(others["Du er på ventelisten: Ambassadørmøde, forår 2027"].iter_attachments())
    promoted = next(m for s, m in others.items() if s.startswith("Der er plads til dig"))
    assert "du har nu en plads" in text_of(promoted)


async def test_an_erased_ambassador_gets_no_meeting_mail_and_keeps_no_ics(
    newsletter: Newsletter,
) -> None:
    info = meeting()
    # Mailed before the erasure: the record loses its address, context and .ics with it.
    earlier, marker = person(), person()
    await newsletter.known(earlier, marker)
    await newsletter.publish(
        Invited(**earlier, meeting=info, answerable=True, ics=ics(info, earlier["email"]))
    )
    await newsletter.wait_for_mails(earlier["email"])
    erased = person()
    for ambassador_id in (earlier["ambassador_id"], erased["ambassador_id"]):
        await newsletter.publish(Erased(ambassador_id=ambassador_id))

    async def both_erased() -> bool:
        found = newsletter.db.ambassadors.find({"standing": "erased"}, {"_id": 1})
        known = {d["_id"] async for d in found}
        return {earlier["ambassador_id"], erased["ambassador_id"]} <= known

    await eventually(both_erased, timeout=30, what="the erasures to reach the newsletter")

    # The invitation comes on the other stream, after the erasure.
    await newsletter.publish(
        Invited(**erased, meeting=info, answerable=True, ics=ics(info, erased["email"]))
    )
    await newsletter.publish(
        Invited(**marker, meeting=info, answerable=True, ics=ics(info, marker["email"]))
    )
    # Events are applied one at a time, in order: once the marker is mailed, the invitation
    # before it was handled too.
    await newsletter.wait_for_mails(marker["email"])
    assert newsletter.mails_to(erased["email"]) == []
    assert await newsletter.mail_records(erased["ambassador_id"]) == []

    (record,) = await newsletter.mail_records(earlier["ambassador_id"])
    assert record["to_address"] is None and record["to_name"] is None
    assert record["context"] == {} and record["attachments"] == []
    leftovers = [d async for d in newsletter.db.mails.find({"to_address": earlier["email"]})]
    assert leftovers == []
    assert earlier["email"] not in repr(record)


async def test_the_digest_shows_public_meetings_coming_up_and_meetings_held(
    newsletter: Newsletter,
) -> None:
    tag = uuid.uuid4().hex[:6]
    public = meeting(title=f"Temadag om ensomhed {tag}", kind=MeetingKind.THEME_DAY)
    closed = meeting(title=f"Lukket workshop {tag}", kind=MeetingKind.WORKSHOP, public=False)
    dropped = meeting(title=f"Aflyst dialogmøde {tag}", kind=MeetingKind.DIALOGUE_MEETING)
    far = meeting(
        title=f"Stormøde til efteråret {tag}",
        kind=MeetingKind.ANNUAL_ASSEMBLY,
        starts_at=NOW + timedelta(days=200),
        ends_at=NOW + timedelta(days=200, hours=4),
    )
    for info in (public, closed, dropped, far):
        await newsletter.publish(MeetingScheduled(meeting_id=info.meeting_id, meeting=info))
    await newsletter.publish(MeetingCancelled(meeting_id=dropped.meeting_id, meeting=dropped))
    moved = meeting(
        meeting_id=public.meeting_id,
        title=public.title,
        kind=public.kind,
        starts_at=STARTS + timedelta(days=1),
        ends_at=ENDS + timedelta(days=1),
        sequence=1,
    )
    await newsletter.publish(
        MeetingRescheduled(
            meeting_id=public.meeting_id,
            meeting=moved,
            previous_starts_at=STARTS,
            previous_ends_at=ENDS,
        )
    )
    # The scheduling redelivered late (a new message): older than what is stored.
    await newsletter.publish(MeetingScheduled(meeting_id=public.meeting_id, meeting=public))
    held_at = datetime(2027, 1, 20, 17, 0, tzinfo=UTC)
    last = MeetingHeld(
        meeting_id=uuid.uuid4().hex,
        kind=MeetingKind.DIALOGUE_MEETING,
        title=f"Dialogmøde om unge og rusmidler {tag}",
        date=date(2027, 1, 20),
        starts_at=held_at - timedelta(hours=2),
        held_at=held_at,
        public=False,
        attendee_count=23,
        attending_organisations=["Kirkens Korshær", "Røde Kors Fredericia"],
        outcomes=[f"Et nyt handlingsnetværk om unge {tag}"],
    )
    await newsletter.publish(last)

    async def applied() -> Document | None:
        # Events are applied one at a time, in order: the last one means all of them.
        return await newsletter.db.inbox.find_one({"_id": f"newsletter:{last.event_id}"})

    await eventually(applied, timeout=30, what="the meeting events to be applied")

    draft = await newsletter.request(Endpoints.DRAFT.subject, {"since": "2027-01-01"})
    assert draft["sections"]["coming_up"] == 1
    assert draft["sections"]["recently_held"] == 1
    preview = await newsletter.request(Endpoints.PREVIEW.subject, {"issue_id": draft["id"]})
    text, html = preview["text"], preview["html"]
    for part in (text, html):
        assert "Det sker snart" in part and "Det har vi holdt" in part
        assert public.title in part
        assert closed.title not in part
        assert dropped.title not in part
        assert far.title not in part
        assert f"Dialogmøde om unge og rusmidler {tag}" in part
        assert "Kirkens Korshær, Røde Kors Fredericia" in part
        assert f"Et nyt handlingsnetværk om unge {tag}" in part
        assert "23 deltagere" in part
    # The rescheduled time, not the one the late scheduling carried.
    assert "fredag den 5. marts 2027 kl. 17.00–19.00" in text
    assert "onsdag den 20. januar 2027" in text.lower()


async def test_the_sections_query_their_windows(mongo_server: MongoServer) -> None:
    """The two queries against SecantusDB: what falls inside each window and what not."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)
    db = client[f"nlm_sections_{uuid.uuid4().hex[:8]}"]
    try:
        until = NOW
        since = until - timedelta(days=30)

        def doc(name: str, **values: Any) -> Document:
            base = {
                "_id": name,
                "kind": "theme_day",
                "title": name,
                "state": "scheduled",
                "public": True,
                "starts_at": until + timedelta(days=1),
                "ends_at": until + timedelta(days=1, hours=2),
            }
            return {**base, **values}

        docs = [
            doc("at-until", starts_at=until),
            doc("before-until", starts_at=until - timedelta(minutes=1)),
            doc("last-day", starts_at=until + timedelta(days=120) - timedelta(minutes=1)),
            doc("too-far", starts_at=until + timedelta(days=120)),
            doc("not-public", public=False),
            doc("cancelled", state="cancelled"),
            *[doc(f"more-{i:02}", starts_at=until + timedelta(days=2, hours=i)) for i in range(12)],
            doc("held-in", state="held", held_at=since, held_on="2027-01-02", attendee_count=4),
            doc("held-before", state="held", held_at=since - timedelta(seconds=1)),
            doc("held-at-until", state="held", held_at=until, public=False),
            doc("held-private", state="held", held_at=until - timedelta(days=1), public=False),
        ]
        await db.meetings.insert_many(docs)
        await store.ensure_indexes(db)
        scope = Reading(db, NOW)

        upcoming = await coming_up.SECTION.query(scope, since, until)
        assert [e["meeting_id"] for e in upcoming] == [
            "at-until",
            *[f"more-{i:02}" for i in range(9)],
        ]
        widest = await store.public_meetings_starting(scope, until, until + coming_up.HORIZON, 100)
        assert "last-day" in {d["_id"] for d in widest}
        assert "too-far" not in {d["_id"] for d in widest}
        held = await recently_held.SECTION.query(scope, since, until)
        assert [e["meeting_id"] for e in held] == ["held-in", "held-private"]
    finally:
        await client.drop_database(db.name)
        await client.close()
