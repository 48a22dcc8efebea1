"""The events service: meetings, invitations, answers, waitlists, reminders, attendance,
minutes and the public calendar. Run with ``python -m services.events``."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.ambassadors import Activated, Erased, ProfileUpdated, Withdrawn
from contracts.envelope import Event
from contracts.events import (
    EVENTS,
    SERVICE,
    AnswerInvitation,
    AttendanceResult,
    Calendar,
    CancelMeeting,
    CloseMeeting,
    GetCalendar,
    ListMeetings,
    MeetingDetail,
    MeetingPage,
    MeetingView,
    PlanYear,
    PlanYearResult,
    RecordAttendance,
    RescheduleMeeting,
    Rsvp,
    RsvpResult,
    ScheduleMeeting,
    ShowMeeting,
    Subjects,
)
from services.events import handlers, store
from services.runtime.clock import Clock
from services.runtime.mongo import Session
from services.runtime.service import Service
from services.runtime.settings import get_settings

settings = get_settings()
service = Service(SERVICE, produces=EVENTS, settings=settings)
ctx = handlers.Context(service, clock=Clock(settings.clock_file))
app = service.app


@service.on_startup
async def prepare() -> None:
    await store.ensure_indexes(service.db)


@service.background
async def housekeeping() -> None:
    await handlers.housekeeping(ctx)


# ---------------------------------------------------------------- reactions


@service.on_event(Activated)
async def activated(event: Activated, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_activated(ctx, event, session)


@service.on_event(ProfileUpdated)
async def profile_updated(event: ProfileUpdated, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_profile_updated(ctx, event, session)


@service.on_event(Withdrawn)
async def withdrawn(event: Withdrawn, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_withdrawn(ctx, event, session)


@service.on_event(Erased)
async def erased(event: Erased, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_erased(ctx, event, session)


# ---------------------------------------------------------------- meetings


@service.endpoint(Subjects.SCHEDULE, ScheduleMeeting)
async def schedule(cmd: ScheduleMeeting) -> MeetingView:
    """Schedule a meeting; its audience is invited (in rounds, right after)."""
    return await handlers.schedule(ctx, cmd)


@service.endpoint(Subjects.PLAN_YEAR, PlanYear)
async def plan_year(cmd: PlanYear) -> PlanYearResult:
    """Schedule a year's two ambassador meetings and its annual assembly."""
    return await handlers.plan_year(ctx, cmd)


@service.endpoint(Subjects.RESCHEDULE, RescheduleMeeting)
async def reschedule(cmd: RescheduleMeeting) -> MeetingView:
    """Move a meeting; everyone who has not declined gets the update."""
    return await handlers.reschedule(ctx, cmd)


@service.endpoint(Subjects.CANCEL, CancelMeeting)
async def cancel(cmd: CancelMeeting) -> MeetingView:
    """Cancel a meeting; everyone who has not declined is told."""
    return await handlers.cancel(ctx, cmd)


@service.endpoint(Subjects.LIST, ListMeetings)
async def list_meetings(query: ListMeetings) -> MeetingPage:
    """Meetings: all (newest first) or those to come (soonest first)."""
    return await handlers.list_meetings(ctx, query)


@service.endpoint(Subjects.SHOW, ShowMeeting)
async def show(query: ShowMeeting) -> MeetingDetail:
    """One meeting with its invitees, their answers and the waitlist in order."""
    return await handlers.show_meeting(ctx, query)


@service.endpoint(Subjects.CALENDAR, GetCalendar)
async def public_calendar(query: GetCalendar) -> Calendar:
    """Every public meeting as one iCalendar file."""
    return await handlers.public_calendar(ctx, query)


# ---------------------------------------------------------------- answers


@service.endpoint(Subjects.RSVP, Rsvp)
async def rsvp(cmd: Rsvp) -> RsvpResult:
    """Record an invitee's answer; a yes to a full meeting goes on the waitlist."""
    return await handlers.rsvp(ctx, cmd)


@service.endpoint(Subjects.ANSWER, AnswerInvitation)
async def answer(cmd: AnswerInvitation) -> RsvpResult:
    """Record an answer given with the token from the invitation mail."""
    return await handlers.answer_invitation(ctx, cmd)


# ---------------------------------------------------------------- after the meeting


@service.endpoint(Subjects.ATTENDANCE, RecordAttendance)
async def attendance(cmd: RecordAttendance) -> AttendanceResult:
    """Record who came (the full list; recording again corrects it)."""
    return await handlers.record_attendance(ctx, cmd)


@service.endpoint(Subjects.CLOSE, CloseMeeting)
async def close(cmd: CloseMeeting) -> MeetingView:
    """Close a meeting with minutes and outcomes: it counts as held."""
    return await handlers.close(ctx, cmd)
