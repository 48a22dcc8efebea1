"""Answering an invitation to a network: the page behind the links in the invitation mail
(``/netvaerk/svar/<token>`` and ``/netvaerk/svar/<token>/ja|nej``).

It shows the network (what it is about, until when) and the answer so far, with the link's
answer preselected; only pressing a button (a POST with the form's CSRF token) answers,
because mail scanners open every link. Taking part is voluntary, and the page says so.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from contracts.errors import ErrorCode, ServiceError
from contracts.networks import (
    KIND_LABELS,
    AnswerNetworkInvitation,
    MemberState,
    NetworkInvitation,
    NetworkStatus,
    ShowNetworkInvitation,
)
from contracts.networks import Endpoints as Networks
from web.failures import error_page, service_error_page
from web.gateway import ask
from web.pages.calendar import danish_date
from web.site import site_of
from web.token_pages import look_up

router = APIRouter()

Token = Annotated[str, Path(max_length=512)]
PATH = "/netvaerk/svar"

# The answers as the links and the buttons name them.
ACCEPT, DECLINE = "ja", "nej"
BUTTONS = {ACCEPT: "Ja, jeg er med", DECLINE: "Nej tak"}
STANDING = {
    MemberState.INVITED: "Du har ikke svaret endnu.",
    MemberState.EXPIRED: "Fristen for at svare er gået, men du er stadig velkommen til at svare.",
    MemberState.JOINED: "Du har sagt ja: du er med i netværket.",
    MemberState.DECLINED: "Du har sagt nej tak.",
    MemberState.REMOVED: "Invitationen er trukket tilbage.",
}


def _invalid_link(request: Request) -> Response:
    return error_page(
        site_of(request).pages,
        request,
        400,
        "Linket er ugyldigt",
        "Linket virker ikke (mere). Svar på mailen med invitationen, så hjælper vi dig.",
    )


def _closed(invitation: NetworkInvitation) -> str | None:
    if invitation.status == NetworkStatus.CLOSED:
        return "Netværket er afsluttet, så det tager ikke imod svar mere."
    if invitation.state == MemberState.REMOVED:
        return "Invitationen er trukket tilbage. Svar på mailen, hvis du har spørgsmål."
    return None


def _page(
    request: Request,
    token: str,
    invitation: NetworkInvitation,
    *,
    chosen: str | None = None,
    answered: bool = False,
) -> Response:
    return site_of(request).pages.render(
        request,
        "network_answer.html.j2",
        title=f"Svar på invitationen: {invitation.title}",
        invitation=invitation,
        kind_label=KIND_LABELS[invitation.kind],
        date=danish_date,
        standing=STANDING[invitation.state],
        closed=_closed(invitation),
        buttons=BUTTONS,
        chosen=chosen if chosen in BUTTONS else None,
        answered=answered,
        action=f"{PATH}/{token}",
    )


async def _invitation(request: Request, token: str) -> NetworkInvitation | Response:
    return await look_up(
        request, Networks.INVITATION, lambda: ShowNetworkInvitation(token=token), _invalid_link
    )


async def _show(request: Request, token: str, chosen: str | None) -> Response:
    site_of(request).guard.limit(request, "token-page")
    found = await _invitation(request, token)
    if isinstance(found, Response):
        return found
    return _page(request, token, found, chosen=chosen)


@router.get(PATH + "/{token}")
async def network_invitation_page(request: Request, token: Token) -> Response:
    return await _show(request, token, None)


@router.get(PATH + "/{token}/{answer}")
async def network_invitation_page_with_answer(
    request: Request, token: Token, answer: str
) -> Response:
    # An answer the page does not know preselects nothing: the person still chooses.
    return await _show(request, token, answer)


@router.post(PATH + "/{token}")
async def answer_network_invitation(request: Request, token: Token) -> Response:
    site = site_of(request)
    form, bot = await site.guard.form(request, "token-post")
    given = str(form.get("answer") or "")
    found = await _invitation(request, token)
    if isinstance(found, Response):
        return found
    if given not in BUTTONS:
        return _page(request, token, found)
    if not bot:
        command = AnswerNetworkInvitation(token=token, accept=given == ACCEPT)
        try:
            await ask(site.services, Networks.ANSWER, command)
        except ServiceError as exc:
            if exc.code != ErrorCode.INVALID_STATE:
                return service_error_page(site.pages, request, exc)
        # Closed or withdrawn meanwhile: the page as it is now says why.
        again = await _invitation(request, token)
        if isinstance(again, Response):
            return again
        found = again
    return _page(request, token, found, chosen=given, answered=not _closed(found))
