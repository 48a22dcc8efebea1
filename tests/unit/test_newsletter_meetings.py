"""Meeting mails and the meeting sections of the digest, without I/O: what each invitee event
becomes, what the mails say (Danish, Copenhagen time, voluntary), the .ics on the wire, and
the read model's rules for events that come late or twice."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import bson
import icalendar
import pytest
from pydantic import ValidationError

from contracts.events import (
    InvitationCancelled,
    InvitationUpdated,
    Invited,
    InviteeEvent,
    MeetingHeld,
    MeetingInfo,
    MeetingKind,
    MeetingState,
    Promoted,
    ReminderDue,
    Waitlisted,
)
from services.newsletter import links, meetings
from services.newsletter.delivery.states import Attachment, apply, erased, new_mail
from services.newsletter.links import Links
from services.newsletter.mail import compose
from services.newsletter.mail.rendering import (
    danish_day,
    danish_span,
    render_issue,
    render_mail,
)
from services.newsletter.sections import REGISTRY, coming_up, recently_held
from services.newsletter.settings import NewsletterSettings
from services.runtime import tokens

PUBLIC_URL = "https://samskab.example"
EVENTS_SECRET = "events-secret-for-meeting-tests-0123456789"
LINKS = Links(
    NewsletterSettings(
        _env_file=None,
        public_url=PUBLIC_URL,
        newsletter_token_secret="newsletter-secret-for-meeting-tests-0123",
        ambassadors_token_secret="ambassadors-secret-for-meeting-tests-012",
        events_token_secret=EVENTS_SECRET,
        networks_token_secret="networks-secret-for-meeting-tests-0123456",
        social_token_secret="social-secret-for-meeting-tests-01234567",
    )
)
# The answer token of invitee amb-1 for meeting m-1, as the events service verifies it.
TOKEN = tokens.Signer(EVENTS_SECRET, tokens.ANSWER).sign("m-1", "amb-1")
# 17.00-19.00 in Copenhagen (winter time, UTC+1).
STARTS = datetime(2027, 3, 4, 16, 0, tzinfo=UTC)
ENDS = datetime(2027, 3, 4, 18, 0, tzinfo=UTC)
WHEN = "torsdag den 4. marts 2027 kl. 17.00–19.00"
SCRIPT = "<script>alert(1)</script>"


def info(**overrides: Any) -> MeetingInfo:
    values: dict[str, Any] = {
        "meeting_id": "m-1",
        "kind": MeetingKind.AMBASSADOR_MEETING,
        "title": "Ambassadørmøde, forår 2027",
        "description": "Vi taler om bolig og fællesskab.\n\nDer er kaffe og kage.",
        "starts_at": STARTS,
        "ends_at": ENDS,
        "place": "Fredericia Rådhus, mødesal 1",
        "online_url": "https://meet.example/fredericia",
        "public": True,
        "sequence": 0,
        **overrides,
    }
    return MeetingInfo(**values)


def ics(method: str = "REQUEST", email_address: str = "aase@example.org") -> str:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//test//samskab//DA")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", "meeting-m-1@samskab.example")
    event.add("dtstamp", STARTS - timedelta(days=30))
    event.add("dtstart", STARTS)
    event.add("dtend", ENDS)
    event.add("summary", "Ambassadørmøde, forår 2027")
    event.add("attendee", icalendar.vCalAddress(f"mailto:{email_address}"))
    calendar.add_component(event)
    return str(calendar.to_ical().decode("utf-8"))


def invitee(**overrides: Any) -> dict[str, Any]:
    return {
        "ambassador_id": "amb-1",
        "email": "aase@example.org",
        "name": "Åse Ærø",
        "meeting": info(),
        "answerable": True,
        **overrides,
    }


def every_event(answerable: bool = True) -> list[InviteeEvent]:
    common = invitee(answerable=answerable)
    earlier = {
        "previous_starts_at": STARTS - timedelta(days=2),
        "previous_ends_at": ENDS - timedelta(days=2),
    }
    return [
        Invited(**common, ics=ics()),
        InvitationUpdated(**common, ics=ics(), **earlier),
        InvitationCancelled(**common, ics=ics("CANCEL"), reason="For få tilmeldte"),
        Waitlisted(**common, position=3),
        Promoted(**common, ics=ics()),
        ReminderDue(**common),
    ]


def flat(text: str) -> str:
    """Text with its line breaks (from wrapping) as spaces."""
    return " ".join(text.split())


def mail_of(event: InviteeEvent) -> tuple[str, Any, list[Attachment]]:
    """The mail as it is put together: the answer links signed now, from the record's context."""
    kind, context, attachments = meetings.invitee_mail(event)
    return kind, render_mail(kind, LINKS.resolve(context)), attachments


