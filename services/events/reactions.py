"""What the events service does when the ambassadors service announces something.

The runtime has updated its read model of ambassadors before any of these runs (so they
read the ambassador as they are now), does the generic part of an erasure (dead letters,
the person's events on our stream) and ignores events about someone erased. What is left
here is this service's own: invitations, answers and attendance.
"""

from __future__ import annotations

from datetime import datetime

from contracts.ambassadors import Activated, Erased, ProfileUpdated, Withdrawn
from contracts.networks import MemberJoined, MemberLeft, NetworkClosed, NetworkFormed
from services.events import domain, store
from services.events.context import Context
from services.events.domain import Invitation
from services.events.invitees import hand_on_seats, invite
from services.runtime.unit_of_work import UnitOfWork


async def _invite_to_upcoming(
    ctx: Context, uow: UnitOfWork, ambassador_id: str, network_id: str | None = None
) -> None:
    """Invitations to the meetings still to come whose audience includes the ambassador
    (if active) and that have not invited them yet (of one network's meetings only, when
    ``network_id`` is given: they just joined it)."""
    ambassador = await ctx.ambassadors.active(uow, ambassador_id)
    if ambassador is None:
        return
    if network_id is None:
        meetings = await store.upcoming_meetings(uow, uow.now)
    else:
        meetings = await store.upcoming_meetings_of_network(uow, network_id, uow.now)
    for meeting in meetings:
        network = meeting.audience.network_id
        members = await store.network_members(uow, network) if network else set[str]()
        if not domain.in_audience(meeting.audience, ambassador, members):
            continue
        if await store.load_invitation(uow, meeting.id, ambassador.id) is not None:
            continue
        await invite(ctx, uow, meeting, [ambassador])


async def ambassador_activated(ctx: Context, uow: UnitOfWork, event: Activated) -> None:
    """Invited to the upcoming meetings whose audience includes them."""
    await _invite_to_upcoming(ctx, uow, event.ambassador_id)


async def ambassador_profile_updated(ctx: Context, uow: UnitOfWork, event: ProfileUpdated) -> None:
    """New themes or core areas bring invitations to the upcoming meetings for them (none
    is taken back)."""
    await _invite_to_upcoming(ctx, uow, event.ambassador_id)


async def _leave_upcoming(
    ctx: Context, uow: UnitOfWork, ambassador_id: str, *, everything: bool
) -> None:
    """Take the ambassador out of meetings still to come (all meetings if ``everything``);
    a seat they held goes to the first on that meeting's waitlist."""
    gone: list[Invitation] = []
    for invitation in await store.invitations_of_ambassador(uow, ambassador_id):
        meeting = await store.load_meeting(uow, invitation.meeting_id)
        if meeting is not None and not domain.invitable(meeting, uow.now):
            if everything:
                gone.append(invitation)
            continue
        gone.append(invitation)
        if meeting is None:
            continue
        left = domain.leave(meeting, invitation)
        if left is not meeting:  # they held a seat
            left, _ = await hand_on_seats(ctx, uow, left)
            await store.save_meeting(uow, left)
    await store.delete_invitations(uow, gone)


async def ambassador_withdrawn(ctx: Context, uow: UnitOfWork, event: Withdrawn) -> None:
    """No more invitations; answers to meetings still to come are dropped. (Not for someone
    active again: a withdrawal replayed after the rejoin changes nothing.)"""
    if await ctx.ambassadors.active(uow, event.ambassador_id) is not None:
        return
    await _leave_upcoming(ctx, uow, event.ambassador_id, everything=False)


async def network_formed(ctx: Context, uow: UnitOfWork, event: NetworkFormed) -> None:
    """Its meetings may be scheduled now."""
    await store.save_network(uow, event.network_id, event.network.title, open_=True)


async def network_closed(ctx: Context, uow: UnitOfWork, event: NetworkClosed) -> None:
    """No new meetings for it (those scheduled stay, and are cancelled by staff if need be)."""
    await store.save_network(uow, event.network_id, event.network.title, open_=False)


def _ms(value: datetime) -> datetime:
    # MongoDB keeps milliseconds: compare what was stored with what it would store.
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


async def _newer(uow: UnitOfWork, event: MemberJoined | MemberLeft) -> bool:
    """Whether ``event`` is newer than what is known of this member (a replayed or late
    one changes nothing)."""
    known = await store.network_member_as_of(uow, event.network_id, event.ambassador_id)
    return known is None or _ms(event.occurred_at) > known


async def member_joined(ctx: Context, uow: UnitOfWork, event: MemberJoined) -> None:
    """In the audience of the network's meetings; invited at once to those still to come
    (while the network is open)."""
    if not await _newer(uow, event):
        return
    await store.set_network_member(
        uow, event.network_id, event.ambassador_id, present=True, as_of=_ms(event.occurred_at)
    )
    if await store.network_is_open(uow, event.network_id):
        await _invite_to_upcoming(ctx, uow, event.ambassador_id, event.network_id)


async def member_left(ctx: Context, uow: UnitOfWork, event: MemberLeft) -> None:
    """No longer invited to the network's meetings (an invitation already sent stays: the
    meeting is still theirs to come to, if they wish)."""
    if not await _newer(uow, event):
        return
    await store.set_network_member(
        uow, event.network_id, event.ambassador_id, present=False, as_of=_ms(event.occurred_at)
    )


async def ambassador_erased(ctx: Context, uow: UnitOfWork, event: Erased) -> None:
    """Nothing personal stays: every invitation and answer, the attendance records, the
    networks they were in."""
    ambassador_id = event.ambassador_id
    await store.forget_network_member(uow, ambassador_id)
    await _leave_upcoming(ctx, uow, ambassador_id, everything=True)
    for meeting in await store.meetings_attended_by(uow, ambassador_id):
        await store.save_meeting(uow, domain.forget_attendee(meeting, ambassador_id))
