"""One function per command, query, event reaction and background round: load, call the
domain, save + outbox. Everything an invitee is told leaves as an event per invitee; the
newsletter service mails it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from contracts.ambassadors import Activated, Erased, ProfileUpdated, Withdrawn
from contracts.ambassadors import Status as AmbassadorStatus
from contracts.envelope import Event
from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.events import (
    AnswerInvitation,
    AttendanceResult,
    Calendar,
    CancelMeeting,
    CloseMeeting,
    Counts,
    GetCalendar,
    InvitationCancelled,
    InvitationUpdated,
    Invited,
    InviteeEvent,
    InviteeView,
    ListMeetings,
    MeetingCancelled,
    MeetingDetail,
    MeetingHeld,
    MeetingPage,
    MeetingRescheduled,
    MeetingScheduled,
    MeetingView,
    Participation,
    PlanYear,
    PlanYearResult,
    Promoted,
    RecordAttendance,
    ReminderDue,
    RescheduleMeeting,
    Rsvp,
    RsvpResult,
    ScheduleMeeting,
    ShowMeeting,
    Waitlisted,
)
from services.events import calendar, domain, store
from services.events.domain import Invitation, KnownAmbassador, Meeting
from services.runtime.clock import Clock
from services.runtime.logging import get_logger
from services.runtime.mongo import Session
from services.runtime.outbox import purge_published_events
from services.runtime.service import Service
from services.runtime.settings import Settings

log = get_logger(__name__)

T = TypeVar("T", bound=InviteeEvent)


@dataclass
class Context:
    service: Service
    clock: Callable[[], datetime] = field(default_factory=Clock)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def remind_before(self) -> timedelta:
        return timedelta(hours=self.settings.events_reminder_hours)


def _not_found(meeting_id: str) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"meeting {meeting_id} not found")


async def _meeting(ctx: Context, meeting_id: str, session: Session | None = None) -> Meeting:
    meeting = await store.load_meeting(ctx.service.db, meeting_id, session)
    if meeting is None:
        raise _not_found(meeting_id)
    return meeting


# ---------------------------------------------------------------- views


def meeting_view(meeting: Meeting, counts: dict[str, int] | None = None) -> MeetingView:
    by = counts or {}
    return MeetingView(
        id=meeting.id,
        kind=meeting.kind,
        title=meeting.title,
        description=meeting.description,
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        place=meeting.place,
        online_url=meeting.online_url,
        capacity=meeting.capacity,
        public=meeting.public,
        audience=meeting.audience,
        state=meeting.state,
        sequence=meeting.sequence,
        created_at=meeting.created_at,
        cancelled_at=meeting.cancelled_at,
        cancel_reason=meeting.cancel_reason,
        held_at=meeting.held_at,
        outcomes=list(meeting.outcomes),
        counts=Counts(
            invited=sum(by.values()),
            attending=by.get(Participation.ATTENDING.value, 0),
            waitlisted=by.get(Participation.WAITLISTED.value, 0),
            maybe=by.get(Participation.MAYBE.value, 0),
            declined=by.get(Participation.DECLINED.value, 0),
            no_answer=by.get(Participation.INVITED.value, 0),
            attended=len(meeting.attended),
        ),
        inviting=meeting.inviting,
    )


async def _view(ctx: Context, meeting: Meeting) -> MeetingView:
    counts = await store.participation_counts(ctx.service.db, [meeting.id])
    return meeting_view(meeting, counts[meeting.id])


# ---------------------------------------------------------------- telling invitees


def _ics(
    ctx: Context,
    meeting: Meeting,
    ambassador: KnownAmbassador,
    method: Literal["REQUEST", "CANCEL"],
) -> str:
    s = ctx.settings
    return calendar.invitation_ics(
        meeting.info(),
        method=method,
        attendee_email=ambassador.email,
        attendee_name=ambassador.name,
        organizer_email=s.mail_from_address,
        organizer_name=s.mail_from_name,
        uid_domain=s.mail_message_id_domain,
        now=ctx.clock(),
    )


def _tell(
    ctx: Context,
    kind: type[T],
    meeting: Meeting,
    who: KnownAmbassador,
    inv: Invitation | None = None,
    *,
    ics: Literal["REQUEST", "CANCEL"] | None = None,
    **extra: Any,
) -> T:
    """The event that tells ``who`` something about ``meeting`` (mailed by the newsletter):
    with the answer links' token when ``inv`` is given, the calendar entry when ``ics`` is."""
    if ics is not None:
        extra["ics"] = _ics(ctx, meeting, who, ics)
    return kind(
        ambassador_id=who.id,
        email=who.email,
        name=who.name,
        meeting=meeting.info(),
        rsvp_token=inv.token if inv is not None else None,
        **extra,
    )


