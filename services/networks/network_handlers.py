"""The networks' commands and queries: form or create, invite, answer, remove, start,
close, list and show. Load, call the rules (``lifecycle``), save, emit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from functools import cached_property

from contracts.errors import ErrorCode, ServiceError
from contracts.events import COPENHAGEN
from contracts.networks import (
    AlertAnswerView,
    AlertNetwork,
    AlertSummary,
    AnswerAlert,
    AnswerNetworkInvitation,
    ChallengeStatus,
    ChangeView,
    CloseNetwork,
    CreateNetwork,
    FormNetwork,
    GetPublicNetworks,
    InvitationAnswer,
    InviteMembers,
    ListNetworks,
    MemberCounts,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberView,
    NetworkAlerted,
    NetworkClosed,
    NetworkDetail,
    NetworkFormed,
    NetworkInvitation,
    NetworkPage,
    NetworkStarted,
    NetworkStatus,
    NetworkView,
    PublicNetwork,
    PublicNetworks,
    RemoveMember,
    ShowAlert,
    ShowNetwork,
    ShowNetworkInvitation,
    StartNetwork,
)
from services.networks import alerts, challenges, lifecycle, notices, store
from services.networks.alerts import Alert, summary
from services.networks.challenge_handlers import load_challenge, reader_of
from services.networks.context import Context
from services.networks.lifecycle import Membership, Network, TeamRules
from services.runtime.tokens import ALERT_ANSWER, NETWORK_ANSWER, Signer
from services.runtime.unit_of_work import Reading, Scope, UnitOfWork

# ---------------------------------------------------------------- views


def network_view(network: Network, memberships: Iterable[Membership]) -> NetworkView:
    counts: dict[str, int] = {}
    for m in memberships:
        counts[m.state.value] = counts.get(m.state.value, 0) + 1
    return NetworkView(
        id=network.id,
        kind=network.kind,
        title=network.title,
        status=network.status,
        challenge_id=network.challenge_id,
        lead=network.lead,
        ends=network.ends,
        reply_within_days=network.reply_within_days,
        counts=MemberCounts.model_validate(counts),
        created_at=network.created_at,
        started_at=network.started_at,
        closed_at=network.closed_at,
        outcome=network.outcome,
        summary=network.summary,
        initiative_title=network.initiative_title,
        history=[ChangeView.model_validate(c.model_dump()) for c in network.history],
    )


async def detail(ctx: Context, scope: Scope, network: Network) -> NetworkDetail:
    memberships = await store.memberships_of_network(scope, network.id)
    people = await ctx.ambassadors.active_by_id(scope, memberships)
    members = []
    for m in memberships.values():
        who = people.get(m.ambassador_id)
        members.append(
            MemberView(
                ambassador_id=m.ambassador_id,
                name=who.name if who else "(no longer an ambassador)",
                organisation=who.organisation if who else None,
                kind=who.kind if who else None,
                state=m.state,
                lead=m.lead,
                invited_at=m.invited_at,
                reply_by=m.reply_by,
                answered_at=m.answered_at,
            )
        )
    alerts = [summary(a) for a in await store.alerts_of_network(scope, network.id)]
    return NetworkDetail(
        network=network_view(network, memberships.values()), members=members, alerts=alerts
    )


async def load_network(scope: Scope, network_id: str) -> Network:
    network = await store.load_network(scope, network_id)
    if network is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"network {network_id} not found")
    return network


class Answers:
    """Checks the answer links the newsletter service signs (network, ambassador)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @cached_property
    def signer(self) -> Signer:
        return Signer(self.ctx.settings.networks_token_secret, NETWORK_ANSWER)

    async def membership(self, scope: Scope, token: str) -> Membership:
        parts = self.signer.parts(token, 2)
        found = None
        if parts is not None:
            found = await store.load_membership(scope, str(parts[0]), str(parts[1]))
        if found is None:
            raise ServiceError(ErrorCode.INVALID_TOKEN, "the answer link is not valid")
        return found


# ---------------------------------------------------------------- inviting


async def _invite(
    ctx: Context, uow: UnitOfWork, network: Network, invited: list[Membership]
) -> list[Membership]:
    """Save the invitations and announce each (the newsletter service mails them), for
    those still active now: their entries are held, so an erasure at the same moment
    conflicts with this unit of work instead of missing its invitation."""
    still = await ctx.ambassadors.hold(uow, [m.ambassador_id for m in invited])
    kept = [m for m in invited if m.ambassador_id in still]
    people = await ctx.ambassadors.active_by_id(uow, still)
    await store.save_memberships(uow, kept)
    for m in kept:
        who = people[m.ambassador_id]
        assert who.email is not None and m.reply_by is not None
        uow.emit(
            MemberInvited(
                network_id=network.id,
                ambassador_id=m.ambassador_id,
                email=who.email,
                name=who.name,
                network=network.info(),
                reply_by=m.reply_by,
            )
        )
    return kept


