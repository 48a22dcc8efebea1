"""The newsletter on the website: the subscribe form (double opt-in: the answer is the same
for every address), the archive of sent issues, and each issue's public web version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse, Response

from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import Archive, GetArchive, Subscribe
from contracts.newsletter import Endpoints as Newsletter
from web.failures import error_page
from web.field_errors import FieldProblem, from_service, from_validation
from web.gateway import Unavailable, ask
from web.site import site_of
from web.templating import cacheable

router = APIRouter()

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
