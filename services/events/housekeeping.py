"""The events service's background work: audiences invited in rounds, due reminders sent.

One step of the housekeeping loop (``step``) runs a round of each meeting still inviting,
the reminders that are due and the plan-year jobs' progress, each in a unit of work of its
own; the loop runs it again
at once while a round says there is more, otherwise after the poll interval or when a
newly scheduled meeting wakes it.
"""

from __future__ import annotations

from functools import partial

from contracts.events import Participation, ReminderDue
from services.events import domain, planning, store
from services.events.context import Context
from services.events.invitees import invite, tell, with_ambassadors
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)


async def invitation_round(ctx: Context, uow: UnitOfWork, meeting_id: str) -> bool:
    """Invite the next round of the audience; True while there is more to invite.

    Each round commits its invitations, their events and the progress together: after a
    crash the next round starts where the last committed one ended, and nobody is invited
    twice (someone invited meanwhile, e.g. just activated, is skipped).
    """
    meeting = await store.load_meeting(uow, meeting_id)
    if meeting is None or not meeting.inviting:
        return False
    if not domain.invitable(meeting, uow.now):
        await store.save_meeting(uow, meeting.model_copy(update={"inviting": False}))
        return False
    batch_size = ctx.settings.events_fanout_batch
    batch = await ctx.ambassadors.active_after(uow, meeting.invite_cursor, batch_size)
    network = meeting.audience.network_id
    members = await store.network_members(uow, network) if network else set[str]()
    matching = [a for a in batch if domain.in_audience(meeting.audience, a, members)]
    invited = await store.invited_among(uow, meeting.id, [a.id for a in matching])
    await invite(ctx, uow, meeting, [a for a in matching if a.id not in invited])
    more = len(batch) == batch_size
    progressed = meeting.model_copy(
        update={
            "invite_cursor": batch[-1].id if batch else meeting.invite_cursor,
            "inviting": more,
        }
    )
    await store.save_meeting(uow, progressed)
    return more


async def remind(ctx: Context, uow: UnitOfWork, meeting_id: str) -> int:
    """Tell those with a seat that the meeting is soon; once per scheduled time. Returns
    how many were told.

    Read and marked in one unit of work with the reminders' events: a meeting cancelled or
    moved meanwhile is seen as it is now, and a crash sends all of them or none.
    """
    meeting = await store.load_meeting(uow, meeting_id)
    if meeting is None or not meeting.reminder_pending:
        return 0
    if meeting.reminder_due_at is not None and meeting.reminder_due_at > uow.now:
        return 0  # moved later meanwhile
    seated = await store.invitations_of_meeting(uow, meeting.id, [Participation.ATTENDING])
    recipients = domain.reminder_recipients(meeting, seated, uow.now)
    await store.save_meeting(uow, domain.reminded(meeting))
    told = 0
    for _, who in await with_ambassadors(ctx, uow, recipients):
        told += tell(ctx, uow, ReminderDue, meeting, who, answerable=True)
    return told


async def step(ctx: Context) -> bool:
    """One round of housekeeping: a round of invitations for each meeting still inviting,
    then the reminders that are due. Each meeting on its own: one that fails is logged and
    tried again in the next step. True while there are more invitations to send."""
    scope = ctx.service.reading()
    more = False
    for meeting_id in await store.meetings_inviting(scope):
        try:
            more |= await ctx.service.run(
                partial(invitation_round, ctx, meeting_id=meeting_id), name="an invitation round"
            )
        except Exception:
            log.exception("an invitation round failed", meeting_id=meeting_id)
    for meeting_id in await store.meetings_due_for_reminders(scope, scope.now):
        try:
            sent = await ctx.service.run(
                partial(remind, ctx, meeting_id=meeting_id), name="sending reminders"
            )
        except Exception:
            log.exception("sending reminders failed", meeting_id=meeting_id)
            continue
        if sent:
            log.info("reminders sent", meeting_id=meeting_id, count=sent)
    for job_id in await store.planning_jobs(scope):
        try:
            if await ctx.service.run(
                partial(planning.follow, ctx, job_id=job_id), name="following a year's plan"
            ):
                log.info("year planned, everyone invited", job_id=job_id)
        except Exception:
            log.exception("following a year's plan failed", job_id=job_id)
    return more
