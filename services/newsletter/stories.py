"""The social service's events, as far as the newsletter deals with them: the mail that
tells an ambassador what staff decided about their story (with the comment and their own
link to revise it), the mail to the project leaders when publishing needs them, and the
read model ``stories`` (published stories) that the digest section "Historier fra
netværket" is drawn from, with the story's first picture from the social service's
bucket.

A decision's mail goes to the address this service knows for the ambassador, only while
they are active. A story of an ambassador who was erased is never shown again (the
runtime's guard skips its events; the erasure deletes what was kept).
"""

from __future__ import annotations

from typing import Any

from contracts.ambassadors import Erased
from contracts.social import (
    KIND_LABELS,
    Decision,
    NoticeKind,
    SocialNotice,
    StoryPublished,
    StoryReviewed,
    StorySource,
    StoryUnpublished,
)
from services.newsletter import links, store
from services.newsletter.context import Context
from services.newsletter.mailing import active_recipient, queue
from services.runtime.unit_of_work import UnitOfWork

REVIEWED = "story_reviewed"
NOTICE = "social_notice"


async def story_reviewed(ctx: Context, uow: UnitOfWork, event: StoryReviewed) -> None:
    known = await active_recipient(ctx, uow, event.ambassador_id, REVIEWED)
    if known is None or known.email is None:
        return
    await queue(
        ctx,
        uow,
        kind=REVIEWED,
        dedupe_key=f"{REVIEWED}:{event.event_id}",
        to_address=known.email,
        to_name=known.name,
        ambassador_id=event.ambassador_id,
        context={
            "name": known.name,
            "decision": event.decision.value,
            "title": event.title,
            "kind_label": KIND_LABELS[event.kind],
            "comment": event.comment,
            # Their own stories page: to revise, or to see it go out.
            links.STORIES_KEY: event.ambassador_id,
            "revise": event.decision == Decision.CHANGES_REQUESTED,
        },
    )


async def social_notice(ctx: Context, uow: UnitOfWork, event: SocialNotice) -> None:
    """One mail to the project leaders: what happened and what to do (ids only)."""
    address = ctx.settings.staff_address or ctx.settings.mail_from_address
    await queue(
        ctx,
        uow,
        kind=NOTICE,
        dedupe_key=f"{NOTICE}:{event.event_id}",
        to_address=address,
        to_name=ctx.settings.mail_from_name,
        context={
            "notice": event.kind.value,
            "story_ids": list(event.story_ids),
            "post_ids": list(event.post_ids),
            "detail": event.detail,
            "paused": event.kind == NoticeKind.PUBLISHING_PAUSED,
        },
    )


# ---------------------------------------------------------------- the read model


def _picture(event: StoryPublished) -> dict[str, Any] | None:
    if not event.pictures:
        return None
    first = event.pictures[0]
    return {
        "bucket": first.bucket,
        "name": first.name,
        "alt": first.alt,
        "width": first.width,
        "height": first.height,
        "size": first.size,
        "content_type": first.content_type,
    }


async def story_published(ctx: Context, uow: UnitOfWork, event: StoryPublished) -> None:
    # The issue's own Facebook post is no story of the network's.
    if event.source == StorySource.NEWSLETTER:
        return
    await store.save_story(
        uow,
        event.story_id,
        {
            "kind": event.kind.value,
            "title": event.title,
            "text": event.text,
            "link": event.link,
            "post_url": event.post_url,
            "credit": event.credit,
            "published_at": event.published_at,
            "picture": _picture(event),
            "ambassador_id": event.ambassador_id,
        },
    )


async def story_unpublished(ctx: Context, uow: UnitOfWork, event: StoryUnpublished) -> None:
    await store.delete_stories(uow, {"_id": event.story_id})


async def ambassador_erased(ctx: Context, uow: UnitOfWork, event: Erased) -> None:
    await store.delete_stories(uow, {"ambassador_id": event.ambassador_id})