async def _known(
    ctx: Context, invitations: Sequence[Invitation], session: Session
) -> list[tuple[Invitation, KnownAmbassador]]:
    """Invitations with their ambassador; one whose ambassador is gone is not told."""
    found = await store.ambassadors_by_id(
        ctx.service.db, [i.ambassador_id for i in invitations], session
    )
    return [(i, found[i.ambassador_id]) for i in invitations if i.ambassador_id in found]


async def _hand_on_seats(
    ctx: Context, meeting: Meeting, session: Session
) -> tuple[Meeting, list[Invitation], list[Event]]:
    """Free seats go to the first on the waitlist, who are told."""
    if domain.free_seats(meeting) == 0:
        return meeting, [], []
    db = ctx.service.db
    waiting = await store.invitations_of_meeting(
        db, meeting.id, session, [Participation.WAITLISTED]
    )
    meeting, promoted = domain.promote(meeting, domain.waitlist_order(waiting), ctx.clock())
    await store.save_invitations(db, promoted, session)
    told = await _known(ctx, promoted, session)
    events: list[Event] = [
        _tell(ctx, Promoted, meeting, who, inv, ics="REQUEST") for inv, who in told
    ]
    return meeting, promoted, events


# ---------------------------------------------------------------- scheduling


async def schedule(ctx: Context, cmd: ScheduleMeeting) -> MeetingView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[MeetingView, Sequence[Event]]:
        named = cmd.audience.ambassador_ids
        known = await store.ambassadors_by_id(db, named, session)
        meeting = domain.schedule(
            cmd,
            now=ctx.clock(),
            remind_before=ctx.remind_before,
            unknown_invitees=[a for a in dict.fromkeys(named) if a not in known],
        )
        await store.save_meeting(db, meeting, session)
        return meeting_view(meeting), [
            MeetingScheduled(meeting_id=meeting.id, meeting=meeting.info())
        ]

    view = await ctx.service.transaction(work)
    ctx.wakeup.set()
    return view


async def plan_year(ctx: Context, cmd: PlanYear) -> PlanYearResult:
    db = ctx.service.db
    plans = domain.plan_year(cmd)

    async def work(session: Session) -> tuple[PlanYearResult, Sequence[Event]]:
        now = ctx.clock()
        meetings: list[Meeting] = []
        for key, scheduled in plans:
            existing = await store.meeting_with_plan_key(db, key, session)
            if existing is not None:
                raise ServiceError(
                    ErrorCode.CONFLICT,
                    f"the meetings of {cmd.year} are planned already "
                    f"({existing.title}: {existing.id})",
                )
            meetings.append(
                domain.schedule(scheduled, now=now, remind_before=ctx.remind_before, plan_key=key)
            )
        for meeting in meetings:
            await store.save_meeting(db, meeting, session)
        events = [MeetingScheduled(meeting_id=m.id, meeting=m.info()) for m in meetings]
        return PlanYearResult(meetings=[meeting_view(m) for m in meetings]), events

    result = await ctx.service.transaction(work)
    ctx.wakeup.set()
    return result


