"""Messages of the events service (the network's meetings): commands, queries, replies, events.

"Meeting" is the gathering (ambassador meeting, assembly, theme day, ...); "event" is kept for
messages on the bus.

Times: a command may give a naive date-time; it is wall-clock time in Europe/Copenhagen, as
staff type it (``2027-03-04T17:00``). Replies and events carry aware UTC times.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Annotated, ClassVar
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from contracts import endpoints, jobs
from contracts.ambassadors import CoreArea, Theme
from contracts.envelope import Event, Message
from contracts.text import clean_line, normalise_name, normalise_website

SERVICE = "events"
STREAM = "EVENTS"
STREAM_SUBJECTS = "events.v1.>"
TIMEZONE = "Europe/Copenhagen"
COPENHAGEN = ZoneInfo(TIMEZONE)

# Payload limits: every text and list that crosses the boundary has one.
TITLE_MAX = 200
DESCRIPTION_MAX = 5000
PLACE_MAX = 300
URL_MAX = 500
REASON_MAX = 500
CAPACITY_MAX = 10_000
INVITE_MAX = 1000
ATTENDED_MAX = 2000
OUTCOME_MAX = 500
OUTCOMES_MAX = 20
MINUTES_MAX = 100_000
ORGANISATIONS_MAX = 2000
TOKEN_MAX = 200
ICS_MAX = 20_000
PAGE_MAX = 1000

Id = Annotated[str, Field(min_length=1, max_length=64)]


class MeetingKind(StrEnum):
    AMBASSADOR_MEETING = "ambassador_meeting"
    ANNUAL_ASSEMBLY = "annual_assembly"
    THEME_DAY = "theme_day"
    WORKSHOP = "workshop"
    DIALOGUE_MEETING = "dialogue_meeting"
    NETWORK_MEETING = "network_meeting"
    OTHER = "other"


# What ambassadors read (Danish), for every service that shows a meeting's kind.
KIND_LABELS: dict[MeetingKind, str] = {
    MeetingKind.AMBASSADOR_MEETING: "Ambassadørmøde",
    MeetingKind.ANNUAL_ASSEMBLY: "Stormøde",
    MeetingKind.THEME_DAY: "Temadag",
    MeetingKind.WORKSHOP: "Workshop",
    MeetingKind.DIALOGUE_MEETING: "Dialogmøde",
    MeetingKind.NETWORK_MEETING: "Netværksmøde",
    MeetingKind.OTHER: "Arrangement",
}


class MeetingState(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    # Closed with minutes: it took place.
    HELD = "held"


class Answer(StrEnum):
    YES = "yes"
    NO = "no"
    MAYBE = "maybe"


class Participation(StrEnum):
    """Where one invitee stands."""

    INVITED = "invited"  # no answer yet
    ATTENDING = "attending"  # yes, with a seat
    WAITLISTED = "waitlisted"  # yes, but the meeting is full
    MAYBE = "maybe"
    DECLINED = "declined"


# The endpoints are declared at the end of the module, after their models.


# ---------------------------------------------------------------- field rules


def _one_line(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = clean_line(value)
    return cleaned or None


def _url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return normalise_website(value)
    except ValueError as exc:
        raise PydanticCustomError("value_error", str(exc)) from None


# ---------------------------------------------------------------- commands and queries


class Audience(BaseModel):
    """Who is invited: the union of what is given; nothing given means all active ambassadors."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    themes: list[Theme] = Field(default_factory=list, max_length=12)
    core_areas: list[CoreArea] = Field(default_factory=list, max_length=3)
    network_id: Id | None = None
    ambassador_ids: list[Id] = Field(default_factory=list, max_length=INVITE_MAX)

    @property
    def everyone(self) -> bool:
        return not (self.themes or self.core_areas or self.network_id or self.ambassador_ids)


class WhenAndWhere(Message):
    """When and where a meeting is, as schedule and reschedule take it."""

    # Naive: wall-clock time in Europe/Copenhagen.
    starts: datetime
    ends: datetime
    place: str | None = Field(default=None, max_length=PLACE_MAX)
    online_url: str | None = Field(default=None, max_length=URL_MAX)

    @field_validator("place")
    @classmethod
    def _place_one_line(cls, value: str | None) -> str | None:
        return _one_line(value)

    @field_validator("online_url")
    @classmethod
    def _online_is_a_url(cls, value: str | None) -> str | None:
        return _url(value)

    @field_validator("starts")
    @classmethod
    def _starts_in_copenhagen(cls, value: datetime) -> datetime:
        _instant(value)
        return value

    @field_validator("ends")
    @classmethod
    def _ends_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _ends_after(info.data.get("starts"), value)