async def _active(ctx: Context, scope: Scope, ids: Iterable[str]) -> set[str]:
    return set(await ctx.ambassadors.active_by_id(scope, ids))


async def form(ctx: Context, uow: UnitOfWork, cmd: FormNetwork) -> NetworkDetail:
    challenge = await load_challenge(uow, cmd.challenge_id)
    if challenge.status == ChallengeStatus.DROPPED:
        raise ServiceError(ErrorCode.INVALID_STATE, f"challenge {challenge.id} was dropped")
    reader = await reader_of(uow)
    rules = TeamRules(
        size_min=cmd.size_min,
        size_max=cmd.size_max,
        required_skills=tuple(
            dict.fromkeys(reader.read(t) for t in (*challenge.skills, *cmd.require_skills))
        ),
        kind_minimums=dict(cmd.require_kinds),
        core_area_minimums=dict(cmd.require_core_areas),
    )
    network, invited = lifecycle.form(
        kind=cmd.kind,
        title=cmd.title or challenge.title,
        members=cmd.members,
        active=await _active(ctx, uow, [*cmd.members, *([cmd.lead] if cmd.lead else [])]),
        lead=cmd.lead,
        ends=cmd.ends,
        reply_within_days=cmd.reply_within_days,
        rules=rules,
        challenge_id=challenge.id,
        challenge_title=challenge.title,
        today=uow.now.astimezone(COPENHAGEN).date(),
        now=uow.now,
        actor=uow.actor or "unknown",
    )
    if challenge.status == ChallengeStatus.OPEN:
        await store.save_challenge(uow, challenges.take_up(challenge))
    await store.save_network(uow, network)
    kept = await _invite(ctx, uow, network, invited)
    uow.emit(NetworkFormed(network_id=network.id, network=network.info(), invited=len(kept)))
    return await detail(ctx, uow, network)


async def create(ctx: Context, uow: UnitOfWork, cmd: CreateNetwork) -> NetworkDetail:
    network, invited = lifecycle.form(
        kind=cmd.kind,
        title=cmd.title,
        members=cmd.members,
        active=await _active(ctx, uow, cmd.members),
        lead=None,
        ends=None,
        reply_within_days=cmd.reply_within_days,
        rules=TeamRules(),
        challenge_id=None,
        challenge_title=None,
        today=uow.now.astimezone(COPENHAGEN).date(),
        now=uow.now,
        actor=uow.actor or "unknown",
    )
    await store.save_network(uow, network)
    kept = await _invite(ctx, uow, network, invited)
    uow.emit(NetworkFormed(network_id=network.id, network=network.info(), invited=len(kept)))
    return await detail(ctx, uow, network)


async def invite(ctx: Context, uow: UnitOfWork, cmd: InviteMembers) -> NetworkDetail:
    network = await load_network(uow, cmd.network_id)
    current = await store.memberships_of_network(uow, network.id)
    active = await _active(ctx, uow, cmd.ambassador_ids)
    lifecycle.check_active(cmd.ambassador_ids, active, "ambassador_ids")
    invited = lifecycle.invite(network, current, cmd.ambassador_ids, uow.now)
    if invited:
        kept = await _invite(ctx, uow, network, invited)
        detail_text = ", ".join(m.ambassador_id for m in kept)
        await store.save_network(
            uow, network.changed("invited", uow.actor or "unknown", uow.now, detail_text)
        )
    return await detail(ctx, uow, await load_network(uow, network.id))


async def remove(ctx: Context, uow: UnitOfWork, cmd: RemoveMember) -> NetworkDetail:
    network = await load_network(uow, cmd.network_id)
    membership = await store.load_membership(uow, network.id, cmd.ambassador_id)
    if membership is None:
        raise ServiceError(
            ErrorCode.NOT_FOUND,
            f"ambassador {cmd.ambassador_id} is not invited to network {network.id}",
        )
    if not network.open:
        raise ServiceError(ErrorCode.INVALID_STATE, f"network {network.id} is closed")
    removed = lifecycle.remove(membership)
    if removed is not membership:
        await store.save_memberships(uow, [removed])
        if membership.state == MemberState.JOINED:
            uow.emit(
                MemberLeft(network_id=network.id, ambassador_id=cmd.ambassador_id, reason="removed")
            )
        await store.save_network(
            uow, network.changed("removed", uow.actor or "unknown", uow.now, cmd.ambassador_id)
        )
        await notices.check_rules(ctx, uow, network, cmd.ambassador_id, "removed")
    return await detail(ctx, uow, await load_network(uow, network.id))


