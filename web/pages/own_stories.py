"""An ambassador's own stories: the page behind their personal link
(``/historier/egne/<token>``, in the welcome mail, every digest and each review's mail).

It shows what makes a good story (the guide), the stories they sent with where each one
stands and what the editors said, and the form to send a new one; a story still in review
or sent back for changes can be revised (``/historier/egne/<token>/<story id>``). Only a
POST with the form's CSRF token sends anything. The pictures go into the social service's
uploads bucket first (a NATS message holds at most 1 MB) and the command names them; the
story is checked against the guide before any picture is put there, so a story the guide
stops costs no transfer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from contracts.social import (
    GOOD_STORIES,
    KIND_LABELS,
    PICTURES_MAX,
    READABLE_TEXT,
    STORIES_PATH,
    TEXT_MAX,
    UPLOADS_BUCKET,
    CheckStory,
    GetOwnPicture,
    GetOwnStories,
    HintSeverity,
    OwnStories,
    OwnStory,
    ReviseOwnStory,
    StoryContent,
    StoryReceipt,
    StoryStatus,
    SubmitOwnStory,
)
from contracts.social import Endpoints as Social
from web import story_form
from web.failures import error_page
from web.gateway import Unavailable, ask
from web.pages.calendar import danish_date
from web.pictures import fetch
from web.settings import WebSettings
from web.site import Site, site_of
from web.story_form import StoryForm
from web.templating import cacheable
from web.token_pages import look_up
from web.uploads import upload_name

router = APIRouter()

PATH = STORIES_PATH
Token = Annotated[str, Path(max_length=512)]
StoryId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
PictureName = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9._-]+$")]
Sent = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]

# The posts that carry pictures: only these get a body limit large enough for them.
UPLOAD_PATHS = re.compile(rf"{re.escape(PATH)}/[^/]+(?:/[^/]+)?")
# Room for the text fields and the multipart framing beside the pictures.
FIELDS_BYTES = 256 * 1024
# A picture under its name never changes (the name holds its digest).
PICTURE_MAX_AGE = 3600

STATUS_LABELS = {
    StoryStatus.IN_REVIEW: "Til gennemsyn",
    StoryStatus.CHANGES_REQUESTED: "Ændringer ønsket",
    StoryStatus.APPROVED: "Godkendt",
    StoryStatus.SCHEDULED: "Planlagt",
    StoryStatus.PUBLISHING: "Bliver offentliggjort",
    StoryStatus.PUBLISHED: "Offentliggjort",
    StoryStatus.UNCONFIRMED: "Afventer redaktionen",
    StoryStatus.FAILED: "Afventer redaktionen",
    StoryStatus.REJECTED: "Afvist",
    StoryStatus.UNPUBLISHED: "Fjernet igen",
    StoryStatus.WITHDRAWN: "Trukket tilbage",
}
# Whose words a story's comment is: staff's (shown) only when they asked for changes or
# rejected it; otherwise it may be Facebook's refusal, which is for the editors.
STAFF_COMMENTS = (StoryStatus.CHANGES_REQUESTED, StoryStatus.REJECTED)
THANKS = {
    "sendt": "Tak for din historie. Vi kigger på den og skriver til dig.",
    "rettet": "Tak for den rettede historie. Vi kigger på den og skriver til dig.",
}


def upload_body_limit(settings: WebSettings) -> int:
    """The body a story form may post: every picture at its largest, and the fields."""
    return PICTURES_MAX * settings.web_story_picture_max_bytes + FIELDS_BYTES


def _invalid_link(request: Request) -> Response:
    return error_page(
        site_of(request).pages,
        request,
        400,
        "Linket er ugyldigt",
        "Linket virker ikke (mere). Brug linket i den nyeste mail fra os, eller svar på "
        "mailen, så hjælper vi dig.",
    )


def _notice(request: Request, token: str, status: int, title: str, text: str) -> Response:
    return site_of(request).pages.render(
        request,
        "story_notice.html.j2",
        status_code=status,
        title=title,
        text=text,
        back=f"{PATH}/{token}",
    )


def _not_theirs(request: Request, token: str) -> Response:
    return _notice(
        request,
        token,
        404,
        "Historien findes ikke",
        "Vi kan ikke finde den historie blandt dine. Se dine historier her:",
    )


def _not_revisable(request: Request, token: str, story: OwnStory) -> Response:
    return _notice(
        request,
        token,
        409,
        "Historien kan ikke rettes nu",
        f"Historien står som »{STATUS_LABELS[story.status]}«. Du kan rette en historie, mens "
        "den er til gennemsyn, eller når vi har bedt om ændringer. Skal noget ændres nu, så "
        "svar på mailen fra os. Se dine historier her:",
    )


async def _own(request: Request, token: str) -> OwnStories | Response:
    return await look_up(request, Social.OWN, lambda: GetOwnStories(token=token), _invalid_link)


def _common(site: Site, token: str) -> dict[str, Any]:
    return {
        "kinds": KIND_LABELS,
        "statuses": STATUS_LABELS,
        "date": danish_date,
        "accept": story_form.ACCEPT,
        "event_public_choices": story_form.EVENT_PUBLIC_CHOICES,
        "readable_text": READABLE_TEXT,
        "text_max": TEXT_MAX,
        "pictures_max": PICTURES_MAX,
        "picture_mb": site.settings.web_story_picture_max_bytes // 1_000_000,
        "formats": story_form.FORMATS,
        "limits": story_form.LIMITS,
        "form_id": story_form.FORM_ID,
        "picture_url": lambda name: f"{PATH}/{token}/billeder/{name}",
    }


def _page(
    request: Request,
    token: str,
    own: OwnStories,
    form: StoryForm,
    *,
    status_code: int = 200,
    thanks: tuple[str, str] | None = None,
) -> Response:
    site = site_of(request)
    stories = sorted(own.items, key=lambda s: s.submitted_at, reverse=True)
    thanked = None
    if thanks is not None:
        said, story_id = thanks
        thanked = {
            "text": THANKS[said],
            "story": next((s for s in stories if s.id == story_id), None),
        }
    return site.pages.render(
        request,
        "own_stories.html.j2",
        status_code=status_code,
        title="Dine historier",
        own=own,
        stories=stories,
        good_stories=GOOD_STORIES,
        staff_comments=STAFF_COMMENTS,
        thanked=thanked,
        form=form,
        problems=form.problems,
        errors=form.errors,
        action=f"{PATH}/{token}",
        revise_url=lambda story_id: f"{PATH}/{token}/{story_id}",
        **_common(site, token),
    )


def _revise_page(
    request: Request,
    token: str,
    story: OwnStory,
    form: StoryForm,
    *,
    status_code: int = 200,
) -> Response:
    site = site_of(request)
    return site.pages.render(
        request,
        "story_revise.html.j2",
        status_code=status_code,
        title=f"Ret historien: {story.title or KIND_LABELS[story.kind]}",
        story=story,
        staff_comments=STAFF_COMMENTS,
        form=form,
        problems=form.problems,
        errors=form.errors,
        action=f"{PATH}/{token}/{story.id}",
        back=f"{PATH}/{token}",
        **_common(site, token),
    )


async def _put_pictures(site: Site, form: StoryForm) -> dict[int, str]:
    """Each chosen file into the uploads bucket; the object name each row's file got."""
    if site.uploads is None:
        raise Unavailable("social")
    names: dict[int, str] = {}
    for row in form.rows:
        if row.kept is None and row.file is not None:
            name = upload_name(row.file.filename, story_form.suffix_of(row.file))
            await row.file.seek(0)
            await site.uploads.put("social", UPLOADS_BUCKET, name, row.file.file)
            names[row.number] = name
    return names


