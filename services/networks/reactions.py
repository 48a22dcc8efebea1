"""What the networks service does when another service announces something.

The runtime has updated its read model of ambassadors before any of these runs, does the
generic part of an erasure and ignores events about someone erased. What is left here is
this service's own: numbering each change for the matching's pool, and keeping the held
meetings whose outcomes become challenges.
"""

from __future__ import annotations

from contracts.ambassadors import Activated, Erased, ProfileUpdated, Withdrawn
from contracts.events import MeetingHeld
from contracts.networks import MemberLeft, MemberState
from services.networks import lifecycle, notices, store
from services.networks.challenges import HeldMeeting
from services.networks.context import Context
from services.runtime.unit_of_work import UnitOfWork


async def ambassador_changed(
    ctx: Context, uow: UnitOfWork, event: Activated | ProfileUpdated | Withdrawn | Erased
) -> None:
    """Every replica's matching pool picks the change up at its next suggestion."""
    await store.stamp_ambassador_change(uow, event.ambassador_id)


async def ambassador_withdrawn(ctx: Context, uow: UnitOfWork, event: Withdrawn) -> None:
    """Out of every open network (the counts stay true); not someone active again: a
    withdrawal replayed after the rejoin changes nothing."""
    if await ctx.ambassadors.active(uow, event.ambassador_id) is not None:
        return
    for membership in await store.memberships_of_ambassador(uow, event.ambassador_id):
        if not membership.network_open or membership.state == MemberState.REMOVED:
            continue
        await store.save_memberships(uow, [lifecycle.remove(membership)])
        if membership.state == MemberState.JOINED:
            uow.emit(
                MemberLeft(
                    network_id=membership.network_id,
                    ambassador_id=event.ambassador_id,
                    reason="withdrawn",
                )
            )
        network = await store.load_network(uow, membership.network_id)
        if network is not None:
            await notices.check_rules(ctx, uow, network, event.ambassador_id, "withdrawn")


async def ambassador_erased(ctx: Context, uow: UnitOfWork, event: Erased) -> None:
    """Nothing personal stays: every membership goes (the networks keep their counts of
    who is in them now; the runtime purges the person's events from our stream)."""
    held = await store.memberships_of_ambassador(uow, event.ambassador_id)
    await store.delete_memberships_of(uow, event.ambassador_id)
    await store.forget_in_alerts(uow, event.ambassador_id)
    # Staff are told where the network now falls short, naming nobody.
    for network_id in sorted({m.network_id for m in held if m.state != MemberState.REMOVED}):
        network = await store.load_network(uow, network_id)
        if network is not None:
            await notices.check_rules(ctx, uow, network, None, "erased")


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
