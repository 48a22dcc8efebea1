"""The pages behind the links in mails that change something: confirming a sign-up,
confirming a subscription, unsubscribing.

Mail security scanners open every link in a mail, so a GET only shows a page with one
button; the POST (with the form's CSRF token) acts. The RFC 8058 one-click unsubscribe a
mail program sends (``List-Unsubscribe=One-Click``, no cookie, no token) acts at once.
Each link is declared once (:data:`LINKS`); its GET and POST are the same two functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import PlainTextResponse, Response

from contracts.ambassadors import Endpoints as Ambassadors
from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import Endpoints as Newsletter
from web.failures import RETRY_AFTER_SECONDS, error_page, service_error_page
from web.gateway import Unavailable, ask
from web.site import site_of

router = APIRouter()

Token = Annotated[str, Path(max_length=512)]
ONE_CLICK = ("List-Unsubscribe", "One-Click")


@dataclass(frozen=True)
class TokenLink:
    """A link in a mail that acts: its path, what it asks the service, what it says."""

    path: str
    endpoint: Endpoint[Any, Any]
    title: str
    text: str
    button: str
    done_title: str
    done_text: str
    one_click: bool = False

    def command(self, token: str) -> BaseModel | None:
        try:
            made: BaseModel = self.endpoint.request(token=token)
        except ValidationError:
            return None
        return made


LINKS = (
    TokenLink(
        "/confirm/{token}",
        Ambassadors.CONFIRM,
        "Bekræft din tilmelding",
        "Tryk på knappen for at bekræfte, at du vil være ambassadør.",
        "Bekræft tilmelding",
        "Tak, du er nu ambassadør",
        "Din tilmelding er bekræftet. Du får en velkomstmail med dit ambassadørbevis.",
    ),
    TokenLink(
        "/newsletter/confirm/{token}",
        Newsletter.CONFIRM,
        "Bekræft dit abonnement",
        "Tryk på knappen for at få nyhedsbrevet fra ambassadørnetværket.",
        "Bekræft abonnement",
        "Tak for dit abonnement",
        "Du får nu nyhedsbrevet. Hver mail har et link til at afmelde det igen.",
    ),
    TokenLink(
        "/newsletter/unsubscribe/{token}",
        Newsletter.UNSUBSCRIBE,
        "Afmeld nyhedsbrevet",
        "Tryk på knappen for ikke at få nyhedsbrevet mere.",
        "Afmeld",
        "Du er afmeldt",
        "Du får ikke nyhedsbrevet mere. Du kan altid tilmelde dig igen på siden Nyhedsbrev.",
        one_click=True,
    ),
)


def _invalid_link(request: Request) -> Response:
    return error_page(
        site_of(request).pages,
        request,
        400,
        "Linket er ugyldigt",
        "Linket er ikke helt, som det var i mailen. "
        "Kopiér hele linket, eller brug knappen i mailen.",
    )


async def show(request: Request, link: TokenLink, token: str) -> Response:
    """The page a link opens: one button, nothing done."""
    site = site_of(request)
    site.guard.limit(request, "token-page")
    if link.command(token) is None:
        return _invalid_link(request)
    return site.pages.render(
        request,
        "action.html.j2",
        title=link.title,
        text=link.text,
        button=link.button,
        action=request.url.path,
    )


async def act(request: Request, link: TokenLink, token: str) -> Response:
    """The button's POST (or a mail program's one-click POST): the service acts."""
    site = site_of(request)
    site.guard.limit(request, "token-post")
    form = await request.form(max_files=0, max_fields=20, max_part_size=4096)
    command = link.command(token)
    if link.one_click and form.get(ONE_CLICK[0]) == ONE_CLICK[1]:
        return await _one_click(request, link, command)
    bot = site.guard.check(request, form)
    if command is None:
        return _invalid_link(request)
    if not bot:
        try:
            await ask(site.services, link.endpoint, command)
        except ServiceError as exc:
            if exc.code == ErrorCode.VALIDATION_FAILED:
                return _invalid_link(request)
            return service_error_page(site.pages, request, exc)
    return site.pages.render(request, "done.html.j2", title=link.done_title, text=link.done_text)


async def _one_click(request: Request, link: TokenLink, command: BaseModel | None) -> Response:
    """RFC 8058: a mail program's POST, without cookies or a CSRF token, answered in plain
    text; it acts at once."""
    if command is None:
        return PlainTextResponse("Ugyldigt link.", status_code=400)
    try:
        await ask(site_of(request).services, link.endpoint, command)
    except Unavailable:
        return PlainTextResponse(
            "Prøv igen senere.",
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    except ServiceError as exc:
        status = 500 if exc.code == ErrorCode.INTERNAL else 400
        return PlainTextResponse("Det lykkedes ikke.", status_code=status)
    return PlainTextResponse(link.done_title + ".")


def _routes(link: TokenLink) -> None:
    async def get(request: Request, token: Token) -> Response:
        return await show(request, link, token)

    async def post(request: Request, token: Token) -> Response:
        return await act(request, link, token)

    router.add_api_route(link.path, get, methods=["GET"])
    router.add_api_route(link.path, post, methods=["POST"])


for _link in LINKS:
    _routes(_link)
