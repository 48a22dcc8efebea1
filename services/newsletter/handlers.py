"""One function per command, query, event reaction and background job: load, call the
domain, save + outbox (+ the mails the change causes, in the same transaction).

A reaction that mails someone is a template set in ``mail/templates/`` plus a handler that
calls :func:`queue` inside its transaction; the delivery worker does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import NotFoundError

from contracts.ambassadors import Activated, Erased, ProfileUpdated, SignedUp, Source, Withdrawn
from contracts.ambassadors import Status as AmbassadorStatus
from contracts.envelope import Event
from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.newsletter import (
    ARCHIVE_BUCKET,
    IMAGES_BUCKET,
    ITEMS_PER_ISSUE_MAX,
    UPLOAD_TTL_SECONDS,
    UPLOADS_BUCKET,
    AddItem,
    Archive,
    ArchiveEntry,
    ConfirmSubscription,
    DraftIssue,
    GetArchive,
    ImageView,
    IssueRendering,
    IssueSent,
    IssueState,
    IssueSummary,
    ItemPage,
    ItemView,
    ListItems,
    ListSubscribers,
    PreviewIssue,
    PublicImage,
    RemoveItem,
    SendIssue,
    Subscribe,
    Subscribed,
    SubscribeResult,
    SubscriberPage,
    SubscriberStatus,
    SubscriberView,
    TestSend,
    TestSendResult,
    Unsubscribe,
    Unsubscribed,
)
from services.newsletter import delivery, domain, images, store
from services.newsletter.delivery import (
    DeliveryWorker,
    MailRecord,
    MaterializedMail,
    NotReady,
    SmtpPool,
)
from services.newsletter.domain import Issue, Item, StoredImage, Subscriber, Unsubscriber
from services.newsletter.mail import compose
from services.newsletter.mail.rendering import RenderedIssue, render_issue, render_mail
from services.newsletter.sections import REGISTRY, SectionRegistry
from services.runtime.logging import get_logger
from services.runtime.mongo import Session
from services.runtime.service import Service
from services.runtime.settings import Settings
from services.runtime.tokens import token_hash

log = get_logger(__name__)

# How long `send` waits for the fan-out before answering "still sending".
SEND_WAIT_SECONDS = 5.0
# A rendered issue is reused this long by the delivery worker; an erasure that scrubs a
# sending issue reaches the mails still to go within it.
ISSUE_CACHE_SECONDS = 60.0
# Subscribers looked up for a claimed batch are used for its mails this long at most (the
# batch waits behind the ones being sent); later, a mail looks its subscriber up again, so
# an unsubscribe or erasure stops mails already claimed within this time.
SUBSCRIBER_PREFETCH_SECONDS = 3.0
# A delivered mail resets its subscriber's bounce counter if the subscriber had any when
# the mail was materialized; what is remembered for that is forgotten after this long.
BOUNCE_MEMORY_SECONDS = 3600.0


def utcnow() -> datetime:
    # MongoDB keeps milliseconds: a reply must not show a time that a later read no longer has.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


@dataclass
class Context:
    service: Service
    clock: Callable[[], datetime] = utcnow
    sections: SectionRegistry = REGISTRY
    delivery: DeliveryWorker | None = None
    fanout_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    fanout_done: dict[str, asyncio.Event] = field(default_factory=dict)
    issues: IssueCache = field(default_factory=lambda: IssueCache(ISSUE_CACHE_SECONDS))
    subscribers: SubscriberLoader | None = None
    # Mail id -> (when, subscriber id) of mails materialized for a subscriber with hard
    # bounces: only their delivery resets a counter (see on_delivered).
    bounced_before: dict[str, tuple[float, str]] = field(default_factory=dict)

    @property
    def loader(self) -> SubscriberLoader:
        if self.subscribers is None:
            self.subscribers = SubscriberLoader(self)
        return self.subscribers

    @property
    def settings(self) -> Settings:
        return self.service.settings

    def notify_delivery(self) -> None:
        if self.delivery is not None:
            self.delivery.notify()


# ---------------------------------------------------------------- views


def subscriber_view(s: Subscriber) -> SubscriberView:
    return SubscriberView(
        id=s.id,
        status=s.status,
        source=s.source,
        email=s.address,
        name=s.name,
        ambassador_id=s.ambassador_id,
        hard_bounces=s.hard_bounces,
        created_at=s.created_at,
        confirmed_at=s.confirmed_at,
        unsubscribed_at=s.unsubscribed_at,
    )


def item_view(item: Item) -> ItemView:
    image = item.image
    return ItemView(
        id=item.id,
        title=item.title,
        body=item.body,
        link=item.link,
        image=ImageView(**image.model_dump()) if image else None,
        ambassador_id=item.ambassador_id,
        ambassador_name=item.ambassador_name,
        created_at=item.created_at,
        used_in_issue=item.used_in_issue,
    )


def issue_summary(issue: Issue) -> IssueSummary:
    return IssueSummary(
        id=issue.id,
        number=issue.number,
        state=issue.state,
        title=issue.title,
        since=issue.since,
        until=issue.until,
        items=len(issue.items),
        sections=issue.section_counts,
        created_at=issue.created_at,
        sent_at=issue.sent_at,
        recipients=issue.recipients,
    )


def _not_found(what: str, ident: str) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"{what} {ident} not found")


# ---------------------------------------------------------------- queueing mail


async def queue(
    ctx: Context,
    session: Session,
    *,
    kind: str,
    dedupe_key: str,
    to_address: str,
    to_name: str | None = None,
    subscriber: Subscriber | None = None,
    ambassador_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    attachments: Sequence[delivery.Attachment] = (),
) -> bool:
    """Queue one mail in the caller's transaction; False if ``dedupe_key`` was queued before.

    ``subscriber``: whose unsubscribe link the mail carries, and whose status may still
    stop it before it goes out (see domain.may_receive).
    """
    record = delivery.new_mail(
        kind=kind,
        dedupe_key=dedupe_key,
        to_address=to_address,
        to_name=to_name,
        subscriber_id=subscriber.id if subscriber else None,
        ambassador_id=ambassador_id or (subscriber.ambassador_id if subscriber else None),
        context=context,
        attachments=attachments,
        message_id_domain=ctx.settings.mail_message_id_domain,
        now=ctx.clock(),
    )
    return await delivery.queue_mail(ctx.service.db, session, record)


# ---------------------------------------------------------------- subscribers


async def subscribe(ctx: Context, cmd: Subscribe) -> SubscribeResult:
    email = domain.normalised_email(cmd.email)
    name = domain.normalised_name(cmd.name)
    s = ctx.settings
    db = ctx.service.db

    async def work(session: Session) -> tuple[SubscribeResult, Sequence[Event]]:
        now = ctx.clock()
        existing = await store.subscriber_by_address(db, domain.address_key(email), session)
        outcome = domain.subscribe(
            existing,
            email=email,
            name=name,
            now=now,
            token_ttl=timedelta(hours=s.newsletter_token_ttl_hours),
        )
        subscriber = outcome.subscriber
        await store.save_subscriber(db, subscriber, session)
        await queue(
            ctx,
            session,
            kind="subscribe_confirmation",
            dedupe_key=f"subscribe_confirmation:{subscriber.id}:{subscriber.token_hash}",
            to_address=email,
            to_name=subscriber.name,
            subscriber=subscriber,
            context={
                "name": subscriber.name,
                "confirm_url": domain.confirm_url(s.public_url, outcome.token),
                "token": outcome.token,
                "expires_at": subscriber.token_expires_at,
            },
        )
        view = subscriber_view(subscriber)
        return SubscribeResult(subscriber=view, token_reissued=outcome.token_reissued), []

    result = await ctx.service.transaction(work)
    ctx.notify_delivery()
    return result


async def confirm(ctx: Context, cmd: ConfirmSubscription) -> SubscriberView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[SubscriberView, Sequence[Event]]:
        digest = token_hash(cmd.token)
        found = await store.subscriber_by_token_hash(db, digest, session)
        before = (
            await store.subscriber_by_confirmed_token_hash(db, digest, session)
            if found is None
            else None
        )
        confirmed = domain.confirm(found, ctx.clock(), confirmed=before)
        await store.save_subscriber(db, confirmed, session)
        event = Subscribed(subscriber_id=confirmed.id, source=confirmed.source)
        return subscriber_view(confirmed), [event]

    return await ctx.service.transaction(work)


async def unsubscribe(ctx: Context, cmd: Unsubscribe) -> SubscriberView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[SubscriberView, Sequence[Event]]:
        found = await store.subscriber_by_unsubscribe_token(db, cmd.token, session)
        if found is None:
            raise ServiceError(ErrorCode.INVALID_TOKEN, "the unsubscribe link is not valid")
        updated, changed = domain.unsubscribe(found, ctx.clock(), by=Unsubscriber.SELF)
        if not changed:
            return subscriber_view(found), []
        await store.save_subscriber(db, updated, session)
        events = [Unsubscribed(subscriber_id=updated.id)] if found.status != updated.status else []
        return subscriber_view(updated), events

    view = await ctx.service.transaction(work)
    ctx.loader.forget(view.id)  # a mail claimed already must see the unsubscribe
    return view


async def list_subscribers(ctx: Context, query: ListSubscribers) -> SubscriberPage:
    total, found = await store.subscriber_page(
        ctx.service.db, query.status, limit=query.limit, offset=query.offset
    )
    return SubscriberPage(total=total, items=[subscriber_view(s) for s in found])


# ---------------------------------------------------------------- reactions to ambassadors


async def ambassador_signed_up(ctx: Context, event: SignedUp, session: Session) -> list[Event]:
    """A self sign-up gets the link that confirms the address (staff sign-ups need none)."""
    if event.source != Source.SELF or not event.confirmation_token:
        return []
    token = event.confirmation_token
    await queue(
        ctx,
        session,
        kind="confirmation",
        dedupe_key=f"confirmation:{event.event_id}",
        to_address=event.email,
        to_name=event.name,
        ambassador_id=event.ambassador_id,
        context={
            "name": event.name,
            "confirm_url": domain.ambassador_confirm_url(ctx.settings.public_url, token),
            "token": token,
            "expires_at": event.token_expires_at or event.occurred_at,
        },
    )
    return []


async def ambassador_activated(ctx: Context, event: Activated, session: Session) -> list[Event]:
    """Welcome with the certificate attached; the ambassador becomes a subscriber."""
    db = ctx.service.db
    existing = await store.subscriber_of_ambassador(db, event.ambassador_id, session)
    if existing is None:
        existing = await store.subscriber_by_address(db, domain.address_key(event.email), session)
    activation = domain.ambassador_activated(
        existing,
        ambassador_id=event.ambassador_id,
        email=event.email,
        name=event.name,
        now=ctx.clock(),
    )
    subscriber = activation.subscriber
    await store.save_subscriber(db, subscriber, session)
    await store.save_ambassador(
        db,
        domain.KnownAmbassador(
            ambassador_id=event.ambassador_id,
            name=event.name,
            organisation=event.organisation,
            public=event.public,
            themes=tuple(event.themes),
            activated_at=event.occurred_at,
        ),
        session,
    )
    cert = event.certificate
    await queue(
        ctx,
        session,
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
        return [Subscribed(subscriber_id=subscriber.id, source=subscriber.source)]
    return []


async def ambassador_profile_updated(
    ctx: Context, event: ProfileUpdated, session: Session
) -> list[Event]:
    """New name or address for the subscriber and the read model; never a resubscription."""
    db = ctx.service.db
    subscriber = await store.subscriber_of_ambassador(db, event.ambassador_id, session)
    if subscriber is not None and subscriber.status != SubscriberStatus.ERASED:
        key = domain.address_key(event.email)
        if key != subscriber.address_key:
            other = await store.subscriber_by_address(db, key, session)
            if other is not None and other.id != subscriber.id:
                # One address, one subscriber: this one takes it over (with its opt-out).
                subscriber = domain.absorb(subscriber, other)
                await store.delete_subscriber(db, other.id, session)
        subscriber = domain.update_contact(subscriber, email=event.email, name=event.name)
        await store.save_subscriber(db, subscriber, session)
    if event.status != AmbassadorStatus.ACTIVE:
        await store.delete_ambassador(db, event.ambassador_id, session)
        return []
    known = await store.load_ambassador(db, event.ambassador_id, session)
    await store.save_ambassador(
        db,
        domain.KnownAmbassador(
            ambassador_id=event.ambassador_id,
            name=event.name,
            organisation=event.organisation,
            public=event.public,
            themes=tuple(event.themes),
            activated_at=known.activated_at if known else event.occurred_at,
        ),
        session,
    )
    return []


async def ambassador_withdrawn(ctx: Context, event: Withdrawn, session: Session) -> list[Event]:
    """Unsubscribed (a rejoin subscribes again), and a short goodbye."""
    db = ctx.service.db
    await store.delete_ambassador(db, event.ambassador_id, session)
    subscriber = await store.subscriber_of_ambassador(db, event.ambassador_id, session)
    if subscriber is None or subscriber.address is None:
        return []
    updated, changed = domain.unsubscribe(subscriber, ctx.clock(), by=Unsubscriber.WITHDRAWN)
    if changed:
        await store.save_subscriber(db, updated, session)
    await queue(
        ctx,
        session,
        kind="goodbye",
        dedupe_key=f"goodbye:{event.event_id}",
        to_address=subscriber.address,
        to_name=subscriber.name,
        subscriber=updated,
        context={"name": subscriber.name},
    )
    return [Unsubscribed(subscriber_id=updated.id)] if changed else []


async def ambassador_erased(ctx: Context, event: Erased, session: Session) -> list[Event]:
    """Every personal field this service holds about the person goes; no goodbye."""
    db = ctx.service.db
    now = ctx.clock()
    ambassador_id = event.ambassador_id
    # The erased event names no address. Besides the subscriber linked to the ambassador,
    # an address this service mailed on the ambassador's behalf (e.g. a confirmation that
    # was never confirmed) may also have a subscription of its own.
    subscribers: dict[str, Subscriber] = {}
    linked = await store.subscriber_of_ambassador(db, ambassador_id, session)
    if linked is not None:
        subscribers[linked.id] = linked
    for address in await store.addresses_mailed_for(db, ambassador_id, session):
        found = await store.subscriber_by_address(db, domain.address_key(address), session)
        if found is not None:
            subscribers[found.id] = found
    events: list[Event] = []
    for subscriber in subscribers.values():
        if subscriber.status != SubscriberStatus.ERASED:
            await store.save_subscriber(db, domain.erase(subscriber, now), session)
            events.append(Unsubscribed(subscriber_id=subscriber.id))
        await delivery.erase_recipient(db, session, subscriber_id=subscriber.id, now=now)
    await delivery.erase_recipient(db, session, ambassador_id=ambassador_id, now=now)
    await store.forget_item_ambassador_name(db, ambassador_id, session)
    for issue in await store.issues_naming(db, ambassador_id, session):
        scrubbed = domain.scrub_ambassador(issue, ambassador_id)
        if scrubbed is not None:
            await store.save_issue(db, scrubbed, session)
    await store.delete_ambassador(db, ambassador_id, session)
    # Meeting mails come on another stream and may arrive after this (see meetings.py).
    await store.remember_erased_ambassador(db, ambassador_id, now, session)
    ctx.issues.clear()
    ctx.fanout_wakeup.set()  # rewrites the stored web version of a scrubbed issue
    return events


# ---------------------------------------------------------------- news items


async def ensure_uploads_bucket(ctx: Context) -> None:
    """The uploads bucket forgets what nobody turned into an item (Service.buckets cannot
    give a bucket a TTL)."""
    js = ctx.service.js
    try:
        await js.object_store(UPLOADS_BUCKET)
    except NotFoundError:
        await js.create_object_store(
            UPLOADS_BUCKET,
            config=ObjectStoreConfig(
                storage=StorageType.FILE,
                replicas=ctx.settings.stream_replicas,
                ttl=UPLOAD_TTL_SECONDS,
            ),
        )


def _image_error(message: str) -> ServiceError:
    return ServiceError(
        ErrorCode.VALIDATION_FAILED,
        f"the image cannot be used: {message}",
        [FieldError(field="image_object", message=message)],
    )


async def _take_upload(ctx: Context, object_name: str, item_id: str) -> StoredImage:
    """Read an upload, clean it, keep the clean copy; the upload is deleted either way."""
    js = ctx.service.js
    max_bytes = ctx.settings.newsletter_image_max_bytes
    uploads = await js.object_store(UPLOADS_BUCKET)
    try:
        try:
            info = await uploads.get_info(object_name)
        except NotFoundError:
            raise _image_error("no such upload (uploads are kept for an hour)") from None
        if (info.size or 0) > max_bytes:
            raise _image_error(f"larger than {max_bytes // 1_000_000} MB")
        data = bytes((await uploads.get(object_name)).data or b"")
        try:
            clean = await asyncio.to_thread(images.clean_image, data, max_bytes=max_bytes)
        except images.ImageRejected as exc:
            raise _image_error(str(exc)) from None
    finally:
        with contextlib.suppress(NotFoundError):
            await uploads.delete(object_name)
    bucket = await js.object_store(IMAGES_BUCKET)
    stored_name = f"{item_id}.{clean.extension}"
    info = await bucket.put(stored_name, clean.data)
    return StoredImage(
        bucket=IMAGES_BUCKET,
        object_name=stored_name,
        content_type=clean.content_type,
        width=clean.width,
        height=clean.height,
        size=info.size or len(clean.data),
    )


async def _delete_image(ctx: Context, image: StoredImage) -> None:
    bucket = await ctx.service.js.object_store(image.bucket)
    with contextlib.suppress(NotFoundError):
        await bucket.delete(image.object_name)


async def add_item(ctx: Context, cmd: AddItem) -> ItemView:
    db = ctx.service.db
    ambassador_name = None
    if cmd.ambassador_id is not None:
        known = await store.load_ambassador(db, cmd.ambassador_id)
        if known is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND,
                f"ambassador {cmd.ambassador_id} is not an active ambassador",
                [FieldError(field="ambassador_id", message="not an active ambassador")],
            )
        # Named in the issue only if listed publicly: the issue is public (the archive).
        ambassador_name = known.display_name if known.public else None
    item_id = uuid.uuid4().hex
    # Checked before the image is processed: a typo costs no upload.
    item = domain.new_item(
        item_id=item_id,
        title=cmd.title,
        body=cmd.body,
        link=cmd.link,
        image=None,
        ambassador_id=cmd.ambassador_id,
        ambassador_name=ambassador_name,
        now=ctx.clock(),
    )
    if cmd.image_object:
        item = item.model_copy(update={"image": await _take_upload(ctx, cmd.image_object, item_id)})

    async def work(session: Session) -> tuple[ItemView, Sequence[Event]]:
        await store.insert_item(db, item, session)
        return item_view(item), []

    try:
        return await ctx.service.transaction(work)
    except BaseException:
        if item.image is not None:
            await _delete_image(ctx, item.image)
        raise


async def list_items(ctx: Context, query: ListItems) -> ItemPage:
    total, found = await store.item_page(
        ctx.service.db, unused=query.unused, limit=query.limit, offset=query.offset
    )
    return ItemPage(total=total, items=[item_view(i) for i in found])


async def remove_item(ctx: Context, cmd: RemoveItem) -> ItemView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[Item, Sequence[Event]]:
        item = await store.load_item(db, cmd.item_id, session)
        if item is None:
            raise _not_found("item", cmd.item_id)
        domain.check_removable(item)
        await store.delete_item(db, item.id, session)
        return item, []

    removed = await ctx.service.transaction(work)
    if removed.image is not None:
        await _delete_image(ctx, removed.image)
    return item_view(removed)


# ---------------------------------------------------------------- issues


async def draft(ctx: Context, cmd: DraftIssue) -> IssueSummary:
    db = ctx.service.db
    now = ctx.clock()
    if cmd.since is not None:
        since = domain.start_of_day(cmd.since)
    else:
        since = domain.default_since(
            await store.last_sent_until(db), now, ctx.settings.newsletter_default_since_days
        )
    issue = domain.assemble_issue(
        issue_id=uuid.uuid4().hex,
        # Provisional: a sent issue takes its final number when it starts sending.
        number=await store.current_issue_number(db) + 1,
        title=cmd.title,
        intro=cmd.intro,
        since=since,
        until=now,
        items=await store.unused_items(db, ITEMS_PER_ISSUE_MAX),
        sections=await ctx.sections.gather(db, since, now) if since < now else [],
        now=now,
    )

    async def work(session: Session) -> tuple[IssueSummary, Sequence[Event]]:
        await store.save_issue(db, issue, session)
        return issue_summary(issue), []

    return await ctx.service.transaction(work)


async def _load_issue(ctx: Context, issue_id: str) -> Issue:
    issue = await store.load_issue(ctx.service.db, issue_id)
    if issue is None:
        raise _not_found("issue", issue_id)
    return issue


@dataclass(frozen=True)
class RenderedBundle:
    """An issue rendered once: the web version, and the mail ready to copy per subscriber."""

    issue: Issue
    rendered: RenderedIssue
    prepared: compose.PreparedIssue


async def render(ctx: Context, issue: Issue) -> RenderedBundle:
    s = ctx.settings
    inline: list[compose.InlineImage] = []
    for item in issue.items:
        if item.image is None:
            continue
        bucket = await ctx.service.js.object_store(item.image.bucket)
        found = await bucket.get(item.image.object_name)
        inline.append(
            compose.InlineImage(
                cid=domain.image_cid(item.id, s.mail_message_id_domain),
                content_type=item.image.content_type,
                data=bytes(found.data or b""),
                filename=item.image.object_name,
            )
        )
    context = domain.issue_context(issue, message_id_domain=s.mail_message_id_domain)
    rendered = await asyncio.to_thread(render_issue, context)
    prepared = await asyncio.to_thread(
        compose.PreparedIssue,
        rendered,
        from_address=s.mail_from_address,
        from_name=s.mail_from_name,
        inline_images=inline,
    )
    return RenderedBundle(issue, rendered, prepared)


def _public(issue: Issue, rendered: RenderedIssue) -> IssueRendering:
    return IssueRendering(
        id=issue.id,
        number=issue.number,
        state=issue.state,
        title=issue.title,
        subject=rendered.subject,
        html=rendered.archive.html,
        text=rendered.archive.text,
        images=[
            PublicImage(
                bucket=i.image.bucket,
                object_name=i.image.object_name,
                path=domain.image_path(i.image),
            )
            for i in issue.items
            if i.image is not None
        ],
        sent_at=issue.sent_at,
    )


async def preview(ctx: Context, query: PreviewIssue) -> IssueRendering:
    issue = await _load_issue(ctx, query.issue_id)
    return _public(issue, (await render(ctx, issue)).rendered)


async def test_send(ctx: Context, cmd: TestSend) -> TestSendResult:
    issue = await _load_issue(ctx, cmd.issue_id)
    to = domain.normalised_email(cmd.to, "to")
    # Every test-send is a mail of its own; its id (and Message-ID) follows from the key.
    dedupe_key = f"test_issue:{issue.id}:{uuid.uuid4().hex}"
    mail_id = delivery.mail_id_for(dedupe_key)

    async def work(session: Session) -> tuple[TestSendResult, Sequence[Event]]:
        await queue(
            ctx,
            session,
            kind="test_issue",
            dedupe_key=dedupe_key,
            to_address=to,
            # Not in issue_id: that counts the issue's real recipients.
            context={"issue_id": issue.id},
        )
        return TestSendResult(mail_id=mail_id, to=to), []

    result = await ctx.service.transaction(work)
    ctx.notify_delivery()
    return result


async def send(ctx: Context, cmd: SendIssue) -> IssueSummary:
    db = ctx.service.db

    async def work(session: Session) -> tuple[Issue, Sequence[Event]]:
        issue = await store.load_issue(db, cmd.issue_id, session)
        if issue is None:
            raise _not_found("issue", cmd.issue_id)
        if issue.state == IssueState.SENDING:
            return issue, []  # sent again after a timeout: the fan-out is running
        if issue.state == IssueState.SENT:
            raise ServiceError(ErrorCode.INVALID_STATE, f"issue {issue.number} is sent already")
        current = await store.load_items(db, [i.id for i in issue.items], session)
        number = await store.take_issue_number(db, session)
        sending = domain.start_sending(
            issue, {i.id: current.get(i.id) for i in issue.items}, number, ctx.clock()
        )
        await store.save_issue(db, sending, session)
        await store.mark_items_used(db, [i.id for i in issue.items], issue.id, session)
        return sending, []

    sending = await ctx.service.transaction(work)
    done = ctx.fanout_done.setdefault(sending.id, asyncio.Event())
    ctx.fanout_wakeup.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=SEND_WAIT_SECONDS)
    return issue_summary(await _load_issue(ctx, sending.id))


async def archive(ctx: Context, query: GetArchive) -> Archive:
    db = ctx.service.db
    entries = [
        ArchiveEntry(
            number=i.number,
            title=i.title,
            since=i.since,
            until=i.until,
            sent_at=i.sent_at,
            archive_object=i.archive_object or domain.archive_object_name(i.number),
        )
        for i in await store.sent_issues(db)
        if i.sent_at is not None
    ]
    rendering = None
    if query.number is not None:
        issue = await store.sent_issue_by_number(db, query.number)
        if issue is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no sent issue has number {query.number}")
        rendering = _public(issue, (await render(ctx, issue)).rendered)
    return Archive(issues=entries, issue=rendering)


# ---------------------------------------------------------------- the fan-out


async def fanout(ctx: Context, issue_id: str) -> Issue | None:
    """Queue the issue for every confirmed subscriber, then mark it sent (once).

    The mails are queued as bulk batches (see ``delivery.batches``) of ``batch_size_for``
    subscribers each, which the delivery worker claims a batch at a time; a page of
    ``newsletter_fanout_page`` batches is read and written at once. Resumable at any point:
    subscribers are taken in id order from the stored cursor, and a batch is named after
    the cursor it starts after, so a batch queued again after a crash (before the cursor
    was stored) is found, and the fan-out goes on after it.
    """
    db = ctx.service.db
    issue = await store.load_issue(db, issue_id)
    if issue is None or issue.state != IssueState.SENDING:
        return issue
    cursor = issue.fanout_cursor
    size = delivery.batch_size_for(ctx.settings)
    page_batches = ctx.settings.newsletter_fanout_page
    queued = 0
    scan = store.ConfirmedScan()
    while page := await store.confirmed_after(db, cursor, size * page_batches, scan):
        now = ctx.clock()
        chain: list[delivery.PlannedBatch] = []
        after = cursor
        for start in range(0, len(page), size):
            subscribers = page[start : start + size]
            records = [
                delivery.new_mail(
                    kind="issue",
                    dedupe_key=f"issue:{issue.id}:{doc['_id']}",
                    to_address=doc["address"],
                    to_name=doc.get("name"),
                    subscriber_id=doc["_id"],
                    issue_id=issue.id,
                    message_id_domain=ctx.settings.mail_message_id_domain,
                    now=now,
                )
                for doc in subscribers
                if doc.get("address")
            ]
            last = str(subscribers[-1]["_id"])
            batch_id = delivery.batch_id_for(issue.id, after)
            chain.append(delivery.PlannedBatch(batch_id, issue.id, records, last))
            after = last
        first = cursor == issue.fanout_cursor
        queued_now, cursor = await delivery.queue_batches(db, chain, now)
        queued += queued_now
        assert cursor is not None  # the chain is not empty
        await store.advance_fanout(db, issue.id, cursor)
        if first:
            # The worker starts on the first batches; it finds the later ones by itself
            # when it runs out.
            ctx.notify_delivery()
    recipients = (await delivery.issue_progress(db, issue.id)).recipients
    log.info("issue fanned out", issue_id=issue.id, number=issue.number, queued_now=queued)
    await _store_archive(ctx, issue)

    async def work(session: Session) -> tuple[Issue, Sequence[Event]]:
        current = await store.load_issue(db, issue_id, session)
        if current is None or current.state != IssueState.SENDING:
            return current or issue, []  # another replica finished it
        sent = domain.mark_sent(current, recipients=recipients, now=ctx.clock())
        await store.save_issue(db, sent, session)
        assert sent.sent_at is not None and sent.archive_object is not None
        event = IssueSent(
            issue_id=sent.id,
            number=sent.number,
            title=sent.title,
            sent_at=sent.sent_at,
            recipients=recipients,
            archive_object=sent.archive_object,
        )
        return sent, [event]

    return await ctx.service.transaction(work)


async def _store_archive(ctx: Context, issue: Issue) -> None:
    """The issue's web version into the archive bucket (a re-put overwrites)."""
    bundle = await render(ctx, issue)
    bucket = await ctx.service.js.object_store(ARCHIVE_BUCKET)
    await bucket.put(
        domain.archive_object_name(issue.number), bundle.rendered.archive.html.encode()
    )