async def _send(
    request: Request,
    form: StoryForm,
    endpoint: Endpoint[Any, StoryReceipt],
    command_of: Callable[[dict[str, Any]], StoryContent],
) -> StoryReceipt | StoryForm:
    """The story sent: its receipt; or the form with what stops it, field by field."""
    site = site_of(request)
    max_bytes = site.settings.web_story_picture_max_bytes
    problems = list(form.problems)
    try:
        command_of(form.content())
    except ValidationError as exc:
        problems += story_form.from_validation(exc, form)
    if not problems:
        checked = await ask(site.services, Social.CHECK, CheckStory(**form.content()))
        stopping = [(h.field, h.message) for h in checked.hints if h.severity != HintSeverity.HINT]
        problems += story_form.from_findings(stopping, form, max_bytes=max_bytes, service=False)
    if not problems:
        names = await _put_pictures(site, form)
        try:
            return await ask(site.services, endpoint, command_of(form.content(names)))
        except ServiceError as exc:
            if exc.code != ErrorCode.VALIDATION_FAILED:
                raise
            refused = [(d.field, d.message) for d in exc.error.details]
            problems += story_form.from_findings(refused, form, max_bytes=max_bytes, service=True)
    form.problems = story_form.labelled(problems)
    return form


# ---------------------------------------------------------------- the page and a new story


