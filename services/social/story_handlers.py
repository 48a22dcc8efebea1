"""Sending and revising stories, and the queries about them: load, check against the
guide, take the pictures, save, emit.

A submission is checked before anything is processed: a story the guide stops (a
missing picture or alt text, no confirmation that the people shown agreed, a past date for
an upcoming event, a link that is not a web address) is refused with each finding at its
field, and its uploads stay in the bucket so the form can send them again. The pictures
are cleaned outside any transaction (slow); a story that is then not stored leaves no
picture behind.
"""

from __future__ import annotations

import uuid
from datetime import date
from functools import partial

from contracts.errors import DomainValidationError, ErrorCode, FieldError, ServiceError
from contracts.events import COPENHAGEN
from contracts.social import (
    CheckStory,
    GetOwnPicture,
    GetOwnStories,
    GetPicture,
    GetPublicStories,
    GetReviewQueue,
    GuideCheck,
    Hint,
    ListStories,
    ListUnconfirmed,
    OwnStories,
    PicturePiece,
    PublicStories,
    ReviseOwnStory,
    ReviseStory,
    ShowStory,
    StoryContent,
    StoryDetail,
    StoryPage,
    StoryReceipt,
    StorySource,
    StoryStatus,
    StorySubmitted,
    SubmitOwnStory,
    SubmitStory,
)
from services.runtime.known_ambassadors import KnownAmbassador
from services.runtime.unit_of_work import Reading, Scope, UnitOfWork, current_command
from services.social import guide, store, stories, views
from services.social.context import Context
from services.social.guide import Draft
from services.social.stories import Picture, Story, Version

# ---------------------------------------------------------------- shared


def today(scope: Scope) -> date:
    return scope.now.astimezone(COPENHAGEN).date()


def draft_of(content: StoryContent, alts: tuple[str | None, ...]) -> Draft:
    return Draft(
        kind=content.kind,
        text=content.text,
        title=content.title,
        picture_alts=alts,
        event_date=content.event_date,
        event_public=content.event_public,
        link=content.link,
        people_consent=content.people_consent,
    )


def refuse_if_stopped(hints: list[Hint]) -> None:
    stopping = guide.stops(hints)
    if stopping:
        raise DomainValidationError(
            [FieldError(field=h.field, message=h.message) for h in stopping],
            "the story cannot be sent as it is: "
            + ", ".join(f"{h.code} ({h.field})" for h in stopping),
        )


async def load(scope: Scope, story_id: str) -> Story:
    story = await store.load(scope, story_id)
    if story is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"story {story_id} not found")
    return story


async def name_of(ctx: Context, scope: Scope, story: Story) -> str | None:
    if story.ambassador_id is None:
        return None
    known = await ctx.ambassadors.get(scope, story.ambassador_id)
    return known.name if known is not None and known.name else None


async def credit_of(ctx: Context, scope: Scope, story: Story) -> str | None:
    """Who told the story, as the public may see it: the ambassador's organisation or name,
    only while they are active and listed publicly."""
    if story.ambassador_id is None:
        return None
    known = await ctx.ambassadors.active(scope, story.ambassador_id)
    return known.display_name if known is not None and known.public else None


async def active_ambassador(ctx: Context, scope: Scope, ambassador_id: str) -> KnownAmbassador:
    known = await ctx.ambassadors.active(scope, ambassador_id)
    if known is None:
        raise ServiceError(
            ErrorCode.NOT_FOUND,
            f"ambassador {ambassador_id} is not an active ambassador",
            [FieldError(field="ambassador_id", message="not an active ambassador")],
        )
    return known


async def holder_of(ctx: Context, scope: Scope, token: str) -> KnownAmbassador:
    """The ambassador a personal link belongs to, while they are an active ambassador."""
    ambassador_id = ctx.links.ambassador_of(token)
    known = await ctx.ambassadors.active(scope, ambassador_id)
    if known is None:
        raise ServiceError(
            ErrorCode.INVALID_TOKEN, "the link no longer works (not an active ambassador)"
        )
    return known


async def _pictures(
    ctx: Context, content: StoryContent, *, story_id: str, kept: tuple[Picture, ...]
) -> tuple[Picture, ...]:
    """The pictures of a new version: those kept from the story (their alt text as now
    given) and the new uploads, cleaned; on failure the new ones are deleted again."""
    by_name = {p.name: p for p in kept}
    for number, given in enumerate(content.pictures, start=1):
        if given.name is not None and given.name not in by_name:
            raise DomainValidationError(
                [FieldError(field=f"pictures.{number}", message="the story has no such picture")]
            )
    taken: list[Picture] = []
    result: list[Picture] = []
    try:
        for number, given in enumerate(content.pictures, start=1):
            if given.name is not None:
                result.append(by_name[given.name].model_copy(update={"alt": given.alt}))
                continue
            assert given.upload is not None
            picture = await ctx.pictures.take(
                given.upload, story_id=story_id, number=number, alt=given.alt
            )
            taken.append(picture)
            result.append(picture)
    except BaseException:
        await ctx.pictures.delete([p.name for p in taken if p.name not in by_name])
        raise
    return tuple(result)


