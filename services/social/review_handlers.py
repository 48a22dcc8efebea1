"""Staff's decisions on stories (approve, request changes, reject), scheduling, and what
staff do about a publish (retry, confirm, unpublish, check the token).

Each decision on an ambassador's story is announced (``social.v1.reviewed``) so the
newsletter service mails them, with the comment and their personal link to revise.
"""

from __future__ import annotations

from contracts.errors import DomainValidationError, ErrorCode, FieldError, ServiceError
from contracts.social import (
    ApproveStory,
    CheckToken,
    ConfirmPublished,
    Decision,
    GetPublishing,
    PublishingView,
    RejectStory,
    RequestChanges,
    RetryStory,
    ScheduleStory,
    StoryDetail,
    StoryReviewed,
    StoryStatus,
    StoryUnpublished,
    UnpublishStory,
    UnscheduleStory,
)
from services.runtime.unit_of_work import Reading, UnitOfWork
from services.social import guide, store, stories, token_check, views
from services.social.context import Context
from services.social.graph import GraphError
from services.social.publisher import published_event
from services.social.stories import Story
from services.social.story_handlers import load, name_of, refuse_if_stopped, today

# A time this far in the past is taken as "now" (the clock of the one who typed it).
PAST_GRACE_SECONDS = 300


def _actor(uow: UnitOfWork) -> str:
    return uow.actor or "unknown"


async def _saved(ctx: Context, uow: UnitOfWork, story: Story) -> StoryDetail:
    await store.save(uow, story)
    uow.about(story.id)
    return views.detail(story, await name_of(ctx, uow, story))


def _reviewed(story: Story, decision: Decision, comment: str | None) -> StoryReviewed | None:
    if story.ambassador_id is None:
        return None
    return StoryReviewed(
        story_id=story.id,
        ambassador_id=story.ambassador_id,
        decision=decision,
        kind=story.current.kind,
        title=story.current.title,
        comment=comment,
    )


def _wake(ctx: Context, uow: UnitOfWork) -> None:
    if ctx.publishing is not None:
        uow.after_commit(ctx.publishing.wake)


# ---------------------------------------------------------------- review


async def approve(ctx: Context, uow: UnitOfWork, cmd: ApproveStory) -> StoryDetail:
    story = await load(uow, cmd.story_id)
    edit = None
    final = story.current
    if cmd.text is not None and cmd.text != final.text:
        edit = final.model_copy(
            update={
                "number": stories.next_number(story),
                "text": cmd.text,
                "by": _actor(uow),
                "at": uow.now,
                "staff_edit": True,
            }
        )
        final = edit
    hints = guide.check(final.draft(), today=today(uow))
    refuse_if_stopped(hints)
    if edit is not None:
        edit = edit.model_copy(update={"hints": tuple(hints)})
    approved = stories.approve(story, edit, now=uow.now, actor=_actor(uow))
    event = _reviewed(approved, Decision.APPROVED, None)
    if event is not None:
        uow.emit(event)
    return await _saved(ctx, uow, approved)


async def request_changes(ctx: Context, uow: UnitOfWork, cmd: RequestChanges) -> StoryDetail:
    story = await load(uow, cmd.story_id)
    changed = stories.request_changes(story, cmd.comment, now=uow.now, actor=_actor(uow))
    event = _reviewed(changed, Decision.CHANGES_REQUESTED, cmd.comment)
    assert event is not None
    uow.emit(event)
    return await _saved(ctx, uow, changed)


async def reject(ctx: Context, uow: UnitOfWork, cmd: RejectStory) -> StoryDetail:
    story = await load(uow, cmd.story_id)
    if story.status == StoryStatus.PUBLISHING:
        raise ServiceError(
            ErrorCode.INVALID_STATE,
            f"story {story.id} is being published now; once it is out it can be unpublished",
        )
    rejected = stories.reject(story, cmd.reason, now=uow.now, actor=_actor(uow))
    event = _reviewed(rejected, Decision.REJECTED, cmd.reason)
    if event is not None:
        uow.emit(event)
    return await _saved(ctx, uow, rejected)


# ---------------------------------------------------------------- scheduling


async def schedule(ctx: Context, uow: UnitOfWork, cmd: ScheduleStory) -> StoryDetail:
    story = await load(uow, cmd.story_id)
    at = cmd.at or uow.now
    if (uow.now - at).total_seconds() > PAST_GRACE_SECONDS:
        raise DomainValidationError(
            [FieldError(field="at", message="the time has passed; leave it out to publish now")]
        )
    scheduled = stories.schedule(story, max(at, uow.now), now=uow.now, actor=_actor(uow))
    _wake(ctx, uow)
    return await _saved(ctx, uow, scheduled)


async def unschedule(ctx: Context, uow: UnitOfWork, cmd: UnscheduleStory) -> StoryDetail:
    story = await load(uow, cmd.story_id)
    return await _saved(ctx, uow, stories.unschedule(story, now=uow.now, actor=_actor(uow)))


async def retry(ctx: Context, uow: UnitOfWork, cmd: RetryStory) -> StoryDetail:
    story = await load(uow, cmd.story_id)
    _wake(ctx, uow)
    return await _saved(ctx, uow, stories.retry(story, now=uow.now, actor=_actor(uow)))


async def confirm_published(ctx: Context, uow: UnitOfWork, cmd: ConfirmPublished) -> StoryDetail:
    story = await load(uow, cmd.story_id)
    owner = await store.with_post(uow, cmd.post_id)
    if owner is not None and owner != story.id:
        raise ServiceError(
            ErrorCode.CONFLICT,
            f"post {cmd.post_id} is the post of story {owner}",
            [FieldError(field="post_id", message="another story's post")],
        )
    confirmed = stories.confirm_published(story, cmd.post_id, now=uow.now, actor=_actor(uow))
    uow.emit(await published_event(ctx, uow, confirmed))
    return await _saved(ctx, uow, confirmed)


async def unpublish(ctx: Context, cmd: UnpublishStory) -> StoryDetail:
    """The post is deleted from the Page first (deleting twice is harmless: a post already
    gone counts as deleted), then the story is recorded as unpublished."""
    story = await load(ctx.service.reading(), cmd.story_id)
    stories.unpublish(story, now=story.updated_at, actor="")  # raises when it cannot be
    assert story.post_id is not None
    try:
        await ctx.graph.delete_post(story.post_id)
    except GraphError as exc:
        failure = exc.failure
        # Meta's answer for an object that does not exist (any more): 100 with subcode 33.
        if not (failure.code == 100 and failure.subcode == 33):
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"Facebook did not delete post {story.post_id}: {failure.describe()}",
            ) from None

    async def record(uow: UnitOfWork) -> StoryDetail:
        current = await load(uow, cmd.story_id)
        gone = stories.unpublish(current, now=uow.now, actor=uow.actor or "unknown")
        uow.emit(StoryUnpublished(story_id=gone.id))
        return await _saved(ctx, uow, gone)

    return await ctx.service.run(record, name="recording an unpublished story")


# ---------------------------------------------------------------- the Page


async def check_token(ctx: Context, _: CheckToken) -> PublishingView:
    return await token_check.check(ctx)


async def publishing(ctx: Context, scope: Reading, _: GetPublishing) -> PublishingView:
    return await token_check.view(ctx, scope)
