"""What the ambassadors service's events mean for the newsletter: the mails they cause
(confirm the address, welcome with the certificate, goodbye), the ambassador's own
subscription, and erasure of everything the newsletter holds about the person.

The runtime has already updated the read model of ambassadors when these run, and skips
them for an ambassador who was erased (see services/runtime/known_ambassadors.py).

A welcome carries a certificate only when the event names the PDF of that very
ambassador: NATS lets only the ambassadors service publish these events, and this is the
second line, should anything else ever manage to.
"""

from __future__ import annotations

from contracts.ambassadors import (
    Activated,
    Erased,
    ProfileUpdated,
    SignedUp,
    SignedUpAgain,
    Source,
    Withdrawn,
)
from contracts.newsletter import Subscribed, SubscriberStatus, Unsubscribed
from services.newsletter import delivery, domain, links, store
from services.newsletter.context import Context
from services.newsletter.domain import Subscriber, Unsubscriber
from services.newsletter.mailing import queue
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)


async def signed_up(ctx: Context, uow: UnitOfWork, event: SignedUp) -> None:
    """A self sign-up gets the link that confirms the address (staff sign-ups need none).

    Anyone may type anyone's address: until the address is confirmed the mail names nobody
    (neither in its greeting nor in its To header), so it never repeats to a person a name
    a stranger chose for them."""
    if event.source != Source.SELF or not event.confirmation_nonce:
        return
    expires_at = event.token_expires_at or event.occurred_at
    link = links.ambassador_confirmation(event.ambassador_id, event.confirmation_nonce, expires_at)
    await queue(
        ctx,
        uow,
        kind="confirmation",
        dedupe_key=f"confirmation:{event.event_id}",
        to_address=event.email,
        to_name=None,
        ambassador_id=event.ambassador_id,
        context={"name": None, "expires_at": expires_at, **link.to_context()},
    )


async def signed_up_again(ctx: Context, uow: UnitOfWork, event: SignedUpAgain) -> None:
    """Someone signed up with an active ambassador's address: its owner is told, at the
    address this service knows for them (the event carries none)."""
    known = await ctx.ambassadors.active(uow, event.ambassador_id)
    if known is None or known.email is None:
        return
    await queue(
        ctx,
        uow,
        kind="already_ambassador",
        dedupe_key=f"already_ambassador:{event.event_id}",
        to_address=known.email,
        to_name=known.name,
        ambassador_id=known.id,
        context={"name": known.name},
    )


async def activated(ctx: Context, uow: UnitOfWork, event: Activated) -> None:
    """Welcome with the certificate attached; the ambassador becomes a subscriber. (Not for
    someone no longer active: an activation replayed after a withdrawal, say.)"""
    if await ctx.ambassadors.active(uow, event.ambassador_id) is None:
        return
    if not event.certificate.belongs_to(event.ambassador_id):
        log.error(
            "activation names a certificate that is not the ambassador's: no welcome mail",
            ambassador_id=event.ambassador_id,
            bucket=event.certificate.bucket,
            object_name=event.certificate.object_name,
        )
        return
    existing = await store.subscriber_of_ambassador(uow, event.ambassador_id)
    if existing is None:
        existing = await store.subscriber_by_address(uow, domain.address_key(event.email))
    activation = domain.ambassador_activated(
        existing,
        ambassador_id=event.ambassador_id,
        email=event.email,
        name=event.name,
        now=uow.now,
    )
    subscriber = activation.subscriber
    await store.save_subscriber(uow, subscriber)
    cert = event.certificate
    await queue(
        ctx,
        uow,
        kind="welcome",
        dedupe_key=f"welcome:{event.event_id}",
        to_address=event.email,
        to_name=event.name,
        subscriber=subscriber,
        ambassador_id=event.ambassador_id,
        context={
            "name": event.name,
            "certificate_number": cert.number,
            "verify_url": domain.verify_url(ctx.settings.public_url, cert.verification_code),
            # Someone who unsubscribed earlier stays unsubscribed: the mail must not promise
            # them the newsletter.
            "receives_newsletter": subscriber.status == SubscriberStatus.CONFIRMED,
            # Their own page for sending stories (signed when the mail is put together).
            links.STORIES_KEY: event.ambassador_id,
        },
        # The PDF is rendered after activation: the delivery worker waits for it.
        attachments=[
            delivery.Attachment(
                bucket=cert.bucket,
                object_name=cert.object_name,
                filename=f"ambassadoerbevis-{cert.number}.pdf",
                content_type="application/pdf",
            )
        ],
    )
    if activation.subscribed:
        uow.emit(Subscribed(subscriber_id=subscriber.id, source=subscriber.source))