@router.get(PATH + "/{token}")
async def own_stories(
    request: Request, token: Token, sendt: Sent = "", rettet: Sent = ""
) -> Response:
    site_of(request).guard.limit(request, "token-page")
    found = await _own(request, token)
    if isinstance(found, Response):
        return found
    thanks = ("sendt", sendt) if sendt else ("rettet", rettet) if rettet else None
    return _page(request, token, found, story_form.empty(), thanks=thanks)


@router.post(PATH + "/{token}")
async def send_story(request: Request, token: Token) -> Response:
    site = site_of(request)
    posted, bot = await site.guard.form(request, "story", max_files=PICTURES_MAX)
    try:
        found = await _own(request, token)
        if isinstance(found, Response):
            return found
        form = story_form.posted(posted, (), max_bytes=site.settings.web_story_picture_max_bytes)
        if bot:
            # As if it was sent: a bot learns nothing from the answer.
            return RedirectResponse(f"{PATH}/{token}?sendt={uuid.uuid4().hex}", status_code=303)
        sent = await _send(
            request,
            form,
            Social.SUBMIT_OWN,
            lambda content: SubmitOwnStory.model_validate({**content, "token": token}),
        )
    finally:
        await posted.close()
    if isinstance(sent, StoryForm):
        return _page(request, token, found, sent, status_code=422)
    return RedirectResponse(f"{PATH}/{token}?sendt={sent.story_id}", status_code=303)


# ---------------------------------------------------------------- revising a story


async def _revisable(request: Request, token: Token, story_id: str) -> OwnStory | Response:
    """The link holder's story ``story_id`` when it can be revised now; else the page
    saying why not (the link, the story, or its status)."""
    found = await _own(request, token)
    if isinstance(found, Response):
        return found
    story = next((s for s in found.items if s.id == story_id), None)
    if story is None:
        return _not_theirs(request, token)
    if not story.revisable:
        return _not_revisable(request, token, story)
    return story


@router.get(PATH + "/{token}/{story_id}")
async def revise_page(request: Request, token: Token, story_id: StoryId) -> Response:
    site_of(request).guard.limit(request, "token-page")
    story = await _revisable(request, token, story_id)
    if isinstance(story, Response):
        return story
    return _revise_page(request, token, story, story_form.of_story(story))


@router.post(PATH + "/{token}/{story_id}")
async def revise_story(request: Request, token: Token, story_id: StoryId) -> Response:
    site = site_of(request)
    posted, bot = await site.guard.form(request, "story", max_files=PICTURES_MAX)
    try:
        story = await _revisable(request, token, story_id)
        if isinstance(story, Response):
            return story
        max_bytes = site.settings.web_story_picture_max_bytes
        form = story_form.posted(posted, story.pictures, max_bytes=max_bytes)
        if bot:
            return RedirectResponse(f"{PATH}/{token}?rettet={story.id}", status_code=303)
        try:
            sent = await _send(
                request,
                form,
                Social.REVISE_OWN,
                lambda content: ReviseOwnStory.model_validate(
                    {**content, "token": token, "story_id": story.id}
                ),
            )
        except ServiceError as exc:
            if exc.code == ErrorCode.INVALID_STATE:
                # Staff decided on it meanwhile.
                return _not_revisable(request, token, story)
            if exc.code == ErrorCode.NOT_FOUND:
                return _not_theirs(request, token)
            raise
    finally:
        await posted.close()
    if isinstance(sent, StoryForm):
        return _revise_page(request, token, story, sent, status_code=422)
    return RedirectResponse(f"{PATH}/{token}?rettet={sent.story_id}", status_code=303)


# ---------------------------------------------------------------- their pictures


@router.get(PATH + "/{token}/billeder/{name}")
async def own_picture(request: Request, token: Token, name: PictureName) -> Response:
    """A picture of one of their own stories, published or not (the public one shows
    published stories' pictures only)."""
    site = site_of(request)
    try:
        GetOwnPicture(token=token, name=name)
    except ValidationError:
        return error_page(site.pages, request, 404, "Billedet findes ikke", "")
    picture = await fetch(
        site.services,
        Social.OWN_PICTURE,
        lambda offset: GetOwnPicture(token=token, name=name, offset=offset),
    )
    if picture is None:
        return error_page(site.pages, request, 404, "Billedet findes ikke", "")
    image = Response(picture.data, media_type=picture.content_type)
    return cacheable(request, image, PICTURE_MAX_AGE, private=True)