async def invitation_round(ctx: Context, meeting_id: str) -> bool:
    """Invite the next round of the audience; True while there is more to invite.

    Each round commits its invitations, their events and the progress together: after a
    crash the next round starts where the last committed one ended, and nobody is invited
    twice (someone invited meanwhile, e.g. just activated, is skipped).
    """
    db = ctx.service.db
    batch_size = ctx.settings.events_fanout_batch

    async def work(session: Session) -> tuple[bool, Sequence[Event]]:
        meeting = await store.load_meeting(db, meeting_id, session)
        if meeting is None or not meeting.inviting:
            return False, []
        now = ctx.clock()
        if not domain.invitable(meeting, now):
            await store.save_meeting(db, meeting.model_copy(update={"inviting": False}), session)
            return False, []
        batch = await store.ambassadors_after(db, meeting.invite_cursor, batch_size, session)
        matching = [a for a in batch if domain.in_audience(meeting.audience, a)]
        invited = await store.invited_among(db, meeting.id, [a.id for a in matching], session)
        new = [(domain.invite(meeting, a.id, now), a) for a in matching if a.id not in invited]
        await store.insert_invitations(db, [inv for inv, _ in new], session)
        more = len(batch) == batch_size
        progressed = meeting.model_copy(
            update={
                "invite_cursor": batch[-1].id if batch else meeting.invite_cursor,
                "inviting": more,
            }
        )
        await store.save_meeting(db, progressed, session)
        return more, [_tell(ctx, Invited, meeting, who, inv, ics="REQUEST") for inv, who in new]

    return await ctx.service.transaction(work)


async def reschedule(ctx: Context, cmd: RescheduleMeeting) -> MeetingView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[Meeting, Sequence[Event]]:
        meeting = await _meeting(ctx, cmd.meeting_id, session)
        moved = domain.reschedule(
            meeting,
            starts=cmd.starts,
            ends=cmd.ends,
            place=cmd.place,
            online_url=cmd.online_url,
            now=ctx.clock(),
            remind_before=ctx.remind_before,
        )
        await store.save_meeting(db, moved, session)
        told = await store.invitations_of_meeting(db, moved.id, session, domain.TOLD_OF_CHANGES)
        events: list[Event] = [
            MeetingRescheduled(
                meeting_id=moved.id,
                meeting=moved.info(),
                previous_starts_at=meeting.starts_at,
                previous_ends_at=meeting.ends_at,
            )
        ]
        events += [
            _tell(
                ctx,
                InvitationUpdated,
                moved,
                who,
                inv,
                ics="REQUEST",
                previous_starts_at=meeting.starts_at,
                previous_ends_at=meeting.ends_at,
            )
            for inv, who in await _known(ctx, told, session)
        ]
        return moved, events

    return await _view(ctx, await ctx.service.transaction(work))


async def cancel(ctx: Context, cmd: CancelMeeting) -> MeetingView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[Meeting, Sequence[Event]]:
        meeting = await _meeting(ctx, cmd.meeting_id, session)
        cancelled = domain.cancel(meeting, reason=cmd.reason, now=ctx.clock())
        await store.save_meeting(db, cancelled, session)
        told = await store.invitations_of_meeting(db, cancelled.id, session, domain.TOLD_OF_CHANGES)
        events: list[Event] = [
            MeetingCancelled(
                meeting_id=cancelled.id, meeting=cancelled.info(), reason=cancelled.cancel_reason
            )
        ]
        events += [
            _tell(
                ctx,
                InvitationCancelled,
                cancelled,
                who,
                ics="CANCEL",
                reason=cancelled.cancel_reason,
            )
            for _, who in await _known(ctx, told, session)
        ]
        return cancelled, events

    return await _view(ctx, await ctx.service.transaction(work))


# ---------------------------------------------------------------- answers


async def _answer(
    ctx: Context, session: Session, meeting: Meeting, invitation: Invitation, rsvp: Rsvp
) -> tuple[RsvpResult, Sequence[Event]]:
    db = ctx.service.db
    now = ctx.clock()
    answered, updated = domain.answer(meeting, invitation, rsvp.answer, now)
    await store.save_invitations(db, [updated], session)
    events: list[Event] = []
    position = None
    if updated.participation == Participation.WAITLISTED:
        waiting = await store.invitations_of_meeting(
            db, meeting.id, session, [Participation.WAITLISTED]
        )
        position = [i.ambassador_id for i in domain.waitlist_order(waiting)].index(
            updated.ambassador_id
        ) + 1
        if invitation.participation != Participation.WAITLISTED:
            for inv, who in await _known(ctx, [updated], session):
                events.append(_tell(ctx, Waitlisted, meeting, who, inv, position=position))
    answered, promoted, told = await _hand_on_seats(ctx, answered, session)
    # Always written: two answers racing for the last seat conflict here, one is retried.
    await store.save_meeting(db, answered, session)
    result = RsvpResult(
        meeting_id=meeting.id,
        ambassador_id=updated.ambassador_id,
        participation=updated.participation,
        waitlist_position=position,
        promoted=[p.ambassador_id for p in promoted],
    )
    return result, [*events, *told]