def composed(event: InviteeEvent) -> EmailMessage:
    """The mail as the delivery worker builds it (inline attachments as bytes)."""
    _, rendered, attachments = mail_of(event)
    data = compose.compose_message(
        rendered,
        to_address=event.email,
        to_name=event.name,
        from_address="ambassadoer@fredericia.example",
        from_name="Ambassadørnetværket",
        message_id="<abc@samskab.example>",
        unsubscribe_url=None,
        unsubscribe_mailto=None,
        attachments=[
            compose.Attachment(a.filename, a.content_type, (a.text or "").encode("utf-8"))
            for a in attachments
        ],
    )
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# ---------------------------------------------------------------- what each event becomes


def test_each_invitee_event_is_one_kind_of_mail() -> None:
    kinds = [meetings.invitee_mail(e)[0] for e in every_event()]
    assert kinds == [
        "meeting_invitation",
        "meeting_updated",
        "meeting_cancelled",
        "meeting_waitlisted",
        "meeting_promoted",
        "meeting_reminder",
    ]
    assert set(meetings.MAIL_KINDS.values()) == set(kinds)


def test_the_ics_goes_along_inline_with_its_itip_method() -> None:
    attached = {
        kind: [(a.filename, a.content_type, a.text is not None, a.bucket) for a in found]
        for kind, _, found in map(mail_of, every_event())
    }
    request = [("invitation.ics", "text/calendar; method=REQUEST; charset=utf-8", True, None)]
    assert attached == {
        "meeting_invitation": request,
        "meeting_updated": request,
        "meeting_cancelled": [
            ("aflysning.ics", "text/calendar; method=CANCEL; charset=utf-8", True, None)
        ],
        "meeting_waitlisted": [],
        "meeting_promoted": request,
        "meeting_reminder": [],
    }


def test_the_queued_record_is_storable_and_carries_the_ics_only_as_attachment() -> None:
    for event in every_event():
        kind, context, attachments = meetings.invitee_mail(event)
        record = new_mail(
            kind=kind,
            dedupe_key=f"{kind}:{event.event_id}",
            to_address=event.email,
            context=context,
            attachments=attachments,
            message_id_domain="samskab.example",
        )
        document = record.to_document()
        bson.encode(document)  # MongoDB can store it as it is
        assert "BEGIN:VCALENDAR" not in repr(document["context"])
        assert record.subscriber_id is None
        # The answer link is a reference to sign later, never the token itself.
        assert TOKEN not in repr(document)
        reference = links.answer("m-1", "amb-1").to_context()[links.CONTEXT_KEY]
        expected = None if kind == "meeting_cancelled" else reference
        assert document["context"].get(links.CONTEXT_KEY) == expected


# ---------------------------------------------------------------- what the mails say


