"""Answering a staff network's call-out ("akutteam"): the page behind the links in the
call-out mail (``/akut/<token>`` and ``/akut/<token>/ja|nej``). It shows the message and
the deadline; only pressing a button (a POST with the form's CSRF token) answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from contracts.errors import ServiceError
from contracts.networks import AlertAnswerView, AnswerAlert, ShowAlert
from contracts.networks import Endpoints as Networks
from web.failures import error_page, service_error_page
from web.gateway import ask
from web.pages.calendar import danish_date, danish_time
from web.site import site_of
from web.token_pages import look_up

router = APIRouter()

Token = Annotated[str, Path(max_length=512)]
PATH = "/akut"
CAN, CANNOT = "ja", "nej"
BUTTONS = {CAN: "Ja, jeg kan hjælpe", CANNOT: "Nej, ikke denne gang"}


def _invalid_link(request: Request) -> Response:
    return error_page(
        site_of(request).pages,
        request,
        400,
        "Linket er ugyldigt",
        "Linket virker ikke (mere). Svar på mailen eller ring til os, hvis du kan hjælpe.",
    )


def _standing(view: AlertAnswerView) -> str:
    if view.can_help is None:
        return "Du har ikke svaret endnu."
    return "Du har svaret, at du kan hjælpe." if view.can_help else "Du har svaret nej denne gang."


def _page(
    request: Request,
    token: str,
    view: AlertAnswerView,
    *,
    chosen: str | None = None,
    answered: bool = False,
) -> Response:
    return site_of(request).pages.render(
        request,
        "alert_answer.html.j2",
        title=f"Akut: {view.network_title}",
        alert=view,
        standing=_standing(view),
        date=danish_date,
        time=danish_time,
        buttons=BUTTONS,
        chosen=chosen if chosen in BUTTONS else None,
        answered=answered,
        action=f"{PATH}/{token}",
    )


async def _alert(request: Request, token: str) -> AlertAnswerView | Response:
    return await look_up(
        request, Networks.SHOW_ALERT, lambda: ShowAlert(token=token), _invalid_link
    )


async def _show(request: Request, token: str, chosen: str | None) -> Response:
    site_of(request).guard.limit(request, "token-page")
    found = await _alert(request, token)
    if isinstance(found, Response):
        return found
    return _page(request, token, found, chosen=chosen)


@router.get(PATH + "/{token}")
async def alert_page(request: Request, token: Token) -> Response:
    return await _show(request, token, None)


@router.get(PATH + "/{token}/{answer}")
async def alert_page_with_answer(request: Request, token: Token, answer: str) -> Response:
    return await _show(request, token, answer)


@router.post(PATH + "/{token}")
async def answer_alert(request: Request, token: Token) -> Response:
    site = site_of(request)
    form, bot = await site.guard.form(request, "token-post")
    given = str(form.get("answer") or "")
    found = await _alert(request, token)
    if isinstance(found, Response):
        return found
    if given not in BUTTONS:
        return _page(request, token, found)
    if not bot:
        try:
            found = await ask(
                site.services,
                Networks.ANSWER_ALERT,
                AnswerAlert(token=token, can_help=given == CAN),
            )
        except ServiceError as exc:
            return service_error_page(site.pages, request, exc)
    return _page(request, token, found, chosen=given, answered=True)
