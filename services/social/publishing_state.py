"""Whether publishing to the Page works, as pure rules: ok, paused (the token or a
permission: staff must act) or blocked (Facebook's policy block or its rate limits: it
passes by itself)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict


class State:
    UNCHECKED = "unchecked"
    OK = "ok"
    PAUSED = "paused"
    BLOCKED = "blocked"


class PageState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    state: str = State.UNCHECKED
    reason: str | None = None
    since: datetime | None = None
    blocked_until: datetime | None = None
    checked_at: datetime | None = None
    # What the last token check found wrong (an outage of the API is not a bad token).
    check_error: str | None = None

    def may_publish(self, now: datetime) -> bool:
        if self.state == State.PAUSED:
            return False
        return not (self.state == State.BLOCKED and self.blocked_until and self.blocked_until > now)


def pause(state: PageState, reason: str, now: datetime) -> PageState:
    since = state.since if state.state == State.PAUSED and state.since else now
    return state.model_copy(
        update={"state": State.PAUSED, "reason": reason, "since": since, "blocked_until": None}
    )


def block(state: PageState, reason: str, now: datetime, wait: timedelta) -> PageState:
    if state.state == State.PAUSED:
        return state
    until = now + wait
    if state.state == State.BLOCKED and state.blocked_until and state.blocked_until > until:
        until = state.blocked_until
    since = state.since if state.state == State.BLOCKED and state.since else now
    return state.model_copy(
        update={"state": State.BLOCKED, "reason": reason, "since": since, "blocked_until": until}
    )


def working(state: PageState, now: datetime) -> PageState:
    """A call went through (or the token check did): publishing works."""
    return state.model_copy(
        update={"state": State.OK, "reason": None, "since": now, "blocked_until": None}
    )


def checked(state: PageState, now: datetime, error: str | None) -> PageState:
    return state.model_copy(update={"checked_at": now, "check_error": error})