async def rsvp(ctx: Context, cmd: Rsvp) -> RsvpResult:
    db = ctx.service.db

    async def work(session: Session) -> tuple[RsvpResult, Sequence[Event]]:
        meeting = await _meeting(ctx, cmd.meeting_id, session)
        invitation = await store.load_invitation(db, cmd.meeting_id, cmd.ambassador_id, session)
        if invitation is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND,
                f"ambassador {cmd.ambassador_id} is not invited to meeting {cmd.meeting_id}",
            )
        return await _answer(ctx, session, meeting, invitation, cmd)

    return await ctx.service.transaction(work)


async def answer_invitation(ctx: Context, cmd: AnswerInvitation) -> RsvpResult:
    db = ctx.service.db

    async def work(session: Session) -> tuple[RsvpResult, Sequence[Event]]:
        invitation = await store.invitation_by_token(db, cmd.token, session)
        if invitation is None:
            raise ServiceError(ErrorCode.INVALID_TOKEN, "the answer link is not valid")
        meeting = await _meeting(ctx, invitation.meeting_id, session)
        answer = Rsvp(
            meeting_id=invitation.meeting_id,
            ambassador_id=invitation.ambassador_id,
            answer=cmd.answer,
        )
        return await _answer(ctx, session, meeting, invitation, answer)

    return await ctx.service.transaction(work)


# ---------------------------------------------------------------- reminders


async def remind(ctx: Context, meeting_id: str) -> int:
    """Tell those with a seat that the meeting is soon; once per scheduled time.

    Read and marked in one transaction with the reminders' events: a meeting cancelled or
    moved meanwhile is seen as it is now, and a crash sends all of them or none.
    """
    db = ctx.service.db

    async def work(session: Session) -> tuple[int, Sequence[Event]]:
        meeting = await store.load_meeting(db, meeting_id, session)
        now = ctx.clock()
        if meeting is None or not meeting.reminder_pending:
            return 0, []
        if meeting.reminder_due_at is not None and meeting.reminder_due_at > now:
            return 0, []  # moved later meanwhile
        seated = await store.invitations_of_meeting(
            db, meeting.id, session, [Participation.ATTENDING]
        )
        recipients = domain.reminder_recipients(meeting, seated, now)
        await store.save_meeting(db, domain.reminded(meeting), session)
        events = [
            _tell(ctx, ReminderDue, meeting, who, inv)
            for inv, who in await _known(ctx, recipients, session)
        ]
        return len(events), events

    return await ctx.service.transaction(work)


# ---------------------------------------------------------------- after the meeting


async def record_attendance(ctx: Context, cmd: RecordAttendance) -> AttendanceResult:
    db = ctx.service.db

    async def work(session: Session) -> tuple[AttendanceResult, Sequence[Event]]:
        meeting = await _meeting(ctx, cmd.meeting_id, session)
        ids = list(dict.fromkeys(cmd.attended))
        invited = await store.invited_among(db, meeting.id, ids, session)
        known = await store.ambassadors_by_id(db, [a for a in ids if a not in invited], session)
        unknown = [a for a in ids if a not in invited and a not in known]
        if unknown:
            raise domain.DomainValidationError(
                [FieldError(field="attended", message="not ambassadors: " + ", ".join(unknown))]
            )
        recorded = domain.record_attendance(meeting, ids, ctx.clock())
        await store.save_meeting(db, recorded, session)
        result = AttendanceResult(
            meeting_id=meeting.id,
            attended=len(recorded.attended),
            uninvited=[a for a in ids if a not in invited],
        )
        return result, []

    return await ctx.service.transaction(work)


async def close(ctx: Context, cmd: CloseMeeting) -> MeetingView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[Meeting, Sequence[Event]]:
        meeting = await _meeting(ctx, cmd.meeting_id, session)
        came = await store.ambassadors_by_id(db, meeting.attended, session)
        held = domain.close(
            meeting,
            minutes=cmd.minutes,
            outcomes=cmd.outcomes,
            organisations=[a.organisation for a in came.values()],
            now=ctx.clock(),
        )
        await store.save_meeting(db, held, session)
        assert held.held_at is not None
        event = MeetingHeld(
            meeting_id=held.id,
            kind=held.kind,
            title=held.title,
            date=domain.held_on(held),
            starts_at=held.starts_at,
            held_at=held.held_at,
            public=held.public,
            attendee_count=len(held.attended),
            attending_organisations=list(held.attending_organisations),
            outcomes=list(held.outcomes),
        )
        return held, [event]

    return await _view(ctx, await ctx.service.transaction(work))