# ---------------------------------------------------------------- answers


async def answer(ctx: Context, uow: UnitOfWork, cmd: AnswerNetworkInvitation) -> InvitationAnswer:
    membership = await Answers(ctx).membership(uow, cmd.token)
    network = await load_network(uow, membership.network_id)
    if await ctx.ambassadors.active(uow, membership.ambassador_id) is None:
        raise ServiceError(ErrorCode.INVALID_TOKEN, "the answer link is not valid")
    answered = lifecycle.answer(network, membership, cmd.accept, uow.now)
    if answered is not membership:
        await store.save_memberships(uow, [answered])
        if answered.state == MemberState.JOINED:
            uow.emit(
                MemberJoined(
                    network_id=network.id,
                    ambassador_id=answered.ambassador_id,
                    network=network.info(),
                )
            )
        else:
            if membership.state == MemberState.JOINED:
                uow.emit(
                    MemberLeft(
                        network_id=network.id,
                        ambassador_id=answered.ambassador_id,
                        reason="declined",
                    )
                )
            # An expired invitation was offered a replacement already.
            if membership.state != MemberState.EXPIRED:
                await notices.offer_replacement(
                    ctx, uow, network, answered.ambassador_id, "declined"
                )
    return InvitationAnswer(
        network_id=network.id, ambassador_id=answered.ambassador_id, state=answered.state
    )


async def show_invitation(
    ctx: Context, scope: Reading, query: ShowNetworkInvitation
) -> NetworkInvitation:
    membership = await Answers(ctx).membership(scope, query.token)
    network = await load_network(scope, membership.network_id)
    challenge = (
        await store.load_challenge(scope, network.challenge_id) if network.challenge_id else None
    )
    return NetworkInvitation(
        network_id=network.id,
        kind=network.kind,
        title=network.title,
        status=network.status,
        challenge_title=challenge.title if challenge else None,
        challenge_description=challenge.description if challenge else None,
        ends=network.ends,
        state=membership.state,
        reply_by=membership.reply_by,
    )


# ---------------------------------------------------------------- life


async def start(ctx: Context, uow: UnitOfWork, cmd: StartNetwork) -> NetworkDetail:
    network = await load_network(uow, cmd.network_id)
    memberships = await store.memberships_of_network(uow, network.id)
    joined = sum(1 for m in memberships.values() if m.state in lifecycle.IN_NETWORK)
    started = lifecycle.start(network, joined, uow.now, uow.actor or "unknown")
    await store.save_network(uow, started)
    assert started.started_at is not None
    uow.emit(
        NetworkStarted(
            network_id=started.id,
            network=started.info(),
            started_on=started.started_at.astimezone(COPENHAGEN).date(),
            members=joined,
        )
    )
    return await detail(ctx, uow, started)


async def close(ctx: Context, uow: UnitOfWork, cmd: CloseNetwork) -> NetworkDetail:
    network = await load_network(uow, cmd.network_id)
    closed = lifecycle.close(
        network,
        outcome=cmd.outcome,
        summary=cmd.summary,
        initiative_title=cmd.initiative_title,
        now=uow.now,
        actor=uow.actor or "unknown",
    )
    await store.save_network(uow, closed)
    await store.close_memberships(uow, closed.id)
    memberships = await store.memberships_of_network(uow, closed.id)
    joined = [m.ambassador_id for m in memberships.values() if m.state in lifecycle.IN_NETWORK]
    people = await ctx.ambassadors.active_by_id(uow, joined)
    organisations = sorted({p.organisation for p in people.values() if p.public and p.organisation})
    assert closed.closed_at is not None and closed.outcome is not None
    uow.emit(
        NetworkClosed(
            network_id=closed.id,
            network=closed.info(),
            outcome=closed.outcome,
            summary=cmd.summary,
            initiative_title=closed.initiative_title,
            closed_on=closed.closed_at.astimezone(COPENHAGEN).date(),
            organisations=organisations,
        )
    )
    return await detail(ctx, uow, closed)


# ---------------------------------------------------------------- queries


async def list_networks(ctx: Context, scope: Reading, query: ListNetworks) -> NetworkPage:
    total, found = await store.network_page(
        scope, query.kind, query.status, query.limit, query.offset
    )
    items = []
    for network in found:
        memberships = await store.memberships_of_network(scope, network.id)
        items.append(network_view(network, memberships.values()))
    return NetworkPage(total=total, items=items)


async def show_network(ctx: Context, scope: Reading, query: ShowNetwork) -> NetworkDetail:
    return await detail(ctx, scope, await load_network(scope, query.network_id))


# ---------------------------------------------------------------- in public


