"""Checking a certificate: the link printed on every ambassador's certificate
(``/verify/<code>``) and a form to type the code. Only the certificate's number, holder and
organisation are shown."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import VerifyCertificate
from web.gateway import ask
from web.site import site_of

router = APIRouter()


@router.get("/verify")
async def verify_form(
    request: Request, code: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    typed = (code or "").strip().upper()
    if typed:
        # Quoted whole: a typed code is anything a visitor pastes, slashes and '?' included.
        return RedirectResponse(f"/verify/{quote(typed, safe='')}", status_code=303)
    return site_of(request).pages.render(
        request, "verify.html.j2", result=None, unknown=False, public=True
    )


@router.get("/verify/{code}")
async def verify(request: Request, code: Annotated[str, Path(max_length=64)]) -> Response:
    site = site_of(request)
    try:
        query = VerifyCertificate(code=code)
    except ValidationError:
        return site.pages.render(request, "verify.html.j2", code=code, result=None, unknown=True)
    result = await ask(site.services, Ambassadors.VERIFY, query)
    return site.pages.render(
        request, "verify.html.j2", code=code, result=result, unknown=False, public=True
    )
