"""The front page: what the network is, how to join, the next public meetings and the
latest newsletter. Each part asks its own service; one that is down is said so in its
place, and the rest of the page works."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from contracts.events import KIND_LABELS, GetCalendar
from contracts.events import Endpoints as Events
from contracts.newsletter import Endpoints as Newsletter
from contracts.newsletter import GetArchive
from web.gateway import Unavailable, ask
from web.pages.calendar import danish_date, danish_time, upcoming
from web.site import site_of

router = APIRouter()

NEXT_MEETINGS = 3


@router.get("/")
async def front(request: Request) -> Response:
    site = site_of(request)
    down: dict[str, str] = {}
    latest = None
    meetings = []
    try:
        archive = await ask(site.services, Newsletter.ARCHIVE, GetArchive())
        latest = max(archive.issues, key=lambda i: i.number, default=None)
    except Unavailable as exc:
        down["newsletter"] = exc.message
    try:
        calendar = await ask(site.services, Events.CALENDAR, GetCalendar())
        meetings = upcoming(calendar, datetime.now(UTC))[:NEXT_MEETINGS]
    except Unavailable as exc:
        down["events"] = exc.message
    return site.pages.render(
        request,
        "front.html.j2",
        latest=latest,
        meetings=meetings,
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
