"""Queueing one mail, in the unit of work of whatever causes it. A reaction that mails
someone is a template set in ``mail/templates/`` plus a call to :func:`queue`; the delivery
worker does the rest (see outgoing.py)."""

from __future__ import annotations

from typing import Any

from services.newsletter import delivery
from services.newsletter.context import Context
from services.newsletter.domain import Subscriber
from services.runtime.known_ambassadors import KnownAmbassador, Standing
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import NotYet, UnitOfWork

log = get_logger(__name__)


class InviteeNotKnownYet(NotYet):
    """A mail for an ambassador came before their activation (another stream): the event
    is delivered again a moment later, by when the ambassador is known."""


async def active_recipient(
    ctx: Context, uow: UnitOfWork, ambassador_id: str, what: str
) -> KnownAmbassador | None:
    """The ambassador a mail of another service's event goes to, as this service knows
    them (their address, not the event's), or None when they are no longer active (not
    mailed: logged with ``what``). Not known yet: :class:`InviteeNotKnownYet`."""
    known = await ctx.ambassadors.get(uow, ambassador_id)
    if known is None or known.standing == Standing.SEEN:
        raise InviteeNotKnownYet(f"ambassador {ambassador_id} is not known here yet")
    if not known.active or known.email is None:
        log.info("recipient no longer active: not mailed", ambassador_id=ambassador_id, what=what)
        return None
    return known


async def queue(
    ctx: Context,
    uow: UnitOfWork,
    *,
    kind: str,
    dedupe_key: str,
    to_address: str,
    to_name: str | None = None,
    subscriber: Subscriber | None = None,
    ambassador_id: str | None = None,
    context: dict[str, Any] | None = None,
    attachments: list[delivery.Attachment] | None = None,
    mentions: list[str] | None = None,
) -> bool:
    """Queue one mail; False if ``dedupe_key`` was queued before. ``subscriber``: whose
    unsubscribe link the mail carries, and whose status may still stop it before it goes
    out (see domain.may_receive); ``mentions``: ambassadors the mail names besides its
    recipient, whose erasure scrubs it. The worker is told once the unit has committed."""
    record = delivery.new_mail(
        kind=kind,
        dedupe_key=dedupe_key,
        to_address=to_address,
        to_name=to_name,
        subscriber_id=subscriber.id if subscriber else None,
        ambassador_id=ambassador_id or (subscriber.ambassador_id if subscriber else None),
        context=context,
        attachments=attachments or (),
        mentions=mentions or (),
        message_id_domain=ctx.settings.mail_message_id_domain,
        now=uow.now,
    )
    queued = await delivery.queue_mail(uow, record)
    if queued:
        uow.after_commit(ctx.notify_delivery)
    return queued