def _version(
    content: StoryContent,
    pictures: tuple[Picture, ...],
    hints: list[Hint],
    *,
    number: int,
    by: str,
    scope: Scope,
) -> Version:
    return Version(
        number=number,
        kind=content.kind,
        title=content.title,
        text=content.text,
        pictures=pictures,
        event_date=content.event_date,
        event_public=content.event_public,
        link=content.link,
        people_consent=content.people_consent,
        hints=tuple(hints),
        by=by,
        at=scope.now,
    )


def _receipt(story: Story) -> StoryReceipt:
    return StoryReceipt(
        story_id=story.id,
        status=story.status,
        version=story.current.number,
        hints=list(story.current.hints),
    )


def _actor() -> str:
    command = current_command.get()
    return command.actor if command is not None else "unknown"


# ---------------------------------------------------------------- submitting


async def submit(ctx: Context, cmd: SubmitStory) -> StoryReceipt:
    """Staff enter a story on an ambassador's behalf."""
    await active_ambassador(ctx, ctx.service.reading(), cmd.ambassador_id)
    return await _submit(ctx, cmd, cmd.ambassador_id, StorySource.STAFF)


async def submit_own(ctx: Context, cmd: SubmitOwnStory) -> StoryReceipt:
    """An ambassador sends a story through their personal link."""
    known = await holder_of(ctx, ctx.service.reading(), cmd.token)
    return await _submit(ctx, cmd, known.id, StorySource.AMBASSADOR)


async def _submit(
    ctx: Context, content: StoryContent, ambassador_id: str, source: StorySource
) -> StoryReceipt:
    for number, given in enumerate(content.pictures, start=1):
        if given.upload is None:
            raise DomainValidationError(
                [
                    FieldError(
                        field=f"pictures.{number}", message="a new story's pictures are uploads"
                    )
                ]
            )
    scope = ctx.service.reading()
    hints = guide.check(
        draft_of(content, tuple(p.alt for p in content.pictures)), today=today(scope)
    )
    refuse_if_stopped(hints)
    story_id = uuid.uuid4().hex
    pictures = await _pictures(ctx, content, story_id=story_id, kept=())
    actor = _actor()
    version = _version(content, pictures, hints, number=1, by=actor, scope=scope)
    story = stories.submit(
        story_id=story_id,
        source=source,
        ambassador_id=ambassador_id,
        version=version,
        now=scope.now,
        actor=actor,
    )
    try:
        await ctx.service.run(partial(_store_new, story=story), name="storing a story")
    except BaseException:
        await ctx.pictures.delete([p.name for p in pictures])
        raise
    return _receipt(story)


async def _store_new(uow: UnitOfWork, story: Story) -> None:
    await store.save(uow, story)
    uow.about(story.id, story.ambassador_id)
    uow.emit(
        StorySubmitted(
            story_id=story.id,
            kind=story.current.kind,
            source=story.source,
            title=story.current.title,
        )
    )


# ---------------------------------------------------------------- revising


async def revise(ctx: Context, cmd: ReviseStory) -> StoryReceipt:
    return await _revise(ctx, cmd, cmd.story_id, owner=None)


async def revise_own(ctx: Context, cmd: ReviseOwnStory) -> StoryReceipt:
    known = await holder_of(ctx, ctx.service.reading(), cmd.token)
    return await _revise(ctx, cmd, cmd.story_id, owner=known.id)


async def _revise(
    ctx: Context, content: StoryContent, story_id: str, *, owner: str | None
) -> StoryReceipt:
    scope = ctx.service.reading()
    story = await load(scope, story_id)
    if owner is not None and story.ambassador_id != owner:
        # Another person's story is none of theirs: as if it did not exist.
        raise ServiceError(ErrorCode.NOT_FOUND, f"story {story_id} not found")
    if story.status not in stories.REVISABLE:
        stories.revise(story, story.current, now=scope.now, actor="")  # raises: says why
    alts = tuple(p.alt for p in content.pictures)
    hints = guide.check(draft_of(content, alts), today=today(scope))
    refuse_if_stopped(hints)
    kept = tuple(p for v in story.versions for p in v.pictures)
    pictures = await _pictures(ctx, content, story_id=story.id, kept=kept)
    actor = _actor()
    version = _version(
        content, pictures, hints, number=stories.next_number(story), by=actor, scope=scope
    )
    new = {p.name for p in pictures} - {p.name for p in kept}
    try:
        revised = await ctx.service.run(
            partial(_store_revision, story_id=story.id, version=version, actor=actor),
            name="storing a revision",
        )
    except BaseException:
        await ctx.pictures.delete(sorted(new))
        raise
    return _receipt(revised)


