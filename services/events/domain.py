"""The rules of meetings, invitations, answers, waitlists and reminders. No I/O here.

A meeting is scheduled for an audience; every invitee gets an invitation. An answer of yes
takes a seat while there is one, otherwise a place on the waitlist; a seat that comes free
goes to the first on the waitlist. Those who said yes are reminded a set time before the
start. Afterwards staff record who came and close the meeting with minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.errors import DomainValidationError, ErrorCode, FieldError, ServiceError
from contracts.events import (
    COPENHAGEN,
    Answer,
    Audience,
    MeetingInfo,
    MeetingKind,
    MeetingState,
    Participation,
    PlanYear,
    ScheduleMeeting,
    as_utc,
)
from services.runtime.known_ambassadors import KnownAmbassador

# An answer can be given until the meeting starts.
ANSWERABLE = frozenset({MeetingState.SCHEDULED})
# Who is told when a meeting moves or is cancelled: everyone who has not declined.
TOLD_OF_CHANGES = frozenset(
    {
        Participation.INVITED,
        Participation.ATTENDING,
        Participation.WAITLISTED,
        Participation.MAYBE,
    }
)


def invalid_state(message: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_STATE, message)


# ---------------------------------------------------------------- models


class Meeting(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: MeetingKind
    title: str
    description: str | None = None
    starts_at: datetime
    ends_at: datetime
    place: str | None = None
    online_url: str | None = None
    capacity: int | None = None
    public: bool = False
    audience: Audience = Audience()
    state: MeetingState = MeetingState.SCHEDULED
    sequence: int = 0
    created_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    held_at: datetime | None = None
    minutes: str | None = None
    outcomes: tuple[str, ...] = ()
    # Who came (ambassador ids), as recorded by staff; organisations as they were at closing.
    attended: tuple[str, ...] = ()
    attending_organisations: tuple[str, ...] = ()
    # Seats taken (invitees attending): kept on the meeting so that two answers racing for
    # the last seat write the same document, and one of them is retried.
    attending_count: int = 0
    # The audience is invited in rounds, in ambassador id order, after this id.
    inviting: bool = True
    invite_cursor: str | None = None
    reminder_due_at: datetime | None = None
    reminder_pending: bool = False
    # Set for the fixed meetings of a year (plan-year): one of each per year.
    plan_key: str | None = None
    # The plan-year job that follows their invitations, until it is done.
    plan_job: str | None = None

    def info(self) -> MeetingInfo:
        return MeetingInfo(
            meeting_id=self.id,
            kind=self.kind,
            title=self.title,
            description=self.description,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            place=self.place,
            online_url=self.online_url,
            public=self.public,
            capacity=self.capacity,
            sequence=self.sequence,
        )


class Invitation(BaseModel):
    """One invitee of one meeting. The answer links in the mails carry a token signed for
    the meeting and the ambassador (services.runtime.tokens): nothing of it is stored."""

    model_config = ConfigDict(frozen=True)

    meeting_id: str
    ambassador_id: str
    participation: Participation = Participation.INVITED
    invited_at: datetime
    answered_at: datetime | None = None
    # Order of the waitlist: first come, first served.
    waitlisted_at: datetime | None = None

    @property
    def id(self) -> str:
        return invitation_id(self.meeting_id, self.ambassador_id)


def invitation_id(meeting_id: str, ambassador_id: str) -> str:
    return f"{meeting_id}:{ambassador_id}"


# ---------------------------------------------------------------- scheduling


def _not_in_past(field: str, starts_at: datetime, now: datetime) -> list[FieldError]:
    if starts_at <= now:
        local = starts_at.astimezone(COPENHAGEN)
        return [FieldError(field=field, message=f"{local:%Y-%m-%d %H:%M} is in the past")]
    return []


def reminder_due(starts_at: datetime, before: timedelta) -> datetime:
    """When those who said yes are reminded: ``before`` of real time ahead of the start.

    Counted on the UTC time line, so 48 hours stay 48 hours across a daylight-saving change
    (the wall-clock time of the reminder then differs from the start's by an hour).
    """
    return starts_at - before


def _with_reminder(meeting: Meeting, before: timedelta, now: datetime) -> Meeting:
    due = reminder_due(meeting.starts_at, before)
    # Moved or scheduled at short notice: the invitation or update itself is the reminder.
    return meeting.model_copy(update={"reminder_due_at": due, "reminder_pending": due > now})


def schedule(
    cmd: ScheduleMeeting,
    *,
    now: datetime,
    remind_before: timedelta,
    unknown_invitees: Sequence[str] = (),
    unknown_network: bool = False,
    meeting_id: str | None = None,
    plan_key: str | None = None,
) -> Meeting:
    starts_at, ends_at = as_utc(cmd.starts), as_utc(cmd.ends)
    problems = _not_in_past("starts", starts_at, now)
    if unknown_invitees:
        problems.append(
            FieldError(
                field="audience.ambassador_ids",
                message="not active ambassadors: " + ", ".join(unknown_invitees),
            )
        )
    if cmd.audience.network_id is not None and unknown_network:
        problems.append(
            FieldError(
                field="audience.network_id",
                message=f"no open network {cmd.audience.network_id} is known (a network is "
                "known here once the networks service has announced it)",
            )
        )
    if problems:
        raise DomainValidationError(problems)
    meeting = Meeting(
        id=meeting_id or uuid.uuid4().hex,
        kind=cmd.kind,
        title=cmd.title,
        description=(cmd.description or "").strip() or None,
        starts_at=starts_at,
        ends_at=ends_at,
        place=cmd.place,
        online_url=cmd.online_url,
        capacity=cmd.capacity,
        public=cmd.public,
        audience=cmd.audience,
        created_at=now,
        plan_key=plan_key,
    )
    return _with_reminder(meeting, remind_before, now)


def reschedule(
    meeting: Meeting,
    *,
    starts: datetime,
    ends: datetime,
    place: str | None,
    online_url: str | None,
    now: datetime,
    remind_before: timedelta,
) -> Meeting:
    if meeting.state != MeetingState.SCHEDULED:
        raise invalid_state(f"a {meeting.state.value} meeting cannot be moved")
    if meeting.starts_at <= now:
        raise invalid_state("the meeting has started; it can no longer be moved")
    starts_at, ends_at = as_utc(starts), as_utc(ends)
    problems = _not_in_past("starts", starts_at, now)
    if problems:
        raise DomainValidationError(problems)
    moved = meeting.model_copy(
        update={
            "starts_at": starts_at,
            "ends_at": ends_at,
            "place": place if place is not None else meeting.place,
            "online_url": online_url if online_url is not None else meeting.online_url,
            "sequence": meeting.sequence + 1,
        }
    )
    return _with_reminder(moved, remind_before, now)


def cancel(meeting: Meeting, *, reason: str | None, now: datetime) -> Meeting:
    if meeting.state != MeetingState.SCHEDULED:
        raise invalid_state(f"a {meeting.state.value} meeting cannot be cancelled")
    if meeting.ends_at <= now:
        raise invalid_state("the meeting is over; close it instead")
    return meeting.model_copy(
        update={
            "state": MeetingState.CANCELLED,
            "cancelled_at": now,
            "cancel_reason": (reason or "").strip() or None,
            "sequence": meeting.sequence + 1,
            "inviting": False,
            "reminder_pending": False,
        }
    )


# ---------------------------------------------------------------- the year's fixed meetings

PLAN_DESCRIPTIONS: dict[MeetingKind, str] = {
    MeetingKind.AMBASSADOR_MEETING: (
        "Halvårligt møde for alle ambassadører: vi fortæller, hvad der er sket i netværket, "
        "hører jeres erfaringer og finder sammen om nye udfordringer."
    ),
    MeetingKind.ANNUAL_ASSEMBLY: (
        "Årets stormøde for hele ambassadørnetværket: status på strategien, nye "
        "indsatser og tid til at mødes på tværs."
    ),
}


def plan_year(cmd: PlanYear) -> list[tuple[str, ScheduleMeeting]]:
    """The year's two ambassador meetings (one each half-year) and its assembly, as
    (plan key, schedule command); the keys make planning a year twice a conflict."""
    problems: list[FieldError] = []
    dates = sorted(cmd.ambassador_meetings)
    for d in [*dates, cmd.assembly]:
        if d.year != cmd.year:
            problems.append(FieldError(field="dates", message=f"{d} is not in {cmd.year}"))
    if not problems and (dates[0].month > 6 or dates[1].month <= 6):
        problems.append(
            FieldError(
                field="ambassador_meetings",
                message="the ambassador meetings are half-yearly: one in January-June, "
                "one in July-December",
            )
        )
    for field, starts, ends in (
        ("ambassador_meeting_ends", cmd.ambassador_meeting_starts, cmd.ambassador_meeting_ends),
        ("assembly_ends", cmd.assembly_starts, cmd.assembly_ends),
    ):
        if ends <= starts:
            problems.append(FieldError(field=field, message="must be after the start time"))
    if problems:
        raise DomainValidationError(problems)

    def meeting(
        kind: MeetingKind, title: str, day: date, starts: time, ends: time
    ) -> ScheduleMeeting:
        try:
            return ScheduleMeeting(
                kind=kind,
                title=title,
                description=PLAN_DESCRIPTIONS[kind],
                starts=datetime.combine(day, starts),
                ends=datetime.combine(day, ends),
                place=cmd.place,
            )
        except ValidationError as exc:
            # A time that does not exist that day (the hour skipped for summer time): name
            # the plan's own field, not the meeting it would have made.
            prefix = "assembly" if kind == MeetingKind.ANNUAL_ASSEMBLY else "ambassador_meeting"
            raise DomainValidationError(
                [
                    FieldError(field=f"{prefix}_{e['loc'][0]}", message=e["msg"])
                    for e in exc.errors()
                ]
            ) from None

    spring, autumn = dates
    return [
        (
            f"{cmd.year}:ambassador_meeting:1",
            meeting(
                MeetingKind.AMBASSADOR_MEETING,
                f"Ambassadørmøde, forår {cmd.year}",
                spring,
                cmd.ambassador_meeting_starts,
                cmd.ambassador_meeting_ends,
            ),
        ),
        (
            f"{cmd.year}:ambassador_meeting:2",
            meeting(
                MeetingKind.AMBASSADOR_MEETING,
                f"Ambassadørmøde, efterår {cmd.year}",
                autumn,
                cmd.ambassador_meeting_starts,
                cmd.ambassador_meeting_ends,
            ),
        ),
        (
            f"{cmd.year}:annual_assembly",
            meeting(
                MeetingKind.ANNUAL_ASSEMBLY,
                f"Stormøde {cmd.year}",
                cmd.assembly,
                cmd.assembly_starts,
                cmd.assembly_ends,
            ),
        ),
    ]


# ---------------------------------------------------------------- audience and invitations


def in_audience(
    audience: Audience, ambassador: KnownAmbassador, network_members: AbstractSet[str] = frozenset()
) -> bool:
    """All active ambassadors, or anyone named, a member of the network (``network_members``:
    the members of ``audience.network_id`` as the networks service told them), or with one
    of the themes or core areas."""
    if audience.everyone:
        return True
    if ambassador.id in audience.ambassador_ids:
        return True
    if audience.network_id is not None and ambassador.id in network_members:
        return True
    if set(audience.themes) & set(ambassador.themes):
        return True
    return bool(set(audience.core_areas) & set(ambassador.core_areas))


def invite(meeting: Meeting, ambassador_id: str, now: datetime) -> Invitation:
    if meeting.state != MeetingState.SCHEDULED:
        raise invalid_state(f"nobody is invited to a {meeting.state.value} meeting")
    return Invitation(meeting_id=meeting.id, ambassador_id=ambassador_id, invited_at=now)


def invitable(meeting: Meeting, now: datetime) -> bool:
    """Whether someone who newly qualifies is still to be invited."""
    return meeting.state == MeetingState.SCHEDULED and meeting.starts_at > now


# ---------------------------------------------------------------- answers and the waitlist

_PARTICIPATION_OF = {Answer.NO: Participation.DECLINED, Answer.MAYBE: Participation.MAYBE}


def answer(
    meeting: Meeting, invitation: Invitation, given: Answer, now: datetime
) -> tuple[Meeting, Invitation]:
    """The invitee's answer; a yes to a full meeting goes on the waitlist.

    Returns the meeting with its seat count and the invitation. A seat given up is not
    handed on here: see :func:`promote`.
    """
    if meeting.state not in ANSWERABLE:
        raise invalid_state(f"the meeting is {meeting.state.value}; it takes no answers")
    if meeting.starts_at <= now:
        raise invalid_state("the meeting has started; it takes no more answers")
    before = invitation.participation
    if given == Answer.YES:
        if before in (Participation.ATTENDING, Participation.WAITLISTED):
            return meeting, invitation  # said yes again: keeps seat or place in line
        full = meeting.capacity is not None and meeting.attending_count >= meeting.capacity
        updated = invitation.model_copy(
            update={
                "participation": Participation.WAITLISTED if full else Participation.ATTENDING,
                "answered_at": now,
                "waitlisted_at": now if full else None,
            }
        )
    else:
        updated = invitation.model_copy(
            update={
                "participation": _PARTICIPATION_OF[given],
                "answered_at": now,
                "waitlisted_at": None,
            }
        )
    return _recount(meeting, before, updated.participation), updated


def _recount(meeting: Meeting, before: Participation, after: Participation) -> Meeting:
    change = int(after == Participation.ATTENDING) - int(before == Participation.ATTENDING)
    if change == 0:
        return meeting
    return meeting.model_copy(update={"attending_count": meeting.attending_count + change})


def free_seats(meeting: Meeting) -> int:
    if meeting.capacity is None:
        return 0  # nobody waits for an unlimited meeting
    return max(0, meeting.capacity - meeting.attending_count)


def waitlist_order(invitations: Iterable[Invitation]) -> list[Invitation]:
    waiting = [i for i in invitations if i.participation == Participation.WAITLISTED]
    return sorted(waiting, key=lambda i: (i.waitlisted_at or i.invited_at, i.ambassador_id))


def promote(
    meeting: Meeting, waitlist: Sequence[Invitation], now: datetime
) -> tuple[Meeting, list[Invitation]]:
    """Free seats go to the first on the waitlist (``waitlist`` in order)."""
    promoted = [
        i.model_copy(update={"participation": Participation.ATTENDING, "waitlisted_at": None})
        for i in list(waitlist)[: free_seats(meeting)]
    ]
    if not promoted:
        return meeting, []
    counted = meeting.model_copy(
        update={"attending_count": meeting.attending_count + len(promoted)}
    )
    return counted, promoted


def leave(meeting: Meeting, invitation: Invitation) -> Meeting:
    """The invitee is gone (withdrawn or erased): their seat, if any, comes free."""
    return _recount(meeting, invitation.participation, Participation.DECLINED)


# ---------------------------------------------------------------- reminders


def reminder_recipients(
    meeting: Meeting, invitations: Iterable[Invitation], now: datetime
) -> list[Invitation]:
    """Who is reminded now: those with a seat, if the reminder is due and the meeting is
    still ahead as scheduled. Empty otherwise (cancelled, moved, started, sent)."""
    if (
        meeting.state != MeetingState.SCHEDULED
        or not meeting.reminder_pending
        or meeting.reminder_due_at is None
        or meeting.reminder_due_at > now
        or meeting.starts_at <= now
    ):
        return []
    return [i for i in invitations if i.participation == Participation.ATTENDING]


def reminded(meeting: Meeting) -> Meeting:
    return meeting.model_copy(update={"reminder_pending": False})


# ---------------------------------------------------------------- after the meeting


def record_attendance(meeting: Meeting, attended: Sequence[str], now: datetime) -> Meeting:
    if meeting.state != MeetingState.SCHEDULED:
        raise invalid_state(f"attendance cannot be recorded for a {meeting.state.value} meeting")
    if meeting.starts_at > now:
        raise invalid_state("attendance can be recorded once the meeting has started")
    # The list is who came, as staff know it now: recording again corrects it.
    return meeting.model_copy(update={"attended": tuple(dict.fromkeys(attended))})


def close(
    meeting: Meeting,
    *,
    minutes: str,
    outcomes: Sequence[str],
    organisations: Iterable[str | None],
    now: datetime,
) -> Meeting:
    if meeting.state != MeetingState.SCHEDULED:
        raise invalid_state(f"a {meeting.state.value} meeting cannot be closed")
    if meeting.starts_at > now:
        raise invalid_state("a meeting can be closed once it has started")
    named = sorted({o for o in organisations if o}, key=str.casefold)
    return meeting.model_copy(
        update={
            "state": MeetingState.HELD,
            "held_at": now,
            "minutes": minutes.strip(),
            "outcomes": tuple(outcomes),
            "attending_organisations": tuple(named),
            "inviting": False,
            "reminder_pending": False,
        }
    )


def held_on(meeting: Meeting) -> date:
    return meeting.starts_at.astimezone(COPENHAGEN).date()


def forget_attendee(meeting: Meeting, ambassador_id: str) -> Meeting:
    """An erased person leaves no trace; the count of a held meeting stays as published."""
    if ambassador_id not in meeting.attended:
        return meeting
    return meeting.model_copy(
        update={"attended": tuple(a for a in meeting.attended if a != ambassador_id)}
    )
