"""The front page: what the network is, how to join, the latest newsletter. Each part asks
its own service; one that is down is said so in its place, and the rest of the page works."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from contracts.newsletter import Endpoints as Newsletter
from contracts.newsletter import GetArchive
from web.gateway import Unavailable, ask
from web.site import site_of

router = APIRouter()


@router.get("/")
async def front(request: Request) -> Response:
    site = site_of(request)
    latest = None
    newsletter_down: str | None = None
    try:
        archive = await ask(site.services, Newsletter.ARCHIVE, GetArchive())
        latest = max(archive.issues, key=lambda i: i.number, default=None)
    except Unavailable as exc:
        newsletter_down = exc.message
    return site.pages.render(
        request,
        "front.html.j2",
        latest=latest,
        newsletter_down=newsletter_down,
        public=newsletter_down is None,
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers (for the stack's and a container's health check)."""
    return {"status": "ok"}