async def _store_revision(uow: UnitOfWork, story_id: str, version: Version, actor: str) -> Story:
    story = await load(uow, story_id)
    revised = stories.revise(story, version, now=uow.now, actor=actor)
    await store.save(uow, revised)
    uow.about(story.id)
    uow.emit(
        StorySubmitted(
            story_id=story.id,
            kind=version.kind,
            source=story.source,
            title=version.title,
            revision=True,
        )
    )
    return revised


# ---------------------------------------------------------------- queries


async def check(ctx: Context, scope: Reading, query: CheckStory) -> GuideCheck:
    hints = guide.check(draft_of(query, tuple(p.alt for p in query.pictures)), today=today(scope))
    return GuideCheck(hints=hints, sendable=not guide.stops(hints))


async def own_stories(ctx: Context, scope: Reading, query: GetOwnStories) -> OwnStories:
    known = await holder_of(ctx, scope, query.token)
    found = await store.of_ambassador(scope, known.id)
    found.sort(key=lambda s: s.submitted_at, reverse=True)
    return OwnStories(ambassador_id=known.id, name=known.name, items=[views.own(s) for s in found])


async def list_stories(ctx: Context, scope: Reading, query: ListStories) -> StoryPage:
    total, found = await store.page(
        scope,
        statuses=[query.status] if query.status else None,
        ambassador_id=query.ambassador_id,
        limit=query.limit,
        offset=query.offset,
    )
    return await _page(ctx, scope, total, found)


async def _page(ctx: Context, scope: Scope, total: int, found: list[Story]) -> StoryPage:
    return StoryPage(
        total=total, items=[views.summary(s, await name_of(ctx, scope, s)) for s in found]
    )


async def show_story(ctx: Context, scope: Reading, query: ShowStory) -> StoryDetail:
    story = await load(scope, query.story_id)
    return views.detail(story, await name_of(ctx, scope, story))


async def review_queue(ctx: Context, scope: Reading, query: GetReviewQueue) -> StoryPage:
    total, found = await store.page(
        scope, statuses=[StoryStatus.IN_REVIEW], oldest_first=True, limit=query.limit
    )
    return await _page(ctx, scope, total, found)


async def unconfirmed(ctx: Context, scope: Reading, _: ListUnconfirmed) -> StoryPage:
    total, found = await store.page(
        scope, statuses=[StoryStatus.UNCONFIRMED], oldest_first=True, limit=1000
    )
    return await _page(ctx, scope, total, found)


async def public_stories(ctx: Context, scope: Reading, query: GetPublicStories) -> PublicStories:
    total, found = await store.page(
        scope,
        statuses=[StoryStatus.PUBLISHED],
        limit=query.limit,
        offset=query.offset,
        sort_by="published_at",
    )
    items = [views.public(story, await credit_of(ctx, scope, story)) for story in found]
    return PublicStories(total=total, items=items)


async def picture(ctx: Context, scope: Reading, query: GetPicture) -> PicturePiece:
    return await _piece(ctx, scope, query, public=False)


async def public_picture(ctx: Context, scope: Reading, query: GetPicture) -> PicturePiece:
    return await _piece(ctx, scope, query, public=True)


async def own_picture(ctx: Context, scope: Reading, query: GetOwnPicture) -> PicturePiece:
    known = await holder_of(ctx, scope, query.token)
    asked = GetPicture(name=query.name, offset=query.offset)
    return await _piece(ctx, scope, asked, public=False, owner=known.id)


async def _piece(
    ctx: Context, scope: Reading, query: GetPicture, *, public: bool, owner: str | None = None
) -> PicturePiece:
    story = await store.with_picture(scope, query.name)
    if (
        story is None
        or (public and story.status != StoryStatus.PUBLISHED)
        # Another person's picture: as if it did not exist.
        or (owner is not None and story.ambassador_id != owner)
    ):
        raise ServiceError(ErrorCode.NOT_FOUND, f"picture {query.name} not found")
    shown = (
        story.current.pictures if public else tuple(p for v in story.versions for p in v.pictures)
    )
    found = next((p for p in shown if p.name == query.name), None)
    if found is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"picture {query.name} not found")
    return await ctx.pictures.piece(found, query.offset)