@pytest.mark.parametrize("event", every_event(), ids=lambda e: type(e).__name__)
def test_every_mail_shows_the_meeting_in_danish_copenhagen_time(event: InviteeEvent) -> None:
    _, mail, _ = mail_of(event)
    for part in (mail.text, mail.html):
        assert "Ambassadørmøde, forår 2027" in part
        assert "Kære Åse Ærø" in part
    assert WHEN in mail.text
    assert "Ambassadørmøde" in mail.subject
    if not isinstance(event, InvitationCancelled):
        assert "Fredericia Rådhus, mødesal 1" in mail.text
        assert "https://meet.example/fredericia" in mail.html
        assert "Der er kaffe og kage." in mail.text
        # Not a newsletter: nothing to unsubscribe from.
        assert "afmelde" not in mail.text


@pytest.mark.parametrize("event", every_event(), ids=lambda e: type(e).__name__)
def test_answer_links_are_there_where_an_answer_is_asked(event: InviteeEvent) -> None:
    kind, mail, _ = mail_of(event)
    links = [f"{PUBLIC_URL}/rsvp/{TOKEN}/{answer}" for answer in ("yes", "maybe", "no")]
    asked = kind != "meeting_cancelled"
    for link in links:
        assert (link in mail.text) is asked
        assert (f'href="{link}"' in mail.html) is asked
    for label in ("Ja, jeg kommer", "Måske", "Nej tak"):
        assert (label in mail.html) is asked
    # The links are the way, a reply the fallback: no command line, no bare token.
    assert "samskab events" not in mail.text + mail.html
    assert (mail.text.count(TOKEN), mail.html.count(TOKEN)) == ((3, 3) if asked else (0, 0))


@pytest.mark.parametrize("event", every_event(answerable=False), ids=lambda e: type(e).__name__)
def test_without_an_answer_asked_there_are_no_answer_links(event: InviteeEvent) -> None:
    assert links.CONTEXT_KEY not in meetings.invitee_mail(event)[1]
    _, mail, _ = mail_of(event)
    assert "/rsvp/" not in mail.text + mail.html


def test_the_invitation_is_warm_and_voluntary() -> None:
    _, mail, _ = mail_of(every_event()[0])
    assert mail.subject == (
        "Du er inviteret: Ambassadørmøde, forår 2027, torsdag den 4. marts 2027"
    )
    for part in (mail.text, mail.html):
        assert "Du er inviteret" in part
        assert "Det er frivilligt at deltage – vi håber, du har lyst." in flat(part)
    lowered = (mail.text + mail.html).lower()
    for summoning in ("indkaldelse", "indkaldt", "mødepligt", "skal deltage"):
        assert summoning not in lowered


def test_the_update_says_what_changed() -> None:
    _, mail, _ = mail_of(every_event()[1])
    assert "Før: tirsdag den 2. marts 2027 kl. 17.00–19.00" in mail.text
    assert f"Nu:  {WHEN}" in mail.text
    assert mail.subject.startswith("Ændret: ")

    same_time = InvitationUpdated(
        **invitee(meeting=info(place="Kulturhuset")),
        ics=ics(),
        previous_starts_at=STARTS,
        previous_ends_at=ENDS,
    )
    _, mail, _ = mail_of(same_time)
    assert "tidspunktet er det samme" in flat(mail.text)
    assert "Før:" not in mail.text


def test_the_cancellation_gives_the_reason_if_there_is_one() -> None:
    _, mail, _ = mail_of(every_event()[2])
    assert "Hvorfor: For få tilmeldte" in mail.text
    assert "aflyse" in mail.text and mail.subject.startswith("Aflyst: ")

    quiet = InvitationCancelled(**invitee(), ics=ics("CANCEL"))
    _, mail, _ = mail_of(quiet)
    assert "Hvorfor" not in mail.text + mail.html


def test_waitlist_promotion_and_reminder_say_their_piece() -> None:
    _, waitlisted, _ = mail_of(every_event()[3])
    assert "nummer 3 på ventelisten" in flat(waitlisted.text)
    _, promoted, _ = mail_of(every_event()[4])
    assert "Der er blevet en plads ledig – du har nu en plads" in promoted.text
    assert "Der er blevet en plads ledig – du har nu en plads" in promoted.html
    _, reminder, _ = mail_of(every_event()[5])
    assert reminder.subject == f"Påmindelse: Ambassadørmøde, forår 2027, {WHEN}"


