"""A meeting, end to end: the stack as ``make up`` runs it, driven by the CLI, read back from
the SMTP sink, with the stack's clock moved by writing its clock file.

Staff sign up three ambassadors and schedule an ambassador meeting for them with two seats,
a few days ahead. Each gets one invitation with the calendar entry attached (iTIP REQUEST,
the meeting's UID, its start) and answer links. Two say yes, the third's yes goes on the
waitlist; one of the two gives the seat up and the waitlisted gets it, by mail. One answers
once more with the token from her mail. Just inside 48 hours before the start the two with
a seat are reminded, once. After the meeting staff record who came and close it with
minutes; ``meeting_held`` is on the EVENTS stream, and the next newsletter tells what was
held ("Det har vi holdt") and what is coming up ("Det sker snart": a public theme day,
which the public calendar file holds too).

As in the other journeys: one stack for the module, small steps in file order sharing a
:class:`Journey`; a step whose input an earlier step did not provide skips. The only
addition to ``make up`` is the clock file (``SAMSKAB_CLOCK_FILE``, absent until a step
travels), which every service reads. Time only moves forward.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from contracts.events import COPENHAGEN, STREAM
from services.events.settings import EventsSettings
from tests.e2e.conftest import PUBLIC_URL, StackRun
from tests.e2e.mailbox import Mail, Mailbox
from tests.e2e.steps import need, poll, schedule_when_known
from tests.support.streams import read_stream

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    kind: str
    organisation: str | None = None


AASE = Person("Aase Bøgh Andersen", "aase.andersen@example.org", "citizen")
BILAL = Person(
    "Bilal Rask Hansen",
    "bilal.hansen@example.org",
    "association",
    "Foreningen Grønne Gårde",
)
CAMILLA = Person("Camilla Ørum Christensen", "camilla.christensen@example.org", "citizen")
PEOPLE = (AASE, BILAL, CAMILLA)

TITLE = "Ambassadørmøde om fællesskaber i byen"
PLACE = "Fredericia Rådhus, mødesal 2"
SEATS = 2
PUBLIC_TITLE = "Temadag: Sundhed i hverdagen"
MINUTES = (
    "Referat\n\nVi talte om fællesspisning og om at nå flere unge.\n"
    "Næste skridt aftales i netværkene.\n"
)
OUTCOMES = ("Fællesspisning i tre nye boligområder", "Netværk for unge frivillige dannes")

# Subjects of the newsletter's meeting mails (mail/templates/meeting_*.subject.j2).
INVITATION = "Du er inviteret:"
WAITLISTED = "Du er på ventelisten:"
PROMOTED = "Der er plads til dig:"
REMINDER = "Påmindelse:"

# The demo import's organisations, welcomed at the start (as in the newsletter journey).
DEMO_AMBASSADORS = 85
WELCOME_TIMEOUT = 120.0
# One mail after the event that causes it (events relay -> newsletter -> SMTP sink).
MAIL_TIMEOUT = 45.0
# The events service checks for due reminders every this many seconds (as make up runs it).
POLL_SECONDS: float = EventsSettings.model_fields["events_poll_seconds"].default
# The token is signed (itsdangerous: base64url parts joined by dots).
RSVP_LINK = re.compile(rf"{re.escape(PUBLIC_URL)}/rsvp/([\w.-]+)/(yes|maybe|no)\b")
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


@dataclass
class Journey:
    """What one step learns and a later one needs."""

    ids: dict[Person, str] = field(default_factory=dict)
    meeting_id: str | None = None
    starts: datetime | None = None
    ends: datetime | None = None
    uid: str | None = None
    # Per invitee address: the token of their answer links.
    tokens: dict[str, str] = field(default_factory=dict)
    public_meeting_id: str | None = None
    reminded: bool = False
    held: bool = False

    def id_of(self, person: Person) -> str:
        return need(self.ids.get(person), f"{person.name}'s ambassador id")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mailbox(stack: StackRun) -> Mailbox:
    return Mailbox(stack.data_dir / "mail")


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


# ---------------------------------------------------------------- helpers


def local(instant: datetime) -> str:
    """As staff type a time: Copenhagen wall-clock, to the minute, no offset."""
    return instant.astimezone(COPENHAGEN).replace(tzinfo=None).isoformat(timespec="minutes")


def next_whole_hour(after: timedelta) -> datetime:
    at = datetime.now(UTC) + after
    return at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def about(title: str, prefix: str) -> Any:
    """Matches the mails of one kind (by subject) about the meeting titled ``title``."""

    def match(mail: Mail) -> bool:
        return mail.subject.startswith(prefix) and title in mail.subject

    return match


def calendar_of(mail: Mail, method: str = "REQUEST") -> Calendar:
    """The one iCalendar part of a mail, sent as iTIP ``method`` and parsed."""
    parts = [p for p in mail.parts() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, f"{mail.describe()}: {len(parts)} calendar parts"
    [part] = parts
    assert str(part.get_param("method") or "").upper() == method, part["Content-Type"]
    assert (part.get_filename() or "").endswith(".ics"), part.get_filename()
    content = part.get_content()
    raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    calendar = Calendar.from_ical(raw)
    assert str(calendar.get("method")) == method, calendar.to_ical()[:300]
    return calendar


def the_event(calendar: Calendar) -> Any:
    events = calendar.walk("VEVENT")
    assert len(events) == 1, f"{len(events)} VEVENTs"
    return events[0]


def answer_token(mail: Mail) -> str:
    """The token of a mail's three answer links (yes, maybe, no), in text and HTML alike."""
    links: list[tuple[str, str]] = RSVP_LINK.findall(mail.text)
    assert {answer for _, answer in links} == {"yes", "maybe", "no"}, mail.text
    tokens = {token for token, _ in links}
    assert len(tokens) == 1, tokens
    [token] = tokens
    for answer in ("yes", "maybe", "no"):
        assert f"{PUBLIC_URL}/rsvp/{token}/{answer}" in mail.html, mail.describe()
    return token


