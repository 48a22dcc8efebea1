"""The newsletter on the website: the subscribe form (double opt-in: the answer is the same
for every address), the archive of sent issues, and each issue's public web version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse, Response

from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import Archive, GetArchive, GetArchiveImage, Subscribe
from contracts.newsletter import Endpoints as Newsletter
from web.failures import error_page
from web.field_errors import FieldProblem, from_service, from_validation
from web.gateway import Unavailable, ask
from web.pictures import fetch
from web.site import site_of
from web.templating import cacheable

router = APIRouter()

FEED = "/nyhedsbrev.atom"
FEED_STARTED = datetime(2026, 12, 1, tzinfo=UTC)
# An archived picture never changes under its name (a new picture is a new item).
IMAGE_MAX_AGE = 24 * 3600
ImageName = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9_-]+\.[a-z]{3,4}$")]

# The issue's web version is the newsletter service's own document (sanitised when it was
# rendered, with its styles inline): it may use inline styles and outside images, nothing
# else.
ISSUE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


async def _archive(request: Request) -> tuple[Archive | None, str | None]:
    try:
        return await ask(site_of(request).services, Newsletter.ARCHIVE, GetArchive()), None
    except Unavailable as exc:
        return None, exc.message


def _form_page(
    request: Request,
    archive: Archive | None,
    down: str | None,
    *,
    values: dict[str, str] | None = None,
    problems: list[FieldProblem] | None = None,
    status_code: int = 200,
) -> Response:
    issues = sorted(archive.issues, key=lambda i: i.number, reverse=True) if archive else []
    return site_of(request).pages.render(
        request,
        "newsletter.html.j2",
        status_code=status_code,
        title="Nyhedsbrev",
        feed=FEED,
        issues=issues,
        archive_down=down,
        values=values or {},
        problems=problems or [],
        errors={p.field: p.message for p in problems or []},
    )


@router.get("/nyhedsbrev")
async def newsletter(request: Request) -> Response:
    archive, down = await _archive(request)
    return _form_page(request, archive, down)


@router.post("/nyhedsbrev")
async def subscribe(request: Request) -> Response:
    site = site_of(request)
    form, bot = await site.guard.form(request, "subscribe")
    values = {key: str(form.get(key) or "").strip() for key in ("email", "name")}
    try:
        command = Subscribe(email=values["email"], name=values["name"] or None)
    except ValidationError as exc:
        archive, down = await _archive(request)
        return _form_page(
            request, archive, down, values=values, problems=from_validation(exc), status_code=400
        )
    if not bot:
        try:
            await ask(site.services, Newsletter.SUBSCRIBE, command)
        except ServiceError as exc:
            if exc.code != ErrorCode.VALIDATION_FAILED:
                raise
            archive, down = await _archive(request)
            problems = from_service(exc)
            return _form_page(
                request, archive, down, values=values, problems=problems, status_code=400
            )
    return site.pages.render(
        request,
        "done.html.j2",
        title="Tjek din mail",
        text="Hvis adressen kan bruges, er en mail på vej til den. "
        "Tryk på linket i mailen for at bekræfte dit abonnement.",
    )


@router.get("/nyhedsbrev/{number}")
async def issue(request: Request, number: Annotated[int, Path(ge=1, le=100_000)]) -> Response:
    site = site_of(request)
    try:
        found = await ask(site.services, Newsletter.ARCHIVE, GetArchive(number=number))
    except ServiceError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return error_page(
                site.pages,
                request,
                404,
                "Nyhedsbrevet findes ikke",
                "Der er ikke sendt et nyhedsbrev med det nummer.",
            )
        raise
    assert found.issue is not None
    page = HTMLResponse(found.issue.html, headers={"Content-Security-Policy": ISSUE_POLICY})
    return cacheable(request, page, site.settings.web_cache_seconds)


@router.get("/nyhedsbrev/images/{name}")
async def issue_image(request: Request, name: ImageName) -> Response:
    """A picture of an issue's web version (the page refers to it as ``images/<name>``),
    fetched from the newsletter service in pieces."""
    site = site_of(request)
    picture = await fetch(
        site.services,
        Newsletter.ARCHIVE_IMAGE,
        lambda offset: GetArchiveImage(name=name, offset=offset),
        not_there=(ErrorCode.NOT_FOUND,),
    )
    if picture is None:
        return error_page(site.pages, request, 404, "Billedet findes ikke", "")
    image = Response(picture.data, media_type=picture.content_type)
    return cacheable(request, image, IMAGE_MAX_AGE)


@router.get(FEED)
async def feed(request: Request) -> Response:
    """The sent issues as an Atom feed (RFC 4287), newest first, each linking its page."""
    site = site_of(request)
    archive = await ask(site.services, Newsletter.ARCHIVE, GetArchive())
    issues = sorted(archive.issues, key=lambda i: i.number, reverse=True)
    base = str(site.settings.public_url).rstrip("/")
    return site.pages.render(
        request,
        "newsletter.atom.j2",
        public=True,
        media_type="application/atom+xml",
        base=base,
        feed=FEED,
        issues=issues,
        # Atom needs a time even before the first issue: the feed's own start.
        updated=issues[0].sent_at if issues else FEED_STARTED,
    )
