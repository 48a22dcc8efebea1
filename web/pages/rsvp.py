"""Answering an invitation: the page behind the answer links in every invitation, reminder
and waitlist mail (``/rsvp/<token>`` and ``/rsvp/<token>/<answer>``).

The page shows the meeting and the current answer, with the link's answer preselected;
only pressing a button (a POST with the form's CSRF token) records an answer, because mail
scanners open every link. A yes to a full meeting puts the person on the waitlist, and the
page says their place in it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from contracts.errors import ErrorCode, ServiceError
from contracts.events import (
    KIND_LABELS,
    Answer,
    AnswerInvitation,
    InvitationView,
    MeetingState,
    Participation,
    ShowInvitation,
)
from contracts.events import Endpoints as Events
from web.failures import error_page, service_error_page
from web.gateway import ask
from web.pages.calendar import danish_date, danish_time
from web.site import site_of
from web.token_pages import look_up

router = APIRouter()

Token = Annotated[str, Path(max_length=512)]

# Each answer's button and what the page says about where the person stands.
BUTTONS = {Answer.YES: "Ja, jeg kommer", Answer.MAYBE: "Måske", Answer.NO: "Nej tak"}
STANDING = {
    Participation.INVITED: "Du har ikke svaret endnu.",
    Participation.ATTENDING: "Du har svaret ja, og du har en plads.",
    Participation.WAITLISTED: "Du har svaret ja, men mødet er fuldt: du står på venteliste.",
    Participation.MAYBE: "Du har svaret måske.",
    Participation.DECLINED: "Du har svaret nej tak.",
}


def _invalid_link(request: Request) -> Response:
    return error_page(
        site_of(request).pages,
        request,
        400,
        "Linket er ugyldigt",
        "Linket virker ikke (mere). Er du stadig inviteret, så brug knapperne i den nyeste "
        "mail om mødet, eller svar på mailen, så noterer vi dit svar.",
    )


def _answer(value: str) -> Answer | None:
    try:
        return Answer(value)
    except ValueError:
        return None


def _closed(invitation: InvitationView, now: datetime) -> str | None:
    """Why the meeting takes no answers, or None."""
    if invitation.state == MeetingState.CANCELLED:
        return "Mødet er aflyst."
    if invitation.state == MeetingState.HELD or invitation.meeting.starts_at <= now:
        return "Mødet er begyndt eller afholdt, så det tager ikke imod svar mere."
    return None


def _page(
    request: Request,
    token: str,
    invitation: InvitationView,
    *,
    chosen: Answer | None = None,
    answered: bool = False,
) -> Response:
    return site_of(request).pages.render(
        request,
        "rsvp.html.j2",
        title=f"Svar på invitationen: {invitation.meeting.title}",
        invitation=invitation,
        m=invitation.meeting,
        kinds=KIND_LABELS,
        date=danish_date,
        time=danish_time,
        standing=STANDING[invitation.participation],
        closed=_closed(invitation, datetime.now(UTC)),
        buttons=BUTTONS,
        chosen=chosen,
        answered=answered,
        action=f"/rsvp/{token}",
    )


async def _invitation(request: Request, token: str) -> InvitationView | Response:
    return await look_up(
        request, Events.INVITATION, lambda: ShowInvitation(token=token), _invalid_link
    )


async def _show(request: Request, token: str, chosen: Answer | None) -> Response:
    site_of(request).guard.limit(request, "token-page")
    found = await _invitation(request, token)
    if isinstance(found, Response):
        return found
    return _page(request, token, found, chosen=chosen)


@router.get("/rsvp/{token}")
async def invitation_page(request: Request, token: Token) -> Response:
    return await _show(request, token, None)


@router.get("/rsvp/{token}/{answer}")
async def invitation_page_with_answer(request: Request, token: Token, answer: str) -> Response:
    # An answer the page does not know is no answer preselected, not an error: the
    # person still gets to choose.
    return await _show(request, token, _answer(answer))


@router.post("/rsvp/{token}")
async def answer_invitation(request: Request, token: Token) -> Response:
    site = site_of(request)
    form, bot = await site.guard.form(request, "token-post")
    given = str(form.get("answer") or "")
    found = await _invitation(request, token)
    if isinstance(found, Response):
        return found
    answer = _answer(given)
    if answer is None:
        return _page(request, token, found)
    if not bot:
        try:
            await ask(site.services, Events.ANSWER, AnswerInvitation(token=token, answer=answer))
        except ServiceError as exc:
            if exc.code == ErrorCode.INVALID_STATE:
                # It closed between showing the page and pressing: the page says why.
                return _page(request, token, await _invitation_or_raise(request, token))
            return service_error_page(site.pages, request, exc)
        found = await _invitation_or_raise(request, token)
    return _page(request, token, found, chosen=answer, answered=True)


async def _invitation_or_raise(request: Request, token: str) -> InvitationView:
    return await ask(site_of(request).services, Events.INVITATION, ShowInvitation(token=token))
