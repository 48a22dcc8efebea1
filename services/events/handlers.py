"""One function per command and query: load, call the domain, save, emit.

Each command runs in the unit of work the runtime gives it (``uow``); the reactions to the
ambassadors service's events are in ``reactions``, the invitation rounds and reminders in
``housekeeping``.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.errors import DomainValidationError, ErrorCode, FieldError, ServiceError
from contracts.events import (
    AnswerInvitation,
    AttendanceResult,
    Calendar,
    CancelMeeting,
    CloseMeeting,
    Counts,
    Endpoints,
    GetCalendar,
    InvitationCancelled,
    InvitationUpdated,
    InvitationView,
    InviteeView,
    ListMeetings,
    MeetingCancelled,
    MeetingDetail,
    MeetingHeld,
    MeetingKind,
    MeetingPage,
    MeetingRescheduled,
    MeetingScheduled,
    MeetingView,
    Participation,
    PlanYear,
    PublicMeeting,
    RecordAttendance,
    RescheduleMeeting,
    Rsvp,
    RsvpResult,
    ScheduleMeeting,
    ShowInvitation,
    ShowMeeting,
    Waitlisted,
)
from contracts.jobs import JobView
from services.events import calendar, domain, store
from services.events.context import Context
from services.events.domain import Invitation, Meeting
from services.events.invitees import hand_on_seats, tell, with_ambassadors
from services.runtime.tokens import token_hash
from services.runtime.unit_of_work import Reading, Scope, UnitOfWork

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


async def _view(scope: Scope, meeting: Meeting) -> MeetingView:
    counts = await store.participation_counts(scope, [meeting.id])
    return meeting_view(meeting, counts[meeting.id])


async def _meeting(scope: Scope, meeting_id: str) -> Meeting:
    meeting = await store.load_meeting(scope, meeting_id)
    if meeting is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"meeting {meeting_id} not found")
    return meeting


# ---------------------------------------------------------------- scheduling


async def schedule(ctx: Context, uow: UnitOfWork, cmd: ScheduleMeeting) -> MeetingView:
    named = cmd.audience.ambassador_ids
    known = await ctx.ambassadors.active_by_id(uow, named)
    network = cmd.audience.network_id
    meeting = domain.schedule(
        cmd,
        now=uow.now,
        remind_before=ctx.remind_before,
        unknown_invitees=[a for a in dict.fromkeys(named) if a not in known],
        unknown_network=network is not None and not await store.network_is_open(uow, network),
    )
    await store.save_meeting(uow, meeting)
    uow.emit(MeetingScheduled(meeting_id=meeting.id, meeting=meeting.info()))
    # The audience is invited in rounds, by the housekeeping loop.
    uow.after_commit(ctx.wake_housekeeping)
    return meeting_view(meeting)


async def plan_year(ctx: Context, uow: UnitOfWork, cmd: PlanYear) -> JobView:
    """The year's fixed meetings, scheduled now; the job follows their invitations
    (``planning``) and ends with the planned meetings."""
    job = await ctx.service.start_job(uow, Endpoints.PLAN_YEAR)
    meetings: list[Meeting] = []
    for key, scheduled in domain.plan_year(cmd):
        existing = await store.meeting_with_plan_key(uow, key)
        if existing is not None:
            raise ServiceError(
                ErrorCode.CONFLICT,
                f"the meetings of {cmd.year} are planned already ({existing.title}: {existing.id})",
            )
        try:
            meetings.append(
                domain.schedule(
                    scheduled, now=uow.now, remind_before=ctx.remind_before, plan_key=key
                ).model_copy(update={"plan_job": job.id})
            )
        except DomainValidationError as exc:
            # Said of the plan's own field: the plan has no ``starts``.
            field = (
                "assembly"
                if scheduled.kind == MeetingKind.ANNUAL_ASSEMBLY
                else ("ambassador_meetings")
            )
            raise DomainValidationError(
                [FieldError(field=field, message=d.message) for d in exc.error.details]
            ) from None
    for meeting in meetings:
        await store.save_meeting(uow, meeting)
        uow.emit(MeetingScheduled(meeting_id=meeting.id, meeting=meeting.info()))
    uow.about(*(m.id for m in meetings))
    uow.after_commit(ctx.wake_housekeeping)
    return job


async def reschedule(ctx: Context, uow: UnitOfWork, cmd: RescheduleMeeting) -> MeetingView:
    meeting = await _meeting(uow, cmd.meeting_id)
    moved = domain.reschedule(
        meeting,
        starts=cmd.starts,
        ends=cmd.ends,
        place=cmd.place,
        online_url=cmd.online_url,
        now=uow.now,
        remind_before=ctx.remind_before,
    )
    await store.save_meeting(uow, moved)
    uow.emit(
        MeetingRescheduled(
            meeting_id=moved.id,
            meeting=moved.info(),
            previous_starts_at=meeting.starts_at,
            previous_ends_at=meeting.ends_at,
        )
    )
    told = await store.invitations_of_meeting(uow, moved.id, domain.TOLD_OF_CHANGES)
    for _, who in await with_ambassadors(ctx, uow, told):
        tell(
            ctx,
            uow,
            InvitationUpdated,
            moved,
            who,
            answerable=True,
            ics="REQUEST",
            previous_starts_at=meeting.starts_at,
            previous_ends_at=meeting.ends_at,
        )
    return await _view(uow, moved)


async def cancel(ctx: Context, uow: UnitOfWork, cmd: CancelMeeting) -> MeetingView:
    meeting = await _meeting(uow, cmd.meeting_id)
    cancelled = domain.cancel(meeting, reason=cmd.reason, now=uow.now)
    await store.save_meeting(uow, cancelled)
    uow.emit(
        MeetingCancelled(
            meeting_id=cancelled.id, meeting=cancelled.info(), reason=cancelled.cancel_reason
        )
    )
    told = await store.invitations_of_meeting(uow, cancelled.id, domain.TOLD_OF_CHANGES)
    for _, who in await with_ambassadors(ctx, uow, told):
        tell(
            ctx,
            uow,
            InvitationCancelled,
            cancelled,
            who,
            ics="CANCEL",
            reason=cancelled.cancel_reason,
        )
    return await _view(uow, cancelled)


# ---------------------------------------------------------------- answers


async def _waitlist_place(scope: Scope, invitation: Invitation) -> int:
    """1 = next in line."""
    waiting = await store.invitations_of_meeting(
        scope, invitation.meeting_id, [Participation.WAITLISTED]
    )
    order = [i.ambassador_id for i in domain.waitlist_order(waiting)]
    return order.index(invitation.ambassador_id) + 1


async def _answer(
    ctx: Context, uow: UnitOfWork, meeting: Meeting, invitation: Invitation, rsvp: Rsvp
) -> RsvpResult:
    answered, updated = domain.answer(meeting, invitation, rsvp.answer, uow.now)
    await store.save_invitations(uow, [updated])
    position = None
    if updated.participation == Participation.WAITLISTED:
        position = await _waitlist_place(uow, updated)
        if invitation.participation != Participation.WAITLISTED:
            for _, who in await with_ambassadors(ctx, uow, [updated]):
                tell(ctx, uow, Waitlisted, meeting, who, answerable=True, position=position)
    answered, promoted = await hand_on_seats(ctx, uow, answered)
    # Always written: two answers racing for the last seat conflict here, one is retried.
    await store.save_meeting(uow, answered)
    return RsvpResult(
        meeting_id=meeting.id,
        ambassador_id=updated.ambassador_id,
        participation=updated.participation,
        waitlist_position=position,
        promoted=[p.ambassador_id for p in promoted],
    )


async def rsvp(ctx: Context, uow: UnitOfWork, cmd: Rsvp) -> RsvpResult:
    meeting = await _meeting(uow, cmd.meeting_id)
    invitation = await store.load_invitation(uow, cmd.meeting_id, cmd.ambassador_id)
    if invitation is None:
        raise ServiceError(
            ErrorCode.NOT_FOUND,
            f"ambassador {cmd.ambassador_id} is not invited to meeting {cmd.meeting_id}",
        )
    return await _answer(ctx, uow, meeting, invitation, cmd)


async def _invitation_of_link(ctx: Context, scope: Scope, token: str) -> Invitation:
    parts = ctx.answers.parts(token, 2)
    if parts is not None:
        meeting_id, ambassador_id = parts
        invitation = await store.load_invitation(scope, str(meeting_id), str(ambassador_id))
    else:
        # A link mailed by an older release: a random token, stored as its hash.
        invitation = await store.invitation_by_token_hash(scope, token_hash(token))
    if invitation is None:
        raise ServiceError(ErrorCode.INVALID_TOKEN, "the answer link is not valid")
    return invitation


async def answer_invitation(ctx: Context, uow: UnitOfWork, cmd: AnswerInvitation) -> RsvpResult:
    invitation = await _invitation_of_link(ctx, uow, cmd.token)
    meeting = await _meeting(uow, invitation.meeting_id)
    answer = Rsvp(
        meeting_id=invitation.meeting_id,
        ambassador_id=invitation.ambassador_id,
        answer=cmd.answer,
    )
    return await _answer(ctx, uow, meeting, invitation, answer)


# ---------------------------------------------------------------- after the meeting


async def record_attendance(
    ctx: Context, uow: UnitOfWork, cmd: RecordAttendance
) -> AttendanceResult:
    meeting = await _meeting(uow, cmd.meeting_id)
    ids = list(dict.fromkeys(cmd.attended))
    invited = await store.invited_among(uow, meeting.id, ids)
    known = await ctx.ambassadors.active_by_id(uow, [a for a in ids if a not in invited])
    unknown = [a for a in ids if a not in invited and a not in known]
    if unknown:
        raise DomainValidationError(
            [FieldError(field="attended", message="not ambassadors: " + ", ".join(unknown))]
        )
    recorded = domain.record_attendance(meeting, ids, uow.now)
    await store.save_meeting(uow, recorded)
    return AttendanceResult(
        meeting_id=meeting.id,
        attended=len(recorded.attended),
        uninvited=[a for a in ids if a not in invited],
    )


async def close(ctx: Context, uow: UnitOfWork, cmd: CloseMeeting) -> MeetingView:
    meeting = await _meeting(uow, cmd.meeting_id)
    came = await ctx.ambassadors.active_by_id(uow, meeting.attended)
    held = domain.close(
        meeting,
        minutes=cmd.minutes,
        outcomes=cmd.outcomes,
        organisations=[a.organisation for a in came.values()],
        now=uow.now,
    )
    await store.save_meeting(uow, held)
    assert held.held_at is not None
    uow.emit(
        MeetingHeld(
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
    )
    return await _view(uow, held)


# ---------------------------------------------------------------- queries


async def list_meetings(ctx: Context, scope: Reading, query: ListMeetings) -> MeetingPage:
    total, meetings = await store.meeting_page(
        scope,
        upcoming_after=scope.now if query.upcoming else None,
        limit=query.limit,
        offset=query.offset,
    )
    counts = await store.participation_counts(scope, [m.id for m in meetings])
    return MeetingPage(total=total, items=[meeting_view(m, counts[m.id]) for m in meetings])


async def show_meeting(ctx: Context, scope: Reading, query: ShowMeeting) -> MeetingDetail:
    meeting = await _meeting(scope, query.meeting_id)
    invitations = await store.invitations_of_meeting(scope, meeting.id)
    people = await ctx.ambassadors.active_by_id(
        scope, [*(i.ambassador_id for i in invitations), *meeting.attended]
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


async def show_invitation(ctx: Context, scope: Reading, query: ShowInvitation) -> InvitationView:
    invitation = await _invitation_of_link(ctx, scope, query.token)
    meeting = await _meeting(scope, invitation.meeting_id)
    position = None
    if invitation.participation == Participation.WAITLISTED:
        position = await _waitlist_place(scope, invitation)
    seats_left = (
        None if meeting.capacity is None else max(0, meeting.capacity - meeting.attending_count)
    )
    return InvitationView(
        meeting=meeting.info(),
        state=meeting.state,
        participation=invitation.participation,
        waitlist_position=position,
        seats_left=seats_left,
    )


def _count(invitations: Sequence[Invitation]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in invitations:
        counts[i.participation.value] = counts.get(i.participation.value, 0) + 1
    return counts


async def public_calendar(ctx: Context, scope: Reading, _: GetCalendar) -> Calendar:
    meetings = await store.public_meetings(scope)
    ics = calendar.public_calendar(
        [(m.info(), m.state) for m in meetings],
        uid_domain=ctx.settings.mail_message_id_domain,
        now=scope.now,
    )
    entries = [PublicMeeting(meeting=m.info(), state=m.state) for m in meetings]
    return Calendar(ics=ics, meetings=len(meetings), entries=entries)
