"""What staff are told about a network, and when: a member declined or did not answer in
time (with the best replacement that keeps the network's rules), a member left and the
network no longer meets its rules, the end date is a week away. Each is one
``staff_notice`` in the unit of work of what caused it; the newsletter service mails it.

The housekeeping loop (``step``) expires the invitations whose deadline passed and tells of
the networks ending soon, each network in a unit of work of its own.
"""

from __future__ import annotations

import asyncio
from functools import partial

from contracts.events import COPENHAGEN
from contracts.networks import MemberState, NoticeKind, Replacement, StaffNotice
from services.networks import lifecycle, matching, replacement, store
from services.networks.context import Context
from services.networks.lifecycle import Network
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)

# Who still counts for the rules: in the network, or asked and may still say yes.
STILL_IN = frozenset({MemberState.JOINED, MemberState.INVITED})


async def _members(
    ctx: Context, uow: UnitOfWork, network: Network
) -> tuple[list[matching.CandidateRow], list[str]]:
    """The rows of those who still count, and everyone the network has asked. The pool
    catches up outside this unit of work: it must not take what the unit may roll back."""
    memberships = await store.memberships_of_network(uow, network.id)
    async with ctx.pool.using(ctx.service.reading()) as (pool, _):
        rows = [
            row
            for m in memberships.values()
            if m.state in STILL_IN and (row := pool.row(m.ambassador_id)) is not None
        ]
    return rows, list(memberships)


async def offer_replacement(
    ctx: Context, uow: UnitOfWork, network: Network, gone: str, why: str
) -> None:
    """Staff are offered the one ambassador who best fills what ``gone`` leaves open."""
    if not network.open:
        return
    rows, asked = await _members(ctx, uow, network)
    rules = replacement.residual(network.rules, rows, asked)
    challenge = (
        await store.load_challenge(uow, network.challenge_id) if network.challenge_id else None
    )
    wanted = matching.Wanted(
        skills=network.rules.required_skills,
        themes=challenge.themes if challenge else (),
        core_areas=challenge.core_areas if challenge else (),
    )
    # Committed memberships only: the cache must not keep what this unit may roll back.
    fatigue = await ctx.fatigue.current(ctx.service.reading())
    today = uow.now.astimezone(COPENHAGEN).date()
    async with ctx.pool.using(ctx.service.reading()) as (pool, _):
        found = await asyncio.to_thread(matching.suggest, pool, wanted, rules, fatigue, today)
    uow.emit(
        StaffNotice(
            network_id=network.id,
            kind=NoticeKind.REPLACEMENT,
            network=network.info(),
            about=gone,
            why=why,
            replacements=[
                Replacement(ambassador_id=p.id, covers=list(p.covers), fills=list(p.fills))
                for p in found.members
            ],
            unmet=replacement.unmet(network.rules, rows),
        )
    )


async def check_rules(
    ctx: Context, uow: UnitOfWork, network: Network, gone: str | None, why: str
) -> None:
    """Staff are told when the network no longer meets the rules it was formed by."""
    if not network.open:
        return
    rows, _ = await _members(ctx, uow, network)
    broken = replacement.unmet(network.rules, rows)
    if broken:
        uow.emit(
            StaffNotice(
                network_id=network.id,
                kind=NoticeKind.BELOW_RULES,
                network=network.info(),
                about=gone,
                why=why,
                unmet=broken,
            )
        )


# ---------------------------------------------------------------- housekeeping


async def expire_invitations(ctx: Context, uow: UnitOfWork, network_id: str) -> int:
    network = await store.load_network(uow, network_id)
    if network is None or not network.open:
        return 0
    memberships = await store.memberships_of_network(uow, network_id)
    expired = lifecycle.expire(memberships.values(), uow.now)
    await store.save_memberships(uow, expired)
    for m in expired:
        await offer_replacement(ctx, uow, network, m.ambassador_id, "expired")
    return len(expired)


async def notice_ending(ctx: Context, uow: UnitOfWork, network_id: str) -> bool:
    network = await store.load_network(uow, network_id)
    today = uow.now.astimezone(COPENHAGEN).date()
    if network is None or not lifecycle.ending_soon(network, today):
        return False
    await store.save_network(uow, network.model_copy(update={"ending_noticed": True}))
    uow.emit(
        StaffNotice(network_id=network.id, kind=NoticeKind.ENDING_SOON, network=network.info())
    )
    return True


async def step(ctx: Context) -> bool:
    """One round: every network with an invitation past its deadline, every one ending
    within a week. One that fails is logged and tried again next round."""
    scope = ctx.service.reading()
    for network_id in await store.networks_with_expired_invitations(scope, scope.now):
        try:
            await ctx.service.run(
                partial(expire_invitations, ctx, network_id=network_id),
                name="expiring invitations",
            )
        except Exception:
            log.exception("expiring invitations failed", network_id=network_id)
    for network_id in await store.networks_ending_unnoticed(scope):
        try:
            await ctx.service.run(
                partial(notice_ending, ctx, network_id=network_id), name="telling of an end"
            )
        except Exception:
            log.exception("telling of a network's end failed", network_id=network_id)
    return False
