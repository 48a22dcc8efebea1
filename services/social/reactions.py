"""What the social service does when other services' events arrive: suggestions for the
review queue (a public meeting scheduled, a network closed with a result, a newsletter
issue sent), a suggestion withdrawn when its meeting is cancelled, and an erased
ambassador's stories anonymised."""

from __future__ import annotations

import uuid

from contracts.ambassadors import Erased
from contracts.events import MeetingCancelled, MeetingScheduled
from contracts.networks import NetworkClosed
from contracts.newsletter import IssueSent
from contracts.social import NoticeKind, SocialNotice, StoryStatus, StorySubmitted
from services.runtime.unit_of_work import UnitOfWork
from services.social import guide, store, stories, suggestions
from services.social.context import Context
from services.social.stories import Version
from services.social.story_handlers import today
from services.social.suggestions import Suggestion

ACTOR = "service:social"


async def _suggest(uow: UnitOfWork, suggestion: Suggestion | None) -> None:
    if suggestion is None or await store.of_source(uow, suggestion.source_ref) is not None:
        return
    version = Version(
        number=1,
        kind=suggestion.kind,
        title=suggestion.title,
        text=suggestion.text,
        event_date=suggestion.event_date,
        event_public=suggestion.event_public,
        link=suggestion.link,
        by=ACTOR,
        at=uow.now,
    )
    version = version.model_copy(
        update={"hints": tuple(guide.check(version.draft(), today=today(uow)))}
    )
    story = stories.submit(
        story_id=uuid.uuid4().hex,
        source=suggestion.source,
        ambassador_id=None,
        version=version,
        now=uow.now,
        actor=ACTOR,
        source_ref=suggestion.source_ref,
    ).model_copy(update={"comment": suggestion.prompt})
    await store.save(uow, story)
    uow.emit(
        StorySubmitted(
            story_id=story.id, kind=version.kind, source=story.source, title=version.title
        )
    )


async def meeting_scheduled(ctx: Context, uow: UnitOfWork, event: MeetingScheduled) -> None:
    await _suggest(uow, suggestions.meeting(event.meeting, ctx.settings.public_url))


async def meeting_cancelled(ctx: Context, uow: UnitOfWork, event: MeetingCancelled) -> None:
    story = await store.of_source(uow, f"meeting:{event.meeting_id}")
    if story is None or story.status not in stories.REJECTABLE:
        return
    await store.save(uow, stories.reject(story, "Mødet er aflyst.", now=uow.now, actor=ACTOR))


async def network_closed(ctx: Context, uow: UnitOfWork, event: NetworkClosed) -> None:
    await _suggest(uow, suggestions.network(event, ctx.settings.public_url))


async def issue_sent(ctx: Context, uow: UnitOfWork, event: IssueSent) -> None:
    await _suggest(uow, suggestions.issue(event, ctx.settings.public_url))


async def ambassador_erased(ctx: Context, uow: UnitOfWork, event: Erased) -> None:
    """Stories not on the Page lose their words and pictures; those on the Page are listed
    for staff (``samskab social unpublish`` deletes one)."""
    on_the_page: list[stories.Story] = []
    gone: list[str] = []
    for story in await store.of_ambassador(uow, event.ambassador_id):
        erased = stories.erase(story, now=uow.now)
        if erased.status == StoryStatus.WITHDRAWN:
            gone += [p.name for v in story.versions for p in v.pictures]
        else:
            on_the_page.append(erased)
        await store.save(uow, erased)
    if on_the_page:
        uow.emit(
            SocialNotice(
                kind=NoticeKind.ERASED_PUBLISHED,
                story_ids=[s.id for s in on_the_page],
                post_ids=[s.post_id for s in on_the_page if s.post_id],
            )
        )
    if gone:
        names = sorted(set(gone))

        async def delete() -> None:
            await ctx.pictures.delete(names)

        uow.after_commit(delete)
