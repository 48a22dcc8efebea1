"""Publishing due stories to the Page: never twice, never lost.

The Graph API has no idempotency key, so every step that matters is recorded before it
happens, each in its own unit of work:

1. **claim**: a scheduled story whose time has come becomes ``publishing`` with a new
   attempt (its id, the message's hash, a lease). A story whose publisher died mid-attempt
   (its lease ran out) is taken over by a new attempt that carries on from the same phase.
2. **upload** each picture unpublished (safe to repeat), recording Facebook's ids.
3. **posting** is recorded, then the one feed call is made.
4. The post id is recorded: ``published``, and ``social.v1.published`` is emitted.

When the feed call's outcome is unknown (a time-out, a 5xx, "unknown error", Facebook's
duplicate-post refusal, or a publisher that died after step 3), the post is never made
again blindly: the Page's published posts since the feed call are listed and the one with
the exact message is adopted. Not found: it is put off and tried again (a few times, then
staff decide); the look-up itself failing parks it as ``unconfirmed`` for staff.

Refusals go by Meta's codes (meta_errors.classify): a rate limit puts it off (honouring the
usage headers), a bad token or a missing permission pauses all publishing and alerts
staff, a policy block waits, anything else fails the story with Meta's message.

Unscheduling or rejecting is possible only while a story is ``scheduled``; the claim is a
conditional change in a transaction, so a cancelled story is never claimed, and a claimed
one can no longer be cancelled.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial

from contracts.errors import ErrorCode, ServiceError
from contracts.social import (
    NoticeKind,
    SocialNotice,
    StoryPicture,
    StoryPublished,
    StoryStatus,
)
from services.runtime import metrics
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork
from services.social import publishing_state, store, stories
from services.social.context import Context
from services.social.graph import GraphError, Photo
from services.social.meta_errors import (
    DUPLICATE_POST,
    Disposition,
    GraphFailure,
    Usage,
    classify,
    wait_seconds,
)
from services.social.publishing_state import PageState, State
from services.social.stories import Phase, Story
from services.social.story_handlers import credit_of

log = get_logger(__name__)

ACTOR = "service:social"
# Stories claimed per step (the rest wait for the next).
BATCH = 10
# With no estimate from Meta: how long a slow-down past the usage threshold lasts.
SLOWDOWN_SECONDS = 60.0


def _same_message(posted: str | None, ours: str) -> bool:
    if posted is None:
        return False
    return posted.replace("\r\n", "\n").strip() == ours.replace("\r\n", "\n").strip()


class Publisher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.service = ctx.service
        self.settings = ctx.settings

    # ------------------------------------------------------------------ the loop

    async def step(self) -> bool:
        """Publish what is due; True when there may be more at once."""
        scope = self.service.reading()
        state = await store.page_state(scope)
        if not state.may_publish(scope.now):
            return False
        ids = await store.due(scope, scope.now, BATCH)
        for story_id in ids:
            if not await self._may_call():
                return False
            await self.publish(story_id)
        return len(ids) >= BATCH

    async def _may_call(self) -> bool:
        """Past the usage threshold the publisher waits (Meta's estimate, else a minute)."""
        usage = self.ctx.graph.last_usage
        if usage.percent < self.settings.social_usage_slowdown_percent:
            return True
        wait = timedelta(seconds=max(usage.regain_seconds, SLOWDOWN_SECONDS))
        reason = f"the app has used {usage.percent:.0f} % of a Graph API limit"
        await self.service.run(partial(self._block, reason=reason, wait=wait), name="slowing down")
        # Waited out once: the next call tells the usage again.
        self.ctx.graph.last_usage = Usage()
        return False

    async def publish(self, story_id: str) -> None:
        attempt_id = uuid.uuid4().hex
        story = await self.service.run(
            partial(self._claim, story_id=story_id, attempt_id=attempt_id), name="claiming a story"
        )
        if story is None:
            return
        attempt = story.attempt
        assert attempt is not None
        log.info("publishing a story", story_id=story_id, attempt=attempt_id, phase=attempt.phase)
        try:
            if attempt.phase == Phase.POSTING:
                # Its publisher died after the feed call may have been made.
                await self._find_out(story, attempt_id, None)
            else:
                await self._upload_and_post(story, attempt_id)
        except ServiceError as exc:
            if exc.code != ErrorCode.CONFLICT:
                raise
            # Another publisher took the attempt over (ours was too slow): it carries on.
            log.warning("attempt taken over", story_id=story_id, attempt=attempt_id)

    # ------------------------------------------------------------------ the steps

    async def _claim(self, uow: UnitOfWork, story_id: str, attempt_id: str) -> Story | None:
        story = await store.load(uow, story_id)
        if story is None:
            return None
        lease = self.settings.publish_lease
        if story.status == StoryStatus.SCHEDULED and story.due_at and story.due_at <= uow.now:
            story = stories.claim(
                story, attempt_id=attempt_id, now=uow.now, lease=lease, actor=ACTOR
            )
        elif story.status == StoryStatus.PUBLISHING and (
            story.attempt is not None and story.attempt.lease_until <= uow.now
        ):
            story = stories.take_over(
                story, attempt_id=attempt_id, now=uow.now, lease=lease, actor=ACTOR
            )
        else:
            return None
        await store.save(uow, story)
        return story

    async def _update(self, uow: UnitOfWork, story_id: str, change: partial[Story]) -> Story:
        story = await store.load(uow, story_id)
        if story is None:
            raise ServiceError(ErrorCode.CONFLICT, f"story {story_id} is gone")
        story = change(story)
        await store.save(uow, story)
        return story

    async def _record(self, story_id: str, change: partial[Story], what: str) -> Story:
        return await self.service.run(
            partial(self._update, story_id=story_id, change=change), name=what
        )

    async def _upload_and_post(self, story: Story, attempt_id: str) -> None:
        version = story.current
        attempt = story.attempt
        assert attempt is not None
        media = dict(attempt.media)
        for picture in version.pictures:
            if picture.name in media:
                continue
            data = await self.ctx.pictures.read(picture.name)
            photo = Photo(data, picture.name, picture.content_type, picture.alt)
            try:
                media[picture.name] = await self.ctx.graph.upload_photo(photo)
            except GraphError as exc:
                await self._refused(story.id, attempt_id, exc.failure, sent=False)
                return
            await self._record(
                story.id,
                partial(
                    stories.media_uploaded,
                    attempt_id=attempt_id,
                    media={picture.name: media[picture.name]},
                ),
                "recording an upload",
            )
        now = self.service.clock()
        await self._record(
            story.id,
            partial(
                stories.posting, attempt_id=attempt_id, now=now, lease=self.settings.publish_lease
            ),
            "recording a feed call",
        )
        message = stories.message(version)
        try:
            post_id = await self.ctx.graph.post(
                message, link=version.link, media_ids=[media[p.name] for p in version.pictures]
            )
        except GraphError as exc:
            if classify(exc.failure, sent=True) in (Disposition.LOOK_UP, Disposition.ADOPT):
                log.warning(
                    "the feed call's outcome is unknown: looking it up",
                    story_id=story.id,
                    error=exc.failure.describe(),
                )
                await self._find_out(story, attempt_id, exc.failure)
            else:
                await self._refused(story.id, attempt_id, exc.failure, sent=True)
            return
        await self.service.run(
            partial(
                self._published,
                story_id=story.id,
                attempt_id=attempt_id,
                post_id=post_id,
                how="posted",
            ),
            name="recording a post",
        )

    async def _find_out(self, story: Story, attempt_id: str, failure: GraphFailure | None) -> None:
        """Was the post made after all? Adopt it if so; never post again blindly."""
        attempt = story.attempt
        assert attempt is not None
        since = (attempt.posting_at or attempt.started_at) - timedelta(
            seconds=self.settings.social_lookup_margin_seconds
        )
        message = stories.message(story.current)
        why = (
            failure.describe()
            if failure is not None
            else "the publisher stopped during the feed call"
        )
        try:
            posts = await self.ctx.graph.recent_posts(since)
        except GraphError as exc:
            await self._unconfirmed(
                story.id,
                attempt_id,
                f"{why}; looking the post up failed too: {exc.failure.describe()}",
            )
            return
        for post in sorted(posts, key=lambda p: p.created_time):
            if not _same_message(post.message, message):
                continue
            owner = await store.with_post(self.service.reading(), post.id)
            if owner is not None and owner != story.id:
                continue
            await self.service.run(
                partial(
                    self._published,
                    story_id=story.id,
                    attempt_id=attempt_id,
                    post_id=post.id,
                    how="adopted",
                ),
                name="adopting a post",
            )
            log.info("post adopted", story_id=story.id, post_id=post.id, after=why)
            return
        if failure is not None and failure.code == DUPLICATE_POST:
            await self._unconfirmed(
                story.id, attempt_id, f"{why}, but no post with its message is on the Page"
            )
            return
        if story.unknown_outcomes + 1 >= self.settings.social_max_unknown_outcomes:
            await self._unconfirmed(
                story.id,
                attempt_id,
                f"{why}; the post was not found on the Page ({story.unknown_outcomes + 1} times)",
            )
            return
        now = self.service.clock()
        wait = self._backoff(story, failure)
        await self._record(
            story.id,
            partial(
                stories.postpone,
                attempt_id=attempt_id,
                until=now + wait,
                now=now,
                actor=ACTOR,
                why=f"{why}; the post is not on the Page",
                unknown=True,
            ),
            "putting a publish off",
        )

    def _backoff(self, story: Story, failure: GraphFailure | None) -> timedelta:
        s = self.settings
        tries = sum(1 for a in story.attempts if a.outcome not in (None, "abandoned"))
        seconds = wait_seconds(
            failure or GraphFailure(kind="timeout"),
            tries + 1,
            base=s.social_retry_base_seconds,
            cap=s.social_retry_max_seconds,
        )
        return timedelta(seconds=seconds)

    async def _refused(
        self, story_id: str, attempt_id: str, failure: GraphFailure, *, sent: bool
    ) -> None:
        """Facebook refused the call: nothing was created."""
        disposition = classify(failure, sent=sent)
        why = failure.describe()
        log.warning("Facebook refused a call", story_id=story_id, error=why, then=disposition.value)
        if disposition == Disposition.FAIL:
            detail = why if not failure.user_message else f"{why} ({failure.user_message})"
            await self.service.run(
                partial(
                    self._failed,
                    story_id=story_id,
                    attempt_id=attempt_id,
                    why=detail,
                    fbtrace_id=failure.fbtrace_id,
                ),
                name="failing a story",
            )
            return
        # The put-off honours what the refusal said about usage: it is not waited out twice.
        self.ctx.graph.last_usage = Usage()
        await self.service.run(
            partial(
                self._put_off,
                story_id=story_id,
                attempt_id=attempt_id,
                failure=failure,
                disposition=disposition,
            ),
            name="putting a publish off",
        )

    # ------------------------------------------------------------------ units of work

    async def _published(
        self, uow: UnitOfWork, story_id: str, attempt_id: str, post_id: str, how: str
    ) -> None:
        story = await held(uow, story_id, attempt_id)
        story = stories.published(
            story, post_id, now=uow.now, actor=ACTOR, how=how, attempt_id=attempt_id
        )
        await store.save(uow, story)
        uow.emit(await published_event(self.ctx, uow, story))
        metrics.count_post(uow, "published")
        state = await store.page_state(uow)
        if state.state != State.OK:
            await store.save_page_state(uow, publishing_state.working(state, uow.now))

    async def _failed(
        self, uow: UnitOfWork, story_id: str, attempt_id: str, why: str, fbtrace_id: str | None
    ) -> None:
        story = await held(uow, story_id, attempt_id)
        story = stories.failed(
            story, attempt_id, now=uow.now, actor=ACTOR, why=why, fbtrace_id=fbtrace_id
        )
        await store.save(uow, story)
        uow.emit(SocialNotice(kind=NoticeKind.FAILED, story_ids=[story_id], detail=why))
        metrics.count_post(uow, "failed")

    async def _unconfirmed(self, story_id: str, attempt_id: str, why: str) -> None:
        async def park(uow: UnitOfWork) -> None:
            story = await held(uow, story_id, attempt_id)
            await store.save(
                uow, stories.unconfirmed(story, attempt_id, now=uow.now, actor=ACTOR, why=why)
            )
            uow.emit(SocialNotice(kind=NoticeKind.UNCONFIRMED, story_ids=[story_id], detail=why))
            metrics.count_post(uow, "unconfirmed")

        log.error("a publish could not be confirmed", story_id=story_id, why=why)
        await self.service.run(park, name="parking a story as unconfirmed")

    async def _put_off(
        self,
        uow: UnitOfWork,
        story_id: str,
        attempt_id: str,
        failure: GraphFailure,
        disposition: Disposition,
    ) -> None:
        story = await held(uow, story_id, attempt_id)
        wait = self._backoff(story, failure)
        why = failure.describe()
        # Paused: it goes as soon as publishing resumes, not after a back-off.
        until = uow.now if disposition == Disposition.PAUSE else uow.now + wait
        story = stories.postpone(
            story,
            attempt_id,
            until=until,
            now=uow.now,
            actor=ACTOR,
            why=why,
            fbtrace_id=failure.fbtrace_id,
        )
        await store.save(uow, story)
        if disposition == Disposition.PAUSE:
            await pause(uow, why)
        elif disposition == Disposition.BLOCK:
            await self._block(uow, reason=why, wait=wait)

    async def _block(self, uow: UnitOfWork, reason: str, wait: timedelta) -> None:
        state = await store.page_state(uow)
        blocked = publishing_state.block(state, reason, uow.now, wait)
        await store.save_page_state(uow, blocked)
        if state.state != State.BLOCKED and blocked.state == State.BLOCKED:
            uow.emit(SocialNotice(kind=NoticeKind.BLOCKED, detail=reason))


async def held(uow: UnitOfWork, story_id: str, attempt_id: str) -> Story:
    """The story, while ``attempt_id`` is still its attempt (else another publisher took it
    over, or it is over: this one must record nothing more)."""
    story = await store.load(uow, story_id)
    if story is None or not stories.holds(story, attempt_id):
        raise ServiceError(ErrorCode.CONFLICT, f"story {story_id}: attempt {attempt_id} is over")
    return story


async def pause(uow: UnitOfWork, reason: str) -> PageState:
    """Publishing waits for staff (the token or a permission); they are told once."""
    state = await store.page_state(uow)
    paused = publishing_state.pause(state, reason, uow.now)
    await store.save_page_state(uow, paused)
    if state.state != State.PAUSED:
        log.error("publishing paused", reason=reason)
        uow.emit(SocialNotice(kind=NoticeKind.PUBLISHING_PAUSED, detail=reason))
    return paused


async def published_event(ctx: Context, uow: UnitOfWork, story: Story) -> StoryPublished:
    version = story.current
    assert story.post_id is not None and story.published_at is not None
    return StoryPublished(
        story_id=story.id,
        kind=version.kind,
        source=story.source,
        title=version.title,
        text=version.text,
        link=version.link,
        pictures=[
            StoryPicture(
                name=p.name,
                digest=p.digest,
                alt=p.alt,
                width=p.width,
                height=p.height,
                size=p.size,
                content_type=p.content_type,
            )
            for p in version.pictures
        ],
        ambassador_id=story.ambassador_id,
        post_id=story.post_id,
        post_url=stories.post_url(story.post_id),
        published_at=story.published_at,
        credit=await credit_of(ctx, uow, story),
    )
