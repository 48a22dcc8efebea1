"""The front page: what the network is, how to join, the next public meetings, the latest
newsletter and how far the network is toward its goals. Each part asks its own service;
one that is down is said so in its place, and the rest of the page works."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

from fastapi import APIRouter, Request
from starlette.responses import Response

from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import GetGoals
from contracts.events import KIND_LABELS, GetCalendar
from contracts.events import Endpoints as Events
from contracts.newsletter import Endpoints as Newsletter
from contracts.newsletter import GetArchive
from web.gateway import Unavailable, ask
from web.pages.calendar import danish_date, danish_time, upcoming
from web.site import site_of

router = APIRouter()

NEXT_MEETINGS = 3
T = TypeVar("T")


async def _part(down: dict[str, str], service: str, asking: Awaitable[T]) -> T | None:
    """One part's answer, or None with the reason noted under its service."""
    try:
        return await asking
    except Unavailable as exc:
        down[service] = exc.message
        return None


@router.get("/")
async def front(request: Request) -> Response:
    services = site_of(request).services
    down: dict[str, str] = {}
    # The three parts are asked at once: the page waits for the slowest, not their sum.
    archive, calendar, goals = await asyncio.gather(
        _part(down, "newsletter", ask(services, Newsletter.ARCHIVE, GetArchive())),
        _part(down, "events", ask(services, Events.CALENDAR, GetCalendar())),
        _part(down, "ambassadors", ask(services, Ambassadors.GOALS, GetGoals())),
    )
    latest = max(archive.issues, key=lambda i: i.number, default=None) if archive else None
    meetings = upcoming(calendar, datetime.now(UTC))[:NEXT_MEETINGS] if calendar else []
    return site_of(request).pages.render(
        request,
        "front.html.j2",
        latest=latest,
        meetings=meetings,
        goals=goals,
        down=down,
        kinds=KIND_LABELS,
        date=danish_date,
        time=danish_time,
        public=not down,
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers (for the stack's and a container's health check)."""
    return {"status": "ok"}