async def fanout_worker(ctx: Context) -> None:
    """Fans out issues being sent (also those a crash interrupted) and rewrites scrubbed
    web versions. Forever."""
    db = ctx.service.db
    while True:
        ctx.fanout_wakeup.clear()
        for issue_id in await store.sending_issue_ids(db):
            try:
                await fanout(ctx, issue_id)
            except Exception:
                log.exception("issue fan-out failed, trying again", issue_id=issue_id)
                continue
            done = ctx.fanout_done.pop(issue_id, None)
            if done is not None:
                done.set()
        for issue_id in await store.stale_archive_ids(db):
            try:
                issue = await store.load_issue(db, issue_id)
                if issue is not None:
                    await _store_archive(ctx, issue)
                    await store.archive_refreshed(db, issue_id)
            except Exception:
                log.exception("rewriting an archived issue failed", issue_id=issue_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.fanout_wakeup.wait(), timeout=10.0)


# ---------------------------------------------------------------- delivery


class IssueCache:
    """Rendered issues for the delivery worker: rendered once, copied per subscriber."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, RenderedBundle | None]] = {}
        self._lock = asyncio.Lock()

    def clear(self) -> None:
        self._entries.clear()

    async def get(
        self, issue_id: str, build: Callable[[], Awaitable[RenderedBundle | None]]
    ) -> RenderedBundle | None:
        entry = self._entries.get(issue_id)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return entry[1]
        # One render even when a whole batch of the issue's mails asks at once.
        async with self._lock:
            entry = self._entries.get(issue_id)
            if entry is not None and time.monotonic() - entry[0] < self.ttl:
                return entry[1]
            bundle = await build()
            self._entries = {
                k: v for k, v in self._entries.items() if time.monotonic() - v[0] < self.ttl
            }
            self._entries[issue_id] = (time.monotonic(), bundle)
            return bundle


class SubscriberLoader:
    """Subscribers for the mails being materialized, in as few queries as possible.

    The delivery worker hands each claimed batch to :meth:`prefetch`: one ``$in`` query for
    the whole batch, kept for :meth:`load` for up to ``max_age`` seconds, each entry used
    once. Anything else (an entry used or too old, no prefetch) is looked up on demand, and
    the requests made in one turn of the event loop share one query.
    """

    def __init__(self, ctx: Context, max_age: float = SUBSCRIBER_PREFETCH_SECONDS) -> None:
        self._ctx = ctx
        self._max_age = max_age
        self._waiting: dict[str, list[asyncio.Future[Subscriber | None]]] = {}
        self._flushing: set[asyncio.Task[None]] = set()
        # subscriber id -> (when looked up, the subscriber or None if there is none)
        self._prefetched: dict[str, tuple[float, Subscriber | None]] = {}

    async def prefetch(self, records: Sequence[MailRecord]) -> None:
        ids = {r.subscriber_id for r in records if r.subscriber_id is not None}
        if not ids:
            return
        found = await store.load_subscribers(self._ctx.service.db, ids)
        now = time.monotonic()
        # Entries nobody used (their mail was released or cancelled) go once too old: the
        # cache holds a few batches, whatever the number of subscribers.
        self._prefetched = {k: v for k, v in self._prefetched.items() if now - v[0] < self._max_age}
        for subscriber_id in ids:
            self._prefetched[subscriber_id] = (now, found.get(subscriber_id))

    def forget(self, subscriber_id: str) -> None:
        self._prefetched.pop(subscriber_id, None)

    async def load(self, subscriber_id: str) -> Subscriber | None:
        entry = self._prefetched.pop(subscriber_id, None)
        if entry is not None and time.monotonic() - entry[0] < self._max_age:
            return entry[1]
        future: asyncio.Future[Subscriber | None] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            task = asyncio.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        self._waiting.setdefault(subscriber_id, []).append(future)
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of this round's requests join
        waiting, self._waiting = self._waiting, {}
        try:
            found = await store.load_subscribers(self._ctx.service.db, waiting)
        except Exception as exc:
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for subscriber_id, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(subscriber_id))


async def _attachment(ctx: Context, a: delivery.Attachment) -> compose.Attachment:
    if a.text is not None:
        return compose.Attachment(
            filename=a.filename, content_type=a.content_type, data=a.text.encode("utf-8")
        )
    assert a.bucket is not None and a.object_name is not None  # see delivery.Attachment
    try:
        bucket = await ctx.service.js.object_store(a.bucket)
        found = await bucket.get(a.object_name)
    except NotFoundError:
        raise NotReady(f"{a.object_name} is not in {a.bucket} yet") from None
    return compose.Attachment(
        filename=a.filename, content_type=a.content_type, data=bytes(found.data or b"")
    )


async def materialize(ctx: Context, record: MailRecord) -> MaterializedMail | None:
    """A queued mail as bytes for SMTP; None when it is not to be sent any more."""
    s = ctx.settings
    subscriber = None
    if record.subscriber_id is not None:
        subscriber = await ctx.loader.load(record.subscriber_id)
        if subscriber is None:
            return None  # merged into another subscriber meanwhile
    if not domain.may_receive(record.kind, subscriber):
        return None
    # The subscriber's address now: an ambassador may have changed it since queueing.
    to_address = subscriber.address if subscriber is not None else record.to_address
    to_name = subscriber.name if subscriber is not None else record.to_name
    if to_address is None:
        return None
    token = subscriber.unsubscribe_token if subscriber is not None else None
    url = domain.unsubscribe_url(s.public_url, token) if token else None
    mailto = compose.mailto_unsubscribe(s.mail_unsubscribe_mailto, token) if token else None
    if record.kind in ("issue", "test_issue"):
        issue_id = record.issue_id or str(record.context.get("issue_id") or "")
        bundle = await ctx.issues.get(issue_id, lambda: _bundle(ctx, issue_id))
        if bundle is None:
            return None
        message = bundle.prepared.message_for(
            to_address=to_address,
            to_name=to_name,
            message_id=record.message_id,
            unsubscribe_url=url,
            unsubscribe_mailto=mailto,
        )
    else:
        attachments = [await _attachment(ctx, a) for a in record.attachments]
        rendered = render_mail(record.kind, {**record.context, "unsubscribe_url": url})
        message = compose.compose_message(
            rendered,
            to_address=to_address,
            to_name=to_name,
            from_address=s.mail_from_address,
            from_name=s.mail_from_name,
            message_id=record.message_id,
            unsubscribe_url=url,
            unsubscribe_mailto=mailto,
            attachments=attachments,
            date=ctx.clock(),
        )
    if subscriber is not None and subscriber.hard_bounces > 0:
        _remember_bounces(ctx, record.id, subscriber.id)
    return MaterializedMail(message=message, sender=s.mail_from_address, recipients=[to_address])


def _remember_bounces(ctx: Context, mail_id: str, subscriber_id: str) -> None:
    now = time.monotonic()
    known = ctx.bounced_before
    if known and now - next(iter(known.values()))[0] > BOUNCE_MEMORY_SECONDS:
        # Mails that never reached on_delivered/on_hard_bounce (retried later, given up).
        ctx.bounced_before = known = {
            k: v for k, v in known.items() if now - v[0] <= BOUNCE_MEMORY_SECONDS
        }
    known.pop(mail_id, None)  # re-inserted last: the oldest entry stays first
    known[mail_id] = (now, subscriber_id)


async def _bundle(ctx: Context, issue_id: str) -> RenderedBundle | None:
    issue = await store.load_issue(ctx.service.db, issue_id)
    return await render(ctx, issue) if issue is not None else None


async def prefetch(ctx: Context, records: list[MailRecord]) -> None:
    """A claimed batch's subscribers, in one query, for materialize."""
    await ctx.loader.prefetch(records)