def show(stack: StackRun, meeting_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = stack.cli("events", "show", meeting_id, "--json").ok().json()
    return detail


def participation(detail: dict[str, Any]) -> dict[str, str]:
    return {i["ambassador_id"]: i["participation"] for i in detail["invitees"]}


def rsvp(stack: StackRun, meeting_id: str, ambassador_id: str, answer: str) -> dict[str, Any]:
    args = ("events", "rsvp", meeting_id, ambassador_id, f"--{answer}", "--json")
    result: dict[str, Any] = stack.cli(*args).ok().json()
    assert (result["meeting_id"], result["ambassador_id"]) == (meeting_id, ambassador_id)
    return result


def stream_events(stack: StackRun, meeting_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, payload) of every event about the meeting on the EVENTS stream."""

    def about(data: dict[str, Any]) -> Any:
        return data.get("meeting_id") or (data.get("meeting") or {}).get("meeting_id")

    login = stack.nats_login("events")
    everything = asyncio.run(read_stream(stack.env["SAMSKAB_NATS_URL"], STREAM, **login))
    return [(m.name, m.data) for m in everything if about(m.data) == meeting_id]


def section(text: str, heading: str) -> str:
    """The part of a plain-text issue under ``heading``, up to the next heading (a heading
    is a line with a line of ``=`` or ``-`` under it)."""
    lines = text.splitlines()

    def is_heading(i: int) -> bool:
        under = lines[i + 1].strip() if i + 1 < len(lines) else ""
        return bool(lines[i].strip()) and len(under) >= 3 and set(under) <= {"=", "-"}

    starts = [i for i, line in enumerate(lines) if line.strip() == heading and is_heading(i)]
    assert len(starts) == 1, f"{len(starts)} sections {heading!r} in:\n{text}"
    body = starts[0] + 2
    end = next((i for i in range(body, len(lines)) if is_heading(i)), len(lines))
    return "\n".join(lines[body:end])


# ---------------------------------------------------------------- the journey


def test_the_events_service_runs_with_make_up(stack: StackRun) -> None:
    health = stack.cli("health", "--json").ok().json()
    assert health["running"]["events"]["status"] == "ok", health
    human = stack.cli("health").ok().stdout
    assert re.search(r"^events\s+ok\b", human, re.M), human


def test_staff_sign_up_three_ambassadors(stack: StackRun, journey: Journey) -> None:
    for person in PEOPLE:
        organisation = ["--organisation", person.organisation] if person.organisation else []
        result = stack.cli(
            "ambassadors",
            "sign-up",
            "--name",
            person.name,
            "--email",
            person.email,
            "--kind",
            person.kind,
            *organisation,
            "--staff",
            "--consent",
            "--json",
        )
        a = result.ok().json()["ambassador"]
        assert a["status"] == "active", a
        journey.ids[person] = a["id"]
    assert len(set(journey.ids.values())) == 3


def test_staff_schedule_a_meeting_with_two_seats(stack: StackRun, journey: Journey) -> None:
    invite = [arg for p in PEOPLE for arg in ("--invite", journey.id_of(p))]
    starts = next_whole_hour(timedelta(days=3))
    ends = starts + timedelta(hours=2)
    meeting = schedule_when_known(
        stack,
        "--kind",
        "ambassador_meeting",
        "--title",
        TITLE,
        "--starts",
        local(starts),
        "--ends",
        local(ends),
        "--place",
        PLACE,
        "--capacity",
        str(SEATS),
        *invite,
    )
    assert (meeting["kind"], meeting["title"], meeting["state"]) == (
        "ambassador_meeting",
        TITLE,
        "scheduled",
    )
    assert meeting["capacity"] == SEATS and meeting["public"] is False
    assert meeting["audience"]["ambassador_ids"] == [journey.id_of(p) for p in PEOPLE]
    assert datetime.fromisoformat(meeting["starts_at"]) == starts
    assert datetime.fromisoformat(meeting["ends_at"]) == ends
    journey.meeting_id, journey.starts, journey.ends = meeting["id"], starts, ends

    listed = stack.cli("events", "list", "--upcoming", "--json").ok().json()
    assert meeting["id"] in [m["id"] for m in listed["items"]]


def test_each_invitee_gets_one_invitation_with_the_calendar_entry(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    meeting_id = need(journey.meeting_id, "the meeting")
    starts, ends = need(journey.starts, "its start"), need(journey.ends, "its end")
    addresses = {p.email for p in PEOPLE}
    mails = mailbox.wait(
        about(TITLE, INVITATION), count=3, timeout=MAIL_TIMEOUT, what="three invitations"
    )
    per_address = Counter(m.recipient for m in mails)
    assert per_address == Counter(addresses), per_address

    uids = set()
    for mail in mails:
        event = the_event(calendar_of(mail, "REQUEST"))
        uids.add(str(event.get("uid")))
        assert event.get("dtstart").dt == starts, event.get("dtstart").dt
        assert event.get("dtend").dt == ends, event.get("dtend").dt
        assert TITLE in str(event.get("summary")), event.get("summary")
        assert str(event.get("location")) == PLACE
        attendees = event.get("attendee")
        assert str(attendees).lower() == f"mailto:{mail.recipient}", attendees
        journey.tokens[mail.recipient] = answer_token(mail)
        # An invitation is no newsletter: nothing to unsubscribe from.
        assert mail.header("List-Unsubscribe") is None, mail.describe()
    # One calendar entry per meeting: the same UID for every invitee, naming the meeting.
    assert len(uids) == 1, uids
    [uid] = uids
    assert meeting_id in uid, uid
    journey.uid = uid
    assert len(set(journey.tokens.values())) == 3, "answer tokens must be personal"


def test_two_say_yes_and_the_third_goes_on_the_waitlist(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    meeting_id = need(journey.meeting_id, "the meeting")
    aase, bilal, camilla = (journey.id_of(p) for p in PEOPLE)
    assert rsvp(stack, meeting_id, aase, "yes")["participation"] == "attending"
    assert rsvp(stack, meeting_id, bilal, "yes")["participation"] == "attending"
    third = rsvp(stack, meeting_id, camilla, "yes")
    assert (third["participation"], third["waitlist_position"]) == ("waitlisted", 1), third

    [mail] = mailbox.wait(about(TITLE, WAITLISTED), timeout=MAIL_TIMEOUT, what="the waitlist mail")
    assert mail.recipient == CAMILLA.email, mail.describe()

    detail = show(stack, meeting_id)
    assert participation(detail) == {aase: "attending", bilal: "attending", camilla: "waitlisted"}
    assert [(w["ambassador_id"], w["waitlist_position"]) for w in detail["waitlist"]] == [
        (camilla, 1)
    ]
    assert {i["name"] for i in detail["invitees"]} == {p.name for p in PEOPLE}
    counts = detail["meeting"]["counts"]
    assert (counts["invited"], counts["attending"], counts["waitlisted"]) == (3, 2, 1), counts


def test_a_seat_given_up_goes_to_the_first_on_the_waitlist(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    meeting_id = need(journey.meeting_id, "the meeting")
    uid = need(journey.uid, "the meeting's calendar UID")
    aase, bilal, camilla = (journey.id_of(p) for p in PEOPLE)
    given_up = rsvp(stack, meeting_id, aase, "no")
    assert (given_up["participation"], given_up["promoted"]) == ("declined", [camilla]), given_up

    [mail] = mailbox.wait(about(TITLE, PROMOTED), timeout=MAIL_TIMEOUT, what="the seat mail")
    assert mail.recipient == CAMILLA.email, mail.describe()
    assert str(the_event(calendar_of(mail, "REQUEST")).get("uid")) == uid

    detail = show(stack, meeting_id)
    assert participation(detail) == {aase: "declined", bilal: "attending", camilla: "attending"}
    assert detail["waitlist"] == []
    assert detail["meeting"]["counts"]["attending"] == SEATS


def test_an_answer_with_the_link_from_the_invitation(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    meeting_id = need(journey.meeting_id, "the meeting")
    token = need(journey.tokens.get(AASE.email), "the token from her invitation")
    aase = journey.id_of(AASE)
    result = stack.cli("events", "answer", token, "--maybe", "--json").ok().json()
    assert (result["meeting_id"], result["ambassador_id"], result["participation"]) == (
        meeting_id,
        aase,
        "maybe",
    )
    assert participation(show(stack, meeting_id))[aase] == "maybe"


def test_a_public_theme_day_is_in_the_public_calendar(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    starts = next_whole_hour(timedelta(days=30))
    meeting = schedule_when_known(
        stack,
        "--kind",
        "theme_day",
        "--title",
        PUBLIC_TITLE,
        "--starts",
        local(starts),
        "--ends",
        local(starts + timedelta(hours=5)),
        "--place",
        "Fredericia Bibliotek",
        "--public",
        "--invite",
        journey.id_of(AASE),
    )
    assert meeting["public"] is True
    journey.public_meeting_id = meeting["id"]

    out = tmp_path / "kalender" / "samskab.ics"
    written = stack.cli("events", "calendar", "--out", str(out), "--json").ok().json()
    assert (written["meetings"], Path(written["path"])) == (1, out)
    raw = out.read_bytes()
    assert b"\r\n" in raw, "iCalendar lines end in CRLF"
    calendar = Calendar.from_ical(raw)
    assert str(calendar.get("method")) == "PUBLISH"
    # Only the public meeting, and no person in it.
    event = the_event(calendar)
    assert meeting["id"] in str(event.get("uid"))
    assert PUBLIC_TITLE in str(event.get("summary"))
    assert event.get("dtstart").dt == starts
    assert event.get("attendee") is None and event.get("organizer") is None
    text = raw.decode("utf-8")
    assert TITLE not in text, "a meeting that is not public is in the public calendar"
    assert not [p for p in PEOPLE if p.email in text or p.name in text], text


def test_those_with_a_seat_are_reminded_just_inside_48_hours(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    starts = need(journey.starts, "the meeting's start")
    # Nothing is on its way when the clock moves (a mail in flight would see its lease run
    # out at once): every welcome is out, the demo organisations' and our three.
    mailbox.wait(
        lambda m: m.subject.startswith("Velkommen"),
        count=DEMO_AMBASSADORS + len(PEOPLE),
        timeout=WELCOME_TIMEOUT,
        what="every welcome mail",
    )
    assert mailbox.matching(about(TITLE, REMINDER)) == [], "reminded too early"

    stack.travel(starts - timedelta(hours=47, minutes=59))
    mails = mailbox.wait(
        about(TITLE, REMINDER), count=2, timeout=MAIL_TIMEOUT, what="two reminders"
    )
    assert sorted(m.recipient for m in mails) == sorted([BILAL.email, CAMILLA.email])
    for mail in mails:
        answer_token(mail)  # still with the links to change the answer
    journey.reminded = True

    # A few more rounds of the events service's housekeeping: nobody is reminded again.
    poll_rounds = 3
    deadline = POLL_SECONDS * poll_rounds + 1
    with pytest.raises(AssertionError):
        mailbox.wait(about(TITLE, REMINDER), count=3, timeout=deadline, what="a third reminder")
    assert len(mailbox.matching(about(TITLE, REMINDER))) == 2


def test_after_the_meeting_staff_record_who_came_and_close_it(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    meeting_id = need(journey.meeting_id, "the meeting")
    ends = need(journey.ends, "the meeting's end")
    bilal, camilla = journey.id_of(BILAL), journey.id_of(CAMILLA)
    stack.travel(ends + timedelta(hours=1))

    came = stack.cli(
        "events", "attendance", meeting_id, "--attended", bilal, "--attended", camilla, "--json"
    )
    assert (came.ok().json()["attended"], came.json()["uninvited"]) == (2, [])

    minutes = tmp_path / "referat.txt"
    minutes.write_text(MINUTES, encoding="utf-8")
    outcomes = [arg for o in OUTCOMES for arg in ("--outcome", o)]
    closed = stack.cli(
        "events", "close", meeting_id, "--minutes", str(minutes), *outcomes, "--json"
    )
    meeting = closed.ok().json()
    assert (meeting["state"], meeting["outcomes"]) == ("held", list(OUTCOMES)), meeting
    assert meeting["counts"]["attended"] == 2
    detail = show(stack, meeting_id)
    assert detail["minutes"] == MINUTES.strip()
    attended = {i["ambassador_id"] for i in detail["invitees"] if i["attended"]}
    assert attended == {bilal, camilla}
    journey.held = True


def test_the_meeting_held_is_announced_on_the_events_stream(
    stack: StackRun, journey: Journey
) -> None:
    meeting_id = need(journey.meeting_id, "the meeting")
    if not journey.held:
        pytest.skip("the meeting was not closed")
    ids = {journey.id_of(p) for p in PEOPLE}

    def announced() -> list[tuple[str, dict[str, Any]]] | None:
        found = stream_events(stack, meeting_id)
        return found if any(name == "meeting_held" for name, _ in found) else None

    events = poll(announced, timeout=30, interval=0.5, what="meeting_held on the EVENTS stream")
    [held] = [data for name, data in events if name == "meeting_held"]
    assert (held["title"], held["kind"], held["attendee_count"]) == (
        TITLE,
        "ambassador_meeting",
        2,
    )
    assert held["attending_organisations"] == [BILAL.organisation]
    assert held["outcomes"] == list(OUTCOMES)
    # It names nobody.
    assert not EMAIL_PATTERN.search(json.dumps(held)), held
    assert not [p.name for p in PEOPLE if p.name in json.dumps(held, ensure_ascii=False)]

    # And every invitee event once: three invited, one waitlisted, one promoted, two reminded.
    counts = Counter(name for name, _ in events)
    assert counts["meeting_scheduled"] == 1 and counts["meeting_held"] == 1, counts
    assert (counts["invited"], counts["waitlisted"], counts["promoted"]) == (3, 1, 1), counts
    assert counts["reminder_due"] == 2, counts
    invited = [data["ambassador_id"] for name, data in events if name == "invited"]
    assert sorted(invited) == sorted(ids)
    reminded = {data["ambassador_id"] for name, data in events if name == "reminder_due"}
    assert reminded == {journey.id_of(BILAL), journey.id_of(CAMILLA)}


def test_the_next_newsletter_tells_what_was_held_and_what_is_coming(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    need(journey.meeting_id, "the meeting")
    need(journey.public_meeting_id, "the public theme day")
    if not journey.held:
        pytest.skip("the meeting was not closed")

    def drafted() -> dict[str, Any] | None:
        # The newsletter learns of the meeting from meeting_held: asynchronously.
        draft: dict[str, Any] = stack.cli("newsletter", "draft", "--json").ok().json()
        return draft if draft["sections"].get("recently_held", 0) >= 1 else None

    draft = poll(drafted, timeout=30, interval=1.0, what="the held meeting in a draft")
    assert draft["sections"]["recently_held"] == 1, draft
    assert draft["sections"].get("coming_up", 0) == 1, draft

    out = tmp_path / "preview"
    written = stack.cli("newsletter", "preview", draft["id"], "--out", str(out), "--json")
    number = written.ok().json()["number"]
    html = (out / f"issue-{number}.html").read_text(encoding="utf-8")
    text = (out / f"issue-{number}.txt").read_text(encoding="utf-8")

    held = section(text, "Det har vi holdt")
    assert TITLE in held, held
    assert BILAL.organisation is not None and BILAL.organisation in held, held
    assert all(o in held for o in OUTCOMES), held
    assert PUBLIC_TITLE not in held
    coming = section(text, "Det sker snart")
    assert PUBLIC_TITLE in coming and TITLE not in coming, coming
    assert "Det har vi holdt" in html and "Det sker snart" in html
    assert TITLE in html and PUBLIC_TITLE in html
    # Public: what happened, never who was there.
    for person in PEOPLE:
        assert person.name not in html + text and person.email not in html + text


def test_nobody_else_heard_of_the_meeting_and_nothing_twice(
    mailbox: Mailbox, journey: Journey
) -> None:
    need(journey.meeting_id, "the meeting")
    if not journey.reminded:
        pytest.skip("the reminders did not go out")
    mails = mailbox.matching(lambda m: TITLE in m.subject)
    kinds = Counter(
        (prefix, m.recipient)
        for m in mails
        for prefix in (INVITATION, WAITLISTED, PROMOTED, REMINDER)
        if m.subject.startswith(prefix)
    )
    assert kinds == Counter(
        {
            (INVITATION, AASE.email): 1,
            (INVITATION, BILAL.email): 1,
            (INVITATION, CAMILLA.email): 1,
            (WAITLISTED, CAMILLA.email): 1,
            (PROMOTED, CAMILLA.email): 1,
            (REMINDER, BILAL.email): 1,
            (REMINDER, CAMILLA.email): 1,
        }
    ), kinds
    assert len(mails) == sum(kinds.values()), [m.describe() for m in mails]
    resent = set(mailbox.duplicates()) & {m.message_id for m in mails}
    assert not resent, f"meeting mails sent twice (same Message-ID): {resent}"