# ---------------------------------------------------------------- queries


async def list_meetings(ctx: Context, query: ListMeetings) -> MeetingPage:
    db = ctx.service.db
    total, meetings = await store.meeting_page(
        db,
        upcoming_after=ctx.clock() if query.upcoming else None,
        limit=query.limit,
        offset=query.offset,
    )
    counts = await store.participation_counts(db, [m.id for m in meetings])
    return MeetingPage(total=total, items=[meeting_view(m, counts[m.id]) for m in meetings])


async def show_meeting(ctx: Context, query: ShowMeeting) -> MeetingDetail:
    db = ctx.service.db
    meeting = await _meeting(ctx, query.meeting_id)
    invitations = await store.invitations_of_meeting(db, meeting.id)
    people = await store.ambassadors_by_id(
        db, [*(i.ambassador_id for i in invitations), *meeting.attended]
    )
    waitlist = domain.waitlist_order(invitations)
    place = {i.ambassador_id: n for n, i in enumerate(waitlist, start=1)}
    attended = set(meeting.attended)

    def invitee(
        ambassador_id: str, participation: Participation, inv: Invitation | None
    ) -> InviteeView:
        who = people.get(ambassador_id)
        return InviteeView(
            ambassador_id=ambassador_id,
            # Withdrawn since (kept for a held meeting's record): shown without a name.
            name=who.name if who else "(no longer an ambassador)",
            organisation=who.organisation if who else None,
            participation=participation,
            answered_at=inv.answered_at if inv else None,
            waitlist_position=place.get(ambassador_id),
            attended=ambassador_id in attended,
        )

    invitees = [invitee(i.ambassador_id, i.participation, i) for i in invitations]
    invited_ids = {i.ambassador_id for i in invitations}
    # Came without an invitation: listed too, so the record of who came is complete.
    invitees += [
        invitee(a, Participation.INVITED, None) for a in meeting.attended if a not in invited_ids
    ]
    by_id = {v.ambassador_id: v for v in invitees}
    return MeetingDetail(
        meeting=meeting_view(meeting, _count(invitations)),
        invitees=invitees,
        waitlist=[by_id[i.ambassador_id] for i in waitlist],
        minutes=meeting.minutes,
    )