class MeetingFields(WhenAndWhere):
    """What a meeting is: the fields schedule takes (plan-year fills them in itself)."""

    kind: MeetingKind
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    capacity: int | None = Field(default=None, ge=1, le=CAPACITY_MAX)
    public: bool = False

    @field_validator("title")
    @classmethod
    def _title_has_text(cls, value: str) -> str:
        try:
            return normalise_name(value)
        except ValueError as exc:
            raise PydanticCustomError("value_error", str(exc)) from None


def as_utc(value: datetime) -> datetime:
    """An instant in UTC; a naive value is wall-clock time in Copenhagen.

    A wall-clock time that does not exist (the hour skipped when summer time starts) is
    refused; one that exists twice (the hour repeated in October) means the first, summer
    time, as a calendar program would take it.
    """
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    local = value.replace(tzinfo=COPENHAGEN, fold=0)
    if local.astimezone(UTC).astimezone(COPENHAGEN).replace(tzinfo=None) != value:
        raise ValueError(
            f"{value:%Y-%m-%d %H:%M} does not exist in Copenhagen (clocks skip that hour)"
        )
    return local.astimezone(UTC)


def _instant(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except ValueError as exc:
        raise PydanticCustomError("value_error", str(exc)) from None


class ScheduleMeeting(MeetingFields):
    audience: Audience = Field(default_factory=Audience)


class RescheduleMeeting(WhenAndWhere):
    """Move a meeting; a place or online link given moves it there too, omitted: it stays."""

    audit_target: ClassVar[str | None] = "meeting_id"

    meeting_id: Id


def _ends_after(starts: datetime | None, ends: datetime) -> datetime:
    end = _instant(ends)
    if starts is not None and end <= _instant(starts):
        raise PydanticCustomError("value_error", "a meeting must end after it starts")
    return ends


class CancelMeeting(Message):
    audit_target: ClassVar[str | None] = "meeting_id"

    meeting_id: Id
    reason: str | None = Field(default=None, max_length=REASON_MAX)


class PlanYear(Message):
    """The fixed meetings of a year: two ambassador meetings (one each half-year) and the
    annual assembly, all for every active ambassador."""

    year: int = Field(ge=2000, le=2100)
    ambassador_meetings: list[date] = Field(min_length=2, max_length=2)
    assembly: date
    ambassador_meeting_starts: time = time(17, 0)
    ambassador_meeting_ends: time = time(19, 0)
    assembly_starts: time = time(16, 0)
    assembly_ends: time = time(20, 0)
    place: str | None = Field(default=None, max_length=PLACE_MAX)

    @field_validator("place")
    @classmethod
    def _place_one_line(cls, value: str | None) -> str | None:
        return _one_line(value)


class Rsvp(Message):
    """An answer given for an ambassador (by staff, or by the ambassador through the CLI)."""

    audit_target: ClassVar[str | None] = "meeting_id"

    meeting_id: Id
    ambassador_id: Id
    answer: Answer


class AnswerInvitation(Message):
    """An answer given with the token from the invitation mail (the web's RSVP links)."""

    token: str = Field(min_length=10, max_length=TOKEN_MAX)
    answer: Answer


class ShowInvitation(Message):
    """The invitation an answer link stands for (the web's RSVP page, before any answer)."""

    token: str = Field(min_length=10, max_length=TOKEN_MAX)


class RecordAttendance(Message):
    audit_target: ClassVar[str | None] = "meeting_id"

    meeting_id: Id
    attended: list[Id] = Field(min_length=1, max_length=ATTENDED_MAX)


class CloseMeeting(Message):
    audit_target: ClassVar[str | None] = "meeting_id"

    meeting_id: Id
    minutes: str = Field(min_length=1, max_length=MINUTES_MAX)
    outcomes: list[Annotated[str, Field(min_length=1, max_length=OUTCOME_MAX)]] = Field(
        default_factory=list, max_length=OUTCOMES_MAX
    )

    @field_validator("minutes")
    @classmethod
    def _minutes_have_text(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("value_error", "must not be empty")
        return value

    @field_validator("outcomes")
    @classmethod
    def _outcomes_one_line(cls, values: list[str]) -> list[str]:
        cleaned = [clean_line(v) for v in values]
        if any(not v for v in cleaned):
            raise PydanticCustomError("value_error", "an outcome must not be empty")
        return cleaned


class ListMeetings(Message):
    # Only meetings still to come (not cancelled), soonest first; otherwise newest first.
    upcoming: bool = False
    limit: int = Field(default=200, ge=1, le=PAGE_MAX)
    offset: int = Field(default=0, ge=0)


class ShowMeeting(Message):
    meeting_id: Id


class GetCalendar(Message):
    """The public calendar: every public meeting, as one iCalendar file."""


# ---------------------------------------------------------------- replies


class View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Counts(View):
    invited: int = 0
    attending: int = 0
    waitlisted: int = 0
    maybe: int = 0
    declined: int = 0
    no_answer: int = 0
    attended: int = 0


class MeetingView(View):
    audit_target: ClassVar[str | None] = "id"

    id: str
    kind: MeetingKind
    title: str
    description: str | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    place: str | None = None
    online_url: str | None = None
    capacity: int | None = None
    public: bool
    audience: Audience
    state: MeetingState
    # iCalendar SEQUENCE: one up with every change invitees are told about.
    sequence: int
    created_at: AwareDatetime
    cancelled_at: AwareDatetime | None = None
    cancel_reason: str | None = None
    held_at: AwareDatetime | None = None
    outcomes: list[str] = []
    counts: Counts = Field(default_factory=Counts)
    # The audience is still being invited (large audiences are invited in rounds).
    inviting: bool = False


class InviteeView(View):
    ambassador_id: str
    name: str
    organisation: str | None = None
    participation: Participation
    answered_at: AwareDatetime | None = None
    # 1-based place on the waitlist.
    waitlist_position: int | None = None
    attended: bool = False


class MeetingDetail(View):
    meeting: MeetingView
    invitees: list[InviteeView]
    # Waitlisted invitees, first in line first.
    waitlist: list[InviteeView]
    minutes: str | None = None


class MeetingPage(View):
    total: int
    items: list[MeetingView]


class RsvpResult(View):
    audit_target: ClassVar[str | None] = "meeting_id"

    meeting_id: str
    ambassador_id: str
    participation: Participation
    waitlist_position: int | None = None
    # Whoever got a seat because this answer freed one.
    promoted: list[str] = []


class AttendanceResult(View):
    meeting_id: str
    attended: int
    # Of those given, the ones who were not invited (they came anyway: recorded too).
    uninvited: list[str] = []


class PlanYearResult(View):
    audit_target: ClassVar[str | None] = "meetings.id"

    meetings: list[MeetingView]


class PublicMeeting(View):
    """A public meeting as the website shows it: what, when, where; nobody's answer."""

    meeting: MeetingInfo
    state: MeetingState


class InvitationView(View):
    """What the holder of an answer link may see: the meeting, their own answer, their
    place on the waitlist, and how many seats are left (None: no limit). No one else's
    answer, no name."""

    meeting: MeetingInfo
    state: MeetingState
    participation: Participation
    waitlist_position: int | None = None
    seats_left: int | None = None


class Calendar(View):
    ics: str
    meetings: int
    # The same meetings, soonest first, for the website's pages.
    entries: list[PublicMeeting] = []


# ---------------------------------------------------------------- events


class EventsEvent(Event):
    producer_name: ClassVar[str] = SERVICE


class MeetingInfo(BaseModel):
    """A meeting as every message shows it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    meeting_id: str
    kind: MeetingKind
    title: str
    description: str | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    place: str | None = None
    online_url: str | None = None
    public: bool = False
    capacity: int | None = None
    sequence: int = 0


class MeetingEvent(EventsEvent):
    key_field: ClassVar[str | None] = "meeting_id"
    meeting_id: str


class MeetingScheduled(MeetingEvent):
    """A meeting was scheduled; its invitations follow, one ``invited`` per invitee."""

    subject: ClassVar[str] = "events.v1.meeting_scheduled"

    meeting: MeetingInfo


class MeetingRescheduled(MeetingEvent):
    subject: ClassVar[str] = "events.v1.meeting_rescheduled"

    meeting: MeetingInfo
    previous_starts_at: AwareDatetime
    previous_ends_at: AwareDatetime


class MeetingCancelled(MeetingEvent):
    subject: ClassVar[str] = "events.v1.meeting_cancelled"

    meeting: MeetingInfo
    reason: str | None = None


class MeetingHeld(MeetingEvent):
    """The meeting took place: it counts toward the strategy's goal of dialogue meetings and
    theme days. Names no person; organisations are public by what they are."""

    subject: ClassVar[str] = "events.v1.meeting_held"

    kind: MeetingKind
    title: str
    # The day it took place, in Copenhagen.
    date: date
    starts_at: AwareDatetime
    held_at: AwareDatetime
    public: bool = False
    attendee_count: int = Field(ge=0)
    attending_organisations: list[str] = Field(default_factory=list, max_length=ORGANISATIONS_MAX)
    outcomes: list[str] = Field(default_factory=list, max_length=OUTCOMES_MAX)


class InviteeEvent(EventsEvent):
    """Something one invitee is to be told (by mail, through the newsletter service).

    Carries the address: the newsletter service mails it. Purged from the stream when the
    ambassador is erased.
    """

    key_field: ClassVar[str | None] = "ambassador_id"
    person_field: ClassVar[str | None] = "ambassador_id"

    ambassador_id: str
    email: str
    name: str
    meeting: MeetingInfo
    # Whether the mail asks for an answer: the newsletter service then signs the answer
    # links (``/rsvp/<token>/<answer>``) for this meeting and invitee with the secret it
    # shares with this service; no token travels on the stream.
    answerable: bool = False


class Invited(InviteeEvent):
    """Invited: ``ics`` is the iCalendar REQUEST to attach."""

    subject: ClassVar[str] = "events.v1.invited"

    ics: str = Field(max_length=ICS_MAX)


class InvitationUpdated(InviteeEvent):
    """The meeting moved: ``ics`` is the REQUEST with the same UID and the next SEQUENCE."""

    subject: ClassVar[str] = "events.v1.invitation_updated"

    ics: str = Field(max_length=ICS_MAX)
    previous_starts_at: AwareDatetime
    previous_ends_at: AwareDatetime


class InvitationCancelled(InviteeEvent):
    """The meeting is cancelled: ``ics`` is the iCalendar CANCEL."""

    subject: ClassVar[str] = "events.v1.invitation_cancelled"

    ics: str = Field(max_length=ICS_MAX)
    reason: str | None = None


class Waitlisted(InviteeEvent):
    """Said yes to a full meeting: on the waitlist at ``position`` (1 = next in line)."""

    subject: ClassVar[str] = "events.v1.waitlisted"

    position: int = Field(ge=1)


class Promoted(InviteeEvent):
    """A seat came free: the first on the waitlist now has it."""

    subject: ClassVar[str] = "events.v1.promoted"

    ics: str = Field(max_length=ICS_MAX)


class ReminderDue(InviteeEvent):
    """The meeting is soon and the invitee said yes: remind them."""

    subject: ClassVar[str] = "events.v1.reminder_due"


INVITEE_EVENTS: tuple[type[InviteeEvent], ...] = (
    Invited,
    InvitationUpdated,
    InvitationCancelled,
    Waitlisted,
    Promoted,
    ReminderDue,
)
MEETING_EVENTS: tuple[type[MeetingEvent], ...] = (
    MeetingScheduled,
    MeetingRescheduled,
    MeetingCancelled,
    MeetingHeld,
)
EVENTS: tuple[type[EventsEvent], ...] = (*MEETING_EVENTS, *INVITEE_EVENTS)


# ---------------------------------------------------------------- endpoints


class Endpoints(endpoints.Endpoints):
    """What the events service answers."""

    SCHEDULE = endpoints.command(
        "events.cmd.schedule",
        ScheduleMeeting,
        MeetingView,
        "Schedule a meeting; its audience is invited (in rounds, right after).",
    )
    RESCHEDULE = endpoints.command(
        "events.cmd.reschedule",
        RescheduleMeeting,
        MeetingView,
        "Move a meeting; everyone who has not declined gets the update.",
    )
    CANCEL = endpoints.command(
        "events.cmd.cancel",
        CancelMeeting,
        MeetingView,
        "Cancel a meeting; everyone who has not declined is told.",
    )
    PLAN_YEAR = jobs.job(
        "events.cmd.plan_year",
        PlanYear,
        PlanYearResult,
        "Schedule a year's two ambassador meetings and its annual assembly, as a job that "
        "ends once everyone is invited to them.",
        unit="invitations",
    )
    JOB = jobs.show_job(SERVICE)
    RSVP = endpoints.command(
        "events.cmd.rsvp",
        Rsvp,
        RsvpResult,
        "Record an invitee's answer; a yes to a full meeting goes on the waitlist.",
    )
    ANSWER = endpoints.command(
        "events.cmd.answer",
        AnswerInvitation,
        RsvpResult,
        "Record an answer given with the token from the invitation mail.",
        public=True,
    )
    INVITATION = endpoints.query(
        "events.query.invitation",
        ShowInvitation,
        InvitationView,
        "The meeting and the current answer of the invitation an answer link stands for.",
        public=True,
    )
    ATTENDANCE = endpoints.command(
        "events.cmd.attendance",
        RecordAttendance,
        AttendanceResult,
        "Record who came (the full list; recording again corrects it).",
    )
    CLOSE = endpoints.command(
        "events.cmd.close",
        CloseMeeting,
        MeetingView,
        "Close a meeting with minutes and outcomes: it counts as held.",
    )
    LIST = endpoints.query(
        "events.query.list",
        ListMeetings,
        MeetingPage,
        "Meetings: all (newest first) or those to come (soonest first).",
    )
    SHOW = endpoints.query(
        "events.query.show",
        ShowMeeting,
        MeetingDetail,
        "One meeting with its invitees, their answers and the waitlist in order.",
    )
    CALENDAR = endpoints.query(
        "events.query.calendar",
        GetCalendar,
        Calendar,
        "Every public meeting as one iCalendar file.",
        public=True,
    )
