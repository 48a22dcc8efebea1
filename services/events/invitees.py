"""What commands, reactions and background rounds share: inviting, telling invitees, and
handing on seats that came free. Everything an invitee is told leaves as an event per
invitee, in the caller's unit of work; the newsletter service mails it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeVar

from contracts.events import Invited, InviteeEvent, Participation, Promoted
from services.events import calendar, domain, store
from services.events.context import Context
from services.events.domain import Invitation, Meeting
from services.runtime.known_ambassadors import KnownAmbassador
from services.runtime.unit_of_work import Scope, UnitOfWork

T = TypeVar("T", bound=InviteeEvent)

Method = Literal["REQUEST", "CANCEL"]


def tell(
    ctx: Context,
    uow: UnitOfWork,
    kind: type[T],
    meeting: Meeting,
    who: KnownAmbassador,
    *,
    answerable: bool = False,
    ics: Method | None = None,
    **extra: Any,
) -> bool:
    """Emit the event that tells ``who`` something about ``meeting``: asking for an answer
    when ``answerable`` (the newsletter service signs the links), with the calendar entry
    when ``ics`` is given. Someone without an address is not told (False)."""
    if who.email is None:
        return False
    if ics is not None:
        s = ctx.settings
        extra["ics"] = calendar.invitation_ics(
            meeting.info(),
            method=ics,
            attendee_email=who.email,
            attendee_name=who.name,
            organizer_email=s.mail_from_address,
            organizer_name=s.mail_from_name,
            uid_domain=s.mail_message_id_domain,
            now=uow.now,
        )
    uow.emit(
        kind(
            ambassador_id=who.id,
            email=who.email,
            name=who.name,
            meeting=meeting.info(),
            answerable=answerable,
            **extra,
        )
    )
    return True


async def with_ambassadors(
    ctx: Context, scope: Scope, invitations: Iterable[Invitation]
) -> list[tuple[Invitation, KnownAmbassador]]:
    """Invitations with their ambassador; one whose ambassador is no longer active is not
    told."""
    wanted = list(invitations)
    found = await ctx.ambassadors.active_by_id(scope, [i.ambassador_id for i in wanted])
    return [(i, found[i.ambassador_id]) for i in wanted if i.ambassador_id in found]


async def invite(
    ctx: Context, uow: UnitOfWork, meeting: Meeting, ambassadors: Sequence[KnownAmbassador]
) -> None:
    """Invite ``ambassadors`` (none of them invited yet) and tell each. Their read-model
    entries are held: an erasure applied at the same moment conflicts with this unit."""
    held = await ctx.ambassadors.hold(uow, [a.id for a in ambassadors])
    ambassadors = [a for a in ambassadors if a.id in held]
    invitations = [domain.invite(meeting, a.id, uow.now) for a in ambassadors]
    await store.insert_invitations(uow, invitations)
    for who in ambassadors:
        tell(ctx, uow, Invited, meeting, who, answerable=True, ics="REQUEST")


async def hand_on_seats(
    ctx: Context, uow: UnitOfWork, meeting: Meeting
) -> tuple[Meeting, list[Invitation]]:
    """Free seats go to the first on the waitlist, who are told. The caller saves the
    meeting."""
    if domain.free_seats(meeting) == 0:
        return meeting, []
    waiting = await store.invitations_of_meeting(uow, meeting.id, [Participation.WAITLISTED])
    meeting, promoted = domain.promote(meeting, domain.waitlist_order(waiting), uow.now)
    await store.save_invitations(uow, promoted)
    for _, who in await with_ambassadors(ctx, uow, promoted):
        tell(ctx, uow, Promoted, meeting, who, answerable=True, ics="REQUEST")
    return meeting, promoted
