"""The newsletter service: subscribers, news items, issues, and every mail the network
sends. Run with ``python -m services.newsletter``; the AsyncAPI document:
``faststream docs gen --factory services.newsletter.app:create_app``."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from contracts.ambassadors import (
    Activated,
    Erased,
    ProfileUpdated,
    SignedUp,
    SignedUpAgain,
    Withdrawn,
)
from contracts.events import (
    INVITEE_EVENTS,
    MeetingCancelled,
    MeetingHeld,
    MeetingRescheduled,
    MeetingScheduled,
)
from contracts.networks import (
    MemberInvited,
    NetworkAlerted,
    NetworkClosed,
    NetworkFormed,
    StaffNotice,
)
from contracts.newsletter import (
    ARCHIVE_BUCKET,
    EVENTS,
    IMAGES_BUCKET,
    UPLOAD_TTL_SECONDS,
    UPLOADS_BUCKET,
    Endpoints,
)
from contracts.social import SocialNotice, StoryPublished, StoryReviewed, StoryUnpublished
from services import registry
from services.newsletter import (
    ambassador_events,
    delivery,
    fanout,
    issues,
    items,
    meetings,
    networks,
    store,
    stories,
    subscribers,
)
from services.newsletter.context import Context
from services.newsletter.links import Links
from services.newsletter.outgoing import Outgoing
from services.newsletter.settings import NewsletterSettings
from services.runtime.known_ambassadors import Standing
from services.runtime.service import Bucket, Service, ServiceFactory

ENTRY = registry.NEWSLETTER


def build(
    settings: NewsletterSettings, service_factory: ServiceFactory = Service
) -> tuple[Service, Context]:
    """The service with every handler registered, and the context they share."""
    service = service_factory(
        ENTRY.name,
        settings,
        produces=EVENTS,
        buckets=[
            IMAGES_BUCKET,
            ARCHIVE_BUCKET,
            # The uploads bucket forgets what nobody turned into an item.
            Bucket(UPLOADS_BUCKET, ttl_seconds=UPLOAD_TTL_SECONDS),
        ],
    )
    known = service.follow_ambassadors()
    ctx = Context(service, settings, known, Links(settings))
    outgoing = Outgoing(ctx)

    async def prepare() -> None:
        await store.ensure_indexes(service.db)
        await delivery.ensure_mail_indexes(service.db)
        await delivery.ensure_batch_indexes(service.db)
        # Erased by a release that kept no tombstones: their subscriber still names them.
        for ambassador_id in await store.erased_ambassadors_of_old(service.db):
            await service.db.ambassadors.update_one(
                {"_id": ambassador_id},
                {"$set": {"standing": Standing.ERASED.value}},
                upsert=True,
            )

    service.on_startup(prepare)
    service.keep(
        "mails", "finished_at", lambda: settings.sent_mail_retention_days, "mails sent or given up"
    )
    service.background("mail delivery", outgoing.run)
    ctx.fanout = service.loop("issue fan-out", partial(fanout.step, ctx), every=fanout.POLL_SECONDS)

    # Reactions to the ambassadors service (after the runtime's read model update).
    service.react(SignedUp, partial(ambassador_events.signed_up, ctx))
    service.react(SignedUpAgain, partial(ambassador_events.signed_up_again, ctx))
    service.react(Activated, partial(ambassador_events.activated, ctx))
    service.react(ProfileUpdated, partial(ambassador_events.profile_updated, ctx))
    service.react(Withdrawn, partial(ambassador_events.withdrawn, ctx))
    service.react(Erased, partial(ambassador_events.erased, ctx))
    # One mail per invitee event; the meeting events feed the digest.
    for invitee_event in INVITEE_EVENTS:
        service.react(invitee_event, partial(meetings.invitee_event, ctx))
    service.react(MeetingScheduled, partial(meetings.meeting_scheduled, ctx))
    service.react(MeetingRescheduled, partial(meetings.meeting_rescheduled, ctx))
    service.react(MeetingCancelled, partial(meetings.meeting_cancelled, ctx))
    service.react(MeetingHeld, partial(meetings.meeting_held, ctx))
    # One mail per network invitation.
    service.react(MemberInvited, partial(networks.member_invited, ctx))
    service.react(NetworkFormed, partial(networks.network_formed, ctx))
    service.react(NetworkClosed, partial(networks.network_closed, ctx))
    service.react(StaffNotice, partial(networks.staff_notice, ctx))
    service.react(NetworkAlerted, partial(networks.network_alerted, ctx))
    # Review decisions and publishing notices are mailed; published stories feed the digest.
    service.react(StoryReviewed, partial(stories.story_reviewed, ctx))
    service.react(SocialNotice, partial(stories.social_notice, ctx))
    service.react(StoryPublished, partial(stories.story_published, ctx))
    service.react(StoryUnpublished, partial(stories.story_unpublished, ctx))
    service.react(Erased, partial(stories.ambassador_erased, ctx))

    service.command(Endpoints.SUBSCRIBE, partial(subscribers.subscribe, ctx))
    service.command(Endpoints.CONFIRM, partial(subscribers.confirm, ctx))
    service.command(Endpoints.UNSUBSCRIBE, partial(subscribers.unsubscribe, ctx))
    service.query(Endpoints.SUBSCRIBERS, partial(subscribers.list_subscribers, ctx))
    service.orchestrate(Endpoints.ITEM_ADD, partial(items.add_item, ctx))
    service.query(Endpoints.ITEM_LIST, partial(items.list_items, ctx))
    service.command(Endpoints.ITEM_REMOVE, partial(items.remove_item, ctx))
    service.command(Endpoints.DRAFT, partial(issues.draft, ctx))
    service.query(Endpoints.PREVIEW, partial(issues.preview, ctx))
    service.command(Endpoints.TEST_SEND, partial(issues.test_send, ctx))
    service.job(Endpoints.SEND, partial(issues.send, ctx))
    service.query(Endpoints.ARCHIVE, partial(issues.archive, ctx))
    service.query(Endpoints.ARCHIVE_IMAGE, partial(issues.archive_image, ctx))
    service.check_endpoints(Endpoints)
    return service, ctx


def create_app(settings: NewsletterSettings | None = None) -> FastStream:
    service, _ = build(settings or NewsletterSettings())
    return service.app