def test_a_meeting_without_a_place_says_it_comes_later() -> None:
    event = Invited(**invitee(meeting=info(place=None, online_url=None)), ics=ics())
    _, mail, _ = mail_of(event)
    assert "Sted oplyses senere" in mail.text and "Sted oplyses senere" in mail.html
    assert "Online" not in mail.text


def test_text_from_staff_is_escaped_in_the_html() -> None:
    meeting = info(title=f"Temadag {SCRIPT}", description=f"Kom {SCRIPT}", place=SCRIPT)
    _, mail, _ = mail_of(Invited(**invitee(meeting=meeting), ics=ics()))
    assert "<script" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert SCRIPT in mail.text  # the text part is shown as text


def test_summer_time_and_a_meeting_over_two_days() -> None:
    summer = datetime(2027, 6, 10, 7, 0, tzinfo=UTC)  # 9.00 in Copenhagen (UTC+2)
    assert danish_span(summer, summer + timedelta(hours=2)) == (
        "torsdag den 10. juni 2027 kl. 09.00–11.00"
    )
    assert danish_span(summer, summer + timedelta(days=1)) == (
        "torsdag den 10. juni 2027 kl. 09.00 til fredag den 11. juni 2027 kl. 09.00"
    )
    # Late in the evening in UTC is the next day in Copenhagen.
    assert danish_day(datetime(2027, 3, 6, 23, 30, tzinfo=UTC)) == "søndag den 7. marts 2027"
    assert danish_day("2027-03-04") == "torsdag den 4. marts 2027"
    # What MongoDB returns without tz_aware: naive UTC.
    assert danish_span(STARTS.replace(tzinfo=None), ENDS.replace(tzinfo=None)) == WHEN


# ---------------------------------------------------------------- the .ics on the wire


def test_the_invitation_carries_a_parseable_ics_as_rfc_6047_wants() -> None:
    message = composed(every_event()[0])
    (part,) = list(message.iter_attachments())
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_charset() == "utf-8"
    assert part.get_filename() == "invitation.ics"
    calendar = icalendar.Calendar.from_ical(part.get_content())
    assert calendar["METHOD"] == "REQUEST"
    (vevent,) = calendar.walk("VEVENT")
    assert vevent.decoded("dtstart") == STARTS
    assert str(vevent["summary"]) == "Ambassadørmøde, forår 2027"
    # Not a newsletter: no List-Unsubscribe.
    assert message["List-Unsubscribe"] is None
    assert message.get_body(preferencelist=("plain",)) is not None


def test_the_cancellation_carries_a_cancel() -> None:
    (part,) = list(composed(every_event()[2]).iter_attachments())
    assert part.get_param("method") == "CANCEL"
    assert part.get_filename() == "aflysning.ics"
    assert icalendar.Calendar.from_ical(part.get_content())["METHOD"] == "CANCEL"


@pytest.mark.parametrize(
    "content_type", ["text/calendar; method", "calendar", "text/calendar; method=REQUEST\r\nX: y"]
)
def test_a_malformed_attachment_type_is_refused(content_type: str) -> None:
    _, rendered, _ = mail_of(every_event()[0])
    with pytest.raises(ValueError):
        compose.compose_message(
            rendered,
            to_address="aase@example.org",
            to_name=None,
            from_address="ambassadoer@fredericia.example",
            from_name=None,
            message_id="<abc@samskab.example>",
            unsubscribe_url=None,
            unsubscribe_mailto=None,
            attachments=[compose.Attachment("invitation.ics", content_type, b"x")],
        )


# ---------------------------------------------------------------- the record and erasure