async def public_networks(ctx: Context, scope: Reading, _: GetPublicNetworks) -> PublicNetworks:
    active: list[PublicNetwork] = []
    results: list[PublicNetwork] = []
    for network in await store.public_networks(scope):
        memberships = await store.memberships_of_network(scope, network.id)
        joined = [m.ambassador_id for m in memberships.values() if m.state in lifecycle.IN_NETWORK]
        people = await ctx.ambassadors.active_by_id(scope, joined)
        challenge = (
            await store.load_challenge(scope, network.challenge_id)
            if network.challenge_id
            else None
        )
        entry = PublicNetwork(
            id=network.id,
            kind=network.kind,
            title=network.title,
            status=network.status,
            challenge_title=challenge.title if challenge else None,
            target_group=challenge.target_group if challenge else None,
            started_on=network.started_at.astimezone(COPENHAGEN).date()
            if network.started_at
            else None,
            ends=network.ends,
            organisations=sorted(
                {p.organisation for p in people.values() if p.public and p.organisation}
            ),
            outcome=network.outcome,
            initiative_title=network.initiative_title,
            summary=network.summary if network.outcome else None,
            closed_on=network.closed_at.astimezone(COPENHAGEN).date()
            if network.closed_at
            else None,
        )
        (results if network.status == NetworkStatus.CLOSED else active).append(entry)
    return PublicNetworks(active=active, results=results)


# ---------------------------------------------------------------- call-outs (staff networks)


async def alert(ctx: Context, uow: UnitOfWork, cmd: AlertNetwork) -> AlertSummary:
    """Every member who joined is called out at once: one event each, in this unit of work
    (the newsletter service mails them; a crash sends all or none)."""
    network = await load_network(uow, cmd.network_id)
    memberships = await store.memberships_of_network(uow, network.id)
    joined = [m.ambassador_id for m in memberships.values() if m.state in lifecycle.IN_NETWORK]
    still = await ctx.ambassadors.hold(uow, joined)
    called = alerts.call_out(
        network,
        [a for a in joined if a in still],
        message=cmd.message,
        within=timedelta(hours=cmd.answer_within_hours),
        now=uow.now,
        actor=uow.actor or "unknown",
    )
    await store.save_alert(uow, called)
    people = await ctx.ambassadors.active_by_id(uow, called.sent_to)
    for ambassador_id in called.sent_to:
        who = people[ambassador_id]
        assert who.email is not None
        uow.emit(
            NetworkAlerted(
                network_id=network.id,
                ambassador_id=ambassador_id,
                alert_id=called.id,
                email=who.email,
                name=who.name,
                network=network.info(),
                message=called.message,
                answer_by=called.answer_by,
            )
        )
    await store.save_network(
        uow, network.changed("alerted", uow.actor or "unknown", uow.now, f"{len(called.sent_to)}")
    )
    return summary(called)


async def _alert_of_link(ctx: Context, scope: Scope, token: str) -> tuple[Network, Alert, str]:
    parts = Signer(ctx.settings.networks_token_secret, ALERT_ANSWER).parts(token, 2)
    found = await store.load_alert(scope, str(parts[0])) if parts is not None else None
    if parts is None or found is None or str(parts[1]) not in found.sent_to:
        raise ServiceError(ErrorCode.INVALID_TOKEN, "the answer link is not valid")
    return await load_network(scope, found.network_id), found, str(parts[1])


def _alert_answer(network: Network, found: Alert, ambassador_id: str) -> AlertAnswerView:
    given = found.answers.get(ambassador_id)
    return AlertAnswerView(
        alert_id=found.id,
        network_title=network.title,
        message=found.message,
        sent_at=found.sent_at,
        answer_by=found.answer_by,
        can_help=given.can_help if given else None,
        answered_at=given.at if given else None,
    )


async def answer_alert(ctx: Context, uow: UnitOfWork, cmd: AnswerAlert) -> AlertAnswerView:
    network, found, ambassador_id = await _alert_of_link(ctx, uow, cmd.token)
    membership = await store.load_membership(uow, network.id, ambassador_id)
    if not network.open or membership is None or membership.state != MemberState.JOINED:
        raise ServiceError(
            ErrorCode.INVALID_STATE, "the call-out is over for you: not a member any more"
        )
    if await ctx.ambassadors.active(uow, ambassador_id) is None:
        raise ServiceError(ErrorCode.INVALID_TOKEN, "the answer link is not valid")
    answered = alerts.answer(found, ambassador_id, cmd.can_help, uow.now)
    if answered is not found:
        await store.save_alert(uow, answered)
    return _alert_answer(network, answered, ambassador_id)


async def show_alert(ctx: Context, scope: Reading, query: ShowAlert) -> AlertAnswerView:
    network, found, ambassador_id = await _alert_of_link(ctx, scope, query.token)
    return _alert_answer(network, found, ambassador_id)
