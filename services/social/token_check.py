"""The Page token's check, at start, hourly and on request: a token that stopped working
(the admin lost the role or changed password) pauses publishing and alerts staff; one that
works again resumes it."""

from __future__ import annotations

from functools import partial

from contracts.social import NoticeKind, PublishingView, SocialNotice, StoryStatus
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import Scope, UnitOfWork
from services.social import publishing_state, store
from services.social.context import Context
from services.social.graph import GraphError
from services.social.meta_errors import Disposition, GraphFailure, classify
from services.social.publisher import pause
from services.social.publishing_state import State

log = get_logger(__name__)


async def check(ctx: Context) -> PublishingView:
    failure: GraphFailure | None = None
    try:
        await ctx.graph.check_token()
    except GraphError as exc:
        failure = exc.failure
    resumed = await ctx.service.run(partial(_record, failure=failure), name="checking the token")
    if resumed and ctx.publishing is not None:
        ctx.publishing.wake()
    return await view(ctx, ctx.service.reading())


async def _record(uow: UnitOfWork, failure: GraphFailure | None) -> bool:
    """The check's outcome kept; True when publishing resumed."""
    state = await store.page_state(uow)
    if failure is None:
        now_working = publishing_state.working(state, uow.now)
        await store.save_page_state(uow, publishing_state.checked(now_working, uow.now, None))
        if state.state == State.PAUSED:
            log.info("publishing resumed: the Page token works")
            uow.emit(SocialNotice(kind=NoticeKind.PUBLISHING_RESUMED))
            return True
        return False
    why = failure.describe()
    if classify(failure, sent=False) == Disposition.PAUSE:
        state = await pause(uow, why)
    else:
        # The API could not be asked (an outage): that says nothing about the token.
        log.warning("the Page token could not be checked", error=why)
    await store.save_page_state(uow, publishing_state.checked(state, uow.now, why))
    return False


async def step(ctx: Context) -> bool:
    await check(ctx)
    return False


async def view(ctx: Context, scope: Scope) -> PublishingView:
    state = await store.page_state(scope)
    return PublishingView(
        state=state.state,
        reason=state.reason,
        since=state.since,
        checked_at=state.checked_at,
        page_id=ctx.settings.facebook_page_id.get_secret_value(),
        graph_version=ctx.settings.facebook_graph_version,
        scheduled=await store.count(scope, StoryStatus.SCHEDULED),
        unconfirmed=await store.count(scope, StoryStatus.UNCONFIRMED),
    )


async def problems(ctx: Context, scope: Scope) -> list[str]:
    """What staff must act on, for ``samskab health``."""
    state = await store.page_state(scope)
    found = []
    if state.state == State.PAUSED:
        found.append(
            f"publishing to the Facebook Page is paused since {state.since:%Y-%m-%d %H:%M} UTC: "
            f"{state.reason} (a new Page token, then samskab social check-token)"
        )
    elif state.state == State.BLOCKED and state.blocked_until and state.blocked_until > scope.now:
        found.append(
            f"Facebook blocks publishing until {state.blocked_until:%Y-%m-%d %H:%M} UTC: "
            f"{state.reason}"
        )
    unconfirmed = await store.count(scope, StoryStatus.UNCONFIRMED)
    if unconfirmed:
        found.append(
            f"{unconfirmed} stories could not be confirmed as published (samskab social "
            "unconfirmed)"
        )
    return found