def test_an_attachment_has_exactly_one_source() -> None:
    Attachment(filename="a.pdf", bucket="certificates", object_name="a.pdf")
    Attachment(filename="invitation.ics", text="BEGIN:VCALENDAR")
    with pytest.raises(ValidationError):
        Attachment(filename="a.ics")
    with pytest.raises(ValidationError):
        Attachment(filename="a.ics", bucket="b", object_name="o", text="x")
    with pytest.raises(ValidationError):
        Attachment(filename="a.ics", bucket="b")


def test_a_stored_record_of_an_older_release_still_reads() -> None:
    record = new_mail(
        kind="welcome",
        dedupe_key="welcome:1",
        to_address="aase@example.org",
        message_id_domain="samskab.example",
        attachments=[Attachment(filename="b.pdf", bucket="certificates", object_name="b.pdf")],
    )
    document = record.to_document()
    document["attachments"] = [
        {"bucket": "certificates", "object_name": "b.pdf", "filename": "b.pdf"}
    ]
    assert type(record).from_document(document).attachments == record.attachments


def test_erasure_leaves_neither_context_nor_ics_on_a_mail() -> None:
    event = every_event()[0]
    kind, context, attachments = meetings.invitee_mail(event)
    record = new_mail(
        kind=kind,
        dedupe_key=f"{kind}:{event.event_id}",
        to_address=event.email,
        to_name=event.name,
        ambassador_id=event.ambassador_id,
        context=context,
        attachments=attachments,
        message_id_domain="samskab.example",
    )
    now = datetime(2027, 1, 1, tzinfo=UTC)
    scrubbed = apply(record, {"$set": erased(now)})
    assert scrubbed.to_address is None and scrubbed.to_name is None
    assert scrubbed.context == {} and scrubbed.attachments == []
    assert scrubbed.erased_at == now
    assert "aase@example.org" not in repr(scrubbed.to_document())
    assert "Åse" not in repr(scrubbed.to_document())


# ---------------------------------------------------------------- the read model


def test_a_later_sequence_wins_and_an_older_one_is_ignored() -> None:
    at = datetime(2027, 1, 1, tzinfo=UTC)
    first = meetings.apply_info(None, info(), MeetingState.SCHEDULED, at)
    assert first is not None and first["state"] == "scheduled" and first["sequence"] == 0
    later = timedelta(days=1)
    moved = meetings.apply_info(
        first,
        info(sequence=1, starts_at=STARTS + later, ends_at=ENDS + later),
        MeetingState.SCHEDULED,
        at,
    )
    assert moved is not None and moved["starts_at"] == STARTS + timedelta(days=1)
    # The scheduling again (redelivered) or late: older than what is stored.
    assert meetings.apply_info(moved, info(), MeetingState.SCHEDULED, at) is None
    # A cancellation at the same sequence still ends it; a late scheduling does not revive it.
    cancelled = meetings.apply_info(moved, info(sequence=1), MeetingState.CANCELLED, at)
    assert cancelled is not None and cancelled["state"] == "cancelled"
    assert cancelled["cancelled_at"] == at
    assert meetings.apply_info(cancelled, info(sequence=1), MeetingState.SCHEDULED, at) is None


def held(**overrides: Any) -> MeetingHeld:
    values: dict[str, Any] = {
        "meeting_id": "m-1",
        "kind": MeetingKind.DIALOGUE_MEETING,
        "title": "Dialogmøde om unge og rusmidler",
        "date": date(2027, 3, 4),
        "starts_at": STARTS,
        "held_at": ENDS,
        "public": False,
        "attendee_count": 23,
        "attending_organisations": ["Kirkens Korshær", "Røde Kors", "Kirkens Korshær"],
        "outcomes": ["Et nyt handlingsnetværk om unge"],
        **overrides,
    }
    return MeetingHeld(**values)


