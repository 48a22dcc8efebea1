"""The plan-year job: the year's meetings are scheduled at once, and the job follows
their invitations (sent in rounds by the housekeeping loop) until every meeting has
invited its whole audience; its report is the planned meetings, with their invitees."""

from __future__ import annotations

from contracts.events import PlanYearResult
from services.events import store
from services.events.context import Context
from services.events.handlers import meeting_view
from services.runtime import jobs
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)


async def follow(ctx: Context, uow: UnitOfWork, job_id: str) -> bool:
    """Move the job on (the invitations so far); finish it once no meeting of it is
    still inviting. True when it finished."""
    meetings = await store.meetings_of_plan_job(uow, job_id)
    ids = [m.id for m in meetings]
    invited = await store.invitation_count(uow, ids)
    if any(m.inviting for m in meetings):
        await jobs.progress(uow, job_id, done=invited)
        return False
    counts = await store.participation_counts(uow, ids)
    report = PlanYearResult(meetings=[meeting_view(m, counts[m.id]) for m in meetings])
    await jobs.progress(uow, job_id, done=invited, total=invited)
    await jobs.finish(uow, job_id, report)
    for meeting in meetings:
        await store.save_meeting(uow, meeting.model_copy(update={"plan_job": None}))
    return True
