"""The meetings' iCalendar: invitations (REQUEST / CANCEL) and the public calendar, read back
with icalendar as a calendar program would."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from icalendar import Calendar, Event

from contracts.events import (
    COPENHAGEN,
    DESCRIPTION_MAX,
    ICS_MAX,
    PLACE_MAX,
    TITLE_MAX,
    URL_MAX,
    MeetingInfo,
    MeetingKind,
    MeetingState,
)
from services.events.calendar import invitation_ics, meeting_uid, public_calendar

DOMAIN = "samskab.example"
NOW = datetime(2027, 1, 15, 9, 30, 12, tzinfo=UTC)
# 17.00 in Copenhagen both times: winter time (UTC+1) and summer time (UTC+2).
WINTER = datetime(2027, 3, 4, 16, 0, tzinfo=UTC)
SUMMER = datetime(2027, 6, 10, 15, 0, tzinfo=UTC)
ODD_NAME = 'Hansen, Åse "Bo"'
ORGANIZER_NAME = "Ambassadørnetværket, Fredericia Kommune"
ORGANIZER_EMAIL = "ambassadoer@fredericia.example"


def meeting(**overrides: Any) -> MeetingInfo:
    starts = overrides.pop("starts_at", WINTER)
    values: dict[str, Any] = {
        "meeting_id": "m-1",
        "kind": MeetingKind.THEME_DAY,
        "title": "Bolig og fællesskab",
        "description": "Vi taler om bolig.\nDer er kaffe og kage.",
        "starts_at": starts,
        "ends_at": starts + timedelta(hours=2),
        "place": "Rådhuset, Gothersgade 20, Fredericia",
        "online_url": None,
        "public": True,
        "sequence": 0,
        **overrides,
    }
    return MeetingInfo(**values)


def invitation(
    info: MeetingInfo,
    method: Literal["REQUEST", "CANCEL"] = "REQUEST",
    *,
    name: str = "Søren Ærø",
    email: str = "soren@example.dk",
    now: datetime = NOW,
) -> str:
    return invitation_ics(
        info,
        method=method,
        attendee_email=email,
        attendee_name=name,
        organizer_email=ORGANIZER_EMAIL,
        organizer_name=ORGANIZER_NAME,
        uid_domain=DOMAIN,
        now=now,
    )


def parse(ics: str) -> Calendar:
    calendar = Calendar.from_ical(ics)
    assert isinstance(calendar, Calendar)
    return calendar


def only_event(ics: str) -> Event:
    events = parse(ics).events
    assert len(events) == 1
    return events[0]


def unfolded(ics: str) -> list[str]:
    return ics.replace("\r\n ", "").split("\r\n")


def assert_well_formed(ics: str) -> None:
    assert ics.endswith("\r\n")
    assert "\n" not in ics.replace("\r\n", "")
    for line in ics.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75, line


# --- UID -----------------------------------------------------------------------------------


def test_meeting_uid_is_the_meeting_at_the_domain() -> None:
    assert meeting_uid("m-1", DOMAIN) == "meeting-m-1@samskab.example"
    assert meeting_uid("m-1", DOMAIN) == meeting_uid("m-1", DOMAIN)
    assert meeting_uid("m-2", DOMAIN) != meeting_uid("m-1", DOMAIN)
    with pytest.raises(ValueError):
        meeting_uid("", DOMAIN)
    with pytest.raises(ValueError):
        meeting_uid("m-1", " ")


# --- invitations ---------------------------------------------------------------------------


def test_request_is_a_calendar_with_the_meeting() -> None:
    ics = invitation(meeting(online_url="https://meet.example/bolig"))
    calendar = parse(ics)
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"] == "-//Fredericia Kommune//samskab//DA"
    assert calendar["CALSCALE"] == "GREGORIAN"
    assert calendar["METHOD"] == "REQUEST"
    event = only_event(ics)
    assert str(event["UID"]) == "meeting-m-1@samskab.example"
    assert event["SEQUENCE"] == 0
    assert event.decoded("DTSTAMP") == NOW
    assert event["SUMMARY"] == "Temadag: Bolig og fællesskab"
    assert event["LOCATION"] == "Rådhuset, Gothersgade 20, Fredericia"
    assert event["URL"] == "https://meet.example/bolig"
    assert event["STATUS"] == "CONFIRMED"
    assert event["TRANSP"] == "OPAQUE"
    description = str(event["DESCRIPTION"])
    assert description.startswith("Vi taler om bolig.\nDer er kaffe og kage.")
    assert "https://meet.example/bolig" in description
    assert "Det er frivilligt at deltage." in description
    assert_well_formed(ics)


@pytest.mark.parametrize(
    ("starts", "copenhagen"),
    [(WINTER, "2027-03-04T17:00:00+01:00"), (SUMMER, "2027-06-10T17:00:00+02:00")],
    ids=["winter time", "summer time"],
)
def test_times_are_the_given_instants_in_utc(starts: datetime, copenhagen: str) -> None:
    ics = invitation(meeting(starts_at=starts))
    event = only_event(ics)
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start == starts
    assert end == starts + timedelta(hours=2)
    assert start.utcoffset() == timedelta(0)
    assert start.astimezone(COPENHAGEN).isoformat() == copenhagen
    lines = unfolded(ics)
    assert f"DTSTART:{starts:%Y%m%dT%H%M%S}Z" in lines
    assert f"DTEND:{starts + timedelta(hours=2):%Y%m%dT%H%M%S}Z" in lines
    assert "TZID" not in ics


def test_times_given_in_another_zone_or_from_json_come_out_in_utc() -> None:
    local = WINTER.astimezone(COPENHAGEN)
    from_json = MeetingInfo.model_validate_json(meeting().model_dump_json())
    for info in (meeting(starts_at=local), from_json):
        ics = invitation(info, now=NOW.astimezone(COPENHAGEN))
        assert "DTSTART:20270304T160000Z" in unfolded(ics)
        assert "DTSTAMP:20270115T093012Z" in unfolded(ics)


def test_a_time_without_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        invitation(meeting(), now=NOW.replace(tzinfo=None))


def test_attendee_is_optional_and_asked_for_no_itip_reply() -> None:
    event = only_event(invitation(meeting()))
    attendees = event.attendees
    assert len(attendees) == 1
    attendee = attendees[0]
    assert attendee.email == "soren@example.dk"
    assert str(attendee) == "mailto:soren@example.dk"
    assert dict(attendee.params) == {
        "CN": "Søren Ærø",
        "ROLE": "OPT-PARTICIPANT",
        "PARTSTAT": "NEEDS-ACTION",
        "RSVP": "FALSE",
    }
    organizer = event["ORGANIZER"]
    assert str(organizer) == f"mailto:{ORGANIZER_EMAIL}"
    assert organizer.params["CN"] == ORGANIZER_NAME


def test_odd_names_round_trip() -> None:
    ics = invitation(meeting(), name=ODD_NAME)
    event = only_event(ics)
    assert event.attendees[0].params["CN"] == ODD_NAME
    # Quoted because of the comma; the inner quotes as RFC 6868 writes them.
    [line] = [line for line in unfolded(ics) if line.startswith("ATTENDEE")]
    assert line.startswith("ATTENDEE;CN=\"Hansen, Åse ^'Bo^'\";"), line
    odd_organizer = invitation_ics(
        meeting(),
        method="REQUEST",
        attendee_email="a@example.dk",
        attendee_name="A",
        organizer_email=ORGANIZER_EMAIL,
        organizer_name=ODD_NAME,
        uid_domain=DOMAIN,
        now=NOW,
    )
    assert only_event(odd_organizer)["ORGANIZER"].params["CN"] == ODD_NAME
    assert_well_formed(ics)


def test_uid_is_stable_from_invitation_through_update_to_cancellation() -> None:
    first = invitation(meeting(sequence=0))
    moved = invitation(meeting(sequence=1, starts_at=SUMMER), now=NOW + timedelta(days=1))
    cancelled = invitation(meeting(sequence=2, starts_at=SUMMER), "CANCEL")
    calendars = [parse(ics) for ics in (first, moved, cancelled)]
    assert [str(c["METHOD"]) for c in calendars] == ["REQUEST", "REQUEST", "CANCEL"]
    events = [c.events[0] for c in calendars]
    assert {str(e["UID"]) for e in events} == {meeting_uid("m-1", DOMAIN)}
    assert [e["SEQUENCE"] for e in events] == [0, 1, 2]
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    assert events[1].decoded("DTSTART") == SUMMER
    assert events[1].decoded("DTSTAMP") == NOW + timedelta(days=1)


def test_cancel_says_so_and_still_names_organizer_and_attendee() -> None:
    event = only_event(invitation(meeting(sequence=3), "CANCEL"))
    assert event["STATUS"] == "CANCELLED"
    assert event["SEQUENCE"] == 3
    assert str(event["DESCRIPTION"]).startswith("Arrangementet er aflyst.")
    assert "frivilligt" not in str(event["DESCRIPTION"])
    assert event.attendees[0].email == "soren@example.dk"
    assert "ORGANIZER" in event


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="REQUEST or CANCEL"):
        invitation(meeting(), "PUBLISH")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "title", "summary"),
    [
        (MeetingKind.AMBASSADOR_MEETING, "Forår 2027", "Ambassadørmøde: Forår 2027"),
        (
            MeetingKind.AMBASSADOR_MEETING,
            "Ambassadørmøde, forår 2027",
            "Ambassadørmøde, forår 2027",
        ),
        (MeetingKind.ANNUAL_ASSEMBLY, "stormøde 2027", "stormøde 2027"),
        (MeetingKind.OTHER, "Sommerfest", "Arrangement: Sommerfest"),
    ],
)
def test_summary_names_the_kind_once(kind: MeetingKind, title: str, summary: str) -> None:
    event = only_event(invitation(meeting(kind=kind, title=title)))
    assert event["SUMMARY"] == summary


def test_meeting_without_place_or_description() -> None:
    event = only_event(invitation(meeting(place=None, description=None)))
    assert "LOCATION" not in event
    assert "URL" not in event
    assert event["DESCRIPTION"] == "Det er frivilligt at deltage."


def test_largest_invitation_fits_the_contract_limit() -> None:
    info = meeting(
        title="æ," * (TITLE_MAX // 2),
        description="ø;\n" * (DESCRIPTION_MAX // 3),
        place="å," * (PLACE_MAX // 2),
        online_url="https://meet.example/" + "a" * (URL_MAX - 21),
    )
    ics = invitation(info, name="Å, " * 60, email="x" * 60 + "@example.dk")
    assert len(ics) <= ICS_MAX
    assert_well_formed(ics)


# --- public calendar -------------------------------------------------------------------------


def public_entries() -> list[tuple[MeetingInfo, MeetingState]]:
    return [
        (
            meeting(
                meeting_id="m-summer",
                starts_at=SUMMER,
                title="Dialogmøde om sundhed",
                kind=MeetingKind.DIALOGUE_MEETING,
                online_url="https://meet.example/s",
            ),
            MeetingState.SCHEDULED,
        ),
        (meeting(meeting_id="m-winter", sequence=4), MeetingState.CANCELLED),
        (meeting(meeting_id="m-held", starts_at=WINTER - timedelta(days=30)), MeetingState.HELD),
    ]


def test_public_calendar_publishes_the_meetings_soonest_first() -> None:
    ics = public_calendar(public_entries(), uid_domain=DOMAIN, now=NOW)
    calendar = parse(ics)
    assert calendar["METHOD"] == "PUBLISH"
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"] == "-//Fredericia Kommune//samskab//DA"
    assert calendar["CALSCALE"] == "GREGORIAN"
    assert calendar.calendar_name == "Ambassadørnetværket, Fredericia Kommune"
    assert "X-WR-CALNAME:Ambassadørnetværket, Fredericia Kommune" in unfolded(ics)
    assert "X-WR-TIMEZONE:Europe/Copenhagen" in unfolded(ics)
    events = calendar.events
    assert [str(e["UID"]) for e in events] == [
        meeting_uid(m, DOMAIN) for m in ("m-held", "m-winter", "m-summer")
    ]
    held, cancelled, scheduled = events
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "CANCELLED", "CONFIRMED"]
    assert cancelled["SEQUENCE"] == 4
    assert str(cancelled["DESCRIPTION"]).startswith("Arrangementet er aflyst.")
    assert scheduled.decoded("DTSTART") == SUMMER
    assert scheduled["SUMMARY"] == "Dialogmøde om sundhed"
    assert scheduled["URL"] == "https://meet.example/s"
    assert held.decoded("DTSTART") == WINTER - timedelta(days=30)
    for event in events:
        assert event["CLASS"] == "PUBLIC"
        assert event["TRANSP"] == "OPAQUE"
        assert event.decoded("DTSTAMP") == NOW
        assert "frivilligt" not in str(event.get("DESCRIPTION", ""))
    assert_well_formed(ics)


def test_public_calendar_names_no_person() -> None:
    ics = public_calendar(public_entries(), uid_domain=DOMAIN, now=NOW)
    for event in parse(ics).events:
        assert "ATTENDEE" not in event
        assert "ORGANIZER" not in event
    assert "mailto:" not in ics.lower()
    for line in unfolded(ics):
        if "@" in line:
            assert re.fullmatch(r"UID:meeting-[\w-]+@samskab\.example", line), line


def test_public_calendar_refuses_a_meeting_that_is_not_public() -> None:
    internal = meeting(meeting_id="m-internal", public=False)
    with pytest.raises(ValueError, match="m-internal"):
        public_calendar([(internal, MeetingState.SCHEDULED)], uid_domain=DOMAIN, now=NOW)


def test_empty_public_calendar_and_own_name() -> None:
    ics = public_calendar([], uid_domain=DOMAIN, now=NOW, calendar_name="Temadage\n2027")
    calendar = parse(ics)
    assert calendar.events == []
    assert calendar.calendar_name == "Temadage 2027"
    assert_well_formed(ics)
    with pytest.raises(ValueError):
        public_calendar([], uid_domain=DOMAIN, now=NOW, calendar_name=" ")