def _count(invitations: Sequence[Invitation]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in invitations:
        counts[i.participation.value] = counts.get(i.participation.value, 0) + 1
    return counts


async def public_calendar(ctx: Context, _: GetCalendar) -> Calendar:
    meetings = await store.public_meetings(ctx.service.db)
    ics = calendar.public_calendar(
        [(m.info(), m.state) for m in meetings],
        uid_domain=ctx.settings.mail_message_id_domain,
        now=ctx.clock(),
    )
    return Calendar(ics=ics, meetings=len(meetings))


# ---------------------------------------------------------------- reactions to ambassadors


def _known_ambassador(event: Activated | ProfileUpdated) -> KnownAmbassador:
    return KnownAmbassador(
        id=event.ambassador_id,
        name=event.name,
        email=event.email,
        organisation=event.organisation,
        themes=tuple(event.themes),
        core_areas=tuple(event.core_areas),
    )


async def _invite_to_upcoming(
    ctx: Context, ambassador: KnownAmbassador, session: Session
) -> list[Event]:
    """Invitations to the meetings still to come whose audience includes ``ambassador`` and
    that have not invited them yet."""
    db = ctx.service.db
    now = ctx.clock()
    events: list[Event] = []
    for meeting in await store.upcoming_meetings(db, now, session):
        if not domain.in_audience(meeting.audience, ambassador):
            continue
        if await store.load_invitation(db, meeting.id, ambassador.id, session) is not None:
            continue
        invitation = domain.invite(meeting, ambassador.id, now)
        await store.insert_invitations(db, [invitation], session)
        events.append(_tell(ctx, Invited, meeting, ambassador, invitation, ics="REQUEST"))
    return events


async def ambassador_activated(ctx: Context, event: Activated, session: Session) -> list[Event]:
    """Known from now on; invited to the upcoming meetings whose audience includes them."""
    ambassador = _known_ambassador(event)
    await store.save_ambassador(ctx.service.db, ambassador, session)
    return await _invite_to_upcoming(ctx, ambassador, session)


async def ambassador_profile_updated(
    ctx: Context, event: ProfileUpdated, session: Session
) -> list[Event]:
    """New name, address or themes for an active ambassador this service knows; new themes
    or core areas bring invitations to the upcoming meetings for them (none is taken back)."""
    db = ctx.service.db
    if event.status != AmbassadorStatus.ACTIVE:
        return []
    if await store.load_ambassador(db, event.ambassador_id, session) is None:
        return []
    ambassador = _known_ambassador(event)
    await store.save_ambassador(db, ambassador, session)
    return await _invite_to_upcoming(ctx, ambassador, session)


async def _leave_upcoming(
    ctx: Context, ambassador_id: str, session: Session, *, everything: bool
) -> list[Event]:
    """Take the ambassador out of meetings still to come (all meetings if ``everything``);
    a seat they held goes to the first on that meeting's waitlist."""
    db = ctx.service.db
    now = ctx.clock()
    events: list[Event] = []
    gone: list[Invitation] = []
    for invitation in await store.invitations_of_ambassador(db, ambassador_id, session):
        meeting = await store.load_meeting(db, invitation.meeting_id, session)
        if meeting is not None and not domain.invitable(meeting, now):
            if everything:
                gone.append(invitation)
            continue
        gone.append(invitation)
        if meeting is None:
            continue
        left = domain.leave(meeting, invitation)
        if left is not meeting:  # they held a seat
            left, _, told = await _hand_on_seats(ctx, left, session)
            events += told
            await store.save_meeting(db, left, session)
    await store.delete_invitations(db, gone, session)
    return events


async def ambassador_withdrawn(ctx: Context, event: Withdrawn, session: Session) -> list[Event]:
    """No more invitations; answers to meetings still to come are dropped."""
    await store.delete_ambassador(ctx.service.db, event.ambassador_id, session)
    return await _leave_upcoming(ctx, event.ambassador_id, session, everything=False)


async def ambassador_erased(ctx: Context, event: Erased, session: Session) -> list[Event]:
    """Nothing personal stays: the read model entry, every invitation and answer, the
    attendance records; their events on the stream are purged by the sweep."""
    db = ctx.service.db
    ambassador_id = event.ambassador_id
    await store.delete_ambassador(db, ambassador_id, session)
    events = await _leave_upcoming(ctx, ambassador_id, session, everything=True)
    for meeting in await store.meetings_attended_by(db, ambassador_id, session):
        await store.save_meeting(db, domain.forget_attendee(meeting, ambassador_id), session)
    await store.remember_erasure(db, ambassador_id, session)
    return events


# ---------------------------------------------------------------- background


async def housekeeping(ctx: Context) -> None:
    """Forever: invite audiences in rounds, send due reminders, purge erased people's
    events from the stream. Woken at once by a new meeting, else every poll interval."""
    db = ctx.service.db
    while True:
        ctx.wakeup.clear()
        for meeting_id in await store.meetings_inviting(db):
            try:
                while await invitation_round(ctx, meeting_id):
                    pass
            except Exception:
                log.exception("an invitation round failed", meeting_id=meeting_id)
        for meeting_id in await store.meetings_due_for_reminders(db, ctx.clock()):
            try:
                sent = await remind(ctx, meeting_id)
                if sent:
                    log.info("reminders sent", meeting_id=meeting_id, count=sent)
            except Exception:
                log.exception("sending reminders failed", meeting_id=meeting_id)
        await _purge_erased(ctx)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.wakeup.wait(), ctx.settings.events_poll_seconds)


async def _purge_erased(ctx: Context) -> None:
    db = ctx.service.db
    for ambassador_id in await store.erasures_to_purge(db):
        try:
            left = await purge_published_events(db, ctx.service.js, ambassador_id)
            if left == 0:
                await store.erasure_purged(db, ambassador_id)
        except Exception:
            log.exception("purging an erased ambassador's events failed")
