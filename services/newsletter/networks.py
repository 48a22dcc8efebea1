"""The networks service's events, as far as the newsletter deals with them: the invitation
to take part in a network, one mail per ``member_invited``; and the read model
``networks`` (formed, closed with what came of it) that the digest sections "Nye
handlingsnetværk" and "Resultater" are drawn from (public facts only: no member is named,
organisations are public by what they are).

As with meeting invitations (see meetings.py), the mail goes to the address this service
knows for the ambassador, only while they are active; an invitation that arrives before
the activation it follows (another stream) is delivered again a moment later. The accept
and decline links are signed when the mail is put together (links.py).
"""

from __future__ import annotations

from typing import Any

from contracts.networks import (
    KIND_LABELS,
    MemberInvited,
    NetworkAlerted,
    NetworkClosed,
    NetworkFormed,
    NetworkInfo,
    StaffNotice,
)
from services.newsletter import links, store
from services.newsletter.context import Context
from services.newsletter.mailing import active_recipient, queue
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)

INVITATION = "network_invitation"
NOTICE = "network_notice"
ALERT = "network_alert"


def network_view(info: NetworkInfo) -> dict[str, Any]:
    """What a mail shows of a network (plain values: the mail's record keeps them)."""
    return {
        "network_id": info.network_id,
        "kind": info.kind.value,
        "kind_label": KIND_LABELS[info.kind],
        "title": info.title,
        "challenge_title": info.challenge_title,
        "ends": info.ends.isoformat() if info.ends else None,
    }


def invitation_mail(event: MemberInvited) -> dict[str, Any]:
    return {
        "name": event.name,
        "network": network_view(event.network),
        "reply_by": event.reply_by,
        **links.network_answer(event.network_id, event.ambassador_id).to_context(),
    }


async def member_invited(ctx: Context, uow: UnitOfWork, event: MemberInvited) -> None:
    known = await active_recipient(ctx, uow, event.ambassador_id, INVITATION)
    if known is None or known.email is None:
        return
    context = invitation_mail(event)
    context["name"] = known.name or event.name
    await queue(
        ctx,
        uow,
        kind=INVITATION,
        dedupe_key=f"{INVITATION}:{event.event_id}",
        to_address=known.email,
        to_name=known.name or event.name,
        ambassador_id=event.ambassador_id,
        context=context,
    )


async def network_alerted(ctx: Context, uow: UnitOfWork, event: NetworkAlerted) -> None:
    """The call-out, at once, to the address this service knows (active members only)."""
    known = await active_recipient(ctx, uow, event.ambassador_id, ALERT)
    if known is None or known.email is None:
        return
    await queue(
        ctx,
        uow,
        kind=ALERT,
        dedupe_key=f"{ALERT}:{event.event_id}",
        to_address=known.email,
        to_name=known.name or event.name,
        ambassador_id=event.ambassador_id,
        context={
            "name": known.name or event.name,
            "network": network_view(event.network),
            "message": event.message,
            "answer_by": event.answer_by,
            **links.alert_answer(event.alert_id, event.ambassador_id).to_context(),
        },
    )


# ---------------------------------------------------------------- the read model


def _info(info: NetworkInfo) -> dict[str, Any]:
    return {
        "kind": info.kind.value,
        "title": info.title,
        "challenge_title": info.challenge_title,
        "ends": info.ends.isoformat() if info.ends else None,
    }


async def network_formed(ctx: Context, uow: UnitOfWork, event: NetworkFormed) -> None:
    await store.save_network(
        uow, event.network_id, {**_info(event.network), "formed_at": event.occurred_at}
    )


async def network_closed(ctx: Context, uow: UnitOfWork, event: NetworkClosed) -> None:
    await store.save_network(
        uow,
        event.network_id,
        {
            **_info(event.network),
            "closed_at": event.occurred_at,
            "closed_on": event.closed_on.isoformat(),  # BSON has no plain date
            "outcome": event.outcome.value,
            "summary": event.summary,
            "initiative_title": event.initiative_title,
            "organisations": list(event.organisations),
        },
    )


# ---------------------------------------------------------------- notices to staff


async def staff_notice(ctx: Context, uow: UnitOfWork, event: StaffNotice) -> None:
    """One mail to the project leaders, naming the people as this service knows them."""
    ids = [i for i in [event.about, *(r.ambassador_id for r in event.replacements)] if i]
    known = await ctx.ambassadors.active_by_id(uow, ids)

    def who(ambassador_id: str | None) -> str | None:
        if ambassador_id is None:
            return None
        found = known.get(ambassador_id)
        if found is None:
            return f"en tidligere ambassadør ({ambassador_id})"
        organisation = f", {found.organisation}" if found.organisation else ""
        return f"{found.name}{organisation} ({ambassador_id})"

    address = ctx.settings.staff_address or ctx.settings.mail_from_address
    await queue(
        ctx,
        uow,
        kind=NOTICE,
        dedupe_key=f"{NOTICE}:{event.event_id}",
        to_address=address,
        to_name=ctx.settings.mail_from_name,
        mentions=ids,
        context={
            "notice": event.kind.value,
            "network": network_view(event.network),
            "about": who(event.about),
            "why": event.why,
            "replacements": [
                {"who": who(r.ambassador_id), "covers": r.covers, "fills": r.fills}
                for r in event.replacements
            ],
            "unmet": list(event.unmet),
        },
    )
