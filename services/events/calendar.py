"""iCalendar (RFC 5545) for meetings: invitations to attach to a mail, and the public calendar.

Pure: no I/O, the caller gives the time (``now``) and everything else.

- One UID per meeting (:func:`meeting_uid`), the same in every message about it, so that a
  calendar program replaces the entry it has: the REQUEST with a higher SEQUENCE moves it,
  the CANCEL removes it. The caller raises ``MeetingInfo.sequence`` with every change
  invitees are told about (a cancellation included).
- All times in UTC (``...Z``): no VTIMEZONE needed, and no wall-clock time can be read
  two ways around the change to or from summer time.
- Answers come through the mail's links, not as iTIP replies: the attendee is asked for no
  RSVP, and taking part is optional (ROLE=OPT-PARTICIPANT).
- The public calendar names no person: no ORGANIZER, no ATTENDEE.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from icalendar import Calendar, Event, vCalAddress

from contracts.events import KIND_LABELS, TIMEZONE, MeetingInfo, MeetingState

PRODID = "-//Fredericia Kommune//samskab//DA"
DEFAULT_CALENDAR_NAME = "Ambassadørnetværket, Fredericia Kommune"

VOLUNTARY = "Det er frivilligt at deltage."
CANCELLED = "Arrangementet er aflyst."
ONLINE = "Deltag online: {url}"

Method = Literal["REQUEST", "CANCEL"]


def meeting_uid(meeting_id: str, uid_domain: str) -> str:
    """The UID of every message about one meeting: ``meeting-<id>@<uid_domain>``."""
    if not meeting_id.strip() or not uid_domain.strip():
        raise ValueError("meeting_id and uid_domain must not be empty")
    return f"meeting-{meeting_id}@{uid_domain}"


def invitation_ics(
    meeting: MeetingInfo,
    *,
    method: Method,
    attendee_email: str,
    attendee_name: str,
    organizer_email: str,
    organizer_name: str,
    uid_domain: str,
    now: datetime,
) -> str:
    """One invitee's iCalendar: REQUEST (invited, moved, got a seat) or CANCEL."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method must be REQUEST or CANCEL, not {method!r}")
    cancelled = method == "CANCEL"
    event = _event(meeting, uid_domain=uid_domain, now=now, cancelled=cancelled)
    description = _description(
        meeting,
        first=CANCELLED if cancelled else None,
        last=None if cancelled else VOLUNTARY,
    )
    if description:
        event.add("description", description)
    event.add("organizer", vCalAddress.new(organizer_email, cn=organizer_name))
    event.add(
        "attendee",
        vCalAddress.new(
            attendee_email,
            cn=attendee_name,
            role="OPT-PARTICIPANT",
            partstat="NEEDS-ACTION",
            rsvp=False,
        ),
    )
    return _serialise(_calendar(method), [event])


def public_calendar(
    entries: Sequence[tuple[MeetingInfo, MeetingState]],
    *,
    uid_domain: str,
    now: datetime,
    calendar_name: str = DEFAULT_CALENDAR_NAME,
) -> str:
    """The public meetings as one calendar to subscribe to (METHOD:PUBLISH), soonest first.

    Only public meetings may be given (the caller filters; anything else is refused, so
    that an internal meeting never ends up in the open). Cancelled ones stay in it with
    STATUS:CANCELLED, so that subscribed calendars drop them.
    """
    name = " ".join(calendar_name.split())
    if not name:
        raise ValueError("calendar_name must not be empty")
    calendar = _calendar("PUBLISH")
    # NAME (RFC 7986) and X-WR-CALNAME (what most programs read), written as icalendar
    # writes them; one line, so a name can never break the file.
    calendar.calendar_name = name
    calendar.add("x-wr-timezone", TIMEZONE)
    events = []
    for meeting, state in sorted(entries, key=lambda e: (_utc(e[0].starts_at), e[0].meeting_id)):
        if not meeting.public:
            raise ValueError(f"meeting {meeting.meeting_id} is not public")
        cancelled = state == MeetingState.CANCELLED
        event = _event(meeting, uid_domain=uid_domain, now=now, cancelled=cancelled)
        description = _description(meeting, first=CANCELLED if cancelled else None, last=None)
        if description:
            event.add("description", description)
        event.add("class", "PUBLIC")
        events.append(event)
    return _serialise(calendar, events)


# ---------------------------------------------------------------- parts


def _calendar(method: str) -> Calendar:
    calendar = Calendar()
    calendar.add("version", "2.0")
    calendar.add("prodid", PRODID)
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    return calendar


def _event(meeting: MeetingInfo, *, uid_domain: str, now: datetime, cancelled: bool) -> Event:
    event = Event()
    event.add("uid", meeting_uid(meeting.meeting_id, uid_domain))
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", _utc(now))
    event.add("dtstart", _utc(meeting.starts_at))
    event.add("dtend", _utc(meeting.ends_at))
    event.add("summary", _summary(meeting))
    if meeting.place:
        event.add("location", meeting.place)
    if meeting.online_url:
        event.add("url", meeting.online_url)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    return event


def _summary(meeting: MeetingInfo) -> str:
    """``<kind>: <title>``, unless the title names the kind already."""
    label = KIND_LABELS[meeting.kind]
    if meeting.title.casefold().startswith(label.casefold()):
        return meeting.title
    return f"{label}: {meeting.title}"


def _description(meeting: MeetingInfo, *, first: str | None, last: str | None) -> str:
    parts = [
        first,
        (meeting.description or "").strip() or None,
        ONLINE.format(url=meeting.online_url) if meeting.online_url else None,
        last,
    ]
    return "\n\n".join(part for part in parts if part)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no time zone: an instant is needed")
    # datetime.UTC itself (not an equal zone object): icalendar writes it as ...Z.
    return value.astimezone(UTC)


def _serialise(calendar: Calendar, events: list[Event]) -> str:
    for event in events:
        calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical.decode("utf-8")
