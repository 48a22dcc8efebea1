"""The published stories (``/historier``): what the ambassadors told and the editors put
on the Page, newest first, 20 to a page, with their pictures. Nothing about a person but
the credit they chose to be shown with (their organisation or name)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from contracts.social import KIND_LABELS, GetPicture, GetPublicStories
from contracts.social import Endpoints as Social
from web.failures import error_page
from web.gateway import ask
from web.pages.calendar import danish_date
from web.pictures import fetch
from web.site import site_of
from web.templating import cacheable

router = APIRouter()

PATH = "/historier"
PAGE_SIZE = 20
# A picture never changes under its name (the name holds its digest).
PICTURE_MAX_AGE = 24 * 3600
PictureName = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9_-]+\.[a-z]{3,4}$")]


def web_link(url: str | None) -> str | None:
    """``url`` when it is a web address a page may link to, else nothing."""
    return url if url and url.startswith(("https://", "http://")) else None


@router.get(PATH)
async def stories(request: Request, side: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    site = site_of(request)
    asked = GetPublicStories(limit=PAGE_SIZE, offset=(side - 1) * PAGE_SIZE)
    found = await ask(site.services, Social.PUBLIC_STORIES, asked)
    pages = max(1, math.ceil(found.total / PAGE_SIZE))
    if side > pages:
        return error_page(
            site.pages,
            request,
            404,
            "Siden findes ikke",
            "Der er ikke så mange historier endnu.",
        )
    newest = sorted(found.items, key=lambda s: s.published_at, reverse=True)
    return site.pages.render(
        request,
        "stories.html.j2",
        public=True,
        title="Historier",
        stories=newest,
        total=found.total,
        page=side,
        pages=pages,
        kinds=KIND_LABELS,
        date=danish_date,
        web_link=web_link,
    )


@router.get(PATH + "/billeder/{name}")
async def story_picture(request: Request, name: PictureName) -> Response:
    """A published story's picture, fetched from the social service in pieces."""
    site = site_of(request)
    picture = await fetch(
        site.services,
        Social.PUBLIC_PICTURE,
        lambda offset: GetPicture(name=name, offset=offset),
    )
    if picture is None:
        return error_page(site.pages, request, 404, "Billedet findes ikke", "")
    image = Response(picture.data, media_type=picture.content_type)
    return cacheable(request, image, PICTURE_MAX_AGE)