def test_held_is_final_and_works_without_the_scheduling() -> None:
    at = datetime(2027, 1, 1, tzinfo=UTC)
    alone = meetings.apply_held(None, held())
    assert alone["state"] == "held" and alone["held_on"] == "2027-03-04"
    assert alone["attending_organisations"] == ["Kirkens Korshær", "Røde Kors"]
    scheduled = meetings.apply_info(None, info(), MeetingState.SCHEDULED, at)
    after = meetings.apply_held(scheduled, held())
    assert after["state"] == "held" and after["place"] == "Fredericia Rådhus, mødesal 1"
    # The scheduling arriving late does not make it scheduled again.
    assert meetings.apply_info(after, info(), MeetingState.SCHEDULED, at) is None
    later = meetings.apply_info(
        after, info(sequence=2, title="Nyt navn"), MeetingState.SCHEDULED, at
    )
    assert later is not None and later["state"] == "held" and later["title"] == "Nyt navn"
    bson.encode(after)


# ---------------------------------------------------------------- the digest sections


def test_the_meeting_sections_follow_new_ambassadors_in_the_registry() -> None:
    assert REGISTRY.keys()[:3] == ["new_ambassadors", "coming_up", "recently_held"]
    assert coming_up.SECTION.title == "Det sker snart"
    assert recently_held.SECTION.title == "Det har vi holdt"


def test_section_entries_are_plain_public_data() -> None:
    doc = {
        "_id": "m-2",
        "state": "scheduled",
        "kind": "theme_day",
        "title": "Temadag om ensomhed",
        "description": "Ord " * 200,
        "starts_at": STARTS,
        "ends_at": ENDS,
        "place": None,
        "online_url": "javascript:alert(1)",
        "public": True,
        "sequence": 0,
    }
    entry = coming_up.entry(doc)
    assert entry["kind"] == "Temadag"
    assert entry["online_url"] is None
    assert entry["description"] is not None and len(entry["description"]) <= 302
    assert entry["description"].endswith(" …")
    past = recently_held.entry(meetings.apply_held(None, held()))
    assert past == {
        "meeting_id": "m-1",
        "kind": "Dialogmøde",
        "title": "Dialogmøde om unge og rusmidler",
        "held_on": "2027-03-04",
        "attendee_count": 23,
        "organisations": ["Kirkens Korshær", "Røde Kors"],
        "outcomes": ["Et nyt handlingsnetværk om unge"],
    }
    bson.encode({"entries": [entry, past]})


def test_the_digest_shows_what_is_coming_up_and_what_was_held() -> None:
    upcoming = coming_up.entry(
        {
            "_id": "m-2",
            "kind": "theme_day",
            "title": f"Temadag om ensomhed {SCRIPT}",
            "description": "Med oplæg fra forskere.",
            "starts_at": STARTS,
            "ends_at": ENDS,
            "place": None,
            "online_url": "https://meet.example/temadag",
        }
    )
    past = recently_held.entry(meetings.apply_held(None, held()))
    context = {
        "title": "Nyhedsbrev, marts 2027",
        "period": {"since": date(2027, 1, 1), "until": date(2027, 3, 1)},
        "sections": [
            {"key": "coming_up", "title": "Det sker snart", "entries": [upcoming]},
            {"key": "recently_held", "title": "Det har vi holdt", "entries": [past]},
        ],
    }
    issue = render_issue(context)
    for mail in (issue.personalise("https://samskab.example/u/1"), issue.archive):
        for part in (mail.text, mail.html):
            assert "Det sker snart" in part and "Det har vi holdt" in part
            assert "Temadag" in part and "Sted oplyses senere" in part
            assert "Torsdag den 4. marts 2027" in part  # the day it was held
            assert "23 deltagere" in part
            assert "Kirkens Korshær, Røde Kors" in part
            assert "Et nyt handlingsnetværk om unge" in part
            assert "frivilligt at deltage" in part
        assert WHEN in mail.text
        assert "<script" not in mail.html
        assert 'href="https://meet.example/temadag"' in mail.html
    assert issue.archive.text.index("Det sker snart") < issue.archive.text.index("Det har vi holdt")