async def on_delivered(ctx: Context, records: list[MailRecord]) -> None:
    """A delivered mail resets its subscriber's hard bounces; most have none, and they are
    known from materialize, so a batch without any costs no write."""
    ids = []
    for record in records:
        entry = ctx.bounced_before.pop(record.id, None)
        if entry is not None:
            ids.append(entry[1])
    if ids:
        await store.reset_bounces(ctx.service.db, ids)


async def on_hard_bounce(ctx: Context, records: list[MailRecord]) -> None:
    db = ctx.service.db
    for record in records:
        ctx.bounced_before.pop(record.id, None)
    limit = ctx.settings.mail_hard_bounce_limit

    async def work(session: Session) -> tuple[None, Sequence[Event]]:
        changed = []
        for record in records:
            if record.subscriber_id is None:
                continue
            subscriber = await store.load_subscriber(db, record.subscriber_id, session)
            if subscriber is not None:
                changed.append(domain.hard_bounce(subscriber, limit))
        await store.record_bounces(db, changed, session)
        return None, []

    await ctx.service.transaction(work)


async def delivery_worker(ctx: Context) -> None:
    """Sends every queued mail over a pool of persistent SMTP connections. Forever."""
    pool = SmtpPool(ctx.settings)
    worker = DeliveryWorker(
        ctx.service.db,
        pool,
        ctx.settings,
        materialize=lambda record: materialize(ctx, record),
        on_delivered=lambda records: on_delivered(ctx, records),
        on_hard_bounce=lambda records: on_hard_bounce(ctx, records),
        prefetch=lambda records: prefetch(ctx, records),
        # The clock mails were queued by: when tests make time travel, due times agree.
        clock=ctx.clock,
        # Reactions to events commit after their handler returns, so they cannot wake the
        # worker themselves; it looks for new mail this often.
        poll_seconds=0.5,
    )
    ctx.delivery = worker
    try:
        await worker.run_forever()
    finally:
        ctx.delivery = None
        await pool.close()
