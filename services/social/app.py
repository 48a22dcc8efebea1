"""The social service: stories from ambassadors, their review against the guide, and
publishing to the Facebook Page. Run with ``python -m services.social``; the AsyncAPI
document: ``faststream docs gen --factory services.social.app:create_app``."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from contracts.ambassadors import Erased
from contracts.events import MeetingCancelled, MeetingScheduled
from contracts.networks import NetworkClosed
from contracts.newsletter import IssueSent
from contracts.social import EVENTS, PICTURES_BUCKET, UPLOAD_TTL_SECONDS, UPLOADS_BUCKET, Endpoints
from services import registry
from services.runtime.service import Bucket, Service, ServiceFactory
from services.social import reactions, review_handlers, store, story_handlers, token_check
from services.social.context import Context
from services.social.links import StoryLinks
from services.social.pictures import Pictures
from services.social.publisher import Publisher
from services.social.settings import SocialSettings

ENTRY = registry.SOCIAL


def build(
    settings: SocialSettings, service_factory: ServiceFactory = Service
) -> tuple[Service, Context]:
    """The service with every handler registered, and the context they share."""
    service = service_factory(
        ENTRY.name,
        settings,
        produces=EVENTS,
        buckets=[PICTURES_BUCKET, Bucket(UPLOADS_BUCKET, ttl_seconds=UPLOAD_TTL_SECONDS)],
    )
    ctx = Context(
        service,
        settings,
        service.follow_ambassadors(),
        Pictures(lambda: service.js, settings),
        StoryLinks(settings.social_token_secret, settings.public_url),
    )
    publisher = Publisher(ctx)

    async def prepare() -> None:
        await store.ensure_indexes(service.reading())
        ctx.graph_client = ctx.new_graph_client()

    async def close() -> None:
        if ctx.graph_client is not None:
            await ctx.graph_client.aclose()

    service.on_startup(prepare)
    service.on_shutdown(close)
    ctx.publishing = service.loop("publishing", publisher.step, every=settings.social_poll_seconds)
    service.health_check(partial(token_check.problems, ctx))
    service.loop(
        "token check", partial(token_check.step, ctx), every=settings.social_token_check_seconds
    )

    service.react(Erased, partial(reactions.ambassador_erased, ctx))
    service.react(MeetingScheduled, partial(reactions.meeting_scheduled, ctx))
    service.react(MeetingCancelled, partial(reactions.meeting_cancelled, ctx))
    service.react(NetworkClosed, partial(reactions.network_closed, ctx))
    service.react(IssueSent, partial(reactions.issue_sent, ctx))

    service.orchestrate(Endpoints.SUBMIT, partial(story_handlers.submit, ctx))
    service.orchestrate(Endpoints.SUBMIT_OWN, partial(story_handlers.submit_own, ctx))
    service.orchestrate(Endpoints.REVISE, partial(story_handlers.revise, ctx))
    service.orchestrate(Endpoints.REVISE_OWN, partial(story_handlers.revise_own, ctx))
    service.query(Endpoints.CHECK, partial(story_handlers.check, ctx))
    service.query(Endpoints.OWN, partial(story_handlers.own_stories, ctx))
    service.query(Endpoints.LIST, partial(story_handlers.list_stories, ctx))
    service.query(Endpoints.SHOW, partial(story_handlers.show_story, ctx))
    service.query(Endpoints.REVIEW, partial(story_handlers.review_queue, ctx))
    service.query(Endpoints.UNCONFIRMED, partial(story_handlers.unconfirmed, ctx))
    service.query(Endpoints.PUBLIC_STORIES, partial(story_handlers.public_stories, ctx))
    service.query(Endpoints.PICTURE, partial(story_handlers.picture, ctx))
    service.query(Endpoints.PUBLIC_PICTURE, partial(story_handlers.public_picture, ctx))
    service.query(Endpoints.OWN_PICTURE, partial(story_handlers.own_picture, ctx))
    service.command(Endpoints.APPROVE, partial(review_handlers.approve, ctx))
    service.command(Endpoints.REQUEST_CHANGES, partial(review_handlers.request_changes, ctx))
    service.command(Endpoints.REJECT, partial(review_handlers.reject, ctx))
    service.command(Endpoints.SCHEDULE, partial(review_handlers.schedule, ctx))
    service.command(Endpoints.UNSCHEDULE, partial(review_handlers.unschedule, ctx))
    service.command(Endpoints.RETRY, partial(review_handlers.retry, ctx))
    service.command(Endpoints.CONFIRM_PUBLISHED, partial(review_handlers.confirm_published, ctx))
    service.orchestrate(Endpoints.UNPUBLISH, partial(review_handlers.unpublish, ctx))
    service.orchestrate(Endpoints.CHECK_TOKEN, partial(review_handlers.check_token, ctx))
    service.query(Endpoints.PUBLISHING, partial(review_handlers.publishing, ctx))
    service.check_endpoints(Endpoints)
    return service, ctx


def create_app(settings: SocialSettings | None = None) -> FastStream:
    service, _ = build(settings or SocialSettings())
    return service.app
