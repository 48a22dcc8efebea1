"""Becoming an ambassador: the self sign-up form (every profile field, the consent text in
full and its version), checked against the contract here and by the service, with each
problem next to its field and in a summary at the top. The answer is the same for every
address: a mail is on its way if the address can be used (the service says no more)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from contracts.ambassadors import (
    CORE_AREA_LABELS,
    KIND_LABELS,
    PERSONAL_KINDS,
    SKILLS_MAX,
    THEME_LABELS,
    ConsentText,
    GetConsentText,
    SignUp,
)
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.errors import ErrorCode, ServiceError
from web.field_errors import FieldProblem, from_service, from_validation
from web.forms import iso_date
from web.gateway import ask
from web.site import site_of

router = APIRouter()

PATH = "/bliv-ambassadoer"
TEXT_FIELDS = (
    "name",
    "email",
    "phone",
    "organisation",
    "website",
    "description",
    "skills",
    "networks_at_once",
    "paused_until",
)
# How many networks at once a person may choose ("" is no limit of their own).
AT_ONCE_CHOICES = {"": "Så mange, det passer", "1": "Ét ad gangen", "2": "To", "3": "Tre"}


def _skills(text: str) -> list[str]:
    """Skills are typed as a list separated by commas (or lines)."""
    return [s.strip() for s in text.replace("\n", ",").split(",") if s.strip()][: SKILLS_MAX + 1]


def _values(form: FormData) -> dict[str, object]:
    values: dict[str, object] = {key: str(form.get(key) or "").strip() for key in TEXT_FIELDS}
    values["kind"] = str(form.get("kind") or "")
    values["themes"] = [str(v) for v in form.getlist("themes")]
    values["core_areas"] = [str(v) for v in form.getlist("core_areas")]
    values["public"] = form.get("public") == "ja"
    values["consent"] = form.get("consent") == "ja"
    return values


def _command(values: dict[str, object], consent_version: str) -> SignUp:
    def text(key: str) -> str | None:
        return str(values[key]) or None

    return SignUp.model_validate(
        {
            "kind": values["kind"] or None,
            "name": values["name"],
            "email": values["email"],
            "phone": text("phone"),
            "organisation": text("organisation"),
            "website": text("website"),
            "description": text("description"),
            "themes": values["themes"],
            "core_areas": values["core_areas"],
            "skills": _skills(str(values["skills"])),
            "public": values["public"],
            "networks_at_once": text("networks_at_once"),
            "paused_until": iso_date(str(values["paused_until"])),
            "consent": values["consent"],
            "consent_version": consent_version,
        }
    )


def _form(
    request: Request,
    consent: ConsentText,
    *,
    values: dict[str, object] | None = None,
    problems: list[FieldProblem] | None = None,
    status_code: int = 200,
) -> Response:
    return site_of(request).pages.render(
        request,
        "signup.html.j2",
        status_code=status_code,
        title="Bliv ambassadør",
        consent=consent,
        kinds=KIND_LABELS,
        personal_kinds=PERSONAL_KINDS,
        themes=THEME_LABELS,
        core_areas=CORE_AREA_LABELS,
        at_once=AT_ONCE_CHOICES,
        values=values or {"themes": [], "core_areas": [], "public": False, "consent": False},
        problems=problems or [],
        errors={p.field: p.message for p in problems or []},
    )


async def _consent(request: Request) -> ConsentText:
    return await ask(site_of(request).services, Ambassadors.CONSENT, GetConsentText())


@router.get(PATH)
async def signup_form(request: Request) -> Response:
    return _form(request, await _consent(request))


@router.post(PATH)
async def sign_up(request: Request) -> Response:
    site = site_of(request)
    form, bot = await site.guard.form(request, "sign-up")
    values = _values(form)
    read = str(form.get("consent_version") or "")[:40]
    try:
        command = _command(values, read)
    except ValidationError as exc:
        problems = from_validation(exc)
        return _form(
            request, await _consent(request), values=values, problems=problems, status_code=400
        )
    if not bot:
        try:
            await ask(site.services, Ambassadors.SIGN_UP, command)
        except ServiceError as exc:
            if exc.code != ErrorCode.VALIDATION_FAILED:
                raise
            # A changed consent text comes back with the new text to read.
            problems = from_service(exc)
            return _form(
                request, await _consent(request), values=values, problems=problems, status_code=400
            )
    return site.pages.render(
        request,
        "done.html.j2",
        title="Tak for din tilmelding",
        text="Hvis adressen kan bruges, er en mail på vej til den. Tryk på linket i mailen "
        "for at bekræfte, at du vil være ambassadør; så får du dit ambassadørbevis.",
    )
