"""What the networks service does when another service announces something.

The runtime has updated its read model of ambassadors before any of these runs, does the
generic part of an erasure and ignores events about someone erased. What is left here is
this service's own: numbering each change for the matching's pool, and keeping the held
meetings whose outcomes become challenges.
"""

from __future__ import annotations

from contracts.ambassadors import Activated, Erased, ProfileUpdated, Withdrawn
from contracts.events import MeetingHeld
from services.networks import store
from services.networks.challenges import HeldMeeting
from services.networks.context import Context
from services.runtime.unit_of_work import UnitOfWork


async def ambassador_changed(
    ctx: Context, uow: UnitOfWork, event: Activated | ProfileUpdated | Withdrawn | Erased
) -> None:
    """Every replica's matching pool picks the change up at its next suggestion."""
    await store.stamp_ambassador_change(uow, event.ambassador_id)


async def meeting_held(ctx: Context, uow: UnitOfWork, event: MeetingHeld) -> None:
    """Its outcomes become candidates for challenges; it counts toward the initiatives."""
    await store.save_held_meeting(
        uow,
        HeldMeeting(
            id=event.meeting_id,
            kind=event.kind,
            title=event.title,
            date=event.date,
            held_at=event.held_at,
            outcomes=tuple(event.outcomes),
        ),
    )
