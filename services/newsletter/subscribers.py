"""Subscribing, confirming and unsubscribing: the commands of subscribers themselves."""

from __future__ import annotations

from datetime import timedelta

from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import (
    ConfirmSubscription,
    ListSubscribers,
    Subscribe,
    Subscribed,
    SubscriberPage,
    SubscriberView,
    SubscriptionReceived,
    Unsubscribe,
    Unsubscribed,
)
from services.newsletter import domain, links, store
from services.newsletter.context import Context
from services.newsletter.domain import Unsubscriber
from services.newsletter.mailing import queue
from services.newsletter.views import subscriber_view
from services.runtime import tokens
from services.runtime.unit_of_work import Reading, UnitOfWork


async def subscribe(ctx: Context, uow: UnitOfWork, cmd: Subscribe) -> SubscriptionReceived:
    """Double opt-in. The answer is the same whatever the address: a new or pending one
    gets the confirmation link, a subscribed one word that it is subscribed already, and
    past its daily mails nothing goes."""
    email = domain.normalised_email(cmd.email)
    name = domain.normalised_name(cmd.name)
    existing = await store.subscriber_by_address(uow, domain.address_key(email))
    outcome = domain.subscribe(
        existing,
        email=email,
        name=name,
        now=uow.now,
        token_ttl=timedelta(hours=ctx.settings.newsletter_token_ttl_hours),
        confirmations_per_day=ctx.settings.newsletter_confirmation_mails_per_day,
    )
    subscriber = outcome.subscriber
    uow.about(subscriber.id)
    if not outcome.mail:
        # The address had its confirmation mails for the day: nothing changes, nothing goes.
        return SubscriptionReceived()
    await store.save_subscriber(uow, subscriber)
    if outcome.already_subscribed:
        assert subscriber.address is not None
        await queue(
            ctx,
            uow,
            kind="already_subscribed",
            dedupe_key=f"already_subscribed:{subscriber.id}:{uow.now.isoformat()}",
            to_address=subscriber.address,
            to_name=subscriber.name,
            subscriber=subscriber,
            context={"name": subscriber.name},
        )
        return SubscriptionReceived()
    assert subscriber.confirmation_nonce is not None and subscriber.token_expires_at is not None
    link = links.subscription_confirmation(
        subscriber.id, subscriber.confirmation_nonce, subscriber.token_expires_at
    )
    await queue(
        ctx,
        uow,
        kind="subscribe_confirmation",
        dedupe_key=f"subscribe_confirmation:{subscriber.id}:{subscriber.confirmation_nonce}",
        to_address=email,
        # Named only once confirmed: anyone may type anyone's address (and any name).
        to_name=None,
        subscriber=subscriber,
        context={
            "name": None,
            "expires_at": subscriber.token_expires_at,
            **link.to_context(),
        },
    )
    return SubscriptionReceived()


async def confirm(ctx: Context, uow: UnitOfWork, cmd: ConfirmSubscription) -> SubscriberView:
    parts = ctx.links.signer(tokens.SUBSCRIPTION_CONFIRMATION).parts(cmd.token, 3)
    if parts is not None:
        subscriber_id, nonce, _expires = parts
        found = await store.load_subscriber(uow, str(subscriber_id))
        confirmed = domain.check_confirmation(found, str(nonce), uow.now)
    else:
        # A link mailed by an older release: a random token, stored as its hash.
        digest = tokens.token_hash(cmd.token)
        found = await store.subscriber_by_token_hash(uow, digest)
        before = None if found else await store.subscriber_by_confirmed_token_hash(uow, digest)
        confirmed = domain.confirm(found, uow.now, confirmed=before)
    await store.save_subscriber(uow, confirmed)
    uow.emit(Subscribed(subscriber_id=confirmed.id, source=confirmed.source))
    return subscriber_view(confirmed)


async def unsubscribe(ctx: Context, uow: UnitOfWork, cmd: Unsubscribe) -> SubscriberView:
    parts = ctx.links.signer(tokens.UNSUBSCRIBE).parts(cmd.token, 1)
    if parts is not None:
        found = await store.load_subscriber(uow, str(parts[0]))
    else:
        # The link of a mail an older release sent: its token is stored as a hash.
        found = await store.subscriber_by_unsubscribe_token_hash(uow, tokens.token_hash(cmd.token))
    if found is None:
        raise ServiceError(ErrorCode.INVALID_TOKEN, "the unsubscribe link is not valid")
    updated, changed = domain.unsubscribe(found, uow.now, by=Unsubscriber.SELF)
    if not changed:
        return subscriber_view(found)
    await store.save_subscriber(uow, updated)
    if found.status != updated.status:
        uow.emit(Unsubscribed(subscriber_id=updated.id))
    # A mail already claimed for sending must see the unsubscribe.
    uow.after_commit(lambda: ctx.forget_subscriber(updated.id))
    return subscriber_view(updated)


async def list_subscribers(ctx: Context, scope: Reading, query: ListSubscribers) -> SubscriberPage:
    total, found = await store.subscriber_page(
        scope, query.status, limit=query.limit, offset=query.offset
    )
    return SubscriberPage(total=total, items=[subscriber_view(s) for s in found])
