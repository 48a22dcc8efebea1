"""What a visitor sees when something fails: a Danish page with the right status, never a
stack trace (that goes to the log, once)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from contracts.errors import ErrorCode, ServiceError
from services.runtime.logging import get_logger
from web.forms import FormRefused
from web.gateway import Unavailable
from web.security import redact_path
from web.site import site_of
from web.templating import Pages

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 30

_STATUS_TEXT = {
    400: ("Forespørgslen kunne ikke forstås", "Tjek adressen, eller gå til forsiden."),
    403: ("Formularen er udløbet", "Gå tilbage, genindlæs siden og prøv igen."),
    404: ("Siden findes ikke", "Adressen er forkert, eller siden er fjernet."),
    405: ("Det kan ikke lade sig gøre her", "Brug knapperne på siden."),
    429: ("For mange forsøg", "Vent et øjeblik, og prøv så igen."),
    500: ("Der skete en fejl", "Fejlen er registreret. Prøv igen om lidt."),
}

# A service's refusal a visitor can act on, in Danish (the service's English message is
# for the log).
SERVICE_ERRORS = {
    # The site checks a visitor's input before it asks; what a service still refuses is
    # input only the service can judge, so the visitor is told to check it, not that we broke.
    ErrorCode.VALIDATION_FAILED: (
        400,
        "Forespørgslen kunne ikke forstås",
        "Tjek det, du har skrevet, og prøv igen.",
    ),
    ErrorCode.INVALID_TOKEN: (400, "Linket er ugyldigt", "Brug linket fra den nyeste mail."),
    ErrorCode.TOKEN_EXPIRED: (
        400,
        "Linket er udløbet",
        "Linket i mailen gælder kun en tid. Tilmeld dig igen for at få et nyt.",
    ),
    ErrorCode.NOT_FOUND: (404, "Findes ikke", "Det, linket peger på, findes ikke længere."),
    ErrorCode.INVALID_STATE: (409, "Det kan ikke lade sig gøre nu", "Det er allerede sket."),
    ErrorCode.CONFLICT: (409, "Det kan ikke lade sig gøre nu", "Prøv igen om lidt."),
}


def error_page(
    pages: Pages,
    request: Request,
    status: int,
    title: str | None = None,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    default_title, default_text = _STATUS_TEXT.get(status, _STATUS_TEXT[500])
    return pages.render(
        request,
        "error.html.j2",
        status_code=status,
        headers=headers,
        title=title or default_title,
        text=text or default_text,
    )


def service_error_page(pages: Pages, request: Request, error: ServiceError) -> Response:
    status, title, text = SERVICE_ERRORS.get(error.code, (500, None, None))
    if status == 500:
        log.error("a service failed a page", path=redact_path(request.url.path), code=error.code)
    elif error.code == ErrorCode.VALIDATION_FAILED:
        log.warning(
            "a service refused what a page sent",
            path=redact_path(request.url.path),
            fields=[detail.field for detail in error.error.details],
        )
    return error_page(pages, request, status, title, text)


def install(app: FastAPI, pages: Pages) -> None:
    async def unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Unavailable)
        log.warning("a service is unavailable", service=exc.service)
        return error_page(
            pages,
            request,
            503,
            exc.message,
            "Prøv igen om lidt. Resten af siden virker.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return service_error_page(pages, request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code if exc.status_code in _STATUS_TEXT else 400
        return error_page(pages, request, status, headers=dict(exc.headers or {}))

    async def bad_request(request: Request, exc: Exception) -> Response:
        return error_page(pages, request, 400)

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("a page failed", path=redact_path(request.url.path))
        return error_page(pages, request, 500)

    async def form_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FormRefused)
        headers = None
        if exc.status == 429:
            headers = {"Retry-After": str(site_of(request).guard.limits.window_seconds)}
        return error_page(pages, request, exc.status, headers=headers)

    app.add_exception_handler(FormRefused, form_refused)
    app.add_exception_handler(Unavailable, unavailable)
    app.add_exception_handler(ServiceError, refused)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(Exception, crashed)
