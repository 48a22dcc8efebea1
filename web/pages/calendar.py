"""The public calendar: the public meetings still to come, a page for each, and the
iCalendar feed at a stable address that calendar programs subscribe to."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from contracts.events import (
    COPENHAGEN,
    KIND_LABELS,
    Calendar,
    GetCalendar,
    MeetingState,
    PublicMeeting,
)
from contracts.events import Endpoints as Events
from web.failures import error_page
from web.gateway import ask
from web.site import site_of
from web.templating import cacheable

router = APIRouter()

FEED = "/kalender.ics"
MONTHS = (
    "januar", "februar", "marts", "april", "maj", "juni",
    "juli", "august", "september", "oktober", "november", "december",
)  # fmt: skip
WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")


def danish_date(value: datetime | date) -> str:
    """``torsdag 4. marts 2027`` (a time: in Copenhagen)."""
    local = value.astimezone(COPENHAGEN) if isinstance(value, datetime) else value
    return f"{WEEKDAYS[local.weekday()]} {local.day}. {MONTHS[local.month - 1]} {local.year}"


def danish_time(value: datetime) -> str:
    return value.astimezone(COPENHAGEN).strftime("%H.%M")


async def _calendar(request: Request) -> Calendar:
    return await ask(site_of(request).services, Events.CALENDAR, GetCalendar())


def upcoming(calendar: Calendar, now: datetime) -> list[PublicMeeting]:
    """The public meetings still to come (not cancelled), soonest first."""
    return [
        entry
        for entry in sorted(calendar.entries, key=lambda e: e.meeting.starts_at)
        if entry.meeting.ends_at >= now and entry.state == MeetingState.SCHEDULED
    ]


@router.get("/kalender")
async def calendar_page(request: Request) -> Response:
    found = await _calendar(request)
    return site_of(request).pages.render(
        request,
        "calendar.html.j2",
        public=True,
        title="Kalender",
        entries=upcoming(found, datetime.now(UTC)),
        feed=FEED,
        kinds=KIND_LABELS,
        date=danish_date,
        time=danish_time,
    )


@router.get("/kalender/{meeting_id}")
async def meeting_page(
    request: Request, meeting_id: Annotated[str, Path(max_length=64)]
) -> Response:
    site = site_of(request)
    found = await _calendar(request)
    entry = next((e for e in found.entries if e.meeting.meeting_id == meeting_id), None)
    if entry is None:
        return error_page(
            site.pages, request, 404, "Mødet findes ikke", "Det er ikke et offentligt møde."
        )
    return site.pages.render(
        request,
        "meeting.html.j2",
        public=True,
        title=entry.meeting.title,
        entry=entry,
        kinds=KIND_LABELS,
        date=danish_date,
        time=danish_time,
        feed=FEED,
    )


@router.get(FEED)
async def feed(request: Request) -> Response:
    found = await _calendar(request)
    answer = Response(
        found.ics,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": 'inline; filename="ambassadoernetvaerket.ics"'},
    )
    return cacheable(request, answer, site_of(request).settings.web_cache_seconds)