async def profile_updated(ctx: Context, uow: UnitOfWork, event: ProfileUpdated) -> None:
    """New name or address for the ambassador's subscription; never a resubscription (nor
    an older address over a newer one)."""
    known = await ctx.ambassadors.get(uow, event.ambassador_id)
    if known is not None and not await ctx.ambassadors.took(uow, event):
        return
    subscriber = await store.subscriber_of_ambassador(uow, event.ambassador_id)
    if subscriber is None or subscriber.status == SubscriberStatus.ERASED:
        return
    key = domain.address_key(event.email)
    if key != subscriber.address_key:
        other = await store.subscriber_by_address(uow, key)
        if other is not None and other.id != subscriber.id:
            # One address, one subscriber: this one takes it over (with its opt-out).
            subscriber = domain.absorb(subscriber, other)
            await store.delete_subscriber(uow, other.id)
    subscriber = domain.update_contact(subscriber, email=event.email, name=event.name)
    await store.save_subscriber(uow, subscriber)


async def withdrawn(ctx: Context, uow: UnitOfWork, event: Withdrawn) -> None:
    """Unsubscribed (a rejoin subscribes again), and a short goodbye. (Not for someone
    active again: a withdrawal replayed after the rejoin changes nothing.)"""
    if await ctx.ambassadors.active(uow, event.ambassador_id) is not None:
        return
    subscriber = await store.subscriber_of_ambassador(uow, event.ambassador_id)
    if subscriber is None or subscriber.address is None:
        return
    updated, changed = domain.unsubscribe(subscriber, uow.now, by=Unsubscriber.WITHDRAWN)
    if changed:
        await store.save_subscriber(uow, updated)
        uow.emit(Unsubscribed(subscriber_id=updated.id))
    await queue(
        ctx,
        uow,
        kind="goodbye",
        dedupe_key=f"goodbye:{event.event_id}",
        to_address=subscriber.address,
        to_name=subscriber.name,
        subscriber=updated,
        context={"name": subscriber.name},
    )


async def erased(ctx: Context, uow: UnitOfWork, event: Erased) -> None:
    """Every personal field this service holds about the person goes; no goodbye. (Their
    dead letters and the read model are the runtime's, see services/runtime/erasure.py.)"""
    ambassador_id = event.ambassador_id
    # The erased event names no address. Besides the subscriber linked to the ambassador,
    # an address this service mailed on the ambassador's behalf (e.g. a confirmation that
    # was never confirmed) may also have a subscription of its own.
    subscribers: dict[str, Subscriber] = {}
    linked = await store.subscriber_of_ambassador(uow, ambassador_id)
    if linked is not None:
        subscribers[linked.id] = linked
    for address in await store.addresses_mailed_for(uow, ambassador_id):
        found = await store.subscriber_by_address(uow, domain.address_key(address))
        if found is not None:
            subscribers[found.id] = found
    for subscriber in subscribers.values():
        if subscriber.status != SubscriberStatus.ERASED:
            await store.save_subscriber(uow, domain.erase(subscriber, uow.now))
            uow.emit(Unsubscribed(subscriber_id=subscriber.id))
        await delivery.erase_recipient(uow, subscriber_id=subscriber.id)
    await delivery.erase_recipient(uow, ambassador_id=ambassador_id)
    await store.forget_item_ambassador_name(uow, ambassador_id)
    for issue in await store.issues_naming(uow, ambassador_id):
        scrubbed = domain.scrub_ambassador(issue, ambassador_id)
        if scrubbed is not None:
            await store.save_issue(uow, scrubbed)
    uow.after_commit(ctx.forget_issues)
    uow.after_commit(ctx.wake_fanout)  # rewrites the stored web version of a scrubbed issue
